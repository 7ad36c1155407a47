"""Store throughput: batch device creation and bulk reading inserts, against naive baselines.

Covers: ``Store.create_devices`` (one transaction, Core executemany) against ORM ``add_all``;
``Store.insert_readings`` (executemany on SQLite, COPY on PostgreSQL) against one INSERT and one
commit per reading; and, for context, loading all devices and claiming all their leases.

Scenario: 10,000 devices with 3 sensors and 1 actuator each, 100,000 readings in batches of
5,000 (as the recorder flushes), and a naive baseline of 2,000 readings. Ratios are computed
within one run, so they hold across machines better than the absolute figures.

Run by hand (the databases must be new/empty; nothing is dropped afterwards)::

    python bench/bench_store.py --sqlite /tmp/bench.db \\
        --pg postgresql+psycopg://postgres@127.0.0.1:5432/mocksim_bench
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from mocksim.spec import ActuatorSpec, DeviceSpec, DriftPattern, SensorSpec
from mocksim.store import RuntimeStatus, Store
from mocksim.store.engine import make_engine, parse_url
from mocksim.store.models import DeviceRow, ReadingRow

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_specs(n: int, prefix: str) -> list[DeviceSpec]:
    return [
        DeviceSpec(
            id=f"MOCK_{prefix}{i}",
            zone_id="bench",
            sensors=[
                SensorSpec(gpio=4, sensor_type="ds18b20", pattern=DriftPattern(start=21.0)),
                SensorSpec(gpio=21, sensor_type="sht31", i2c_address=0x44),
                SensorSpec(gpio=33, sensor_type="ph"),
            ],
            actuators=[ActuatorSpec(gpio=16, actuator_type="pump")],
        )
        for i in range(n)
    ]


def make_readings(n: int, offset: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "device_id": f"MOCK_A{(offset + i) % 10_000}",
            "gpio": 4,
            "sensor_type": "ds18b20",
            "raw": 344 + i % 50,
            "value": 21.5 + (i % 50) / 16,
            "unit": "°C",
            "quality": "good",
            "seq": offset + i,
            "device_ts": 1_767_225_600 + i // 10,
            "received_at": T0 + timedelta(milliseconds=offset + i),
        }
        for i in range(n)
    ]


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def orm_add_all(url: str, specs: list[DeviceSpec]) -> None:
    """The naive way: one ORM object per device, ``add_all``, one commit."""
    engine = make_engine(parse_url(url))
    now = datetime.now(UTC)
    try:
        with Session(engine) as session:
            session.add_all(
                DeviceRow(
                    id=s.id,
                    kaiser_id=s.kaiser_id,
                    zone_id=s.zone_id,
                    subzone_id=s.subzone_id,
                    hardware_type=s.hardware_type,
                    heartbeat_interval_s=s.heartbeat_interval_s,
                    desired_state="running",
                    runtime_status=RuntimeStatus.STOPPED.value,
                    error=None,
                    spec=s.model_dump(mode="json"),
                    config_version=1,
                    created_at=now,
                    updated_at=now,
                )
                for s in specs
            )
            session.commit()
    finally:
        engine.dispose()


def row_by_row(url: str, rows: list[dict[str, Any]]) -> None:
    """The naive way: one INSERT and one commit per reading."""
    engine = make_engine(parse_url(url))
    try:
        for row in rows:
            with engine.begin() as conn:
                conn.execute(insert(ReadingRow), row)
    finally:
        engine.dispose()


def bench(
    label: str, url: str, n_devices: int, n_readings: int, n_naive: int, batch: int
) -> dict[str, float]:
    results: dict[str, float] = {}
    with Store.open(url) as store:
        if store.device_ids():
            sys.exit(f"{label}: {store.url} is not empty; give a new database")
        specs = make_specs(n_devices, "A")
        results["create_devices"] = timed(lambda: store.create_devices(specs))
        results["list_devices"] = timed(store.list_devices)
        results["claim_leases"] = timed(lambda: store.claim_leases("bench", ttl_s=30))
        readings = make_readings(n_readings)
        batches = [readings[i : i + batch] for i in range(0, len(readings), batch)]

        def insert_all() -> None:
            for chunk in batches:
                store.insert_readings(chunk)

        results["insert_readings"] = timed(insert_all)
        assert store.count_readings() == n_readings
        results["query_window"] = timed(
            lambda: store.readings("MOCK_A7", since=T0, until=T0 + timedelta(seconds=60))
        )
    other_specs = make_specs(n_devices, "B")
    results["orm_add_all"] = timed(lambda: orm_add_all(url, other_specs))
    naive = make_readings(n_naive, offset=n_readings)
    results["row_by_row"] = timed(lambda: row_by_row(url, naive))
    return results


def report(label: str, r: dict[str, float], n_devices: int, n_readings: int, n_naive: int) -> None:
    dev_fast = n_devices / r["create_devices"]
    dev_slow = n_devices / r["orm_add_all"]
    rd_fast = n_readings / r["insert_readings"]
    rd_slow = n_naive / r["row_by_row"]
    print(f"\n### {label}")
    print("| what | time | rate |")
    print("|---|---|---|")
    print(
        f"| create_devices, {n_devices:,} in one batch | {r['create_devices']:.2f} s "
        f"| {dev_fast:,.0f} devices/s |"
    )
    print(
        f"| baseline: ORM add_all, {n_devices:,} | {r['orm_add_all']:.2f} s "
        f"| {dev_slow:,.0f} devices/s |"
    )
    print(
        f"| insert_readings, {n_readings:,} | {r['insert_readings']:.2f} s "
        f"| {rd_fast:,.0f} rows/s |"
    )
    print(
        f"| baseline: row by row + commit, {n_naive:,} | {r['row_by_row']:.2f} s "
        f"| {rd_slow:,.0f} rows/s |"
    )
    print(
        f"| list_devices, {n_devices:,} (validated) | {r['list_devices']:.2f} s "
        f"| {n_devices / r['list_devices']:,.0f} devices/s |"
    )
    print(
        f"| claim_leases, {n_devices:,} | {r['claim_leases']:.2f} s "
        f"| {n_devices / r['claim_leases']:,.0f} leases/s |"
    )
    print(f"| readings of one device in a 60 s window | {r['query_window'] * 1000:.1f} ms | |")
    print(
        f"\nratios: devices ×{dev_fast / dev_slow:.1f} over ORM add_all; "
        f"readings ×{rd_fast / rd_slow:.0f} over row-by-row commits"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sqlite", type=Path, help="path of a new SQLite file")
    parser.add_argument("--pg", help="URL of an empty PostgreSQL database (postgresql+psycopg://)")
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--naive-readings", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=5_000, help="readings per insert call")
    args = parser.parse_args(argv)
    if args.sqlite is None and args.pg is None:
        parser.error("give --sqlite PATH and/or --pg URL")
    targets: list[tuple[str, str]] = []
    if args.sqlite is not None:
        if args.sqlite.exists():
            parser.error(f"{args.sqlite} exists; give a new path")
        targets.append(("SQLite (WAL, synchronous=NORMAL)", f"sqlite:///{args.sqlite}"))
    if args.pg is not None:
        targets.append(("PostgreSQL (psycopg 3, COPY)", args.pg))
    for label, url in targets:
        results = bench(label, url, args.devices, args.readings, args.naive_readings, args.batch)
        report(label, results, args.devices, args.readings, args.naive_readings)
    return 0


if __name__ == "__main__":
    sys.exit(main())

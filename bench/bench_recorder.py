"""Recorder benchmark: sustained ingest (broker → recorder → store) vs the store's raw insert rate.

Scenario: a private mosquitto on a free loopback port (``max_queued_messages`` raised so the
broker never drops messages for a slow subscriber); a publisher in a separate process floods
``--messages`` valid sensor-data messages (100 devices, QoS 1 with 1,000 in flight, or QoS 0)
as fast as it can; one Recorder subscribes (QoS 1) and writes to SQLite (a file, WAL) and to
PostgreSQL (a scratch database on 127.0.0.1:5432, user postgres, created and dropped here).

Figures per database, in the same run:

- ``raw insert``: ``Store.insert_readings`` in batches of 1,000 rows shaped like the recorder's.
- ``drain``: the recorder's writer alone (parse + insert) emptying a queue filled while the
  readings table was locked.
- ``ingest``: end to end, rows written per second from the first message received to the
  last row committed, with the publisher's and the recorder's receive rates beside it.

Bounded: at most a few times ``--messages`` (default 100k) messages per database, about a
minute in all. Run: ``python bench/bench_recorder.py [--messages 100000] [--qos 1] [--no-pg]``
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mocksim.catalog import VALUE_TYPES
from mocksim.protocol.topics import TopicBuilder
from mocksim.recorder import Recorder
from mocksim.store import Store
from tests.services import Mosquitto

HOST = "127.0.0.1"
KAISER = "bench"
DEVICES = 100
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def payloads(count: int) -> list[tuple[str, bytes]]:
    """``count`` valid DS18B20 messages over DEVICES devices, seq counting up per device."""
    topics = TopicBuilder(KAISER)
    model = VALUE_TYPES["ds18b20"]
    now = int(time.time())
    out = []
    for n in range(count):
        device = f"ESP_{n % DEVICES:06X}"
        raw = 320 + n % 64
        body = {
            "esp_id": device,
            "seq": n // DEVICES + 1,
            "zone_id": "",
            "subzone_id": "",
            "gpio": 4,
            "sensor_type": "ds18b20",
            "raw": raw,
            "value": model.preview(raw),
            "unit": "°C",
            "quality": "good",
            "ts": now,
            "time_valid": True,
            "raw_mode": True,
            "onewire_address": "28FF000000000001",
        }
        out.append((topics.sensor_data(device, 4), orjson.dumps(body)))
    return out


def publish_main(port: int, count: int, qos: int) -> None:
    """Child process: flood the broker from one thread (no GIL hand-offs), print the rate."""
    messages = payloads(count)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}")
    client.max_inflight_messages_set(1000)
    client.connect(HOST, port)
    deadline = time.monotonic() + 10
    while not client.is_connected():
        client.loop(0.05)
        if time.monotonic() > deadline:
            raise RuntimeError("publisher: no CONNACK")
    acked = [0]
    client.on_publish = lambda *_: acked.__setitem__(0, acked[0] + 1)
    started = time.perf_counter()
    info = None
    for n, (topic, data) in enumerate(messages):
        # Stay within paho's in-flight window: its queue behind the window is scanned per ack.
        while qos and n - acked[0] >= 1000:
            client.loop(0.001)
        info = client.publish(topic, data, qos)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"publish failed: {info.rc}")
        if n % 64 == 63:
            client.loop(0)
    assert info is not None
    marker = client.publish("bench/marker", b"x", 1)  # its PUBACK: the broker has everything
    deadline = time.monotonic() + 300
    while not (marker.is_published() and info.is_published()):
        client.loop(0.01)
        if time.monotonic() > deadline:
            raise RuntimeError("publisher: the broker did not take everything")
    elapsed = time.perf_counter() - started
    client.disconnect()
    print(json.dumps({"elapsed": elapsed}))


def reading_rows(count: int) -> list[dict[str, object]]:
    now = datetime.now(UTC)
    return [
        {
            "device_id": f"ESP_{n % DEVICES:06X}",
            "gpio": 4,
            "sensor_type": "ds18b20",
            "raw": float(320 + n % 64),
            "value": (320 + n % 64) / 16,
            "unit": "°C",
            "quality": "good",
            "seq": n // DEVICES + 1,
            "device_ts": int(now.timestamp()),
            "received_at": now,
        }
        for n in range(count)
    ]


def raw_insert_rate(store: Store, count: int) -> float:
    rows = reading_rows(count)
    started = time.perf_counter()
    for start in range(0, count, 1000):
        store.insert_readings(rows[start : start + 1000])
    return count / (time.perf_counter() - started)


def run_publisher(broker: Mosquitto, count: int, qos: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--publish",
            "--port",
            str(broker.port),
            "--messages",
            str(count),
            "--qos",
            str(qos),
        ],
        stdout=subprocess.PIPE,
    )


def wait_for(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def ingest(store: Store, broker: Mosquitto, count: int, qos: int) -> dict[str, float]:
    """End to end: the publisher floods, the recorder receives and writes."""
    recorder = Recorder(store, broker.url, kaiser_ids=[KAISER])
    recorder.start()
    first: list[float] = []
    last = [0.0]
    depth = [0]
    stop = threading.Event()

    def sample() -> None:
        seen = 0
        while not stop.is_set():
            stats = recorder.stats()
            now = time.perf_counter()
            if stats.received and not first:
                first.append(now)
            if stats.received != seen:
                seen, last[0] = stats.received, now
            depth[0] = max(depth[0], stats.queue_depth)
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    publisher = run_publisher(broker, count, qos)
    out, _ = publisher.communicate(timeout=600)
    published_s = json.loads(out)["elapsed"]
    wait_for(lambda: recorder.stats().received >= count, 120)
    recorder.flush(300)
    flushed = time.perf_counter()
    stop.set()
    sampler.join()
    stats = recorder.stats()
    recorder.stop()
    span = max(last[0] - first[0], 1e-9) if first else float("nan")
    return {
        "published_per_s": count / published_s,
        "received": stats.received,
        "received_per_s": stats.received / span,
        "written": stats.readings_written,
        "ingest_per_s": stats.readings_written / (flushed - first[0]) if first else 0.0,
        "max_queue_depth": depth[0],
        "dropped": stats.dropped_queue_full + stats.write_errors + (count - stats.received),
    }


def drain(store: Store, url: str, broker: Mosquitto, count: int, qos: int) -> float:
    """The writer alone: fill the queue while readings are locked, then time the catch-up."""
    recorder = Recorder(store, broker.url, kaiser_ids=[KAISER], queue_size=count + 10)
    recorder.start()
    release = lock_readings(url)
    try:
        publisher = run_publisher(broker, count, qos)
        publisher.communicate(timeout=600)
        wait_for(lambda: recorder.stats().received >= count, 120)
    finally:
        started = time.perf_counter()
        release()
    recorder.flush(300)
    elapsed = time.perf_counter() - started
    written = recorder.stats().readings_written
    recorder.stop()
    return written / elapsed


def lock_readings(url: str) -> Callable[[], None]:
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")

        def release_sqlite() -> None:
            conn.execute("ROLLBACK")
            conn.close()

        return release_sqlite
    pg = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
    pg.execute("LOCK TABLE readings IN EXCLUSIVE MODE")

    def release_pg() -> None:
        pg.rollback()
        pg.close()

    return release_pg


def bench_database(label: str, url: str, broker: Mosquitto, count: int, qos: int) -> dict:
    with Store.open(url) as store:
        raw = raw_insert_rate(store, count)
        drained = drain(store, url, broker, min(count, 50_000), qos)
        flow = ingest(store, broker, count, qos)
    result = {"database": label, "raw_insert_per_s": raw, "drain_per_s": drained, **flow}
    result["ingest_vs_raw"] = flow["ingest_per_s"] / raw
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--qos", type=int, choices=(0, 1), default=1)
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--publish", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish:
        publish_main(args.port, args.messages, args.qos)
        return
    count = min(args.messages, 500_000)  # bounded
    broker = Mosquitto(
        extra_config=["max_queued_messages 1000000"]
    )  # never drop for a slow subscriber
    tmp = Path(tempfile.mkdtemp(prefix="bench-recorder-"))
    results = []
    try:
        results.append(
            bench_database("sqlite", f"sqlite:///{tmp / 'bench.db'}", broker, count, args.qos)
        )
        if not args.no_pg:
            name = f"mocksim_bench_recorder_{secrets.token_hex(4)}"
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            try:
                url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
                results.append(bench_database("postgresql", url, broker, count, args.qos))
            finally:
                with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        broker.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{count:,} sensor messages, publisher QoS {args.qos}, recorder subscribed at QoS 1")
    header = (
        f"{'database':<11}{'raw insert/s':>14}{'writer drain/s':>16}{'published/s':>13}"
        f"{'received/s':>12}{'ingest/s':>10}{'vs raw':>8}{'max queue':>11}{'lost':>6}"
    )
    print(header)
    for r in results:
        print(
            f"{r['database']:<11}{r['raw_insert_per_s']:>14,.0f}{r['drain_per_s']:>16,.0f}"
            f"{r['published_per_s']:>13,.0f}{r['received_per_s']:>12,.0f}"
            f"{r['ingest_per_s']:>10,.0f}{r['ingest_vs_raw']:>8.2f}"
            f"{r['max_queue_depth']:>11,}{r['dropped']:>6}"
        )


if __name__ == "__main__":
    main()

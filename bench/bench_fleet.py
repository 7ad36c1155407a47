"""Fleet CPU with real device bodies: the guide's "100 mocks < 5 % CPU", and how it scales.

Run by hand: ``python bench/bench_fleet.py [--seconds 30] [--sizes 0,100,1000]``.
Starts a private mosquitto on a free loopback port and a fleet per size on a temporary SQLite
file; each device has a 60 s heartbeat and three sensors (ds18b20 every 10 s, sht31 every
30 s = two messages, moisture every 30 s) and one pump. Measures process CPU seconds per
wall second over the window, after connecting; size 0 is the baseline (an idle fleet), so
the ratios show what the devices cost. Bounded in time; writes nothing to the repository.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mocksim import Fleet
from tests.services import Mosquitto

SPEC = {
    "heartbeat_interval_s": 60,
    "sensors": [
        {"gpio": 4, "sensor_type": "ds18b20", "interval_s": 10, "pattern": {"kind": "drift"}},
        {"gpio": 21, "sensor_type": "sht31", "interval_s": 30},
        {
            "gpio": 34,
            "sensor_type": "moisture",
            "interval_s": 30,
            "pattern": {"kind": "random", "range": 2},
        },
    ],
    "actuators": [{"gpio": 5, "actuator_type": "pump"}],
}


def measure(size: int, seconds: float, url: str, record: bool) -> dict[str, float]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        Fleet(
            db=f"sqlite:///{tmp}/bench.db",
            mqtt=url,
            seed=1,
            record=record,
            transport_options={"connect_rate_per_s": 1000},
        ) as fleet,
    ):
        if size:
            fleet.add_devices([SPEC] * size)
            fleet.wait_connected(60)
        time.sleep(2.0)  # let the connect burst settle
        before = fleet.stats()
        cpu0, wall0 = time.process_time(), time.monotonic()
        time.sleep(seconds)
        cpu1, wall1 = time.process_time(), time.monotonic()
        after = fleet.stats()
    wall = wall1 - wall0
    published = after.published - before.published
    return {
        "size": size,
        "cpu_s_per_s": (cpu1 - cpu0) / wall,
        "msgs_per_s": published / wall,
        "lag_p99_ms": after.lag_p99_ms,
        "dropped": after.dropped - before.dropped,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--sizes", default="0,100,1000")
    p.add_argument("--no-record", action="store_true", help="run the fleets without recorder")
    args = p.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    with Mosquitto() as broker:
        rows = [measure(n, args.seconds, broker.url, not args.no_record) for n in sizes]
    base = rows[0]["cpu_s_per_s"] if rows and rows[0]["size"] == 0 else 0.0
    print(
        f"{'devices':>8} {'CPU %':>7} {'over idle':>10} {'msg/s':>8} {'µs CPU/msg':>11} "
        f"{'p99 lag ms':>10} {'dropped':>8}"
    )
    for r in rows:
        extra = r["cpu_s_per_s"] - base
        per_msg = extra / r["msgs_per_s"] * 1e6 if r["msgs_per_s"] else float("nan")
        print(
            f"{r['size']:>8} {r['cpu_s_per_s'] * 100:>6.2f}% {extra * 100:>9.2f}% "
            f"{r['msgs_per_s']:>8.1f} {per_msg:>11.0f} {r['lag_p99_ms']:>10.2f} "
            f"{r['dropped']:>8.0f}"
        )


if __name__ == "__main__":
    main()

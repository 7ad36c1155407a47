"""The ``mocksim`` command: run a fleet headless, a demo on embedded defaults, manage devices.

``run`` and ``demo`` open a :class:`~mocksim.fleet.Fleet`; ``devices``, ``status``, ``add`` and
``remove`` only write to or read from the database, so a running ``mocksim run`` on the same
database picks their changes up within seconds (the database is the single source of truth).
Errors print ``TypeName: message`` on stderr and exit non-zero.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import yaml
from rich.console import Console
from rich.live import Live
from rich.table import Table

from mocksim.errors import MocksimError, SpecError
from mocksim.fleet import Fleet
from mocksim.protocol.topics import TopicKind
from mocksim.spec import DeviceSpec
from mocksim.store import DesiredState, Store

__all__ = ["demo_specs", "main"]

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def demo_specs() -> list[dict[str, Any]]:
    """A small greenhouse: drifting temperatures, humid air, drying soil, a pump and a valve."""
    return [
        {
            "id": "ESP_6A1C01",
            "zone_id": "greenhouse",
            "heartbeat_interval_s": 30,
            "sensors": [
                {
                    "gpio": 4,
                    "sensor_type": "ds18b20",
                    "interval_s": 5,
                    "pattern": {"kind": "drift", "start": 20.0, "step": 0.25, "min": 18, "max": 26},
                },
                {
                    "gpio": 21,
                    "sensor_type": "sht31",
                    "interval_s": 10,
                    "pattern": {"kind": "sine", "base": 23.0, "amplitude": 2.0, "period_s": 120},
                    "patterns": {"sht31_humidity": {"kind": "walk", "base": 60.0, "step": 0.8}},
                },
                {
                    "gpio": 34,
                    "sensor_type": "moisture",
                    "interval_s": 5,
                    "pattern": {"kind": "drift", "start": 55.0, "step": -0.5, "min": 30, "max": 60},
                },
            ],
            "actuators": [
                {"gpio": 5, "actuator_type": "pump", "max_runtime_ms": 120_000},
                {"gpio": 19, "actuator_type": "valve"},
            ],
        },
        {
            "id": "ESP_6A1C02",
            "zone_id": "greenhouse",
            "heartbeat_interval_s": 30,
            "sensors": [
                {
                    "gpio": 32,
                    "sensor_type": "ph",
                    "interval_s": 10,
                    "pattern": {"kind": "random", "base": 6.2, "range": 0.15},
                },
                {
                    "gpio": 33,
                    "sensor_type": "ec",
                    "interval_s": 10,
                    "pattern": {"kind": "walk", "base": 1500, "step": 15},
                },
                {"gpio": 22, "sensor_type": "bmp280", "interval_s": 15},
            ],
            "actuators": [{"gpio": 18, "actuator_type": "pwm", "default_pwm": 128}],
        },
    ]


def _load_specs(path: str) -> list[dict[str, Any]]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    if isinstance(data, dict) and "devices" in data:
        data = data["devices"]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise SpecError(
            "file",
            path,
            None,
            f"file: {path} must hold a device spec, a list of "
            "them, or a mapping with a 'devices' list",
        )
    return data


def _devices_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    cols = [
        "device_id",
        "desired_state",
        "runtime_status",
        "zone_id",
        "sensors",
        "actuators",
        "config_version",
    ]
    for c in cols:
        table.add_column(c)
    for r in rows:
        table.add_row(*(str(r.get(c, "")) for c in cols))
    return table


# ---------------------------------------------------------------------------- commands


def _cmd_devices(args: argparse.Namespace, out: Console) -> int:
    with Store.open(args.db) as store:
        rows = [
            {
                "device_id": r.spec.id,
                "desired_state": r.desired_state.value,
                "runtime_status": r.runtime_status.value,
                "zone_id": r.spec.zone_id,
                "sensors": len(r.spec.sensors),
                "actuators": len(r.spec.actuators),
                "config_version": r.config_version,
            }
            for r in store.list_devices()
        ]
    out.print(_devices_table(rows, f"{len(rows)} device(s)"))
    return EXIT_OK


def _cmd_status(args: argparse.Namespace, out: Console) -> int:
    with Store.open(args.db) as store:
        rec = store.get_device(args.device_id)
        cp = store.load_checkpoint(args.device_id)
        owner = store.lease_owner(args.device_id)
    table = Table(title=rec.spec.id, show_header=False)
    table.add_column("field")
    table.add_column("value")
    for k, v in (
        ("desired_state", rec.desired_state.value),
        ("runtime_status", rec.runtime_status.value),
        ("error", rec.error or ""),
        ("zone_id", rec.spec.zone_id),
        ("sensors", ", ".join(s.key for s in rec.spec.sensors)),
        ("actuators", ", ".join(f"{a.gpio}:{a.actuator_type}" for a in rec.spec.actuators)),
        ("config_version", rec.config_version),
        ("boot_count", cp.boot_count if cp else ""),
        ("seq", cp.seq if cp else ""),
        ("lease_owner", owner or ""),
    ):
        table.add_row(k, str(v))
    out.print(table)
    return EXIT_OK


def _cmd_add(args: argparse.Namespace, out: Console) -> int:
    specs = [DeviceSpec.model_validate(d) for d in _load_specs(args.file)]
    state = DesiredState.STOPPED if args.stopped else DesiredState.RUNNING
    with Store.open(args.db) as store:
        records = store.create_devices(specs, state)
    out.print(f"added {len(records)} device(s): {', '.join(r.spec.id for r in records)}")
    return EXIT_OK


def _cmd_remove(args: argparse.Namespace, out: Console) -> int:
    with Store.open(args.db) as store:
        n = store.delete_devices(args.device_ids)
    out.print(f"removed {n} device(s)")
    return EXIT_OK


class _Stopper:
    """Turns SIGINT / SIGTERM into an event the main thread waits on."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal: int | None = None

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.signal = signum
        self.event.set()


def _status_line(fleet: Fleet) -> str:
    s = fleet.stats()
    return (
        f"devices={s.devices} running={s.running} connected={s.connected} "
        f"published={s.published} dropped={s.dropped} inbound={s.inbound} "
        f"misfires={s.misfires} lag_p99={s.lag_p99_ms:.1f}ms breaker={s.breaker}"
    )


def _cmd_run(args: argparse.Namespace, out: Console) -> int:
    stopper = _Stopper()
    stopper.install()
    with Fleet(
        db=args.db,
        mqtt=args.mqtt,
        seed=args.seed,
        fast=args.fast or None,
        session_mode=args.session_mode,
    ) as fleet:
        out.print(
            f"mocksim run: {len(fleet.devices())} device(s) in {fleet.store.url}, "
            f"broker {fleet.broker}; Ctrl-C or SIGTERM stops"
        )
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while not stopper.event.is_set():
            wait = args.status_every
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - time.monotonic()))
            if stopper.event.wait(wait):
                break
            out.print(_status_line(fleet))
            if deadline is not None and time.monotonic() >= deadline:
                break
        out.print("mocksim run: stopping (devices keep their desired state)")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace, out: Console) -> int:
    stopper = _Stopper()
    stopper.install()
    with Fleet(db=args.db, seed=args.seed, fast=args.fast or None) as fleet:
        existing = set(fleet.devices()["device_id"])
        new = [d for d in demo_specs() if d["id"] not in existing]
        if new:
            fleet.add_devices(new)
        fleet.start()
        fleet.wait_connected(10)
        out.print(
            f"mocksim demo: {len(demo_specs())} greenhouse boards on an embedded broker "
            f"({fleet.broker}), database {fleet.store.url}"
        )
        latest: dict[tuple[str, int, str], dict[str, Any]] = {}
        with fleet.server() as server:
            deadline = time.monotonic() + args.duration
            pump_on = False
            with Live(console=out, refresh_per_second=2, transient=False) as live:
                while not stopper.event.is_set() and time.monotonic() < deadline:
                    for r in server.received(TopicKind.SENSOR_DATA):
                        p = r.payload
                        latest[(str(p["esp_id"]), int(p["gpio"]), str(p["sensor_type"]))] = p
                    server.clear()
                    # Water when the soil gets dry, as a controller on the server would.
                    moist = latest.get(("ESP_6A1C01", 34, "moisture"))
                    if moist and not pump_on and moist["value"] < 40:
                        server.actuator_command("ESP_6A1C01", 5, "ON", duration_s=10, wait=False)
                        pump_on = True
                    live.update(_readings_table(latest, fleet))
                    stopper.event.wait(1.0)
        out.print(_status_line(fleet))
    return EXIT_OK


def _readings_table(latest: dict[tuple[str, int, str], dict[str, Any]], fleet: Fleet) -> Table:
    stats = fleet.stats()
    table = Table(
        title=f"live readings (published {stats.published}, "
        f"dropped {stats.dropped}, lag p99 {stats.lag_p99_ms:.1f} ms)"
    )
    for c in ("device", "gpio", "sensor_type", "raw", "value", "unit", "quality", "seq", "ts"):
        table.add_column(c)
    for (device, gpio, stype), p in sorted(latest.items()):
        table.add_row(
            device,
            str(gpio),
            stype,
            str(p["raw"]),
            f"{p['value']:.2f}",
            p["unit"],
            p["quality"],
            str(p["seq"]),
            time.strftime("%H:%M:%S", time.localtime(p["ts"])),
        )
    return table


# ---------------------------------------------------------------------------- parsing


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mocksim", description=__doc__.splitlines()[0])
    p.add_argument(
        "--db", default=None, help="database URL (default: MOCKSIM_DB_URL or sqlite:///mocksim.db)"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the fleet headless until SIGINT/SIGTERM")
    run.add_argument(
        "--mqtt", default=None, help="broker URL (default: MOCKSIM_MQTT_URL or an embedded broker)"
    )
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--fast", action="store_true", help="every timer 10x sooner")
    run.add_argument("--session-mode", default="per_device", choices=["per_device", "shared"])
    run.add_argument(
        "--status-every",
        type=float,
        default=10.0,
        metavar="S",
        help="print a one-line status every S seconds",
    )
    run.add_argument(
        "--duration", type=float, default=None, metavar="S", help="stop by itself after S seconds"
    )

    demo = sub.add_parser("demo", help="a greenhouse fleet on embedded defaults, live readings")
    demo.add_argument("--duration", type=float, default=60.0, metavar="S")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--fast", action="store_true", help="every timer 10x sooner")

    sub.add_parser("devices", help="list the devices of the database")
    st = sub.add_parser("status", help="one device's stored state")
    st.add_argument("device_id")
    add = sub.add_parser("add", help="add devices from a YAML or JSON spec file ('-' = stdin)")
    add.add_argument("file")
    add.add_argument("--stopped", action="store_true", help="add them stopped")
    rm = sub.add_parser("remove", help="delete devices (with checkpoint and lease)")
    rm.add_argument("device_ids", nargs="+")
    return p


_COMMANDS = {
    "run": _cmd_run,
    "demo": _cmd_demo,
    "devices": _cmd_devices,
    "status": _cmd_status,
    "add": _cmd_add,
    "remove": _cmd_remove,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mocksim`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    out = Console()
    err = Console(stderr=True)
    try:
        return _COMMANDS[args.command](args, out)
    except MocksimError as exc:
        err.print(f"{type(exc).__name__}: {exc}", markup=False, highlight=False)
        return EXIT_ERROR
    except (OSError, yaml.YAMLError, json.JSONDecodeError) as exc:
        err.print(f"{type(exc).__name__}: {exc}", markup=False, highlight=False)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

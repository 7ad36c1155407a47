"""Virtual time: run devices as fast as the CPU allows, with no broker and no database.

The same device and engine code as the real-time fleet, driven by a virtual clock, so a run
is reproducible to the byte for a given seed. Useful to generate history, to design a
scenario before running it live, and in tests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mocksim.device import Device
from mocksim.engine import Engine
from mocksim.errors import SpecError, TopicError
from mocksim.protocol.message import Message
from mocksim.protocol.topics import TopicBuilder
from mocksim.scheduler import DEFAULT_VIRTUAL_START, JobKey, JobKind, Scheduler, VirtualClock
from mocksim.spec import DeviceSpec

__all__ = ["REBOOT_DELAY_S", "Published", "messages_frame", "simulate"]

#: Seconds a rebooted board takes to come back and reconnect.
REBOOT_DELAY_S = 2.0


@dataclass(frozen=True, slots=True)
class Published:
    """One message a device published at virtual time ``t`` (Unix seconds)."""

    t: float
    device_id: str
    message: Message


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message delivered to the devices at virtual time ``t`` (seconds after start)."""

    t: float
    topic: str
    payload: Any


def simulate(
    specs: DeviceSpec | Iterable[DeviceSpec | Mapping[str, Any]],
    *,
    duration_s: float,
    seed: int = 0,
    start: float = DEFAULT_VIRTUAL_START,
    inputs: Sequence[tuple[float, str, Any]] = (),
) -> list[Published]:
    """Run devices in virtual time and return everything they published, in order.

    Every device boots and connects at ``start``. ``inputs`` are server → device messages as
    ``(seconds after start, topic, payload)`` (payload a JSON-able object), delivered to the
    device the topic names, or to every device for ``kaiser/broadcast/emergency``.

    Raises:
        SpecError: a bad spec, a non-positive duration, or an input topic no device has.
    """
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise SpecError("duration_s", duration_s, "a number > 0")
    if isinstance(specs, DeviceSpec):
        specs = [specs]
    models = [s if isinstance(s, DeviceSpec) else DeviceSpec.model_validate(s) for s in specs]
    out: list[Published] = []
    clock = VirtualClock(start)
    scheduler = Scheduler(clock)

    def publish(device_id: str, msg: Message) -> None:
        out.append(Published(clock.now(), device_id, msg))

    def reboot(device_id: str) -> None:
        # The board restarts and reconnects after its boot time, as over MQTT.
        scheduler.add(
            JobKey(device_id, JobKind.OTHER, "reconnect"),
            lambda key, _due: engine.connected(key.device_id, reconnect=False),
            interval_s=None,
            first_due=clock.now() + REBOOT_DELAY_S,
        )

    engine = Engine(scheduler, publish, on_restart_session=reboot)
    builders: dict[str, TopicBuilder] = {}
    for spec in models:
        builder = builders.setdefault(spec.kaiser_id, TopicBuilder(spec.kaiser_id))
        engine.add(Device(spec, seed=seed, builder=builder))
        engine.connected(spec.id, reconnect=False)
    events = sorted(
        (Inbound(float(t), topic, payload) for t, topic, payload in inputs), key=lambda e: e.t
    )
    for ev in events:
        if ev.t > duration_s:
            break
        scheduler.advance(start + ev.t)
        _deliver(engine, builders, ev)
    scheduler.advance(start + duration_s)
    return out


def _deliver(engine: Engine, builders: Mapping[str, TopicBuilder], ev: Inbound) -> None:
    parsed = None
    for builder in builders.values():
        try:
            parsed = builder.parse(ev.topic)
            break
        except TopicError:
            continue
    if parsed is None:
        raise SpecError("inputs.topic", ev.topic, "a server → device topic of the fleet")
    targets = [parsed.esp_id] if parsed.esp_id is not None else engine.ids()
    for device_id in targets:
        if device_id not in engine:
            raise SpecError("inputs.topic", ev.topic, engine.ids())
        engine.run(device_id, lambda d, now: d.on_message(now, parsed, ev.payload))


def messages_frame(published: Iterable[Published]) -> pd.DataFrame:
    """A DataFrame of published messages: time (UTC), device, topic, qos, retain, payload."""
    rows = [
        {
            "time": pd.Timestamp(p.t, unit="s", tz="UTC"),
            "device_id": p.device_id,
            "topic": p.message.topic,
            "qos": p.message.qos,
            "retain": p.message.retain,
            "payload": dict(p.message.payload),
        }
        for p in published
    ]
    return pd.DataFrame(rows, columns=["time", "device_id", "topic", "qos", "retain", "payload"])

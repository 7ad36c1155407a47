"""Virtual time: a device's whole life driven by time alone, reproducible to the byte."""

from __future__ import annotations

from typing import Any

from mocksim import DeviceSpec, messages_frame, simulate
from mocksim.device import Device
from mocksim.engine import Engine
from mocksim.protocol.topics import TopicBuilder, TopicKind
from mocksim.protocol.validate import check
from mocksim.scheduler import DEFAULT_VIRTUAL_START as T0
from mocksim.scheduler import Scheduler, VirtualClock

TB = TopicBuilder()
ID = "ESP_12AB34"
SPEC = DeviceSpec.model_validate(
    {
        "id": ID,
        "wait_for_ack": True,
        "heartbeat_interval_s": 60,
        "sensors": [
            {
                "gpio": 4,
                "sensor_type": "ds18b20",
                "interval_s": 10,
                "pattern": {"kind": "drift", "step": 0.5},
            }
        ],
        "actuators": [{"gpio": 5, "actuator_type": "pump"}],
    }
)


def test_lifecycle_driven_by_time_alone() -> None:
    t = TB.actuator_command
    inputs: list[tuple[float, str, Any]] = [
        (12.0, TB.heartbeat_ack(ID), {"status": "online", "handover_epoch": 1}),
        (40.0, t(ID, 5), {"command": "ON", "duration": 20, "correlation_id": "c1"}),
        (70.0, t(ID, 5), {"command": "ON", "correlation_id": "c2"}),
        (75.0, TB.broadcast_emergency(), {"command": "emergency_stop", "correlation_id": "e"}),
        (80.0, t(ID, 5), {"command": "ON", "correlation_id": "c3"}),
        (85.0, TB.actuator_emergency(ID), {"command": "clear_emergency", "correlation_id": "r"}),
        (90.0, TB.system_command(ID), {"command": "REBOOT"}),
    ]
    out = simulate(SPEC, duration_s=120, seed=1, inputs=inputs)
    for p in out:
        check(p.message, TB)
    events = [(round(p.t - T0, 3), TB.parse(p.message.topic).kind, p.message.payload) for p in out]

    def at(kind: TopicKind) -> list[float]:
        return [t for t, k, _ in events if k is kind]

    # Gate: only heartbeats (every 5 s) until the ACK at 12 s, then readings.
    assert at(TopicKind.HEARTBEAT)[:3] == [0.0, 5.0, 10.0]
    assert min(at(TopicKind.SENSOR_DATA)) > 12.0
    # Command at 40 s with a 20 s auto-off: status on at 40, off at 60.
    statuses = [
        (t, p["state"], p["emergency"]) for t, k, p in events if k is TopicKind.ACTUATOR_STATUS
    ]
    assert (40.0, True, "normal") in statuses
    assert (60.0, False, "normal") in statuses
    # Emergency stop at 75 s: off and acked; a command at 80 s is refused; clear at 85 s.
    assert (75.0, False, "active") in statuses
    refused = [p for t, k, p in events if k is TopicKind.ACTUATOR_RESPONSE and t == 80.0]
    assert refused[0]["success"] is False
    assert refused[0]["correlation_id"] == "c3"
    assert at(TopicKind.EMERGENCY_ACK) == [75.0]
    assert at(TopicKind.RECOVERY_CONFIRM) == [85.0]
    assert (85.0, False, "normal") in statuses  # a clear never switches on
    # Reboot at 90 s: boot count 2, uptime reset, gate closed again (heartbeats every 5 s).
    beats = [(t, p) for t, k, p in events if k is TopicKind.HEARTBEAT and t >= 90.0]
    assert beats[0][1]["boot_sequence_id"] == f"{ID}-b2-r3"
    # It reconnects after its 2 s boot time and announces a boot, not a reconnect.
    assert beats[0][1]["uptime"] == 2
    assert [t for t, _ in beats[:3]] == [92.0, 97.0, 102.0]
    assert [p["reason"] for t, k, p in events if k is TopicKind.SESSION_ANNOUNCE] == [
        "boot",
        "boot",
    ]
    assert not [t for t in at(TopicKind.SENSOR_DATA) if t > 90.0]


def test_same_seed_same_bytes_different_seed_different() -> None:
    def run(seed: int) -> list[tuple[float, bytes]]:
        return [
            (p.t, p.message.data)
            for p in simulate(SPEC.replace(wait_for_ack=False), duration_s=600, seed=seed)
        ]

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_messages_frame_has_one_row_per_message() -> None:
    out = simulate(SPEC.replace(wait_for_ack=False), duration_s=60, seed=1)
    frame = messages_frame(out)
    assert len(frame) == len(out)
    assert str(frame["time"].dt.tz) == "UTC"


def test_pause_keeps_actuator_deadlines_and_publishes_nothing() -> None:
    clock = VirtualClock(T0)
    sched = Scheduler(clock)
    out: list[Any] = []
    engine = Engine(sched, lambda _d, m: out.append((clock.now(), m)))
    engine.add(Device(SPEC.replace(wait_for_ack=False), seed=1))
    engine.connected(ID, reconnect=False)
    engine.run(
        ID,
        lambda d, now: d.on_message(
            now, TB.parse(TB.actuator_command(ID, 5)), {"command": "ON", "duration": 3}
        ),
    )
    engine.pause(ID)
    paused_at = len(out)
    sched.advance(T0 + 60)
    assert len(out) == paused_at  # nothing published while paused
    assert engine.device(ID).actuator_state(5, T0 + 60)["state"] is False  # auto-off still ran
    engine.resume(ID)
    statuses = [m.payload for _, m in out[paused_at:] if m.topic.endswith("/status")]
    assert statuses[-1]["state"] is False

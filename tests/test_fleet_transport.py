"""The fleet over real mosquitto: command round trips, wills, outages, many sessions, garbage."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mocksim import Fleet, SpecError, TopicKind, TransportError
from mocksim.protocol.message import Message
from mocksim.protocol.topics import TopicBuilder
from mocksim.protocol.validate import check
from mocksim.server import ServerClient
from mocksim.transport import BackoffConfig, BreakerConfig
from tests.services import Mosquitto

pytestmark = pytest.mark.mqtt

PUMP = {"gpio": 5, "actuator_type": "pump"}
DS = {"gpio": 4, "sensor_type": "ds18b20", "interval_s": 1}


def sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/fleet.db"


@pytest.fixture
def fleet(no_thread_leak: None, tmp_path: Path, mqtt_url: str) -> Iterator[Fleet]:
    with Fleet(db=sqlite(tmp_path), mqtt=mqtt_url, seed=21, fast=True) as f:
        yield f


def test_actuator_command_round_trip_echoes_correlation_id(fleet: Fleet) -> None:
    dev = fleet.add_device(sensors=[DS], actuators=[PUMP])
    assert fleet.wait_connected(5)
    with fleet.server() as server:
        resp = server.actuator_command(dev.id, 5, "on", duration_s=60)
        assert resp is not None
        assert resp["success"] is True
        assert resp["command"] == "ON"
        assert resp["issued_by"] == "mocksim-server"
        assert resp["correlation_id"].startswith("cmd-")
        status = server.wait_for(
            lambda r: r.topic.kind is TopicKind.ACTUATOR_STATUS and r.payload["state"] is True
        )[0]
        assert status.payload["pwm"] == 255
        missing = server.actuator_command(dev.id, 7, "ON")
        assert missing is not None
        assert missing["success"] is False
        assert missing["message"] == "Actuator not configured on GPIO 7"


def test_zone_assign_and_config_push_are_acknowledged_and_persisted(fleet: Fleet) -> None:
    dev = fleet.add_device(sensors=[DS], actuators=[PUMP])
    assert fleet.wait_connected(5)
    with fleet.server() as server:
        ack = server.zone_assign(dev.id, "north", master_zone_id="farm")
        assert (ack["status"], ack["zone_id"]) == ("zone_assigned", "north")
        resps = server.config_push(
            dev.id,
            sensors=[
                {"gpio": 4, "sensor_type": "ds18b20", "measurement_interval_seconds": 2},
                {"gpio": 21, "sensor_type": "sht31_temp"},
            ],
            actuators=[],
        )
        assert {r["type"]: r["status"] for r in resps} == {
            "sensor": "success",
            "actuator": "success",
        }
        assert all(r["correlation_id"] == resps[0]["correlation_id"] for r in resps)
        for r in server.received():
            if r.topic.esp_id == dev.id and isinstance(r.payload, dict):
                check(_as_message(r), None)
    deadline = time.time() + 5
    while time.time() < deadline:
        spec = fleet.spec(dev.id)
        if spec.zone_id == "north" and len(spec.sensors) == 2:
            break
        time.sleep(0.05)
    spec = fleet.spec(dev.id)
    assert spec.zone_id == "north"
    assert [s.key for s in spec.sensors] == ["4:ds18b20", "21:sht31"]
    assert spec.actuators == []


def _as_message(r: Any) -> Message:
    b = TopicBuilder()
    topic = b.build(r.topic.kind, r.topic.esp_id, r.topic.gpio)
    return Message(topic, r.payload, b.qos(r.topic.kind), b.retain(r.topic.kind))


def test_crash_publishes_the_retained_will_and_close_does_not(
    no_thread_leak: None, tmp_path: Path, mqtt_url: str
) -> None:
    with ServerClient(mqtt_url) as server:
        with Fleet(db=sqlite(tmp_path), mqtt=mqtt_url, seed=22, fast=True) as f:
            crashed = f.add_device(sensors=[DS])
            calm = f.add_device(sensors=[DS])
            assert f.wait_connected(5)
            f.crash(crashed.id, reconnect_after_s=0.5)
            will = server.wait_for(
                lambda r: r.topic.kind is TopicKind.WILL and r.topic.esp_id == crashed.id
            )[0]
            assert will.payload["status"] == "offline"
            assert will.payload["reason"] == "unexpected_disconnect"
            again = server.wait_for(
                lambda r: (
                    r.topic.kind is TopicKind.SESSION_ANNOUNCE
                    and r.topic.esp_id == crashed.id
                    and r.payload["reason"] == "reconnect"
                )
            )
            assert again
        time.sleep(0.5)
        assert server.received(TopicKind.WILL, calm.id) == []
    # The will is retained: a late subscriber still gets it.
    with ServerClient(mqtt_url) as late:
        late.wait_for(lambda r: r.topic.kind is TopicKind.WILL and r.topic.esp_id == crashed.id)


def test_broker_outage_is_survived_and_every_reading_is_accounted_for(
    no_thread_leak: None, tmp_path: Path, fresh_mosquitto: Mosquitto
) -> None:
    options = {
        "breaker": BreakerConfig(failures=5, open_s=2.0, successes_to_close=3),
        "backoff": BackoffConfig(initial_s=0.5, max_s=2.0),
    }
    with Fleet(
        db=sqlite(tmp_path), mqtt=fresh_mosquitto.url, seed=23, fast=True, transport_options=options
    ) as f:
        devs = f.add_devices([{"sensors": [DS]} for _ in range(8)])
        assert f.wait_connected(5)
        time.sleep(0.5)
        fresh_mosquitto.stop()
        time.sleep(10)
        during = f.stats()
        assert during.connected == 0
        assert during.dropped > 0
        fresh_mosquitto.start()
        back = time.monotonic()
        breaker_seen = {during.breaker}
        with ServerClient(fresh_mosquitto.url) as server:
            server.wait_for(lambda r: r.topic.kind is TopicKind.SENSOR_DATA, count=8, timeout_s=5)
            resumed_after = time.monotonic() - back
            assert f.wait_connected(5)
        after = f.stats()
        breaker_seen.add(after.breaker)
        assert resumed_after < 5.0
        assert after.breaker_opened >= 1
        assert after.reconnects >= 8
        assert breaker_seen <= {"open", "half_open", "closed"}
        assert after.breaker == "closed"
        # Nothing is lost silently: every reading produced was published, dropped or buffered.
        assert after.produced == after.published + after.dropped + after.buffered
        per_device = [f.status(d.id) for d in devs]
        assert sum(s["dropped"] for s in per_device) == after.dropped


@pytest.mark.slow
def test_five_hundred_per_device_sessions_connect_and_publish(
    no_thread_leak: None, tmp_path: Path, mosquitto: Mosquitto
) -> None:
    with Fleet(
        db=sqlite(tmp_path),
        mqtt=mosquitto.url,
        seed=24,
        fast=True,
        transport_options={"connect_rate_per_s": 1000},
    ) as f:
        with ServerClient(mosquitto.url) as server:
            devs = f.add_devices([{"heartbeat_interval_s": 3600} for _ in range(500)])
            assert f.wait_connected(30)
            beats = server.wait_for(
                lambda r: r.topic.kind is TopicKind.HEARTBEAT, count=500, timeout_s=30
            )
            assert {b.topic.esp_id for b in beats} == {d.id for d in devs}
        assert f.stats().connected == 500


@pytest.mark.parametrize("fresh_mosquitto", [{"users": {"alice": "s3cret-pw"}}], indirect=True)
def test_password_broker_accepts_right_credentials_and_refuses_wrong_ones(
    no_thread_leak: None, tmp_path: Path, fresh_mosquitto: Mosquitto
) -> None:
    port = fresh_mosquitto.port
    with Fleet(
        db=sqlite(tmp_path), mqtt=f"mqtt://alice:s3cret-pw@127.0.0.1:{port}", seed=25, fast=True
    ) as f:
        f.add_device(sensors=[DS])
        assert f.wait_connected(5)
        assert "s3cret" not in repr(f)
        assert "s3cret" not in str(f.broker)
    with pytest.raises(TransportError) as info:
        Fleet(db=sqlite(tmp_path), mqtt=f"mqtt://alice:wrong-pw@127.0.0.1:{port}", seed=25)
    assert "alice" in str(info.value)
    assert "wrong-pw" not in str(info.value)


def test_ten_thousand_garbage_commands_are_counted_and_never_crash(fleet: Fleet) -> None:
    devs = fleet.add_devices([{"sensors": [DS], "actuators": [PUMP]} for _ in range(2)])
    assert fleet.wait_connected(5)
    rng = random.Random(7)
    makers: list[Callable[[], bytes]] = [
        lambda: b"",
        lambda: bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 64))),
        lambda: b'{"command": ' + str(rng.random()).encode() + b"}",
        lambda: b"[1, 2, 3]",
        lambda: b'{"command": "ON", "value": "lots"}',
        lambda: b'{"command": "PWM", "value": 7.5, "duration": -3}',
        lambda: b"null",
        lambda: b'{"zone_id": 42}',
    ]
    suffixes = [
        "actuator/5/command",
        "actuator/9/command",
        "zone/assign",
        "config",
        "system/command",
        "subzone/assign",
        "actuator/emergency",
        "sensor/4/command",
        "system/heartbeat/ack",
    ]
    with fleet.server() as server:
        for i in range(10_000):
            dev = devs[i % 2].id
            server.publish(
                f"kaiser/god/esp/{dev}/{rng.choice(suffixes)}", rng.choice(makers)(), qos=0
            )
        deadline = time.time() + 30
        while time.time() < deadline and fleet.stats().inbound < 10_000:
            time.sleep(0.1)
        stats = fleet.stats()
        assert stats.inbound == 10_000
        assert stats.callback_errors == 0
        # Still alive and obeying.
        resp = server.actuator_command(devs[0].id, 5, "OFF")
        assert resp is not None
        assert resp["correlation_id"].startswith("cmd-")


def test_network_outage_drops_sessions_counts_drops_and_recovers(
    no_thread_leak: None, tmp_path: Path, mqtt_url: str
) -> None:
    options = {
        "breaker": BreakerConfig(failures=5, open_s=1.0, successes_to_close=2),
        "backoff": BackoffConfig(initial_s=0.2, max_s=1.0),
    }
    with (
        Fleet(
            db=sqlite(tmp_path), mqtt=mqtt_url, seed=26, fast=True, transport_options=options
        ) as f,
        ServerClient(mqtt_url) as server,
    ):
        devs = f.add_devices([{"sensors": [DS]} for _ in range(3)])
        assert f.wait_connected(5)
        with pytest.raises(SpecError, match="duration_s"):
            f.network_outage(0)
        f.network_outage(2.0)
        ids = {d.id for d in devs}
        # Filter by id: the shared broker keeps other tests' retained wills.
        wills = server.wait_for(
            lambda r: r.topic.kind is TopicKind.WILL and r.topic.esp_id in ids, count=3
        )
        assert {w.topic.esp_id for w in wills} == ids
        time.sleep(1.0)
        during = f.stats()
        assert during.connected == 0
        assert during.dropped > 0
        assert f.wait_connected(10)
        after = f.stats()
        assert after.breaker_opened >= 1
        assert after.produced == after.published + after.dropped + after.buffered


def test_reboot_command_answers_then_reconnects_as_a_boot(fleet: Fleet) -> None:
    dev = fleet.add_device(sensors=[DS], actuators=[PUMP])
    assert fleet.wait_connected(5)
    with fleet.server() as server:
        resp = server.system_command(dev.id, "reboot")
        assert resp["success"] is True
        ann = server.wait_for(
            lambda r: r.topic.kind is TopicKind.SESSION_ANNOUNCE and r.topic.esp_id == dev.id
        )[0]
        assert ann.payload["reason"] == "boot"
        assert server.wait_for(
            lambda r: r.topic.kind is TopicKind.WILL and r.topic.esp_id == dev.id
        )
    assert fleet.status(dev.id)["boot_count"] == 2


def test_zone_change_by_the_server_and_a_user_change_both_survive(fleet: Fleet) -> None:
    dev = fleet.add_device(sensors=[DS], actuators=[PUMP])
    assert fleet.wait_connected(5)
    with fleet.server() as server:
        server.zone_assign(dev.id, "zoneA")
        fleet.update_sensor(dev.id, "4:ds18b20", interval_s=7)
    deadline = time.time() + 5
    while time.time() < deadline and fleet.spec(dev.id).zone_id != "zoneA":
        time.sleep(0.05)
    spec = fleet.spec(dev.id)
    assert spec.zone_id == "zoneA"
    assert spec.sensors[0].interval_s == 7
    assert fleet.status(dev.id)["zone_id"] == "zoneA"


def test_broadcast_emergency_reaches_every_kaiser_in_shared_mode(
    no_thread_leak: None, tmp_path: Path, mqtt_url: str
) -> None:
    with Fleet(db=sqlite(tmp_path), mqtt=mqtt_url, seed=27, fast=True, session_mode="shared") as f:
        a = f.add_device(actuators=[PUMP])
        b = f.add_device(kaiser_id="k2", actuators=[PUMP])
        assert f.wait_connected(5)
        with f.server() as server:
            server.emergency_stop(wait_for=[a.id])
        deadline = time.time() + 5
        states: list[str] = []
        while time.time() < deadline:
            states = [f.status(i)["actuators"][0]["emergency"] for i in (a.id, b.id)]
            if states == ["active", "active"]:
                break
            time.sleep(0.05)
        assert states == ["active", "active"]

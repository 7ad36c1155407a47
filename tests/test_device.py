"""The device model: every message type from pure code, checked against the contract."""

from __future__ import annotations

from typing import Any

import pytest

from mocksim.device import SERVER_WATCHDOG_S, Device, Step, TimerKind
from mocksim.errors import SpecError
from mocksim.protocol.message import Message
from mocksim.protocol.topics import TopicBuilder, TopicKind
from mocksim.protocol.validate import check
from mocksim.spec import DeviceSpec

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
TB = TopicBuilder("god")
ID = "ESP_12AB34"


def make(**kw: Any) -> DeviceSpec:
    data: dict[str, Any] = {
        "id": ID,
        "zone_id": "greenhouse",
        "sensors": [
            {
                "gpio": 4,
                "sensor_type": "ds18b20",
                "interval_s": 10,
                "pattern": {"kind": "constant", "value": 21.5},
            },
            {
                "gpio": 21,
                "sensor_type": "sht31",
                "interval_s": 10,
                "pattern": {"kind": "constant", "value": 22.0},
                "patterns": {"sht31_humidity": {"kind": "constant", "value": 50.0}},
            },
            {"gpio": 34, "sensor_type": "moisture", "interval_s": 30},
        ],
        "actuators": [
            {"gpio": 5, "actuator_type": "pump", "max_runtime_ms": 600_000},
            {"gpio": 18, "actuator_type": "pwm"},
            {"gpio": 19, "actuator_type": "valve"},
        ],
    }
    data.update(kw)
    return DeviceSpec.model_validate(data)


def booted(spec: DeviceSpec | None = None, seed: int = 7) -> Device:
    d = Device(spec or make(), seed=seed)
    d.boot(T0)
    d.on_connected(T0)
    return d


def kinds(step: Step) -> list[TopicKind]:
    return [TB.parse(m.topic).kind for m in step.messages]


def valid(step: Step) -> list[Message]:
    for m in step.messages:
        check(m, TB)
    return step.messages


def only(step: Step, kind: TopicKind) -> dict[str, Any]:
    found = [m for m in step.messages if TB.parse(m.topic).kind is kind]
    assert len(found) == 1, kinds(step)
    return dict(found[0].payload)


def cmd(d: Device, now: float, gpio: int, **payload: Any) -> Step:
    return d.on_message(now, TB.parse(TB.actuator_command(ID, gpio)), payload)


def send(d: Device, now: float, kind: TopicKind, payload: Any, gpio: int | None = None) -> Step:
    topic = (
        TB.broadcast_emergency()
        if kind is TopicKind.BROADCAST_EMERGENCY
        else TB.build(kind, ID, gpio)
    )
    return d.on_message(now, TB.parse(topic), payload)


# --------------------------------------------------------------------------- messages


def test_connect_announces_then_heartbeats_then_republishes_actuators() -> None:
    d = Device(make(), seed=1)
    d.boot(T0)
    step = d.on_connected(T0 + 0.25)
    valid(step)
    assert kinds(step)[:2] == [TopicKind.SESSION_ANNOUNCE, TopicKind.HEARTBEAT]
    assert kinds(step)[2:] == [TopicKind.ACTUATOR_STATUS] * 3
    ann = only(step, TopicKind.SESSION_ANNOUNCE)
    assert ann == {"handover_epoch": 1, "reason": "boot", "ts_ms": int((T0 + 0.25) * 1000)}
    again = d.on_connected(T0 + 100, reconnect=True)
    assert only(again, TopicKind.SESSION_ANNOUNCE)["reason"] == "reconnect"
    assert only(again, TopicKind.SESSION_ANNOUNCE)["handover_epoch"] == 2


def test_heartbeat_has_int_numerics_and_boot_identity() -> None:
    d = booted()
    hb = only(d.on_timer(T0 + 60.7, "heartbeat"), TopicKind.HEARTBEAT)
    for key in ("ts", "uptime", "heap_free", "wifi_rssi", "segment_start_ts"):
        assert type(hb[key]) is int, key
    assert hb["ts"] == int(T0 + 60.7)
    assert hb["uptime"] == 60
    assert hb["zone_id"] == "greenhouse"
    assert hb["zone_assigned"] is True
    assert hb["boot_sequence_id"] == f"{ID}-b1-r1"
    assert hb["reset_reason"] == "POWERON"
    assert hb["sensor_count"] == 4  # ds18b20 + sht31 (2 values) + moisture
    assert hb["actuator_count"] == 3
    valid(d.heartbeat_now(T0 + 61))


def test_ds18b20_publishes_raw_344_for_21_5_degrees() -> None:
    d = booted()
    msgs = valid(d.on_timer(T0 + 10, "sensor:4:ds18b20"))
    assert len(msgs) == 1
    m = msgs[0]
    assert m.topic == f"kaiser/god/esp/{ID}/sensor/4/data"
    assert m.qos == 1
    assert not m.retain
    p = m.payload
    assert p["raw"] == 344
    assert p["value"] == 21.5
    assert p["unit"] == "°C"
    assert p["sensor_type"] == "ds18b20"
    assert p["raw_mode"] is True
    assert p["quality"] == "good"
    assert type(p["ts"]) is int
    assert len(p["onewire_address"]) == 16
    assert p["onewire_address"].startswith("28")


def test_sht31_splits_into_temp_and_humidity_on_the_same_gpio() -> None:
    d = booted()
    msgs = valid(d.on_timer(T0 + 10, "sensor:21:sht31"))
    assert [m.payload["sensor_type"] for m in msgs] == ["sht31_temp", "sht31_humidity"]
    assert {m.topic for m in msgs} == {f"kaiser/god/esp/{ID}/sensor/21/data"}
    temp, hum = (m.payload for m in msgs)
    assert temp["raw"] == round((22.0 + 45) / 175 * 65535)
    assert hum["raw"] == round(50.0 / 100 * 65535)
    assert temp["i2c_address"] == hum["i2c_address"] == 0x44
    assert temp["seq"] + 1 == hum["seq"]
    assert abs(temp["value"] - 22.0) < 0.01


def test_value_outside_datasheet_range_is_suspect() -> None:
    d = booted()
    d.set_override("34:moisture", None, 140.0)
    (m,) = valid(d.on_timer(T0 + 30, "sensor:34:moisture"))
    assert m.payload["quality"] == "suspect"
    d.set_override("34:moisture", None, None)
    (m,) = d.on_timer(T0 + 60, "sensor:34:moisture").messages
    assert m.payload["quality"] == "good"


def test_forced_quality_is_published() -> None:
    spec = make(sensors=[{"gpio": 4, "sensor_type": "ds18b20", "quality": "fair"}])
    (m,) = valid(booted(spec).on_timer(T0 + 1, "sensor:4:ds18b20"))
    assert m.payload["quality"] == "fair"


def test_manual_value_appears_in_the_next_reading() -> None:
    d = booted()
    d.set_override("4:ds18b20", "ds18b20", 30.0)
    (m,) = d.on_timer(T0 + 10, "sensor:4:ds18b20").messages
    assert m.payload["raw"] == 480
    assert d.overrides() == {"4:ds18b20/ds18b20": 30.0}
    with pytest.raises(SpecError, match="value_type"):
        d.set_override("4:ds18b20", "sht31_temp", 1.0)
    with pytest.raises(SpecError, match="sensor"):
        d.set_override("99:ds18b20", None, 1.0)


def test_seq_counts_every_message_that_carries_it() -> None:
    d = booted()
    seqs = []
    for i in range(5):
        for m in d.on_timer(T0 + 10 * i, "sensor:21:sht31").messages:
            seqs.append(m.payload["seq"])
        d.on_timer(T0 + 10 * i, "heartbeat")
        for m in cmd(d, T0 + 10 * i, 5, command="TOGGLE").messages:
            seqs.append(m.payload["seq"])
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


# --------------------------------------------------------------------------- actuators


def test_actuator_on_response_echoes_correlation_and_status_is_bool_and_int_pwm() -> None:
    d = booted()
    step = cmd(
        d, T0 + 5, 5, command="on", value=1.0, duration=0, correlation_id="c-1", issued_by="rule:7"
    )
    valid(step)
    assert kinds(step) == [TopicKind.ACTUATOR_RESPONSE, TopicKind.ACTUATOR_STATUS]
    resp = only(step, TopicKind.ACTUATOR_RESPONSE)
    assert resp["success"] is True
    assert resp["correlation_id"] == "c-1"
    assert resp["issued_by"] == "rule:7"
    assert resp["command"] == "ON"
    status = only(step, TopicKind.ACTUATOR_STATUS)
    assert status["state"] is True
    assert status["pwm"] == 255
    assert status["type"] == "pump"
    assert status["emergency"] == "normal"


def test_pwm_command_scales_value_to_0_255() -> None:
    d = booted()
    status = only(cmd(d, T0, 18, command="PWM", value=0.5), TopicKind.ACTUATOR_STATUS)
    assert status["pwm"] == 128
    assert status["state"] is True
    status = only(cmd(d, T0 + 1, 18, command="pwm", value=0.0), TopicKind.ACTUATOR_STATUS)
    assert status == status | {"pwm": 0, "state": False}


def test_unknown_gpio_gets_failed_response() -> None:
    d = booted()
    step = cmd(d, T0, 33, command="ON", correlation_id="x")
    valid(step)
    resp = only(step, TopicKind.ACTUATOR_RESPONSE)
    assert resp["success"] is False
    assert resp["message"] == "Actuator not configured on GPIO 33"
    assert resp["correlation_id"] == "x"


def test_bad_command_and_value_get_failed_responses() -> None:
    d = booted()
    assert only(cmd(d, T0, 5, command="BLINK"), TopicKind.ACTUATOR_RESPONSE)["success"] is False
    resp = only(cmd(d, T0, 18, command="PWM", value=3), TopicKind.ACTUATOR_RESPONSE)
    assert resp["success"] is False
    assert "0.0-1.0" in resp["message"]


def test_auto_off_applies_to_on_only_and_new_command_cancels_it() -> None:
    d = booted()
    step = cmd(d, T0, 5, command="ON", duration=30)
    (t,) = [t for t in step.timers if t.kind is TimerKind.AUTO_OFF]
    assert (t.name, t.due, t.interval_s) == ("auto_off:5", T0 + 30, None)
    off = d.on_timer(T0 + 30, "auto_off:5")
    status = only(off, TopicKind.ACTUATOR_STATUS)
    assert status["state"] is False
    assert status["runtime_ms"] == 30_000
    step = cmd(d, T0 + 40, 18, command="PWM", value=0.2, duration=10)
    assert not [t for t in step.timers if t.kind is TimerKind.AUTO_OFF]
    step = cmd(d, T0 + 50, 5, command="OFF")
    assert "auto_off:5" in step.cancel


def test_runtime_accumulates_across_on_periods() -> None:
    d = booted()
    cmd(d, T0, 5, command="ON")
    cmd(d, T0 + 2, 5, command="OFF")
    cmd(d, T0 + 10, 5, command="ON")
    status = only(cmd(d, T0 + 13.5, 5, command="OFF"), TopicKind.ACTUATOR_STATUS)
    assert status["runtime_ms"] == 5_500


def test_max_runtime_protection_stops_pump_with_alert() -> None:
    d = booted()
    step = cmd(d, T0, 5, command="ON")
    (t,) = [t for t in step.timers if t.kind is TimerKind.RUNTIME]
    assert t.due == T0 + 600
    prot = d.on_timer(T0 + 600, "runtime:5")
    valid(prot)
    assert only(prot, TopicKind.ACTUATOR_ALERT)["alert_type"] == "runtime_protection"
    st = only(prot, TopicKind.ACTUATOR_STATUS)
    assert (st["state"], st["emergency"]) == (False, "active")
    again = cmd(d, T0 + 601, 5, command="ON", correlation_id="c9")
    assert kinds(again) == [
        TopicKind.ACTUATOR_ALERT,
        TopicKind.ACTUATOR_STATUS,
        TopicKind.ACTUATOR_RESPONSE,
    ]
    assert only(again, TopicKind.ACTUATOR_RESPONSE)["success"] is False


def test_valve_takes_its_travel_time() -> None:
    d = booted()
    step = cmd(d, T0, 19, command="ON")
    assert kinds(step) == [TopicKind.ACTUATOR_RESPONSE]
    (t,) = [t for t in step.timers if t.kind is TimerKind.TRAVEL]
    assert t.due == T0 + 5.0
    done = d.on_timer(T0 + 5, "travel:19")
    assert only(done, TopicKind.ACTUATOR_STATUS)["state"] is True


# --------------------------------------------------------------------------- emergency


def test_emergency_stop_switches_all_off_and_acks() -> None:
    d = booted()
    cmd(d, T0, 5, command="ON")
    cmd(d, T0, 18, command="PWM", value=0.7)
    step = send(
        d,
        T0 + 1,
        TopicKind.BROADCAST_EMERGENCY,
        {"command": "emergency_stop", "reason": "test", "correlation_id": "e1"},
    )
    valid(step)
    statuses = [m.payload for m in step.messages if m.topic.endswith("/status")]
    assert {s["gpio"] for s in statuses} == {5, 18, 19}
    assert all(s["state"] is False and s["emergency"] == "active" for s in statuses)
    ack = only(step, TopicKind.EMERGENCY_ACK)
    assert ack["correlation_id"] == "e1"
    assert ack["gpio_count"] == 3
    assert ack["outcome"] == "executed"
    assert ack["command"] == "emergency_stop"


def test_missing_or_unknown_emergency_command_means_stop() -> None:
    d = booted()
    cmd(d, T0, 5, command="ON")
    step = send(d, T0 + 1, TopicKind.ACTUATOR_EMERGENCY, {"reason": "?"})
    assert only(step, TopicKind.EMERGENCY_ACK)["outcome"] == "executed"
    assert d.actuator_state(5, T0 + 2)["state"] is False


def test_clear_never_switches_actuators_on_and_accepts_commands_again() -> None:
    d = booted()
    cmd(d, T0, 5, command="ON")
    send(d, T0 + 1, TopicKind.ACTUATOR_EMERGENCY, {"command": "emergency_stop"})
    step = send(
        d,
        T0 + 2,
        TopicKind.ACTUATOR_EMERGENCY,
        {"command": "clear_emergency", "correlation_id": "r1"},
    )
    valid(step)
    conf = only(step, TopicKind.RECOVERY_CONFIRM)
    assert conf["state"] == "cleared"
    assert conf["correlation_id"] == "r1"
    assert all(m.payload["state"] is False for m in step.messages if "/status" in m.topic)
    assert only(cmd(d, T0 + 3, 5, command="ON"), TopicKind.ACTUATOR_RESPONSE)["success"] is True


def test_per_device_clear_clears_only_that_device() -> None:
    a = booted()
    b = booted(make(id="ESP_ABCDEF"))
    stop = {"command": "emergency_stop"}
    tb = TopicBuilder()
    for d in (a, b):
        d.on_message(T0, tb.parse(tb.broadcast_emergency()), stop)
    a.on_message(T0 + 1, tb.parse(tb.actuator_emergency(a.id)), {"command": "clear_emergency"})
    assert a.actuator_state(5, T0 + 2)["emergency"] == "normal"
    assert b.actuator_state(5, T0 + 2)["emergency"] == "active"


# --------------------------------------------------------------------------- zones, config


def test_zone_assign_acks_with_correlation_and_changes_spec() -> None:
    d = booted()
    step = send(
        d,
        T0,
        TopicKind.ZONE_ASSIGN,
        {
            "zone_id": "z2",
            "master_zone_id": "m",
            "zone_name": "Z",
            "kaiser_id": "god",
            "correlation_id": "zz",
        },
    )
    valid(step)
    ack = only(step, TopicKind.ZONE_ACK)
    assert (ack["status"], ack["zone_id"], ack["correlation_id"]) == ("zone_assigned", "z2", "zz")
    assert step.spec is not None
    assert step.spec.zone_id == "z2"
    hb = only(d.heartbeat_now(T0 + 1), TopicKind.HEARTBEAT)
    assert hb["zone_id"] == "z2"
    removed = only(
        send(d, T0 + 2, TopicKind.ZONE_ASSIGN, {"zone_id": "", "correlation_id": "r"}),
        TopicKind.ZONE_ACK,
    )
    assert removed["status"] == "zone_removed"


def test_subzone_assign_and_remove_ack() -> None:
    d = booted()
    step = send(
        d,
        T0,
        TopicKind.SUBZONE_ASSIGN,
        {"subzone_id": "bed1", "assigned_gpios": [4, 5], "correlation_id": "s1"},
    )
    valid(step)
    ack = only(step, TopicKind.SUBZONE_ACK)
    assert (ack["status"], ack["correlation_id"], type(ack["timestamp"])) == (
        "subzone_assigned",
        "s1",
        int,
    )
    assert step.spec is not None
    assert step.spec.sensor("4:ds18b20").subzone_id == "bed1"
    (m,) = d.on_timer(T0 + 1, "sensor:4:ds18b20").messages
    assert m.payload["subzone_id"] == "bed1"
    rm = only(
        send(d, T0 + 2, TopicKind.SUBZONE_REMOVE, {"subzone_id": "bed1"}), TopicKind.SUBZONE_ACK
    )
    assert rm["status"] == "subzone_removed"


def test_config_push_replaces_state_and_answers_per_type() -> None:
    d = booted()
    payload = {
        "correlation_id": "cfg-1",
        "sensors": [
            {
                "gpio": 4,
                "sensor_type": "DS18B20",
                "active": True,
                "measurement_interval_seconds": 5,
            },
            {"gpio": 22, "sensor_type": "sht31_temp", "i2c_address": 68},
            {"gpio": 22, "sensor_type": "sht31_humidity", "i2c_address": 68},
            {"gpio": 23, "sensor_type": "dht22"},
        ],
        "actuators": [{"gpio": 5, "actuator_type": "pump", "max_runtime_ms": 0}],
    }
    step = send(d, T0, TopicKind.CONFIG, payload)
    valid(step)
    resps = [m.payload for m in step.messages if m.topic.endswith("/config_response")]
    by_type = {r["type"]: r for r in resps}
    assert by_type["sensor"]["status"] == "partial_success"
    assert by_type["sensor"]["count"] == 2
    assert by_type["sensor"]["failed_count"] == 1
    assert by_type["actuator"]["status"] == "success"
    assert all(r["correlation_id"] == "cfg-1" for r in resps)
    assert step.spec is not None
    assert [s.key for s in step.spec.sensors] == ["4:ds18b20", "22:sht31:68"]
    assert [a.gpio for a in step.spec.actuators] == [5]
    assert "sensor:21:sht31" in step.cancel
    assert any(t.name == "sensor:4:ds18b20" and t.interval_s == 5 for t in step.timers)


def test_system_commands() -> None:
    d = booted()
    unknown = only(
        send(d, T0, TopicKind.SYSTEM_COMMAND, {"command": "FACTORY_DANCE"}),
        TopicKind.SYSTEM_COMMAND_RESPONSE,
    )
    assert (unknown["success"], unknown["error"]) == (False, "Unknown command")
    status = only(
        send(d, T0, TopicKind.SYSTEM_COMMAND, {"command": "STATUS"}),
        TopicKind.SYSTEM_COMMAND_RESPONSE,
    )
    assert status["success"] is True
    step = send(d, T0, TopicKind.SYSTEM_COMMAND, {"command": "SAFE_MODE"})
    assert only(step, TopicKind.SYSTEM_COMMAND_RESPONSE)["success"] is True
    refused = only(cmd(d, T0 + 1, 5, command="ON"), TopicKind.ACTUATOR_RESPONSE)
    assert refused["success"] is False
    send(d, T0 + 2, TopicKind.SYSTEM_COMMAND, {"command": "exit_safe_mode"})
    assert only(cmd(d, T0 + 3, 5, command="ON"), TopicKind.ACTUATOR_RESPONSE)["success"] is True
    diag = send(d, T0 + 4, TopicKind.SYSTEM_COMMAND, {"command": "diagnostics"})
    valid(diag)
    assert only(diag, TopicKind.SYSTEM_DIAGNOSTICS)["heap_free"] > 0


def test_non_object_payload_is_rejected_not_raised() -> None:
    d = booted()
    step = send(d, T0, TopicKind.ZONE_ASSIGN, [1, 2])
    assert step.rejected
    assert step.messages == []


def test_will_is_retained_qos1_with_contract_fields() -> None:
    d = booted()
    w = d.will(T0)
    check(w, TB)
    assert (w.qos, w.retain) == (1, True)
    assert w.payload == {
        "status": "offline",
        "esp_id": ID,
        "reason": "unexpected_disconnect",
        "timestamp": int(T0),
    }


def test_subscriptions_start_with_heartbeat_ack() -> None:
    subs = booted().subscriptions()
    assert subs[0] == (f"kaiser/god/esp/{ID}/system/heartbeat/ack", 1)
    assert ("kaiser/broadcast/emergency", 2) in subs


# --------------------------------------------------------------------------- gate & watchdog


def test_gate_holds_back_readings_until_online_ack() -> None:
    d = Device(make(wait_for_ack=True), seed=1)
    boot = d.boot(T0)
    assert [t.name for t in boot.timers] == ["heartbeat", "watchdog"]
    assert boot.timers[0].interval_s == 5.0
    conn = d.on_connected(T0)
    assert kinds(conn) == [TopicKind.SESSION_ANNOUNCE, TopicKind.HEARTBEAT]
    assert d.read_sensor(T0 + 1, "4:ds18b20") == []
    pending = send(
        d, T0 + 2, TopicKind.HEARTBEAT_ACK, {"status": "pending_approval", "handover_epoch": 1}
    )
    assert d.gated
    assert not [t for t in pending.timers if t.kind is TimerKind.SENSOR]
    bad = send(d, T0 + 3, TopicKind.HEARTBEAT_ACK, {"status": "online", "handover_epoch": 0})
    assert bad.rejected
    assert d.gated
    ok = send(
        d,
        T0 + 4,
        TopicKind.HEARTBEAT_ACK,
        {"status": "online", "handover_epoch": 3, "server_time": int(T0)},
    )
    assert not d.gated
    names = {t.name for t in ok.timers}
    assert {"heartbeat", "watchdog", "sensor:4:ds18b20", "sensor:21:sht31"} <= names
    hb_timer = next(t for t in ok.timers if t.name == "heartbeat")
    assert hb_timer.interval_s == 60.0
    assert len(d.read_sensor(T0 + 5, "4:ds18b20")) == 1


def test_server_watchdog_forces_actuators_to_default_state() -> None:
    d = Device(make(wait_for_ack=True), seed=1)
    d.boot(T0)
    d.on_connected(T0)
    send(d, T0 + 1, TopicKind.HEARTBEAT_ACK, {"status": "online", "handover_epoch": 1})
    cmd(d, T0 + 2, 5, command="ON")
    step = d.on_timer(T0 + 1 + SERVER_WATCHDOG_S, "watchdog")
    valid(step)
    assert only(step, TopicKind.ACTUATOR_STATUS)["state"] is False
    assert only(step, TopicKind.ACTUATOR_ALERT)["alert_type"] == "safety_forced_off"


# --------------------------------------------------------------------------- lifecycle


def test_reboot_increments_boot_count_resets_uptime_and_restarts_session() -> None:
    d = booted()
    cmd(d, T0 + 10, 5, command="ON")
    step = send(d, T0 + 100, TopicKind.SYSTEM_COMMAND, {"command": "REBOOT"})
    assert step.restart_session
    assert d.boot_count == 2
    assert d.reset_reason == "SW"
    assert d.actuator_state(5, T0 + 100)["state"] is False
    hb = only(d.heartbeat_now(T0 + 103), TopicKind.HEARTBEAT)
    assert hb["uptime"] == 3
    assert hb["boot_sequence_id"] == f"{ID}-b2-r3"


def test_checkpoint_restore_continues_counters_and_counts_a_boot() -> None:
    d = booted()
    for i in range(3):
        d.on_timer(T0 + i, "sensor:21:sht31")
    cmd(d, T0, 5, command="ON")
    cmd(d, T0 + 4, 5, command="OFF")
    cp = d.checkpoint(T0 + 5)
    again = Device(make(), seed=7, checkpoint=cp)
    again.boot(T0 + 50, "POWERON")
    assert again.boot_count == 2
    (m,) = again.on_timer(T0 + 51, "sensor:4:ds18b20").messages
    assert m.payload["seq"] == d.seq + 1
    assert again.actuator_state(5, T0 + 51)["runtime_ms"] == 4000


def test_apply_spec_adds_removes_and_retimes_sensors() -> None:
    d = booted()
    spec = d.spec
    new = spec.replace(
        sensors=[
            spec.sensors[0].replace(interval_s=2).model_dump(),
            {"gpio": 32, "sensor_type": "ph"},
        ]
    )
    step = d.apply_spec(T0 + 100, new)
    assert set(step.cancel) == {"sensor:21:sht31", "sensor:34:moisture"}
    retimed = {t.name: t for t in step.timers}
    assert retimed["sensor:4:ds18b20"].interval_s == 2
    assert retimed["sensor:4:ds18b20"].due == T0 + 102
    assert retimed["sensor:32:ph"].due is None
    (m,) = valid(Step(messages=d.read_sensor(T0 + 101, "32:ph")))
    assert 0 <= m.payload["raw"] <= 4095


def test_same_seed_same_stream_different_seed_different() -> None:
    def stream(seed: int) -> list[bytes]:
        spec = make(
            sensors=[
                {"gpio": 4, "sensor_type": "ds18b20", "pattern": {"kind": "walk"}},
                {"gpio": 21, "sensor_type": "sht31", "pattern": {"kind": "random", "range": 2}},
            ]
        )
        d = Device(spec, seed=seed)
        d.boot(T0)
        out = [m.data for m in d.on_connected(T0).messages]
        for i in range(50):
            t = T0 + i
            out += [m.data for m in d.read_sensor(t, "4:ds18b20")]
            out += [m.data for m in d.read_sensor(t, "21:sht31")]
            out += [m.data for m in d.on_timer(t, "heartbeat").messages]
        return out

    assert stream(1) == stream(1)
    assert stream(1) != stream(2)


def test_dropping_the_ack_gate_starts_readings_and_cancels_the_watchdog() -> None:
    d = Device(make(wait_for_ack=True), seed=1)
    d.boot(T0)
    step = d.apply_spec(T0 + 1, d.spec.replace(wait_for_ack=False))
    assert "watchdog" in step.cancel
    assert {t.name for t in step.timers if t.kind is TimerKind.SENSOR} == {
        "sensor:4:ds18b20",
        "sensor:21:sht31",
        "sensor:34:moisture",
    }


def test_malformed_config_item_is_a_failure_not_an_exception() -> None:
    d = booted()
    step = send(
        d,
        T0,
        TopicKind.CONFIG,
        {
            "correlation_id": "x",
            "sensors": [{"gpio": 4, "sensor_type": "ds18b20", "sample_interval_ms": "soon"}],
        },
    )
    resp = only(step, TopicKind.CONFIG_RESPONSE)
    assert (resp["status"], resp["failed_count"]) == ("error", 1)


def test_rejected_config_burns_no_seq() -> None:
    d = booted()
    before = d.seq
    # Both valid alone, but the pump's gpio clashes with a sensor: the whole push is refused.
    step = send(
        d,
        T0,
        TopicKind.CONFIG,
        {
            "sensors": [{"gpio": 5, "sensor_type": "ds18b20"}],
            "actuators": [{"gpio": 5, "actuator_type": "pump"}],
        },
    )
    seqs = [m.payload["seq"] for m in step.messages]
    assert seqs == [before + 1, before + 2]
    assert all(m.payload["status"] == "error" for m in step.messages)

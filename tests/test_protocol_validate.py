"""The contract validator: contract examples pass, and each rule catches its own breach."""

from __future__ import annotations

from typing import Any

import pytest

from mocksim.errors import ContractError
from mocksim.protocol.message import Message
from mocksim.protocol.topics import Direction, TopicBuilder, TopicKind
from mocksim.protocol.validate import QUALITY_VALUES, TS_MAX_S, TS_MIN_S, check, validate

ESP = "ESP_12AB34"
TS = 1_733_240_000  # 2024-12-03, int seconds
B = TopicBuilder()


def _drop(payload: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k not in names}


# Literal examples built from the contract's field lists (sections 2–9), one per kind a device
# publishes, with the topic, QoS and retain flag the contract gives.
def _examples() -> dict[TopicKind, Message]:
    heartbeat = {
        "esp_id": ESP,
        "zone_id": "greenhouse_1",
        "master_zone_id": "farm",
        "zone_assigned": True,
        "ts": TS,
        "time_valid": True,
        "uptime": 3600,
        "heap_free": 182_344,
        "wifi_rssi": -61,
        "sensor_count": 2,
        "actuator_count": 1,
        "wifi_ip": "192.168.1.40",
        "boot_sequence_id": f"{ESP}-b3-r1",
        "reset_reason": "POWERON",
        "segment_start_ts": TS - 3600,
        "metrics_schema_version": 2,
    }
    ds18b20 = {
        "esp_id": ESP,
        "seq": 17,
        "zone_id": "greenhouse_1",
        "subzone_id": "",
        "gpio": 4,
        "sensor_type": "ds18b20",
        "raw": 344,
        "value": 21.5,
        "unit": "°C",
        "quality": "good",
        "ts": TS,
        "time_valid": True,
        "raw_mode": True,
        "onewire_address": "28FF641E8016043C",
    }
    status = {
        "esp_id": ESP,
        "seq": 18,
        "zone_id": "greenhouse_1",
        "subzone_id": "bed_a",
        "ts": TS,
        "gpio": 16,
        "type": "pump",
        "state": True,
        "pwm": 255,
        "runtime_ms": 12_000,
        "emergency": "normal",
    }
    response = {
        "esp_id": ESP,
        "seq": 19,
        "zone_id": "greenhouse_1",
        "ts": TS,
        "gpio": 16,
        "command": "ON",
        "value": 1.0,
        "duration": 30,
        "success": True,
        "message": "Actuator ON",
        "correlation_id": "c-42",
        "issued_by": "rule:irrigation",
    }
    alert = {
        "esp_id": ESP,
        "seq": 20,
        "zone_id": "greenhouse_1",
        "ts": TS,
        "gpio": 16,
        "alert_type": "runtime_protection",
        "message": "max runtime exceeded",
    }
    return {
        TopicKind.HEARTBEAT: Message(B.heartbeat(ESP), heartbeat, 0),
        TopicKind.WILL: Message(
            B.will(ESP),
            {
                "status": "offline",
                "esp_id": ESP,
                "reason": "unexpected_disconnect",
                "timestamp": TS,
            },
            1,
            retain=True,
        ),
        TopicKind.SESSION_ANNOUNCE: Message(
            B.session_announce(ESP),
            {"handover_epoch": 1, "reason": "boot", "ts_ms": TS * 1000 + 123},
            1,
        ),
        TopicKind.SENSOR_DATA: Message(B.sensor_data(ESP, 4), ds18b20, 1),
        TopicKind.ACTUATOR_STATUS: Message(B.actuator_status(ESP, 16), status, 1),
        TopicKind.ACTUATOR_RESPONSE: Message(B.actuator_response(ESP, 16), response, 1),
        TopicKind.ACTUATOR_ALERT: Message(B.actuator_alert(ESP, 16), alert, 1),
        TopicKind.EMERGENCY_ACK: Message(
            B.emergency_ack(ESP),
            {
                "ts": TS,
                "esp_id": ESP,
                "correlation_id": "stop-1",
                "command": "emergency_stop",
                "gpio_count": 2,
                "outcome": "executed",
                "seq": 21,
            },
            1,
        ),
        TopicKind.RECOVERY_CONFIRM: Message(
            B.recovery_confirm(ESP),
            {
                "ts": TS,
                "esp_id": ESP,
                "correlation_id": "clear-1",
                "command": "clear_emergency",
                "state": "cleared",
                "seq": 22,
            },
            1,
        ),
        TopicKind.ZONE_ACK: Message(
            B.zone_ack(ESP),
            {
                "esp_id": ESP,
                "status": "zone_assigned",
                "zone_id": "greenhouse_1",
                "master_zone_id": "farm",
                "ts": TS,
                "seq": 23,
                "correlation_id": "zone-7",
            },
            1,
        ),
        TopicKind.SUBZONE_ACK: Message(
            B.subzone_ack(ESP),
            {
                "esp_id": ESP,
                "status": "subzone_assigned",
                "subzone_id": "bed_a",
                "timestamp": TS,
                "correlation_id": "sz-3",
            },
            1,
        ),
        TopicKind.CONFIG_RESPONSE: Message(
            B.config_response(ESP),
            {
                "seq": 24,
                "status": "partial_success",
                "type": "sensor",
                "count": 1,
                "failed_count": 1,
                "failures": [{"gpio": 40, "error": "invalid gpio"}],
                "message": "1 of 2 sensors applied",
                "correlation_id": "cfg-9",
            },
            1,
        ),
        TopicKind.SYSTEM_COMMAND_RESPONSE: Message(
            B.system_command_response(ESP), {"success": False, "error": "Unknown command"}, 1
        ),
        TopicKind.SYSTEM_ERROR: Message(
            B.system_error(ESP), {"error_code": 3012, "severity": 2, "message": "mqtt lost"}, 1
        ),
        TopicKind.SYSTEM_DIAGNOSTICS: Message(
            B.system_diagnostics(ESP), {"heap_free": 181_000, "wifi_rssi": -58}, 0
        ),
    }


EXAMPLES = _examples()


def _with(kind: TopicKind, *, drop: tuple[str, ...] = (), **changes: Any) -> Message:
    base = EXAMPLES[kind]
    payload = {**_drop(dict(base.payload), *drop), **changes}
    return Message(base.topic, payload, base.qos, base.retain)


def test_every_device_message_kind_has_a_contract_example():
    device_kinds = {k for k in TopicKind if TopicBuilder.direction(k) is Direction.DEVICE_TO_SERVER}
    assert set(EXAMPLES) == device_kinds


@pytest.mark.parametrize("kind", list(EXAMPLES))
def test_contract_example_is_valid(kind):
    assert validate(EXAMPLES[kind], B) == []
    assert validate(EXAMPLES[kind], B, strict=False) == []
    check(EXAMPLES[kind], B)


def test_sht31_split_messages_with_i2c_address_are_valid():
    raw_temp = round((22.0 + 45) / 175 * 65535)
    raw_humidity = round(55.0 / 100 * 65535)
    for sensor_type, raw, value, unit in (
        ("sht31_temp", raw_temp, 22.0, "°C"),
        ("sht31_humidity", raw_humidity, 55.0, "%RH"),
    ):
        message = _with(
            TopicKind.SENSOR_DATA,
            drop=("onewire_address",),
            sensor_type=sensor_type,
            raw=raw,
            value=value,
            unit=unit,
            i2c_address=0x44,
        )
        assert validate(message, B) == []


@pytest.mark.parametrize("quality", sorted(QUALITY_VALUES))
def test_every_allowed_quality_passes(quality):
    assert validate(_with(TopicKind.SENSOR_DATA, quality=quality), B) == []


# (kind, changed fields, fields dropped, a fragment the problem must contain)
BREACHES = [
    # heartbeat: the server's strict integer rules
    (TopicKind.HEARTBEAT, {"ts": float(TS)}, (), "ts: 1733240000.0 (float) is not a JSON integer"),
    (TopicKind.HEARTBEAT, {"uptime": True}, (), "uptime: True (bool) is not a JSON integer"),
    (TopicKind.HEARTBEAT, {"heap_free": False}, (), "heap_free: False (bool)"),
    (TopicKind.HEARTBEAT, {"wifi_rssi": -61.0}, (), "wifi_rssi: -61.0 (float)"),
    (TopicKind.HEARTBEAT, {"wifi_rssi": "-61"}, (), "wifi_rssi: '-61' (str)"),
    (TopicKind.HEARTBEAT, {}, ("heap_free",), "heap_free: missing"),
    (TopicKind.HEARTBEAT, {}, ("uptime",), "uptime: missing"),
    (TopicKind.HEARTBEAT, {}, ("ts",), "ts: missing"),
    (TopicKind.HEARTBEAT, {"ts": TS * 1000}, (), "milliseconds sent?"),
    (TopicKind.HEARTBEAT, {"uptime": -1}, (), "uptime: -1 is below the minimum 0"),
    (TopicKind.HEARTBEAT, {"zone_assigned": "true"}, (), "zone_assigned: 'true' (str)"),
    (TopicKind.HEARTBEAT, {}, ("wifi_ip",), "wifi_ip: missing"),
    (TopicKind.HEARTBEAT, {"esp_id": "ESP_999999"}, (), "differs from the topic's device id"),
    (TopicKind.HEARTBEAT, {"boot_sequence_id": "ESP_999999-b3-r1"}, (), "boot_sequence_id"),
    (TopicKind.HEARTBEAT, {"boot_sequence_id": f"{ESP}-b3-rPOWERON"}, (), "boot_sequence_id"),
    (TopicKind.HEARTBEAT, {"zone_id": ""}, (), "zone_assigned: True contradicts zone_id ''"),
    (TopicKind.HEARTBEAT, {"metrics_schema_version": 0}, (), "below the minimum 1"),
    # sensor data
    (TopicKind.SENSOR_DATA, {"quality": "excellent"}, (), "quality: 'excellent' is not one of"),
    (TopicKind.SENSOR_DATA, {"quality": "bad"}, (), "quality: 'bad'"),
    (TopicKind.SENSOR_DATA, {"quality": "stale"}, (), "quality: 'stale'"),
    (TopicKind.SENSOR_DATA, {"quality": "GOOD"}, (), "quality: 'GOOD'"),
    (TopicKind.SENSOR_DATA, {"raw_mode": "true"}, (), "raw_mode: 'true' (str) is not a JSON bool"),
    (TopicKind.SENSOR_DATA, {"raw_mode": 1}, (), "raw_mode: 1 (int)"),
    (TopicKind.SENSOR_DATA, {"ts": TS * 1000 + 5}, (), "milliseconds sent?"),
    (TopicKind.SENSOR_DATA, {"ts": 12}, (), "ts: 12 is before 2000-01-01"),
    (TopicKind.SENSOR_DATA, {"ts": TS + 0.5}, (), "(float) is not a JSON integer"),
    (TopicKind.SENSOR_DATA, {"esp_id": "ESP_ABCDEF"}, (), "esp_id: 'ESP_ABCDEF' differs"),
    (TopicKind.SENSOR_DATA, {"gpio": 5}, (), "gpio: 5 differs from the topic's gpio 4"),
    (TopicKind.SENSOR_DATA, {"gpio": "4"}, (), "gpio: '4' (str) is not a JSON integer"),
    (TopicKind.SENSOR_DATA, {"sensor_type": "DS18B20"}, (), "sensor_type: 'DS18B20' does not"),
    (TopicKind.SENSOR_DATA, {"raw": 344.0}, (), "raw: 344.0 (float)"),
    (TopicKind.SENSOR_DATA, {"value": "21.5"}, (), "value: '21.5' (str)"),
    (TopicKind.SENSOR_DATA, {"value": float("nan")}, (), "is not a finite JSON number"),
    (TopicKind.SENSOR_DATA, {"value": True}, (), "value: True (bool)"),
    (TopicKind.SENSOR_DATA, {"onewire_address": "28FF641E8016043"}, (), "onewire_address"),
    (TopicKind.SENSOR_DATA, {"i2c_address": 128}, (), "i2c_address: 128 is above the maximum"),
    (TopicKind.SENSOR_DATA, {"i2c_address": 68}, (), "one bus, not both"),
    (TopicKind.SENSOR_DATA, {"error_code": "E1"}, (), "error_code: 'E1' (str)"),
    (TopicKind.SENSOR_DATA, {}, ("raw",), "raw: missing"),
    (TopicKind.SENSOR_DATA, {}, ("quality",), "quality: missing"),
    # actuator status / response / alert
    (TopicKind.ACTUATOR_STATUS, {"state": "ON"}, (), "state: 'ON' (str) is not a JSON bool"),
    (TopicKind.ACTUATOR_STATUS, {"state": "on"}, (), "state: 'on' (str)"),
    (TopicKind.ACTUATOR_STATUS, {"state": 1}, (), "state: 1 (int)"),
    (TopicKind.ACTUATOR_STATUS, {"pwm": 256}, (), "pwm: 256 is above the maximum 255"),
    (TopicKind.ACTUATOR_STATUS, {"pwm": 0.5}, (), "pwm: 0.5 (float)"),
    (TopicKind.ACTUATOR_STATUS, {"runtime_ms": 1.5}, (), "runtime_ms: 1.5 (float)"),
    (TopicKind.ACTUATOR_STATUS, {"type": "motor"}, (), "type: 'motor' is not one of"),
    (TopicKind.ACTUATOR_STATUS, {"emergency": "stopped"}, (), "emergency: 'stopped'"),
    (TopicKind.ACTUATOR_STATUS, {"ts": float(TS)}, (), "ts: 1733240000.0 (float)"),
    (TopicKind.ACTUATOR_STATUS, {"gpio": 17}, (), "gpio: 17 differs"),
    (TopicKind.ACTUATOR_RESPONSE, {"success": "true"}, (), "success: 'true' (str)"),
    (TopicKind.ACTUATOR_RESPONSE, {}, ("success",), "success: missing"),
    (TopicKind.ACTUATOR_RESPONSE, {"correlation_id": 42}, (), "correlation_id: 42 (int)"),
    (TopicKind.ACTUATOR_RESPONSE, {"duration": -1}, (), "duration: -1 is below"),
    (TopicKind.ACTUATOR_ALERT, {"alert_type": "overheat"}, (), "alert_type: 'overheat'"),
    (TopicKind.ACTUATOR_ALERT, {"gpio": 7}, (), "differs from the topic's gpio 16 and is not 255"),
    # acks
    (TopicKind.EMERGENCY_ACK, {"command": "stop"}, (), "command: 'stop' is not one of"),
    (TopicKind.EMERGENCY_ACK, {"outcome": "done"}, (), "outcome: 'done'"),
    (TopicKind.EMERGENCY_ACK, {"gpio_count": -1}, (), "gpio_count: -1"),
    (TopicKind.RECOVERY_CONFIRM, {"state": "normal"}, (), "state: 'normal'"),
    (TopicKind.RECOVERY_CONFIRM, {"command": "emergency_stop"}, (), "command: 'emergency_stop'"),
    (TopicKind.ZONE_ACK, {"status": "ok"}, (), "status: 'ok' is not one of"),
    (TopicKind.ZONE_ACK, {"correlation_id": None}, (), "correlation_id: None (NoneType)"),
    (TopicKind.ZONE_ACK, {"seq": -3}, (), "seq: -3 is below the minimum 0"),
    (TopicKind.SUBZONE_ACK, {"timestamp": float(TS)}, (), "timestamp: 1733240000.0 (float)"),
    (TopicKind.SUBZONE_ACK, {}, ("timestamp",), "timestamp: missing"),
    (TopicKind.CONFIG_RESPONSE, {"type": "sensors"}, (), "type: 'sensors' is not one of"),
    (TopicKind.CONFIG_RESPONSE, {"failures": "none"}, (), "failures: 'none' (str)"),
    (TopicKind.CONFIG_RESPONSE, {"status": "ok"}, (), "status: 'ok'"),
    # session announce, will, system
    (TopicKind.SESSION_ANNOUNCE, {"ts_ms": TS * 1000.0}, (), "(float) is not a JSON integer"),
    (TopicKind.SESSION_ANNOUNCE, {"ts_ms": TS * 1_000_000}, (), "before 2100-01-01"),
    (TopicKind.SESSION_ANNOUNCE, {"reason": "restart"}, (), "reason: 'restart' is not one of"),
    (TopicKind.SESSION_ANNOUNCE, {"handover_epoch": 0}, (), "handover_epoch: 0 is below"),
    (TopicKind.WILL, {"uptime": 5}, (), "uptime: not a field of this message"),
    (TopicKind.WILL, {"status": "online"}, (), "status: 'online' is not one of offline"),
    (TopicKind.WILL, {"reason": "shutdown"}, (), "reason: 'shutdown'"),
    (TopicKind.WILL, {"timestamp": TS * 1000}, (), "milliseconds sent?"),
    (TopicKind.SYSTEM_COMMAND_RESPONSE, {}, ("error",), "error: missing"),
    (TopicKind.SYSTEM_COMMAND_RESPONSE, {"success": 0}, (), "success: 0 (int)"),
    (TopicKind.SYSTEM_ERROR, {"severity": 4}, (), "severity: 4 is above the maximum 3"),
    (TopicKind.SYSTEM_ERROR, {}, ("error_code",), "error_code: missing"),
    (TopicKind.SYSTEM_DIAGNOSTICS, {"wifi_rssi": -58.5}, (), "wifi_rssi: -58.5 (float)"),
    (TopicKind.SYSTEM_DIAGNOSTICS, {}, ("heap_free",), "heap_free: missing"),
]


@pytest.mark.parametrize(
    ("kind", "changes", "drop", "fragment"),
    BREACHES,
    ids=[f"{kind}-{fragment[:40]}" for kind, _, _, fragment in BREACHES],
)
def test_each_breach_is_named(kind, changes, drop, fragment):
    problems = validate(_with(kind, drop=drop, **changes), B)
    assert len(problems) >= 1
    assert any(fragment in p for p in problems), problems


def test_every_device_kind_has_a_failing_example():
    assert {kind for kind, *_ in BREACHES} == set(EXAMPLES)


def test_unsynced_clock_may_send_seconds_since_boot():
    message = _with(TopicKind.SENSOR_DATA, ts=12, time_valid=False)
    assert validate(message, B) == []
    assert validate(_with(TopicKind.SENSOR_DATA, ts=-1, time_valid=False), B) != []
    # Milliseconds stay wrong even with an unsynced clock.
    assert validate(_with(TopicKind.SENSOR_DATA, ts=TS * 1000, time_valid=False), B) != []


def test_timestamp_bounds_are_2000_and_2100():
    assert validate(_with(TopicKind.SENSOR_DATA, ts=TS_MIN_S), B) == []
    assert validate(_with(TopicKind.SENSOR_DATA, ts=TS_MAX_S - 1), B) == []
    assert validate(_with(TopicKind.SENSOR_DATA, ts=TS_MIN_S - 1), B) != []
    assert validate(_with(TopicKind.SENSOR_DATA, ts=TS_MAX_S), B) != []


def test_system_wide_alert_gpio_255_passes_on_an_actuator_topic():
    assert validate(_with(TopicKind.ACTUATOR_ALERT, gpio=255), B) == []


def test_broadcast_stop_may_ack_without_correlation_id():
    assert validate(_with(TopicKind.EMERGENCY_ACK, correlation_id=None), B) == []


def test_ack_without_correlation_id_in_request_leaves_it_out():
    assert validate(_with(TopicKind.ZONE_ACK, drop=("correlation_id",)), B) == []


def test_lenient_mode_accepts_server_aliases_but_strict_mode_wants_contract_names():
    hb = _with(TopicKind.HEARTBEAT, drop=("heap_free",), free_heap=180_000)
    assert validate(hb, B, strict=False) == []
    assert "heap_free: missing" in validate(hb, B)
    reading = _with(TopicKind.SENSOR_DATA, drop=("raw", "ts"), raw_value=344, timestamp=TS)
    assert validate(reading, B, strict=False) == []
    assert {"raw: missing", "ts: missing"} <= set(validate(reading, B))


def test_lenient_mode_still_checks_alias_types():
    hb = _with(TopicKind.HEARTBEAT, drop=("heap_free",), free_heap=1.5)
    assert validate(hb, B, strict=False) == ["free_heap: 1.5 (float) is not a JSON integer"]


def test_lenient_mode_needs_only_what_the_server_rejects_without():
    minimal = {"ts": TS, "uptime": 10, "heap_free": 1000, "wifi_rssi": -70}
    message = Message(B.heartbeat(ESP), minimal, 0)
    assert validate(message, B, strict=False) == []
    assert len(validate(message, B)) > 5


def test_metrics_schema_version_2_requires_boot_fields():
    minimal = {"ts": TS, "uptime": 10, "heap_free": 1000, "wifi_rssi": -70}
    v2 = Message(B.heartbeat(ESP), {**minimal, "metrics_schema_version": 2}, 0)
    problems = validate(v2, B, strict=False)
    assert problems == [
        "boot_sequence_id: missing (required when metrics_schema_version >= 2)",
        "reset_reason: missing (required when metrics_schema_version >= 2)",
        "segment_start_ts: missing (required when metrics_schema_version >= 2)",
    ]
    v1 = Message(B.heartbeat(ESP), {**minimal, "metrics_schema_version": 1}, 0)
    assert validate(v1, B, strict=False) == []


@pytest.mark.parametrize(("qos", "retain"), [(0, False), (2, False), (1, True)])
def test_sensor_data_with_other_qos_or_retain_is_refused(qos, retain):
    base = EXAMPLES[TopicKind.SENSOR_DATA]
    problems = validate(Message(base.topic, base.payload, qos, retain), B)
    assert any(p.startswith(("qos:", "retain:")) for p in problems), problems


def test_will_must_be_retained_with_qos_1():
    base = EXAMPLES[TopicKind.WILL]
    problems = validate(Message(base.topic, base.payload, 0, retain=False), B)
    assert problems == [
        "qos: 0 is not 1, the contract's QoS for will",
        "retain: False, but will is retained",
    ]


def test_heartbeat_must_be_qos_0():
    base = EXAMPLES[TopicKind.HEARTBEAT]
    assert validate(Message(base.topic, base.payload, 1), B) == [
        "qos: 1 is not 0, the contract's QoS for heartbeat"
    ]


def test_server_to_device_message_is_not_a_device_message():
    message = Message(B.actuator_command(ESP, 16), {"command": "ON", "value": 1.0}, 2)
    [problem] = validate(message, B)
    assert "actuator_command is published by the server" in problem


def test_foreign_topic_is_a_problem_naming_the_topic():
    base = EXAMPLES[TopicKind.SENSOR_DATA]
    topic = base.topic.replace("kaiser/god/", "kaiser/other/")
    message = Message(topic, base.payload, 1)
    [problem] = validate(message, B)
    assert problem.startswith(f"topic {topic!r}:")
    assert "other" in problem
    # Without a builder any kaiser id is accepted.
    assert validate(message) == []


def test_unknown_topic_is_a_problem():
    message = Message(f"kaiser/god/esp/{ESP}/sensor/batch", {"x": 1}, 1)
    [problem] = validate(message)
    assert "unknown topic" in problem


def test_empty_payload_is_refused():
    message = Message(B.heartbeat(ESP), {}, 0)
    assert validate(message, B) == ["payload: empty object (the contract never publishes one)"]


def test_non_object_payload_is_refused():
    message = Message(B.heartbeat(ESP), [1, 2], 0)  # type: ignore[arg-type]
    assert validate(message, B) == ["payload: [1, 2] (list) is not a JSON object"]


def test_payload_that_is_not_json_is_refused():
    message = _with(TopicKind.SYSTEM_ERROR, detail={1, 2})
    problems = validate(message, B)
    assert any(p.startswith("payload: not encodable as JSON") for p in problems), problems


def test_every_problem_is_listed_not_just_the_first():
    message = _with(TopicKind.SENSOR_DATA, ts=float(TS), quality="excellent", raw_mode="true")
    problems = validate(message, B)
    assert len(problems) == 3


def test_check_raises_contract_error_listing_every_problem():
    message = _with(TopicKind.ACTUATOR_STATUS, state="ON", pwm=300)
    with pytest.raises(ContractError) as info:
        check(message, B)
    error = info.value
    assert error.problems == validate(message, B)
    assert len(error.problems) == 2
    assert message.topic in str(error)
    assert "2 contract problem(s)" in str(error)
    assert "state: 'ON' (str) is not a JSON bool" in str(error)


def test_check_returns_none_for_a_valid_message():
    check(EXAMPLES[TopicKind.HEARTBEAT], B)  # raises on any problem

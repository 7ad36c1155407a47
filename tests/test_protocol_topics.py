"""Topics: every contract topic builds, parses back, and foreign or malformed ones are refused."""

from __future__ import annotations

import random
import re

import pytest

from mocksim.errors import SpecError, TopicError
from mocksim.protocol.topics import (
    DEVICE_ID_PATTERN,
    ESP_ID_PATTERN,
    GPIO_MAX,
    KAISER_ID_PATTERN,
    MOCK_ID_PATTERN,
    Direction,
    ParsedTopic,
    Scope,
    TopicBuilder,
    TopicKind,
    parse_topic,
    validate_device_id,
)

ESP = "ESP_12AB34"
D = f"kaiser/god/esp/{ESP}"

# Section by section, the topic strings as the contract writes them (gpio 5 where there is one).
CONTRACT_TOPICS = {
    TopicKind.HEARTBEAT: f"{D}/system/heartbeat",
    TopicKind.HEARTBEAT_ACK: f"{D}/system/heartbeat/ack",
    TopicKind.WILL: f"{D}/system/will",
    TopicKind.SESSION_ANNOUNCE: f"{D}/session/announce",
    TopicKind.SENSOR_DATA: f"{D}/sensor/5/data",
    TopicKind.SENSOR_COMMAND: f"{D}/sensor/5/command",
    TopicKind.ACTUATOR_COMMAND: f"{D}/actuator/5/command",
    TopicKind.ACTUATOR_RESPONSE: f"{D}/actuator/5/response",
    TopicKind.ACTUATOR_STATUS: f"{D}/actuator/5/status",
    TopicKind.ACTUATOR_ALERT: f"{D}/actuator/5/alert",
    TopicKind.ACTUATOR_EMERGENCY: f"{D}/actuator/emergency",
    TopicKind.EMERGENCY_ACK: f"{D}/actuator/emergency/ack",
    TopicKind.RECOVERY_CONFIRM: f"{D}/actuator/recovery_confirm",
    TopicKind.BROADCAST_EMERGENCY: "kaiser/broadcast/emergency",
    TopicKind.ZONE_ASSIGN: f"{D}/zone/assign",
    TopicKind.ZONE_ACK: f"{D}/zone/ack",
    TopicKind.SUBZONE_ASSIGN: f"{D}/subzone/assign",
    TopicKind.SUBZONE_REMOVE: f"{D}/subzone/remove",
    TopicKind.SUBZONE_SAFE: f"{D}/subzone/safe",
    TopicKind.SUBZONE_ACK: f"{D}/subzone/ack",
    TopicKind.CONFIG: f"{D}/config",
    TopicKind.CONFIG_RESPONSE: f"{D}/config_response",
    TopicKind.SYSTEM_COMMAND: f"{D}/system/command",
    TopicKind.SYSTEM_COMMAND_RESPONSE: f"{D}/system/command/response",
    TopicKind.SYSTEM_ERROR: f"{D}/system/error",
    TopicKind.SYSTEM_DIAGNOSTICS: f"{D}/system/diagnostics",
    TopicKind.SERVER_STATUS: "kaiser/god/server/status",
}


def _args(kind: TopicKind, esp_id: str = ESP, gpio: int = 5) -> tuple[str | None, int | None]:
    """The (esp_id, gpio) that ``kind``'s topic has levels for."""
    spec = TopicBuilder.spec(kind)
    return (
        esp_id if spec.scope is Scope.DEVICE else None,
        gpio if spec.has_gpio else None,
    )


@pytest.fixture
def builder() -> TopicBuilder:
    return TopicBuilder()


def test_contract_lists_every_kind_once():
    assert set(CONTRACT_TOPICS) == set(TopicKind)
    assert set(TopicBuilder.SPECS) == set(TopicKind)


@pytest.mark.parametrize("kind", list(TopicKind))
def test_build_gives_the_contract_topic(builder, kind):
    assert builder.build(kind, *_args(kind)) == CONTRACT_TOPICS[kind]


@pytest.mark.parametrize("kind", list(TopicKind))
def test_convenience_method_named_after_kind_matches_build(builder, kind):
    method = getattr(builder, kind.value)
    assert method(*(arg for arg in _args(kind) if arg is not None)) == CONTRACT_TOPICS[kind]


@pytest.mark.parametrize("kind", list(TopicKind))
def test_parse_gives_kind_and_ids_of_contract_topic(builder, kind):
    spec = TopicBuilder.spec(kind)
    assert builder.parse(CONTRACT_TOPICS[kind]) == ParsedTopic(
        kind=kind,
        kaiser_id=None if spec.scope is Scope.BROADCAST else "god",
        esp_id=ESP if spec.scope is Scope.DEVICE else None,
        gpio=5 if spec.has_gpio else None,
    )


def test_parse_round_trips_build_for_every_kind_id_and_pin():
    rng = random.Random(20261203)
    hexdigits = "0123456789ABCDEF"
    for _ in range(300):
        kaiser = rng.choice(["god", "kaiser_01", "k-2"])
        builder = TopicBuilder(kaiser)
        if rng.random() < 0.5:
            esp_id = "ESP_" + "".join(rng.choices(hexdigits, k=rng.randint(6, 8)))
        else:
            esp_id = "MOCK_" + "".join(rng.choices("ABCXYZ0189", k=rng.randint(1, 12)))
        gpio = rng.randint(0, GPIO_MAX)
        for kind in TopicKind:
            want_esp_id, want_gpio = _args(kind, esp_id, gpio)
            topic = builder.build(kind, want_esp_id, want_gpio)
            parsed = builder.parse(topic)
            assert parsed.kind is kind
            assert (parsed.esp_id, parsed.gpio) == (want_esp_id, want_gpio)
            expected_kaiser = None if kind is TopicKind.BROADCAST_EMERGENCY else kaiser
            assert parsed.kaiser_id == expected_kaiser
            assert builder.build(parsed.kind, parsed.esp_id, parsed.gpio) == topic


def test_qos_and_retain_are_the_contracts():
    expected = {
        TopicKind.HEARTBEAT: (0, False),
        TopicKind.HEARTBEAT_ACK: (1, False),
        TopicKind.WILL: (1, True),
        TopicKind.SESSION_ANNOUNCE: (1, False),
        TopicKind.SENSOR_DATA: (1, False),
        TopicKind.SENSOR_COMMAND: (2, False),
        TopicKind.ACTUATOR_COMMAND: (2, False),
        TopicKind.ACTUATOR_RESPONSE: (1, False),
        TopicKind.ACTUATOR_STATUS: (1, False),
        TopicKind.ACTUATOR_ALERT: (1, False),
        TopicKind.ACTUATOR_EMERGENCY: (1, False),
        TopicKind.BROADCAST_EMERGENCY: (2, False),
        TopicKind.ZONE_ASSIGN: (1, False),
        TopicKind.SUBZONE_ASSIGN: (1, False),
        TopicKind.SUBZONE_REMOVE: (1, False),
        TopicKind.SUBZONE_SAFE: (1, False),
        TopicKind.CONFIG: (2, False),
        TopicKind.CONFIG_RESPONSE: (1, False),
        TopicKind.SYSTEM_COMMAND: (2, False),
        TopicKind.SERVER_STATUS: (1, True),
    }
    for kind, (qos, retain) in expected.items():
        assert (TopicBuilder.qos(kind), TopicBuilder.retain(kind)) == (qos, retain), kind
    # Every other kind: a QoS the protocol has, never retained.
    for kind in set(TopicKind) - set(expected):
        assert TopicBuilder.qos(kind) in (0, 1, 2)
        assert TopicBuilder.retain(kind) is False


def test_directions_split_device_messages_from_server_messages():
    from_device = {k for k in TopicKind if TopicBuilder.direction(k) is Direction.DEVICE_TO_SERVER}
    assert from_device == {
        TopicKind.HEARTBEAT,
        TopicKind.WILL,
        TopicKind.SESSION_ANNOUNCE,
        TopicKind.SENSOR_DATA,
        TopicKind.ACTUATOR_RESPONSE,
        TopicKind.ACTUATOR_STATUS,
        TopicKind.ACTUATOR_ALERT,
        TopicKind.EMERGENCY_ACK,
        TopicKind.RECOVERY_CONFIRM,
        TopicKind.ZONE_ACK,
        TopicKind.SUBZONE_ACK,
        TopicKind.CONFIG_RESPONSE,
        TopicKind.SYSTEM_COMMAND_RESPONSE,
        TopicKind.SYSTEM_ERROR,
        TopicKind.SYSTEM_DIAGNOSTICS,
    }


def test_subscriptions_follow_contract_order_and_qos(builder):
    assert builder.subscriptions(ESP) == [
        (f"{D}/system/heartbeat/ack", 1),
        (f"{D}/config", 2),
        (f"{D}/system/command", 2),
        ("kaiser/broadcast/emergency", 2),
        (f"{D}/actuator/+/command", 2),
        (f"{D}/actuator/emergency", 1),
        (f"{D}/zone/assign", 1),
        (f"{D}/subzone/assign", 1),
        (f"{D}/subzone/remove", 1),
        (f"{D}/subzone/safe", 1),
        (f"{D}/sensor/+/command", 2),
        ("kaiser/god/server/status", 1),
    ]


def test_wildcards_cover_every_device_of_the_kaiser():
    builder = TopicBuilder("kaiser_01")
    assert builder.device_wildcard() == "kaiser/kaiser_01/esp/+/#"
    assert builder.topic_filter(TopicKind.SENSOR_DATA) == "kaiser/kaiser_01/esp/+/sensor/+/data"
    assert builder.topic_filter(TopicKind.HEARTBEAT, ESP) == (
        f"kaiser/kaiser_01/esp/{ESP}/system/heartbeat"
    )


def test_parse_without_expected_kaiser_accepts_any_kaiser():
    parsed = parse_topic(f"kaiser/other_kaiser/esp/{ESP}/sensor/39/data")
    assert parsed == ParsedTopic(TopicKind.SENSOR_DATA, "other_kaiser", ESP, 39)


@pytest.mark.parametrize(
    ("topic", "fault"),
    [
        (f"kaiser/other/esp/{ESP}/system/heartbeat", "belongs to kaiser 'other', not 'god'"),
        ("kaiser/other/server/status", "belongs to kaiser 'other'"),
        (f"kaiser/god/esp/{ESP}/sensor/batch", "unknown topic after the device id: 'sensor/batch'"),
        (f"kaiser/god/esp/{ESP}/system/heartbeat/nack", "unknown topic"),
        (f"kaiser/god/esp/{ESP}/system", "unknown topic"),
        (f"kaiser/god/esp/{ESP}", "no topic after the device id"),
        ("kaiser/god/server/statistics", "unknown topic after 'kaiser/god/'"),
        ("kaiser/broadcast/alarm", "unknown topic after 'kaiser/broadcast/'"),
        (f"esp/{ESP}/system/heartbeat", "does not start with 'kaiser/"),
        (f"kaizer/god/esp/{ESP}/system/heartbeat", "does not start with 'kaiser/"),
        ("kaiser", "does not start with 'kaiser/"),
        (f"kaiser/god/esp/{ESP}/sensor/x/data", "gpio level 'x' is not"),
        (f"kaiser/god/esp/{ESP}/sensor/-1/data", "gpio level '-1' is not"),
        (f"kaiser/god/esp/{ESP}/sensor/07/data", "gpio level '07' is not a canonical"),
        (f"kaiser/god/esp/{ESP}/sensor/4.0/data", "gpio level '4.0' is not"),
        (f"kaiser/god/esp/{ESP}/actuator/40/status", "gpio 40 is outside the ESP32 pins 0–39"),
        (f"kaiser/god/esp/{ESP}/actuator/255/status", "gpio 255 is outside"),
        (f"kaiser/god/esp/{ESP}/actuator/{'9' * 5000}/alert", "is outside"),
        (f"kaiser/god/esp/{ESP}//system/heartbeat", "empty level"),
        (f"kaiser/god/esp/{ESP}/system/heartbeat/", "empty level"),
        (f"/kaiser/god/esp/{ESP}/system/heartbeat", "empty level"),
        ("", "empty level"),
        ("kaiser/god/esp/+/system/heartbeat", "wildcard"),
        (f"kaiser/god/esp/{ESP}/sensor/+/data", "wildcard"),
        ("kaiser/god/esp/#", "wildcard"),
        ("kaiser/god/esp/esp_12ab34/system/heartbeat", "device id 'esp_12ab34' is not"),
        ("kaiser/god/esp/ESP_12 34/system/heartbeat", "device id 'ESP_12 34' is not"),
    ],
)
def test_foreign_or_malformed_topic_raises_topic_error_naming_topic_and_fault(
    builder, topic, fault
):
    with pytest.raises(TopicError) as info:
        builder.parse(topic)
    message = str(info.value)
    assert fault in message
    assert message.startswith(f"topic {topic!r}:")


def test_repeated_parse_gives_the_same_answer_and_keeps_refusing(builder):
    topic = f"{D}/sensor/4/data"
    assert (
        builder.parse(topic)
        == builder.parse(topic)
        == ParsedTopic(TopicKind.SENSOR_DATA, "god", ESP, 4)
    )
    for _ in range(2):  # a refusal is never remembered as a success
        with pytest.raises(TopicError):
            builder.parse(f"{D}/sensor/40/data")


@pytest.mark.parametrize("topic", [b"kaiser/god/server/status", ["kaiser"], None])
def test_parse_refuses_a_non_string_topic(builder, topic):
    with pytest.raises(TopicError, match="not a string"):
        builder.parse(topic)


@pytest.mark.parametrize(
    ("kind", "args", "fault"),
    [
        (TopicKind.SENSOR_DATA, {"esp_id": ESP}, "needs a gpio"),
        (TopicKind.HEARTBEAT, {"esp_id": ESP, "gpio": 4}, "has no gpio level"),
        (TopicKind.HEARTBEAT, {}, "needs an esp_id"),
        (TopicKind.BROADCAST_EMERGENCY, {"esp_id": ESP}, "has no device level"),
        (TopicKind.SERVER_STATUS, {"esp_id": ESP}, "has no device level"),
    ],
)
def test_build_refuses_levels_the_topic_does_not_have(builder, kind, args, fault):
    with pytest.raises(TopicError, match=fault):
        builder.build(kind, **args)


@pytest.mark.parametrize("gpio", [40, -1, 255, True, "5", 4.0])
def test_build_refuses_a_gpio_that_is_not_a_pin(builder, gpio):
    with pytest.raises(SpecError) as info:
        builder.build(TopicKind.SENSOR_DATA, ESP, gpio)
    assert info.value.field == "gpio"
    assert info.value.value == gpio
    with pytest.raises(SpecError):
        builder.actuator_status(ESP, gpio)


def test_system_wide_alert_uses_gpio_255_in_the_topic(builder):
    topic = builder.actuator_alert(ESP, 255)
    assert topic == f"kaiser/god/esp/{ESP}/actuator/255/alert"
    parsed = builder.parse(topic)
    assert (parsed.kind, parsed.gpio) == (TopicKind.ACTUATOR_ALERT, 255)
    with pytest.raises(SpecError):
        builder.actuator_alert(ESP, 254)


def test_build_refuses_a_bad_device_id_every_time(builder):
    for _ in range(2):  # a refused id must not end up in the prefix cache
        with pytest.raises(SpecError) as info:
            builder.heartbeat("ESP_12/AB")
        assert info.value.field == "id"


@pytest.mark.parametrize("kaiser_id", ["", "go d", "god/x", "+", "#", "kaiser\n", 7])
def test_builder_refuses_a_kaiser_id_that_is_not_topic_safe(kaiser_id):
    with pytest.raises(SpecError) as info:
        TopicBuilder(kaiser_id)
    assert info.value.field == "kaiser_id"
    assert repr(kaiser_id) in str(info.value)


def test_builder_keeps_its_kaiser_id():
    builder = TopicBuilder("kaiser_01")
    assert builder.kaiser_id == "kaiser_01"
    assert builder.server_status() == "kaiser/kaiser_01/server/status"
    assert builder.broadcast_emergency() == "kaiser/broadcast/emergency"
    assert "kaiser_01" in repr(builder)


@pytest.mark.parametrize(
    "esp_id", ["ESP_12AB34", "ESP_12AB34CD", "ESP_000000", "MOCK_1", "MOCK_A1B2"]
)
def test_accepted_device_ids_pass(esp_id):
    assert validate_device_id(esp_id) == esp_id


@pytest.mark.parametrize(
    ("esp_id", "fault"),
    [
        ("ESP_12ab34", "does not have an accepted form"),
        ("ESP_12AB3", "does not have an accepted form"),
        ("ESP_12AB34CD9", "does not have an accepted form"),
        ("ESP_12AG34", "does not have an accepted form"),
        ("MOCK_", "does not have an accepted form"),
        ("mock_1", "does not have an accepted form"),
        ("DEVICE_1", "does not have an accepted form"),
        ("", "is empty"),
        ("ESP_12/AB34", "contains '/'"),
        ("MOCK_+", "contains '+'"),
        ("MOCK_#", "contains '#'"),
        ("MOCK_ A", "contains ' '"),
        ("ESP_12AB34\n", "contains '\\n'"),
        (1234, "is a int, not a string"),
    ],
)
def test_bad_device_id_error_names_field_value_and_allowed_forms(esp_id, fault):
    with pytest.raises(SpecError) as info:
        validate_device_id(esp_id)
    error = info.value
    assert error.field == "id"
    assert error.value == esp_id
    assert "ESP_[A-F0-9]{6,8}" in error.allowed
    assert "MOCK_[A-Z0-9]+" in error.allowed
    assert fault in str(error)
    assert str(error).startswith(f"id: {esp_id!r}")


def test_id_patterns_are_exported_compiled():
    for pattern in (ESP_ID_PATTERN, MOCK_ID_PATTERN, DEVICE_ID_PATTERN, KAISER_ID_PATTERN):
        assert isinstance(pattern, re.Pattern)
    assert ESP_ID_PATTERN.fullmatch("ESP_12AB34")
    assert not ESP_ID_PATTERN.fullmatch("MOCK_1")
    assert MOCK_ID_PATTERN.fullmatch("MOCK_1")
    assert DEVICE_ID_PATTERN.fullmatch("MOCK_1")
    assert DEVICE_ID_PATTERN.fullmatch("ESP_12AB34")

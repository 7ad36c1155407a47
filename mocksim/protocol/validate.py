"""Checks an outgoing device → server message against the wire contract.

The rules are data: `_RULES` maps each device → server `TopicKind` to a table of field rules
(JSON type, presence, allowed values, range, pattern) plus a few cross-field checks (ids equal
to the topic's, the metrics_schema_version rule). Tests use it on everything the device model
emits; users can run it on anything they publish.

Two strictness levels, because the contract has two lists per message. ``strict=True`` (the
default) demands every field the contract lists for the message, which is what real firmware
sends. ``strict=False`` demands only what the real server rejects a message without, and
accepts the server's aliases there (``free_heap``, ``timestamp``, ``raw_value``). Both check
the type and value of every field that is present.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum, auto
from types import MappingProxyType
from typing import Any, Final, TypeGuard

import orjson

from mocksim.errors import ContractError, TopicError
from mocksim.protocol.message import Message, encode_payload
from mocksim.protocol.topics import (
    Direction,
    ParsedTopic,
    TopicBuilder,
    TopicKind,
    parse_topic,
)

__all__ = [
    "QUALITY_VALUES",
    "TS_MAX_S",
    "TS_MIN_S",
    "check",
    "validate",
]

#: Plausible Unix seconds: 2000-01-01 .. 2100-01-01. A millisecond timestamp lands far above.
TS_MIN_S: Final = 946_684_800
TS_MAX_S: Final = 4_102_444_800
_TS_MAX_MS: Final = TS_MAX_S * 1000

QUALITY_VALUES: Final = frozenset({"good", "fair", "poor", "suspect", "error", "unknown"})


class JsonType(Enum):
    """The JSON type a field must have; TS_S/TS_MS are integers with a plausibility range."""

    INT = auto()
    NUMBER = auto()
    BOOL = auto()
    STR = auto()
    LIST = auto()
    TS_S = auto()
    TS_MS = auto()


class Presence(Enum):
    """How much the contract insists on a field."""

    REQUIRED = auto()  # the real server drops the message without it
    EXPECTED = auto()  # the contract lists it; real firmware always sends it (strict mode)
    OPTIONAL = auto()  # checked only when present


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One field of one message: its type, presence and allowed values."""

    name: str
    type: JsonType
    presence: Presence = Presence.EXPECTED
    choices: frozenset[str] | None = None
    lo: int | None = None
    hi: int | None = None
    pattern: re.Pattern[str] | None = None
    nullable: bool = False
    aliases: tuple[str, ...] = ()  # names the server also accepts (strict=False only)


# A cross-field check: (payload, parsed topic) → problems.
_Check = Callable[[Mapping[str, Any], ParsedTopic], list[str]]


@dataclass(frozen=True, slots=True)
class KindRules:
    """The rules for one device → server message kind."""

    fields: tuple[FieldRule, ...]
    checks: tuple[_Check, ...] = ()
    exact: bool = False  # no fields beyond ``fields`` (the last will)


# -- type checks --------------------------------------------------------------------------


def _is_int(value: Any) -> TypeGuard[int]:
    # bool is a subclass of int in Python, but true/false are not JSON integers.
    return isinstance(value, int) and not isinstance(value, bool)


_TYPE_NAMES: Final = MappingProxyType(
    {
        JsonType.INT: "a JSON integer",
        JsonType.NUMBER: "a finite JSON number",
        JsonType.BOOL: "a JSON bool (true/false)",
        JsonType.STR: "a JSON string",
        JsonType.LIST: "a JSON array",
        JsonType.TS_S: "a JSON integer of Unix seconds",
        JsonType.TS_MS: "a JSON integer of milliseconds",
    }
)


def _has_type(value: Any, json_type: JsonType) -> bool:
    if json_type in (JsonType.INT, JsonType.TS_S, JsonType.TS_MS):
        return _is_int(value)
    if json_type is JsonType.NUMBER:
        # orjson writes NaN and infinities as null: they would reach the server as "no value".
        return _is_int(value) or (isinstance(value, float) and math.isfinite(value))
    if json_type is JsonType.BOOL:
        return isinstance(value, bool)
    if json_type is JsonType.STR:
        return isinstance(value, str)
    return isinstance(value, list | tuple)


def _show(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _check_field(rule: FieldRule, name: str, value: Any, payload: Mapping[str, Any]) -> str | None:
    if value is None and rule.nullable:
        return None
    if not _has_type(value, rule.type):
        return f"{name}: {_show(value)} is not {_TYPE_NAMES[rule.type]}"
    if rule.type is JsonType.TS_S:
        return _check_ts_seconds(name, value, payload)
    if rule.type is JsonType.TS_MS and not 0 <= value < _TS_MAX_MS:
        return f"{name}: {value!r} is not a millisecond timestamp before 2100-01-01"
    if rule.choices is not None and value not in rule.choices:
        return f"{name}: {value!r} is not one of {', '.join(sorted(rule.choices))}"
    if rule.lo is not None and value < rule.lo:
        return f"{name}: {value!r} is below the minimum {rule.lo}"
    if rule.hi is not None and value > rule.hi:
        return f"{name}: {value!r} is above the maximum {rule.hi}"
    if rule.pattern is not None and not rule.pattern.fullmatch(value):
        return f"{name}: {value!r} does not match {rule.pattern.pattern}"
    return None


def _check_ts_seconds(name: str, value: int, payload: Mapping[str, Any]) -> str | None:
    if value >= TS_MAX_S:
        return f"{name}: {value!r} is after 2100-01-01 as Unix seconds (milliseconds sent?)"
    # An unsynced clock (time_valid false) counts from boot, so only the upper bound applies.
    if payload.get("time_valid") is False:
        if value < 0:
            return f"{name}: {value!r} is negative"
        return None
    if value < TS_MIN_S:
        return f"{name}: {value!r} is before 2000-01-01 as Unix seconds (with time_valid not false)"
    return None


def _check_fields(payload: Mapping[str, Any], rules: KindRules, *, strict: bool) -> list[str]:
    problems: list[str] = []
    for rule in rules.fields:
        names = (rule.name,) if strict else (rule.name, *rule.aliases)
        present = [n for n in names if n in payload]
        if not present:
            if rule.presence is Presence.REQUIRED or (
                strict and rule.presence is Presence.EXPECTED
            ):
                problems.append(f"{rule.name}: missing")
            continue
        for name in present:
            if (problem := _check_field(rule, name, payload[name], payload)) is not None:
                problems.append(problem)
    if rules.exact:
        known = {r.name for r in rules.fields}
        problems.extend(
            f"{name}: not a field of this message" for name in payload if name not in known
        )
    return problems


# -- cross-field checks -------------------------------------------------------------------


def _esp_id_matches_topic(payload: Mapping[str, Any], topic: ParsedTopic) -> list[str]:
    esp_id = payload.get("esp_id")
    if isinstance(esp_id, str) and esp_id != topic.esp_id:
        return [f"esp_id: {esp_id!r} differs from the topic's device id {topic.esp_id!r}"]
    return []


def _gpio_matches_topic(payload: Mapping[str, Any], topic: ParsedTopic) -> list[str]:
    gpio = payload.get("gpio")
    if _is_int(gpio) and gpio != topic.gpio:
        return [f"gpio: {gpio!r} differs from the topic's gpio {topic.gpio!r}"]
    return []


def _alert_gpio_matches_topic(payload: Mapping[str, Any], topic: ParsedTopic) -> list[str]:
    # 255 means "system-wide" and may arrive on any actuator's alert topic.
    gpio = payload.get("gpio")
    if _is_int(gpio) and gpio not in (topic.gpio, 255):
        return [f"gpio: {gpio!r} differs from the topic's gpio {topic.gpio!r} and is not 255"]
    return []


_BOOT_FIELDS: Final = ("boot_sequence_id", "reset_reason", "segment_start_ts")


def _metrics_schema_v2(payload: Mapping[str, Any], topic: ParsedTopic) -> list[str]:
    version = payload.get("metrics_schema_version")
    if not (_is_int(version) and version >= 2):
        return []
    return [
        f"{name}: missing (required when metrics_schema_version >= 2)"
        for name in _BOOT_FIELDS
        if name not in payload
    ]


def _boot_sequence_id_form(payload: Mapping[str, Any], topic: ParsedTopic) -> list[str]:
    boot_id = payload.get("boot_sequence_id")
    if not isinstance(boot_id, str) or topic.esp_id is None:
        return []
    if re.fullmatch(rf"{re.escape(topic.esp_id)}-b[0-9]+-r[0-9]+", boot_id):
        return []
    return [f"boot_sequence_id: {boot_id!r} is not '{topic.esp_id}-b{{boot_count}}-r{{code}}'"]


def _zone_assigned_consistent(payload: Mapping[str, Any], topic: ParsedTopic) -> list[str]:
    zone_id, assigned = payload.get("zone_id"), payload.get("zone_assigned")
    if isinstance(zone_id, str) and isinstance(assigned, bool) and assigned != (zone_id != ""):
        return [f"zone_assigned: {assigned!r} contradicts zone_id {zone_id!r}"]
    return []


def _one_bus_address(payload: Mapping[str, Any], topic: ParsedTopic) -> list[str]:
    if "onewire_address" in payload and "i2c_address" in payload:
        return ["onewire_address/i2c_address: a sensor is on one bus, not both"]
    return []


def _failure_says_why(payload: Mapping[str, Any], topic: ParsedTopic) -> list[str]:
    if payload.get("success") is False and "error" not in payload and "message" not in payload:
        return ["error: missing (a failed command response says why in error or message)"]
    return []


# -- the table ----------------------------------------------------------------------------

_R, _E, _O = Presence.REQUIRED, Presence.EXPECTED, Presence.OPTIONAL
_INT, _NUM, _BOOL, _STR = JsonType.INT, JsonType.NUMBER, JsonType.BOOL, JsonType.STR
_TS, _TS_MS, _LIST = JsonType.TS_S, JsonType.TS_MS, JsonType.LIST


def _one_of(*values: str) -> frozenset[str]:
    return frozenset(values)


_ESP_ID_R: Final = FieldRule("esp_id", _STR, _R)
_ESP_ID_O: Final = FieldRule("esp_id", _STR, _O)
_SEQ: Final = FieldRule("seq", _INT, _E, lo=0)
_ZONE_ID: Final = FieldRule("zone_id", _STR, _E)
_SUBZONE_ID: Final = FieldRule("subzone_id", _STR, _E)
_TS_R: Final = FieldRule("ts", _TS, _R)
_TS_O: Final = FieldRule("ts", _TS, _O)
_GPIO: Final = FieldRule("gpio", _INT, _R, lo=0, hi=255)
# An echo: present exactly when the server's request had one, which only the caller knows
# (device tests assert the echo itself); here it must be a string when present.
_CORRELATION: Final = FieldRule("correlation_id", _STR, _O)
_TIME_VALID: Final = FieldRule("time_valid", _BOOL, _E)

_RULES: Final = MappingProxyType(
    {
        TopicKind.HEARTBEAT: KindRules(
            fields=(
                FieldRule("esp_id", _STR, _E),  # the server takes the id from the topic
                _ZONE_ID,
                FieldRule("master_zone_id", _STR, _E),
                FieldRule("zone_assigned", _BOOL, _E),
                _TS_R,
                _TIME_VALID,
                FieldRule("uptime", _INT, _R, lo=0),
                FieldRule("heap_free", _INT, _R, lo=0, aliases=("free_heap",)),
                FieldRule("wifi_rssi", _INT, _R),
                FieldRule("sensor_count", _INT, _E, lo=0),
                FieldRule("actuator_count", _INT, _E, lo=0),
                FieldRule("wifi_ip", _STR, _E),
                FieldRule("boot_sequence_id", _STR, _E),
                FieldRule("reset_reason", _STR, _E),
                FieldRule("segment_start_ts", _TS, _E),
                FieldRule("metrics_schema_version", _INT, _O, lo=1),
            ),
            checks=(
                _esp_id_matches_topic,
                _metrics_schema_v2,
                _boot_sequence_id_form,
                _zone_assigned_consistent,
            ),
        ),
        TopicKind.SENSOR_DATA: KindRules(
            fields=(
                _ESP_ID_R,
                _SEQ,
                _ZONE_ID,
                _SUBZONE_ID,
                _GPIO,
                FieldRule("sensor_type", _STR, _R, pattern=re.compile(r"[a-z0-9_]+")),
                FieldRule("raw", _INT, _R, aliases=("raw_value",)),
                FieldRule("value", _NUM, _E),
                FieldRule("unit", _STR, _E),
                FieldRule("quality", _STR, _E, choices=QUALITY_VALUES),
                FieldRule("ts", _TS, _R, aliases=("timestamp",)),
                _TIME_VALID,
                FieldRule("raw_mode", _BOOL, _E),
                FieldRule("onewire_address", _STR, _O, pattern=re.compile(r"[0-9A-Fa-f]{16}")),
                FieldRule("i2c_address", _INT, _O, lo=0, hi=127),
                FieldRule("error_code", _INT, _O),
            ),
            checks=(_esp_id_matches_topic, _gpio_matches_topic, _one_bus_address),
        ),
        TopicKind.ACTUATOR_STATUS: KindRules(
            fields=(
                _ESP_ID_R,
                _SEQ,
                _ZONE_ID,
                _SUBZONE_ID,
                _TS_R,
                _GPIO,
                FieldRule("type", _STR, _E, choices=_one_of("pump", "valve", "pwm", "relay")),
                FieldRule("state", _BOOL, _R),
                FieldRule("pwm", _INT, _E, lo=0, hi=255),
                FieldRule("runtime_ms", _INT, _E, lo=0),
                FieldRule(
                    "emergency",
                    _STR,
                    _E,
                    choices=_one_of("normal", "active", "clearing", "resuming"),
                ),
            ),
            checks=(_esp_id_matches_topic, _gpio_matches_topic),
        ),
        TopicKind.ACTUATOR_RESPONSE: KindRules(
            fields=(
                _ESP_ID_R,
                _SEQ,
                _ZONE_ID,
                _TS_R,
                _GPIO,
                FieldRule("command", _STR, _R),
                FieldRule("value", _NUM, _E),
                FieldRule("duration", _NUM, _E, lo=0),
                FieldRule("success", _BOOL, _R),
                FieldRule("message", _STR, _E),
                FieldRule("correlation_id", _STR, _O),  # echoed when the command had one
                FieldRule("issued_by", _STR, _O),
            ),
            checks=(_esp_id_matches_topic, _gpio_matches_topic),
        ),
        TopicKind.ACTUATOR_ALERT: KindRules(
            fields=(
                _ESP_ID_R,
                _SEQ,
                _ZONE_ID,
                _TS_R,
                _GPIO,
                FieldRule(
                    "alert_type",
                    _STR,
                    _R,
                    choices=_one_of("emergency_stop", "runtime_protection", "safety_forced_off"),
                ),
                FieldRule("message", _STR, _E),
            ),
            checks=(_esp_id_matches_topic, _alert_gpio_matches_topic),
        ),
        TopicKind.EMERGENCY_ACK: KindRules(
            fields=(
                _TS_R,
                _ESP_ID_R,
                # A broadcast stop carries no correlation id, so null is a faithful echo.
                FieldRule("correlation_id", _STR, _E, nullable=True),
                FieldRule("command", _STR, _R, choices=_one_of("emergency_stop")),
                FieldRule("gpio_count", _INT, _E, lo=0),
                FieldRule("outcome", _STR, _E, choices=_one_of("executed")),
                _SEQ,
            ),
            checks=(_esp_id_matches_topic,),
        ),
        TopicKind.RECOVERY_CONFIRM: KindRules(
            fields=(
                _TS_R,
                _ESP_ID_R,
                FieldRule("correlation_id", _STR, _E, nullable=True),
                FieldRule("command", _STR, _R, choices=_one_of("clear_emergency")),
                FieldRule("state", _STR, _E, choices=_one_of("cleared")),
                _SEQ,
            ),
            checks=(_esp_id_matches_topic,),
        ),
        TopicKind.ZONE_ACK: KindRules(
            fields=(
                _ESP_ID_R,
                FieldRule(
                    "status", _STR, _R, choices=_one_of("zone_assigned", "zone_removed", "error")
                ),
                FieldRule("zone_id", _STR, _E),
                FieldRule("master_zone_id", _STR, _E),
                _TS_R,
                _SEQ,
                _CORRELATION,
            ),
            checks=(_esp_id_matches_topic,),
        ),
        TopicKind.SUBZONE_ACK: KindRules(
            fields=(
                _ESP_ID_R,
                FieldRule(
                    "status",
                    _STR,
                    _R,
                    choices=_one_of("subzone_assigned", "subzone_removed", "error"),
                ),
                FieldRule("subzone_id", _STR, _E),
                FieldRule("timestamp", _TS, _R),
                _CORRELATION,
            ),
            checks=(_esp_id_matches_topic,),
        ),
        TopicKind.CONFIG_RESPONSE: KindRules(
            fields=(
                _SEQ,
                FieldRule(
                    "status", _STR, _R, choices=_one_of("success", "partial_success", "error")
                ),
                FieldRule("type", _STR, _R, choices=_one_of("sensor", "actuator")),
                FieldRule("count", _INT, _E, lo=0),
                FieldRule("failed_count", _INT, _E, lo=0),
                FieldRule("failures", _LIST, _E),
                FieldRule("message", _STR, _E),
                _CORRELATION,
            ),
            checks=(_esp_id_matches_topic,),
        ),
        TopicKind.SESSION_ANNOUNCE: KindRules(
            fields=(
                FieldRule("handover_epoch", _INT, _R, lo=1),
                FieldRule("reason", _STR, _R, choices=_one_of("boot", "reconnect")),
                FieldRule("ts_ms", _TS_MS, _R),
            ),
        ),
        TopicKind.WILL: KindRules(
            fields=(
                FieldRule("status", _STR, _R, choices=_one_of("offline")),
                _ESP_ID_R,
                FieldRule("reason", _STR, _R, choices=_one_of("unexpected_disconnect")),
                FieldRule("timestamp", _TS, _R),
            ),
            checks=(_esp_id_matches_topic,),
            exact=True,
        ),
        TopicKind.SYSTEM_COMMAND_RESPONSE: KindRules(
            fields=(
                FieldRule("success", _BOOL, _R),
                FieldRule("error", _STR, _O),
                FieldRule("command", _STR, _O),
                FieldRule("message", _STR, _O),
                _ESP_ID_O,
                _TS_O,
                FieldRule("seq", _INT, _O, lo=0),
            ),
            checks=(_esp_id_matches_topic, _failure_says_why),
        ),
        TopicKind.SYSTEM_ERROR: KindRules(
            fields=(
                FieldRule("error_code", _INT, _R),
                FieldRule("severity", _INT, _R, lo=0, hi=3),
                _ESP_ID_O,
                _TS_O,
            ),
            checks=(_esp_id_matches_topic,),
        ),
        TopicKind.SYSTEM_DIAGNOSTICS: KindRules(
            fields=(
                FieldRule("heap_free", _INT, _R, lo=0),
                FieldRule("wifi_rssi", _INT, _R),
                _ESP_ID_O,
                _TS_O,
            ),
            checks=(_esp_id_matches_topic,),
        ),
    }
)
assert set(_RULES) == {
    k for k in TopicKind if TopicBuilder.direction(k) is Direction.DEVICE_TO_SERVER
}


# -- public API ---------------------------------------------------------------------------


def validate(
    message: Message, builder: TopicBuilder | None = None, *, strict: bool = True
) -> list[str]:
    """List every way ``message`` breaks the contract; an empty list means it is valid.

    Args:
        message: an outgoing device → server message.
        builder: parse the topic with this builder's kaiser id; ``None`` accepts any kaiser.
        strict: demand every field the contract lists (what firmware sends); ``False``
            demands only what the real server rejects a message without.
    """
    try:
        topic = builder.parse(message.topic) if builder else parse_topic(message.topic)
    except TopicError as exc:
        return [str(exc)]
    kind = topic.kind
    spec = TopicBuilder.spec(kind)
    if spec.direction is not Direction.DEVICE_TO_SERVER:
        return [f"topic {message.topic!r}: {kind} is published by the server, not a device"]

    problems: list[str] = []
    if message.qos != spec.qos:
        problems.append(f"qos: {message.qos!r} is not {spec.qos}, the contract's QoS for {kind}")
    if message.retain != spec.retain:
        want = "retained" if spec.retain else "not retained"
        problems.append(f"retain: {message.retain!r}, but {kind} is {want}")

    payload = message.payload
    if not isinstance(payload, Mapping):
        return [*problems, f"payload: {_show(payload)} is not a JSON object"]
    if not payload:
        return [*problems, "payload: empty object (the contract never publishes one)"]
    try:
        encode_payload(payload)
    except (orjson.JSONEncodeError, TypeError) as exc:
        problems.append(f"payload: not encodable as JSON ({exc})")

    rules = _RULES[kind]
    problems.extend(_check_fields(payload, rules, strict=strict))
    for extra_check in rules.checks:
        problems.extend(extra_check(payload, topic))
    return problems


def check(message: Message, builder: TopicBuilder | None = None, *, strict: bool = True) -> None:
    """Raise if ``message`` breaks the contract; see `validate` for the arguments.

    Raises:
        ContractError: lists every problem, also kept as ``.problems``.
    """
    problems = validate(message, builder, strict=strict)
    if problems:
        raise ContractError(
            f"{message.topic}: {len(problems)} contract problem(s): " + "; ".join(problems),
            problems,
        )

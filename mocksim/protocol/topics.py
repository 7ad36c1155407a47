"""The only place MQTT topics of the AutomationOne contract are built or parsed.

Every topic a device publishes or subscribes to (contract sections 2–9) is a `TopicKind`.
`TopicBuilder.SPECS` records, per kind, its levels, direction and the QoS/retain flag the
contract prescribes, so builders, the device model and the validator share one table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum, auto
from types import MappingProxyType
from typing import ClassVar, Final

from mocksim.errors import SpecError, TopicError

__all__ = [
    "DEFAULT_KAISER_ID",
    "DEVICE_ID_ALLOWED",
    "DEVICE_ID_PATTERN",
    "ESP_ID_PATTERN",
    "GPIO_MAX",
    "GPIO_MIN",
    "KAISER_ID_PATTERN",
    "MOCK_ID_PATTERN",
    "SYSTEM_GPIO",
    "Direction",
    "ParsedTopic",
    "Scope",
    "TopicBuilder",
    "TopicKind",
    "TopicSpec",
    "parse_topic",
    "validate_device_id",
]

DEFAULT_KAISER_ID: Final = "god"

#: Real firmware ids: ``ESP_`` + last MAC bytes in upper-case hex (the server takes 6–8 digits).
ESP_ID_PATTERN: Final = re.compile(r"ESP_[A-F0-9]{6,8}")
#: Ids the server accepts for mock devices.
MOCK_ID_PATTERN: Final = re.compile(r"MOCK_[A-Z0-9]+")
#: Either accepted form; use ``fullmatch`` (``match`` would accept a trailing newline with ``$``).
DEVICE_ID_PATTERN: Final = re.compile(r"ESP_[A-F0-9]{6,8}|MOCK_[A-Z0-9]+")
DEVICE_ID_ALLOWED: Final = (
    "ESP_ + 6–8 upper-case hex digits (ESP_[A-F0-9]{6,8}) "
    "or MOCK_ + upper-case letters/digits (MOCK_[A-Z0-9]+)"
)
#: A kaiser id is one topic level: letters, digits, ``_`` and ``-`` only.
KAISER_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]+")
_KAISER_ID_ALLOWED: Final = "a non-empty topic level of letters, digits, '_' or '-'"

#: ESP32 pins that may appear as a topic level.
GPIO_MIN: Final = 0
GPIO_MAX: Final = 39
#: The firmware's "whole device" gpio: system-wide alerts go to ``…/actuator/255/alert``.
SYSTEM_GPIO: Final = 255

_GPIO: Final = "{gpio}"  # placeholder level in TopicSpec.levels
_FORBIDDEN_IN_LEVEL: Final = re.compile(r"[/+#\s\x00]")


class TopicKind(StrEnum):
    """One member per topic of the contract (values are stable names, not topic strings)."""

    HEARTBEAT = auto()
    HEARTBEAT_ACK = auto()
    WILL = auto()
    SESSION_ANNOUNCE = auto()
    SENSOR_DATA = auto()
    SENSOR_COMMAND = auto()
    ACTUATOR_COMMAND = auto()
    ACTUATOR_RESPONSE = auto()
    ACTUATOR_STATUS = auto()
    ACTUATOR_ALERT = auto()
    ACTUATOR_EMERGENCY = auto()
    EMERGENCY_ACK = auto()
    RECOVERY_CONFIRM = auto()
    BROADCAST_EMERGENCY = auto()
    ZONE_ASSIGN = auto()
    ZONE_ACK = auto()
    SUBZONE_ASSIGN = auto()
    SUBZONE_REMOVE = auto()
    SUBZONE_SAFE = auto()
    SUBZONE_ACK = auto()
    CONFIG = auto()
    CONFIG_RESPONSE = auto()
    SYSTEM_COMMAND = auto()
    SYSTEM_COMMAND_RESPONSE = auto()
    SYSTEM_ERROR = auto()
    SYSTEM_DIAGNOSTICS = auto()
    SERVER_STATUS = auto()


class Direction(StrEnum):
    """Who publishes a topic."""

    DEVICE_TO_SERVER = auto()
    SERVER_TO_DEVICE = auto()


class Scope(StrEnum):
    """Where a topic lives: under one device, under the kaiser, or shared by all kaisers."""

    DEVICE = auto()  # kaiser/{K}/esp/{id}/…
    KAISER = auto()  # kaiser/{K}/…
    BROADCAST = auto()  # kaiser/broadcast/…


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """What the contract says about one topic kind.

    ``levels`` are the topic levels after the scope's prefix; ``"{gpio}"`` marks the pin level.
    """

    kind: TopicKind
    scope: Scope
    levels: tuple[str, ...]
    direction: Direction
    qos: int
    retain: bool = False

    @property
    def has_gpio(self) -> bool:
        """Whether the topic carries a pin number as one of its levels."""
        return _GPIO in self.levels


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    """A contract topic taken apart; ids are ``None`` where the topic has no such level."""

    kind: TopicKind
    kaiser_id: str | None
    esp_id: str | None
    gpio: int | None


def _spec(
    kind: TopicKind,
    path: str,
    direction: Direction,
    qos: int,
    *,
    retain: bool = False,
    scope: Scope = Scope.DEVICE,
) -> TopicSpec:
    return TopicSpec(kind, scope, tuple(path.split("/")), direction, qos, retain)


_D2S: Final = Direction.DEVICE_TO_SERVER
_S2D: Final = Direction.SERVER_TO_DEVICE
_K = TopicKind

# QoS/retain follow the contract. Where the contract names no QoS for a device→server topic
# (emergency/ack, recovery_confirm, zone/ack, subzone/ack, system/command/response,
# system/error) we use 1 like every other device ack; system/diagnostics is 0 like the
# heartbeat it resembles (the firmware's topic table agrees). server/status is retained:
# the device reacts to a *retained* offline status (section 2.5).
_SPECS: Final = MappingProxyType(
    {
        s.kind: s
        for s in (
            _spec(_K.HEARTBEAT, "system/heartbeat", _D2S, 0),
            _spec(_K.HEARTBEAT_ACK, "system/heartbeat/ack", _S2D, 1),
            _spec(_K.WILL, "system/will", _D2S, 1, retain=True),
            _spec(_K.SESSION_ANNOUNCE, "session/announce", _D2S, 1),
            _spec(_K.SENSOR_DATA, "sensor/{gpio}/data", _D2S, 1),
            _spec(_K.SENSOR_COMMAND, "sensor/{gpio}/command", _S2D, 2),
            _spec(_K.ACTUATOR_COMMAND, "actuator/{gpio}/command", _S2D, 2),
            _spec(_K.ACTUATOR_RESPONSE, "actuator/{gpio}/response", _D2S, 1),
            _spec(_K.ACTUATOR_STATUS, "actuator/{gpio}/status", _D2S, 1),
            _spec(_K.ACTUATOR_ALERT, "actuator/{gpio}/alert", _D2S, 1),
            _spec(_K.ACTUATOR_EMERGENCY, "actuator/emergency", _S2D, 1),
            _spec(_K.EMERGENCY_ACK, "actuator/emergency/ack", _D2S, 1),
            _spec(_K.RECOVERY_CONFIRM, "actuator/recovery_confirm", _D2S, 1),
            _spec(_K.BROADCAST_EMERGENCY, "emergency", _S2D, 2, scope=Scope.BROADCAST),
            _spec(_K.ZONE_ASSIGN, "zone/assign", _S2D, 1),
            _spec(_K.ZONE_ACK, "zone/ack", _D2S, 1),
            _spec(_K.SUBZONE_ASSIGN, "subzone/assign", _S2D, 1),
            _spec(_K.SUBZONE_REMOVE, "subzone/remove", _S2D, 1),
            _spec(_K.SUBZONE_SAFE, "subzone/safe", _S2D, 1),
            _spec(_K.SUBZONE_ACK, "subzone/ack", _D2S, 1),
            _spec(_K.CONFIG, "config", _S2D, 2),
            _spec(_K.CONFIG_RESPONSE, "config_response", _D2S, 1),
            _spec(_K.SYSTEM_COMMAND, "system/command", _S2D, 2),
            _spec(_K.SYSTEM_COMMAND_RESPONSE, "system/command/response", _D2S, 1),
            _spec(_K.SYSTEM_ERROR, "system/error", _D2S, 1),
            _spec(_K.SYSTEM_DIAGNOSTICS, "system/diagnostics", _D2S, 0),
            _spec(_K.SERVER_STATUS, "server/status", _S2D, 1, retain=True, scope=Scope.KAISER),
        )
    }
)
assert set(_SPECS) == set(TopicKind), "every TopicKind needs a TopicSpec"

# Section 2.3: the device subscribes in exactly this order, each with its kind's QoS.
_SUBSCRIPTION_ORDER: Final = (
    _K.HEARTBEAT_ACK,
    _K.CONFIG,
    _K.SYSTEM_COMMAND,
    _K.BROADCAST_EMERGENCY,
    _K.ACTUATOR_COMMAND,
    _K.ACTUATOR_EMERGENCY,
    _K.ZONE_ASSIGN,
    _K.SUBZONE_ASSIGN,
    _K.SUBZONE_REMOVE,
    _K.SUBZONE_SAFE,
    _K.SENSOR_COMMAND,
    _K.SERVER_STATUS,
)

# Parse tables: the levels after "kaiser/{K}/esp/{id}/" (or "kaiser/{K}/") → kind.
_DEVICE_LEVELS: Final = MappingProxyType(
    {s.levels: s.kind for s in _SPECS.values() if s.scope is Scope.DEVICE}
)
_KAISER_LEVELS: Final = MappingProxyType(
    {s.levels: s.kind for s in _SPECS.values() if s.scope is Scope.KAISER}
)
_BROADCAST_LEVELS: Final = MappingProxyType(
    {s.levels: s.kind for s in _SPECS.values() if s.scope is Scope.BROADCAST}
)
_DECIMAL: Final = re.compile(r"0|[1-9][0-9]*")


def _split_path(spec: TopicSpec) -> tuple[Scope, str, str | None]:
    """(scope, text before the gpio, text after it); the tail is None without a gpio level."""
    path = "/".join(spec.levels)
    if not spec.has_gpio:
        return spec.scope, path, None
    head, tail = path.split(_GPIO)
    return spec.scope, head, tail


# Precomputed so build() does one lookup (Enum.__hash__ runs in Python) and concatenates.
_PATHS: Final = MappingProxyType({kind: _split_path(spec) for kind, spec in _SPECS.items()})
#: Parse results a builder remembers; topics repeat (devices × pins), so hits dominate.
_PARSE_CACHE_SIZE: Final = 65_536


def validate_device_id(esp_id: str) -> str:
    """Return ``esp_id`` if it is an id the server accepts and a safe topic level.

    Raises:
        SpecError: with ``field="id"``, the bad value and the accepted forms.
    """
    if isinstance(esp_id, str) and DEVICE_ID_PATTERN.fullmatch(esp_id):
        return esp_id
    if not isinstance(esp_id, str):
        why = f"is a {type(esp_id).__name__}, not a string"
    elif not esp_id:
        why = "is empty"
    elif bad := _FORBIDDEN_IN_LEVEL.search(esp_id):
        why = f"contains {bad.group()!r}, which cannot appear in a topic level"
    else:
        why = "does not have an accepted form"
    raise SpecError(
        "id",
        esp_id,
        DEVICE_ID_ALLOWED,
        message=f"id: {esp_id!r} {why}; allowed: {DEVICE_ID_ALLOWED}",
    )


def _validate_kaiser_id(kaiser_id: str) -> str:
    if isinstance(kaiser_id, str) and KAISER_ID_PATTERN.fullmatch(kaiser_id):
        return kaiser_id
    raise SpecError(
        "kaiser_id",
        kaiser_id,
        _KAISER_ID_ALLOWED,
        message=f"kaiser_id: {kaiser_id!r} is not topic-safe; allowed: {_KAISER_ID_ALLOWED}",
    )


def _check_gpio(gpio: int, *, system: bool = False) -> int:
    # type() rather than isinstance(): True/False must not pass as pins 1/0.
    if type(gpio) is int and (GPIO_MIN <= gpio <= GPIO_MAX or (system and gpio == SYSTEM_GPIO)):
        return gpio
    if system:
        raise SpecError("gpio", gpio, f"an int {GPIO_MIN}–{GPIO_MAX}, or {SYSTEM_GPIO}")
    raise SpecError("gpio", gpio, f"an int {GPIO_MIN}–{GPIO_MAX}")


def parse_topic(topic: str, kaiser_id: str | None = None) -> ParsedTopic:
    """Parse any contract topic, in either direction.

    Args:
        topic: a concrete topic (no wildcards).
        kaiser_id: the expected kaiser id; ``None`` accepts any topic-safe one.

    Raises:
        TopicError: the topic is foreign (wrong prefix, other kaiser, unknown suffix) or
            malformed (empty level, wildcard, bad device id, gpio not an int 0–39).
    """

    def fail(why: str) -> TopicError:
        return TopicError(f"topic {topic!r}: {why}")

    if not isinstance(topic, str):
        raise TopicError(f"topic {topic!r}: is a {type(topic).__name__}, not a string")
    levels = topic.split("/")
    if "" in levels:
        raise fail("has an empty level")
    if "+" in topic or "#" in topic:
        raise fail("contains a wildcard ('+' or '#'); a concrete topic is needed")
    if levels[0] != "kaiser" or len(levels) < 3:
        raise fail("does not start with 'kaiser/{kaiser_id}/'")

    if levels[1] == "broadcast" and kaiser_id != "broadcast":
        kind = _BROADCAST_LEVELS.get(tuple(levels[2:]))
        if kind is None and kaiser_id is not None:
            raise fail(f"unknown topic after 'kaiser/broadcast/': {'/'.join(levels[2:])!r}")
        if kind is not None:
            return ParsedTopic(kind, None, None, None)

    kaiser = levels[1]
    if kaiser_id is not None and kaiser != kaiser_id:
        raise fail(f"belongs to kaiser {kaiser!r}, not {kaiser_id!r}")
    if not KAISER_ID_PATTERN.fullmatch(kaiser):
        raise fail(f"kaiser id {kaiser!r} is not {_KAISER_ID_ALLOWED}")

    if levels[2] != "esp":
        kind = _KAISER_LEVELS.get(tuple(levels[2:]))
        if kind is None:
            raise fail(f"unknown topic after 'kaiser/{kaiser}/': {'/'.join(levels[2:])!r}")
        return ParsedTopic(kind, kaiser, None, None)

    if len(levels) < 5:
        raise fail("has no topic after the device id")
    esp_id = levels[3]
    if not DEVICE_ID_PATTERN.fullmatch(esp_id):
        raise fail(f"device id {esp_id!r} is not {DEVICE_ID_ALLOWED}")
    rest = tuple(levels[4:])
    kind = _DEVICE_LEVELS.get(rest)
    if kind is not None:
        return ParsedTopic(kind, kaiser, esp_id, None)
    if len(rest) == 3 and (kind := _DEVICE_LEVELS.get((rest[0], _GPIO, rest[2]))):
        pin = rest[1]
        if not _DECIMAL.fullmatch(pin):
            raise fail(f"gpio level {pin!r} is not a canonical non-negative integer")
        # Length first: int() of a huge digit string is slow or refused outright.
        system_alert = kind is TopicKind.ACTUATOR_ALERT and pin == str(SYSTEM_GPIO)
        if not system_alert and (len(pin) > 2 or not GPIO_MIN <= int(pin) <= GPIO_MAX):
            raise fail(f"gpio {pin} is outside the ESP32 pins {GPIO_MIN}–{GPIO_MAX}")
        gpio = int(pin)
        return ParsedTopic(kind, kaiser, esp_id, gpio)
    raise fail(f"unknown topic after the device id: {'/'.join(rest)!r}")


class TopicBuilder:
    """Builds and parses the contract's topics for one kaiser id.

    Device prefixes are computed once per device id (and the id validated once), so the
    per-message cost on the hot path is one dict lookup and one f-string.
    """

    SPECS: ClassVar[MappingProxyType[TopicKind, TopicSpec]] = _SPECS
    SUBSCRIPTION_ORDER: ClassVar[tuple[TopicKind, ...]] = _SUBSCRIPTION_ORDER

    __slots__ = ("_base", "_kaiser_id", "_parsed", "_prefixes")

    def __init__(self, kaiser_id: str = DEFAULT_KAISER_ID) -> None:
        """Create a builder for ``kaiser_id``.

        Raises:
            SpecError: the kaiser id is not a topic-safe level.
        """
        self._kaiser_id = _validate_kaiser_id(kaiser_id)
        self._base = f"kaiser/{kaiser_id}/"
        # esp_id → "kaiser/{K}/esp/{id}/"; grows by one entry per device this builder serves.
        self._prefixes: dict[str, str] = {}
        # topic → ParsedTopic, emptied when full (a recorder parses every message it gets).
        self._parsed: dict[str, ParsedTopic] = {}

    def __repr__(self) -> str:
        return f"TopicBuilder(kaiser_id={self._kaiser_id!r})"

    @property
    def kaiser_id(self) -> str:
        """The kaiser id every topic of this builder carries."""
        return self._kaiser_id

    # -- facts from the table ------------------------------------------------------------

    @classmethod
    def spec(cls, kind: TopicKind) -> TopicSpec:
        """The contract's record for ``kind``."""
        return cls.SPECS[kind]

    @classmethod
    def qos(cls, kind: TopicKind) -> int:
        """The QoS the contract prescribes for ``kind``."""
        return cls.SPECS[kind].qos

    @classmethod
    def retain(cls, kind: TopicKind) -> bool:
        """Whether the contract publishes ``kind`` retained (only the will and server status)."""
        return cls.SPECS[kind].retain

    @classmethod
    def direction(cls, kind: TopicKind) -> Direction:
        """Who publishes ``kind``."""
        return cls.SPECS[kind].direction

    @classmethod
    def has_gpio(cls, kind: TopicKind) -> bool:
        """Whether ``kind`` has a gpio level."""
        return cls.SPECS[kind].has_gpio

    # -- building ------------------------------------------------------------------------

    def _device(self, esp_id: str) -> str:
        prefix = self._prefixes.get(esp_id)
        if prefix is None:
            prefix = f"{self._base}esp/{validate_device_id(esp_id)}/"
            self._prefixes[esp_id] = prefix
        return prefix

    def build(self, kind: TopicKind, esp_id: str | None = None, gpio: int | None = None) -> str:
        """Build the topic of ``kind``.

        Args:
            kind: which topic.
            esp_id: the device id; required for device topics, refused otherwise.
            gpio: the pin; required for topics with a gpio level, refused otherwise.

        Raises:
            TopicError: an id or gpio is missing or given where the topic has no such level.
            SpecError: the device id or gpio is invalid (names the field and allowed values).
        """
        scope, head, tail = _PATHS[kind]
        if (tail is not None) != (gpio is not None):
            need = "has no gpio level" if tail is None else "needs a gpio"
            raise TopicError(f"{kind} topic {need} (got gpio={gpio!r})")
        if (scope is Scope.DEVICE) != (esp_id is not None):
            need = "needs an esp_id" if scope is Scope.DEVICE else "has no device level"
            raise TopicError(f"{kind} topic {need} (got esp_id={esp_id!r})")
        if scope is Scope.BROADCAST:
            return "kaiser/broadcast/" + head
        if scope is Scope.KAISER:
            return self._base + head
        assert esp_id is not None
        if gpio is None:
            return self._device(esp_id) + head
        pin = _check_gpio(gpio, system=kind is TopicKind.ACTUATOR_ALERT)
        return f"{self._device(esp_id)}{head}{pin}{tail}"

    def topic_filter(self, kind: TopicKind, esp_id: str | None = None) -> str:
        """A subscription filter for ``kind``: ``+`` for the gpio, and for the device if ``None``.

        Recorders use it (``topic_filter(SENSOR_DATA)`` → ``kaiser/god/esp/+/sensor/+/data``);
        devices use it for ``…/actuator/+/command``.
        """
        spec = self.SPECS[kind]
        if spec.scope is Scope.BROADCAST:
            return "kaiser/broadcast/" + "/".join(spec.levels)
        if spec.scope is Scope.KAISER:
            return self._base + "/".join(spec.levels)
        prefix = f"{self._base}esp/+/" if esp_id is None else self._device(esp_id)
        return prefix + "/".join("+" if level == _GPIO else level for level in spec.levels)

    def subscriptions(self, esp_id: str) -> list[tuple[str, int]]:
        """The device's subscriptions with their QoS, in the contract's order (section 2.3)."""
        return [(self.topic_filter(kind, esp_id), self.qos(kind)) for kind in _SUBSCRIPTION_ORDER]

    def device_wildcard(self) -> str:
        """``kaiser/{K}/esp/+/#``: every device topic of this kaiser (recorders, shared links)."""
        return f"{self._base}esp/+/#"

    def parse(self, topic: str) -> ParsedTopic:
        """Parse a topic of this builder's kaiser (or the broadcast topic).

        Raises:
            TopicError: foreign or malformed topic; the message names the topic and the fault.
        """
        parsed = self._parsed.get(topic) if isinstance(topic, str) else None
        if parsed is None:
            parsed = parse_topic(topic, self._kaiser_id)
            if len(self._parsed) >= _PARSE_CACHE_SIZE:
                self._parsed.clear()
            self._parsed[topic] = parsed
        return parsed

    # -- hot-path conveniences: device → server ------------------------------------------

    def heartbeat(self, esp_id: str) -> str:
        """``…/system/heartbeat``"""
        return self._device(esp_id) + "system/heartbeat"

    def will(self, esp_id: str) -> str:
        """``…/system/will``"""
        return self._device(esp_id) + "system/will"

    def session_announce(self, esp_id: str) -> str:
        """``…/session/announce``"""
        return self._device(esp_id) + "session/announce"

    def sensor_data(self, esp_id: str, gpio: int) -> str:
        """``…/sensor/{gpio}/data``"""
        return f"{self._device(esp_id)}sensor/{_check_gpio(gpio)}/data"

    def actuator_response(self, esp_id: str, gpio: int) -> str:
        """``…/actuator/{gpio}/response``"""
        return f"{self._device(esp_id)}actuator/{_check_gpio(gpio)}/response"

    def actuator_status(self, esp_id: str, gpio: int) -> str:
        """``…/actuator/{gpio}/status``"""
        return f"{self._device(esp_id)}actuator/{_check_gpio(gpio)}/status"

    def actuator_alert(self, esp_id: str, gpio: int) -> str:
        """``…/actuator/{gpio}/alert``"""
        return f"{self._device(esp_id)}actuator/{_check_gpio(gpio, system=True)}/alert"

    def emergency_ack(self, esp_id: str) -> str:
        """``…/actuator/emergency/ack``"""
        return self._device(esp_id) + "actuator/emergency/ack"

    def recovery_confirm(self, esp_id: str) -> str:
        """``…/actuator/recovery_confirm``"""
        return self._device(esp_id) + "actuator/recovery_confirm"

    def zone_ack(self, esp_id: str) -> str:
        """``…/zone/ack``"""
        return self._device(esp_id) + "zone/ack"

    def subzone_ack(self, esp_id: str) -> str:
        """``…/subzone/ack``"""
        return self._device(esp_id) + "subzone/ack"

    def config_response(self, esp_id: str) -> str:
        """``…/config_response``"""
        return self._device(esp_id) + "config_response"

    def system_command_response(self, esp_id: str) -> str:
        """``…/system/command/response``"""
        return self._device(esp_id) + "system/command/response"

    def system_error(self, esp_id: str) -> str:
        """``…/system/error``"""
        return self._device(esp_id) + "system/error"

    def system_diagnostics(self, esp_id: str) -> str:
        """``…/system/diagnostics``"""
        return self._device(esp_id) + "system/diagnostics"

    # -- server → device (tests, the in-memory bus and a fake server use these) ----------

    def heartbeat_ack(self, esp_id: str) -> str:
        """``…/system/heartbeat/ack``"""
        return self._device(esp_id) + "system/heartbeat/ack"

    def sensor_command(self, esp_id: str, gpio: int) -> str:
        """``…/sensor/{gpio}/command``"""
        return f"{self._device(esp_id)}sensor/{_check_gpio(gpio)}/command"

    def actuator_command(self, esp_id: str, gpio: int) -> str:
        """``…/actuator/{gpio}/command``"""
        return f"{self._device(esp_id)}actuator/{_check_gpio(gpio)}/command"

    def actuator_emergency(self, esp_id: str) -> str:
        """``…/actuator/emergency`` (a stop or clear for one device)."""
        return self._device(esp_id) + "actuator/emergency"

    def broadcast_emergency(self) -> str:
        """``kaiser/broadcast/emergency`` (every device of every kaiser)."""
        return "kaiser/broadcast/emergency"

    def zone_assign(self, esp_id: str) -> str:
        """``…/zone/assign``"""
        return self._device(esp_id) + "zone/assign"

    def subzone_assign(self, esp_id: str) -> str:
        """``…/subzone/assign``"""
        return self._device(esp_id) + "subzone/assign"

    def subzone_remove(self, esp_id: str) -> str:
        """``…/subzone/remove``"""
        return self._device(esp_id) + "subzone/remove"

    def subzone_safe(self, esp_id: str) -> str:
        """``…/subzone/safe``"""
        return self._device(esp_id) + "subzone/safe"

    def config(self, esp_id: str) -> str:
        """``…/config`` (full-state replace)."""
        return self._device(esp_id) + "config"

    def system_command(self, esp_id: str) -> str:
        """``…/system/command``"""
        return self._device(esp_id) + "system/command"

    def server_status(self) -> str:
        """``kaiser/{K}/server/status`` (retained by the server)."""
        return self._base + "server/status"

"""User-facing specs: what a device, its sensors, actuators and value patterns look like.

pydantic validates everything at the door. Every validation failure is raised as one
:class:`~mocksim.errors.SpecError` whose message names the field path, the bad value and the
allowed values, e.g. ``sensors[2].pattern: 'sinus' is not one of constant, drift, …``.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mocksim.catalog import ACTUATOR_TYPES, ADC1_PINS, QUALITIES, SENSOR_TYPES, Bus, Quality
from mocksim.errors import SpecError
from mocksim.protocol.topics import DEVICE_ID_ALLOWED, validate_device_id

__all__ = [
    "ActuatorSpec",
    "ActuatorType",
    "ConstantPattern",
    "DeviceSpec",
    "DriftPattern",
    "PatternSpec",
    "RandomPattern",
    "SensorSpec",
    "SinePattern",
    "SpikePattern",
    "StuckPattern",
    "WalkPattern",
    "default_device_id",
]

GPIO_MAX = 39
PATTERN_KINDS = ("constant", "drift", "random", "sine", "spike", "stuck", "walk")
ActuatorType = Literal["pump", "valve", "pwm", "relay"]

_TOPIC_SAFE_RE = re.compile(r"^[^/+#\s]+$")
_ONEWIRE_RE = re.compile(r"^[0-9A-Fa-f]{16}$")


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _strip_union_tag(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    # pydantic puts the discriminator tag into the location (…, 'pattern', 'drift', 'step');
    # users think of the field, not the tag.
    return tuple(p for p in loc if not (isinstance(p, str) and p in PATTERN_KINDS))


def _translate(exc: ValidationError) -> SpecError:
    """Turn pydantic's error list into one SpecError naming field, value and allowed values."""
    err = exc.errors(include_url=False)[0]
    loc = _strip_union_tag(tuple(err["loc"]))
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    field = _field_path(loc)
    value = err.get("input")
    inner = ctx.get("error")
    if isinstance(inner, SpecError):
        # Raised by our own validators or by a nested spec's __init__: keep its wording.
        if field.endswith(inner.field):
            return SpecError(
                field, inner.value, inner.allowed or None, field + inner.message[len(inner.field) :]
            )
        return inner.with_prefix(field)
    field = field or "spec"
    etype = err["type"]
    if etype == "union_tag_invalid":
        return SpecError(field, ctx.get("tag"), PATTERN_KINDS)
    if etype == "union_tag_not_found":
        return SpecError(
            f"{field}.kind",
            None,
            PATTERN_KINDS,
            f"{field}.kind: missing; one of " + ", ".join(PATTERN_KINDS),
        )
    if etype in ("literal_error", "enum"):
        expected = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return SpecError(field, value, expected)
    bounds = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    for key, sym in bounds.items():
        if key in ctx:
            return SpecError(field, value, f"a number {sym} {ctx[key]}")
    if etype == "extra_forbidden":
        return SpecError(field, value, None, f"{field}: unknown field")
    if etype == "missing":
        return SpecError(field, None, None, f"{field}: required field is missing")
    return SpecError(field, value, None, f"{field}: {value!r} is not allowed ({err['msg']})")


class _Spec(BaseModel):
    """Base for every spec: frozen, no unknown fields, SpecError instead of ValidationError."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _translate(exc) from exc

    @classmethod
    def model_validate(
        cls, obj: Any, *, strict: bool | None = None, context: Any | None = None, **kw: Any
    ) -> Self:
        """Validate a mapping (e.g. parsed JSON/YAML), raising SpecError on bad input."""
        try:
            return super().model_validate(obj, strict=strict, context=context, **kw)
        except ValidationError as exc:
            raise _translate(exc) from exc

    def replace(self, **changes: Any) -> Self:
        """A validated copy with some fields changed (``model_copy`` does not validate)."""
        data = self.model_dump()
        data.update(changes)
        return type(self).model_validate(data)


# ---------------------------------------------------------------------------- patterns


class _Pattern(_Spec):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _check_bounds(self) -> Self:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise SpecError("min", self.min, f"a number <= max ({self.max})")
        return self


class ConstantPattern(_Pattern):
    """The same value every reading (``value=None`` uses the catalogue default)."""

    kind: Literal["constant"] = "constant"
    value: float | None = None


class RandomPattern(_Pattern):
    """Uniform noise: ``base ± range`` on every reading."""

    kind: Literal["random"] = "random"
    base: float | None = None
    range: float = Field(default=1.0, ge=0)


class DriftPattern(_Pattern):
    """A step per reading from ``start``, reversing direction at ``min``/``max``."""

    kind: Literal["drift"] = "drift"
    start: float | None = None
    step: float = 0.1
    noise: float = Field(default=0.0, ge=0)


class SinePattern(_Pattern):
    """``base + amplitude·sin(2π (t + phase_s) / period_s)`` over device time."""

    kind: Literal["sine"] = "sine"
    base: float | None = None
    amplitude: float = Field(default=1.0, ge=0)
    period_s: float = Field(default=3600.0, gt=0)
    phase_s: float = 0.0
    noise: float = Field(default=0.0, ge=0)


class WalkPattern(_Pattern):
    """A random walk: Gaussian steps of ``step`` σ, pulled back to ``base`` by ``reversion``."""

    kind: Literal["walk"] = "walk"
    base: float | None = None
    step: float = Field(default=0.1, ge=0)
    reversion: float = Field(default=0.05, ge=0, le=1)
    noise: float = Field(default=0.0, ge=0)


class SpikePattern(_Pattern):
    """``base`` with small noise, and now and then a spike of ``magnitude`` (fault injection)."""

    kind: Literal["spike"] = "spike"
    base: float | None = None
    noise: float = Field(default=0.1, ge=0)
    probability: float = Field(default=0.05, ge=0, le=1)
    magnitude: float = 10.0


class StuckPattern(_Pattern):
    """A stuck sensor: repeats ``value``, or freezes at its last value when ``value`` is None."""

    kind: Literal["stuck"] = "stuck"
    value: float | None = None


PatternSpec = Annotated[
    ConstantPattern
    | RandomPattern
    | DriftPattern
    | SinePattern
    | WalkPattern
    | SpikePattern
    | StuckPattern,
    Field(discriminator="kind"),
]


# ---------------------------------------------------------------------------- sensors


class SensorSpec(_Spec):
    """One physical sensor on a gpio; sht31 and bmp280 publish one message per value.

    ``pattern`` drives the first value (or every value when ``patterns`` does not name it);
    ``patterns`` maps a wire sensor type (``"sht31_humidity"``) to its own pattern.
    """

    gpio: int = Field(ge=0, le=GPIO_MAX)
    sensor_type: str
    interval_s: float = Field(default=30.0, ge=1, le=3600)
    pattern: PatternSpec | None = None
    patterns: dict[str, PatternSpec] = Field(default_factory=dict)
    min: float | None = None
    max: float | None = None
    quality: Quality | None = None
    i2c_address: int | None = Field(default=None, ge=0, le=127)
    onewire_address: str | None = None
    name: str | None = None
    subzone_id: str | None = None
    active: bool = True

    @field_validator("sensor_type", mode="before")
    @classmethod
    def _known_type(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.lower()
        if v not in SENSOR_TYPES:
            raise SpecError("sensor_type", v, sorted(SENSOR_TYPES))
        return v

    @field_validator("quality", mode="before")
    @classmethod
    def _known_quality(cls, v: Any) -> Any:
        if v is not None and v not in QUALITIES:
            raise SpecError("quality", v, QUALITIES)
        return v

    @field_validator("onewire_address")
    @classmethod
    def _onewire(cls, v: str | None) -> str | None:
        if v is not None and not _ONEWIRE_RE.match(v):
            raise SpecError("onewire_address", v, "16 hex digits")
        return None if v is None else v.upper()

    @model_validator(mode="after")
    def _check(self) -> Self:
        model = SENSOR_TYPES[self.sensor_type]
        if model.bus is Bus.ANALOG and self.gpio not in ADC1_PINS:
            raise SpecError("gpio", self.gpio, "ADC1 pins 32-39 for analog sensors")
        if self.i2c_address is not None and model.bus is not Bus.I2C:
            raise SpecError(
                "i2c_address",
                self.i2c_address,
                None,
                f"i2c_address: only I2C sensors have one, {self.sensor_type} is {model.bus.value}",
            )
        if self.onewire_address is not None and model.bus is not Bus.ONEWIRE:
            raise SpecError(
                "onewire_address",
                self.onewire_address,
                None,
                f"onewire_address: only OneWire sensors have one, {self.sensor_type} "
                f"is {model.bus.value}",
            )
        for key in self.patterns:
            if key not in model.value_types:
                raise SpecError("patterns", key, model.value_types)
        if self.min is not None and self.max is not None and self.min > self.max:
            raise SpecError("min", self.min, f"a number <= max ({self.max})")
        return self

    @property
    def key(self) -> str:
        """Stable key of this sensor within its device: ``"{gpio}:{sensor_type}[:address]"``."""
        if self.onewire_address:
            return f"{self.gpio}:{self.sensor_type}:{self.onewire_address}"
        if self.i2c_address is not None:
            return f"{self.gpio}:{self.sensor_type}:{self.i2c_address}"
        return f"{self.gpio}:{self.sensor_type}"

    @property
    def value_types(self) -> tuple[str, ...]:
        """The wire ``sensor_type`` of each value this sensor publishes."""
        return SENSOR_TYPES[self.sensor_type].value_types

    def pattern_for(self, value_type: str) -> PatternSpec | None:
        """The pattern that drives one value (None: the catalogue's plausible default)."""
        return self.patterns.get(value_type, self.pattern)


# ---------------------------------------------------------------------------- actuators


class ActuatorSpec(_Spec):
    """One actuator: a pump, valve, relay (binary) or a pwm output (duty 0–255)."""

    gpio: int = Field(ge=0, le=GPIO_MAX)
    actuator_type: ActuatorType
    name: str | None = None
    default_state: bool = False
    default_pwm: int = Field(default=0, ge=0, le=255)
    inverted_logic: bool = False
    max_runtime_ms: int | None = Field(default=None, ge=1)
    aux_gpio: int | None = Field(default=None, ge=0, le=GPIO_MAX)
    critical: bool = False
    subzone_id: str | None = None
    active: bool = True

    @field_validator("actuator_type", mode="before")
    @classmethod
    def _known_type(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.lower()
        if v not in ACTUATOR_TYPES:
            raise SpecError("actuator_type", v, sorted(ACTUATOR_TYPES))
        return v


# ---------------------------------------------------------------------------- device


def default_device_id(seed: int, index: int) -> str:
    """A firmware-looking id (``ESP_`` + 6 hex digits) derived from the fleet seed and an index.

    Reproducible: the same seed and index always give the same id.
    """
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=3).hexdigest()
    return "ESP_" + digest.upper()


def check_device_id(device_id: str) -> str:
    """Return ``device_id`` if it is topic-safe and of a form the server accepts.

    Raises:
        SpecError: naming the accepted forms.
    """
    if not isinstance(device_id, str) or not _TOPIC_SAFE_RE.match(device_id):
        raise SpecError(
            "id",
            device_id,
            DEVICE_ID_ALLOWED,
            f"id: {device_id!r} is not topic-safe (no '/', '+', '#' or whitespace); "
            f"use {DEVICE_ID_ALLOWED}",
        )
    return validate_device_id(device_id)


def _topic_safe(field: str, v: str) -> str:
    if v and not _TOPIC_SAFE_RE.match(v):
        raise SpecError(field, v, "text without '/', '+', '#' or whitespace")
    return v


class DeviceSpec(_Spec):
    """One simulated ESP32 board: identity, zone, heartbeat, sensors and actuators.

    ``wait_for_ack=False`` (the default) lets a device publish readings against a plain broker
    where nothing answers heartbeats; set it True for the firmware's registration gate and its
    120 s server watchdog, as against a real AutomationOne server.
    """

    id: str
    kaiser_id: str = "god"
    zone_id: str = ""
    master_zone_id: str = ""
    zone_name: str = ""
    subzone_id: str = ""
    hardware_type: str = "ESP32_WROOM"
    heartbeat_interval_s: float = Field(default=60.0, ge=5, le=3600)
    wait_for_ack: bool = False
    sensors: list[SensorSpec] = Field(default_factory=list)
    actuators: list[ActuatorSpec] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return check_device_id(v)

    @field_validator("kaiser_id")
    @classmethod
    def _kaiser(cls, v: str) -> str:
        if not v:
            raise SpecError("kaiser_id", v, "a non-empty topic-safe name")
        return _topic_safe("kaiser_id", v)

    @field_validator("zone_id", "master_zone_id", "subzone_id")
    @classmethod
    def _zone(cls, v: str) -> str:
        return _topic_safe("zone_id", v)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        seen: set[str] = set()
        for i, s in enumerate(self.sensors):
            if s.key in seen:
                raise SpecError(
                    f"sensors[{i}].gpio",
                    s.gpio,
                    None,
                    f"sensors[{i}]: a {s.sensor_type} on gpio {s.gpio} exists "
                    "already; give it a distinct address",
                )
            seen.add(s.key)
        gpios: set[int] = set()
        for i, a in enumerate(self.actuators):
            if a.gpio in gpios:
                raise SpecError(
                    f"actuators[{i}].gpio",
                    a.gpio,
                    None,
                    f"actuators[{i}].gpio: {a.gpio} is used by another actuator",
                )
            gpios.add(a.gpio)
        sensor_gpios = {s.gpio for s in self.sensors}
        for i, a in enumerate(self.actuators):
            if a.gpio in sensor_gpios:
                raise SpecError(
                    f"actuators[{i}].gpio",
                    a.gpio,
                    None,
                    f"actuators[{i}].gpio: {a.gpio} is used by a sensor",
                )
        return self

    def sensor(self, key: str) -> SensorSpec:
        """The sensor with this key (see :attr:`SensorSpec.key`); KeyError if absent."""
        for s in self.sensors:
            if s.key == key:
                return s
        raise KeyError(key)

    def actuator(self, gpio: int) -> ActuatorSpec:
        """The actuator on this gpio; KeyError if absent."""
        for a in self.actuators:
            if a.gpio == gpio:
                return a
        raise KeyError(gpio)

"""The sensor and actuator catalogue: types, units, ranges and physical → raw encoders.

Real AutomationOne firmware is server-centric: it publishes raw sensor units and the server
converts them. This table holds, for every sensor the contract knows, how a physical value
becomes the raw integer the firmware would send, and back, plus the firmware's quality rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

__all__ = [
    "ACTUATOR_TYPES",
    "ADC1_PINS",
    "QUALITIES",
    "SENSOR_TYPES",
    "VALUE_TYPES",
    "ActuatorModel",
    "Bus",
    "Quality",
    "SensorModel",
    "ValueModel",
    "firmware_quality",
    "sensor_model",
]


class Bus(StrEnum):
    """How a sensor is wired to the board."""

    ONEWIRE = "onewire"
    I2C = "i2c"
    ANALOG = "analog"


Quality = Literal["good", "fair", "poor", "suspect", "error", "unknown"]
#: Quality values the real server accepts (``excellent``, ``bad``, ``stale`` are rejected).
QUALITIES: tuple[Quality, ...] = ("good", "fair", "poor", "suspect", "error", "unknown")

#: ESP32 ADC1 pins; ADC2 is unusable while Wi-Fi runs, so analog sensors live here.
ADC1_PINS: frozenset[int] = frozenset(range(32, 40))

ADC_MAX = 4095
ADC_VREF = 3.3
# Firmware marks analog readings suspect at the rails or outside this window.
ADC_SANE_LOW = 50
ADC_SANE_HIGH = 4045

# pH probe front-end: about 1.5 V at pH 7, falling ~0.18 V per pH unit (typical module).
PH_V_AT_7 = 1.5
PH_V_PER_PH = 0.18
EC_FULL_SCALE_US = 20000.0
MOISTURE_DRY_RAW = 3200
MOISTURE_WET_RAW = 1500


def _clamp_int(x: float, lo: int, hi: int) -> int:
    return max(lo, min(hi, round(x)))


def _ds18b20_enc(c: float) -> int:
    return _clamp_int(c * 16.0, -32768, 32767)


def _ds18b20_dec(raw: int) -> float:
    return raw / 16.0


def _sht_t_enc(c: float) -> int:
    return _clamp_int((c + 45.0) / 175.0 * 65535.0, 0, 65535)


def _sht_t_dec(raw: int) -> float:
    return raw / 65535.0 * 175.0 - 45.0


def _sht_h_enc(rh: float) -> int:
    return _clamp_int(rh / 100.0 * 65535.0, 0, 65535)


def _sht_h_dec(raw: int) -> float:
    return raw / 65535.0 * 100.0


def _x100_enc(v: float) -> int:
    return round(v * 100.0)


def _x100_dec(raw: int) -> float:
    return raw / 100.0


def _ph_enc(ph: float) -> int:
    volts = PH_V_AT_7 - (ph - 7.0) * PH_V_PER_PH
    return _clamp_int(volts / ADC_VREF * ADC_MAX, 0, ADC_MAX)


def _ph_dec(raw: int) -> float:
    volts = raw / ADC_MAX * ADC_VREF
    return 7.0 + (PH_V_AT_7 - volts) / PH_V_PER_PH


def _ec_enc(us: float) -> int:
    return _clamp_int(us / EC_FULL_SCALE_US * ADC_MAX, 0, ADC_MAX)


def _ec_dec(raw: int) -> float:
    return raw / ADC_MAX * EC_FULL_SCALE_US


def _moist_enc(pct: float) -> int:
    span = MOISTURE_DRY_RAW - MOISTURE_WET_RAW
    return _clamp_int(MOISTURE_DRY_RAW - pct / 100.0 * span, 0, ADC_MAX)


def _moist_dec(raw: int) -> float:
    span = MOISTURE_DRY_RAW - MOISTURE_WET_RAW
    return (MOISTURE_DRY_RAW - raw) / span * 100.0


@dataclass(frozen=True, slots=True)
class ValueModel:
    """One value a sensor reports: the ``sensor_type`` on the wire, its unit and encoding."""

    sensor_type: str
    unit: str
    phys_min: float
    phys_max: float
    default: float
    encode: Callable[[float], int]
    decode: Callable[[int], float]
    decimals: int
    analog: bool = False

    def raw(self, value: float) -> int:
        """Physical value → raw integer as the firmware publishes it."""
        return self.encode(value)

    def preview(self, raw: int) -> float:
        """The device's local preview value for a raw reading (what ``value`` carries)."""
        return round(self.decode(raw), self.decimals)


@dataclass(frozen=True, slots=True)
class SensorModel:
    """A physical sensor part: its bus, default address and the values it reports."""

    name: str
    bus: Bus
    values: tuple[ValueModel, ...]
    default_i2c_address: int | None = None

    @property
    def value_types(self) -> tuple[str, ...]:
        """The ``sensor_type`` strings this part publishes, one message each."""
        return tuple(v.sensor_type for v in self.values)


def _v(  # noqa: PLR0917  (a table row: positional reads best in the table below)
    sensor_type: str,
    unit: str,
    rng: tuple[float, float],
    default: float,
    codec: tuple[Callable[[float], int], Callable[[int], float]],
    decimals: int,
    *,
    analog: bool = False,
) -> ValueModel:
    return ValueModel(
        sensor_type, unit, rng[0], rng[1], default, codec[0], codec[1], decimals, analog
    )


_X100 = (_x100_enc, _x100_dec)

SENSOR_TYPES: MappingProxyType[str, SensorModel] = MappingProxyType(
    {
        "ds18b20": SensorModel(
            "ds18b20",
            Bus.ONEWIRE,
            (_v("ds18b20", "°C", (-55.0, 125.0), 21.0, (_ds18b20_enc, _ds18b20_dec), 4),),
        ),
        "sht31": SensorModel(
            "sht31",
            Bus.I2C,
            (
                _v("sht31_temp", "°C", (-40.0, 125.0), 22.0, (_sht_t_enc, _sht_t_dec), 2),
                _v("sht31_humidity", "%RH", (0.0, 100.0), 55.0, (_sht_h_enc, _sht_h_dec), 2),
            ),
            default_i2c_address=0x44,
        ),
        "bmp280": SensorModel(
            "bmp280",
            Bus.I2C,
            (
                _v("bmp280_pressure", "hPa", (300.0, 1100.0), 1013.25, _X100, 2),
                _v("bmp280_temp", "°C", (-40.0, 85.0), 22.0, _X100, 2),
            ),
            default_i2c_address=0x76,
        ),
        "ph": SensorModel(
            "ph",
            Bus.ANALOG,
            (_v("ph", "pH", (0.0, 14.0), 6.2, (_ph_enc, _ph_dec), 2, analog=True),),
        ),
        "ec": SensorModel(
            "ec",
            Bus.ANALOG,
            (_v("ec", "µS/cm", (0.0, 20000.0), 1500.0, (_ec_enc, _ec_dec), 1, analog=True),),
        ),
        "moisture": SensorModel(
            "moisture",
            Bus.ANALOG,
            (_v("moisture", "%", (0.0, 100.0), 45.0, (_moist_enc, _moist_dec), 1, analog=True),),
        ),
    }
)

#: Every wire ``sensor_type`` → its value model (``sht31_temp``, ``bmp280_pressure`` …).
VALUE_TYPES: MappingProxyType[str, ValueModel] = MappingProxyType(
    {v.sensor_type: v for m in SENSOR_TYPES.values() for v in m.values}
)


def sensor_model(sensor_type: str) -> SensorModel:
    """Look up a catalogue sensor part by name.

    Raises:
        SpecError: the name is not in the catalogue (the message lists the allowed names).
    """
    from mocksim.errors import SpecError  # noqa: PLC0415  (errors has no deps; keeps import light)

    try:
        return SENSOR_TYPES[sensor_type]
    except KeyError:
        raise SpecError("sensor_type", sensor_type, sorted(SENSOR_TYPES)) from None


def firmware_quality(model: ValueModel, value: float, raw: int) -> Quality:
    """The quality the firmware assigns to a reading.

    ``suspect`` for analog raw at the ADC rails or outside 50…4045 and for values outside the
    datasheet range; otherwise ``good``.
    """
    if model.analog and not (ADC_SANE_LOW <= raw <= ADC_SANE_HIGH):
        return "suspect"
    if not (model.phys_min <= value <= model.phys_max):
        return "suspect"
    return "good"


@dataclass(frozen=True, slots=True)
class ActuatorModel:
    """An actuator kind: whether it is binary and how long it takes to move."""

    name: str
    binary: bool
    travel_s: float = 0.0


ACTUATOR_TYPES: MappingProxyType[str, ActuatorModel] = MappingProxyType(
    {
        "pump": ActuatorModel("pump", binary=True),
        "relay": ActuatorModel("relay", binary=True),
        "valve": ActuatorModel("valve", binary=True, travel_s=5.0),
        "pwm": ActuatorModel("pwm", binary=False),
    }
)

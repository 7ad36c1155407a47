"""The sensor catalogue: raw encodings from the contract and the firmware's quality rules."""

from __future__ import annotations

import pytest

from mocksim.catalog import SENSOR_TYPES, VALUE_TYPES, firmware_quality


def test_ds18b20_raw_344_is_21_5_degrees_both_ways() -> None:
    v = VALUE_TYPES["ds18b20"]
    assert v.raw(21.5) == 344
    assert v.preview(344) == 21.5
    assert v.raw(-10.125) == -162


def test_sht31_ticks_follow_the_datasheet() -> None:
    t, h = VALUE_TYPES["sht31_temp"], VALUE_TYPES["sht31_humidity"]
    assert t.raw(-45.0) == 0
    assert t.raw(130.0) == 65535
    assert t.raw(22.0) == round(67 / 175 * 65535)
    assert h.raw(50.0) == 32768
    assert abs(t.preview(t.raw(22.0)) - 22.0) < 0.01
    assert SENSOR_TYPES["sht31"].value_types == ("sht31_temp", "sht31_humidity")
    assert SENSOR_TYPES["sht31"].default_i2c_address == 0x44


@pytest.mark.parametrize("value_type", sorted(VALUE_TYPES))
def test_every_value_round_trips_within_one_raw_step(value_type: str) -> None:
    v = VALUE_TYPES[value_type]
    for x in (v.phys_min, v.default, v.phys_max, (v.phys_min + v.phys_max) / 2):
        raw = v.raw(x)
        assert isinstance(raw, int)
        step = abs(v.decode(raw + 1) - v.decode(raw))
        assert abs(v.decode(raw) - x) <= step


def test_moisture_is_inverse_dry_3200_wet_1500() -> None:
    m = VALUE_TYPES["moisture"]
    assert (m.raw(0), m.raw(100)) == (3200, 1500)


def test_ph_is_about_1_5_volts_at_ph_7() -> None:
    assert abs(VALUE_TYPES["ph"].raw(7.0) / 4095 * 3.3 - 1.5) < 0.01


def test_quality_is_suspect_at_adc_rails_or_outside_range() -> None:
    ec = VALUE_TYPES["ec"]
    assert firmware_quality(ec, 1500.0, ec.raw(1500.0)) == "good"
    assert firmware_quality(ec, 0.0, 0) == "suspect"
    assert firmware_quality(ec, 20000.0, 4095) == "suspect"
    ds = VALUE_TYPES["ds18b20"]
    assert firmware_quality(ds, 130.0, ds.raw(130.0)) == "suspect"
    assert firmware_quality(ds, 0.0, 0) == "good"  # raw 0 is only suspect for analog sensors

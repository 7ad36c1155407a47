"""Specs: bad input raises one SpecError naming the field, the bad value and the allowed ones."""

from __future__ import annotations

from typing import Any

import pytest

from mocksim import DeviceSpec, SensorSpec, SpecError
from mocksim.spec import default_device_id


def device(**kw: Any) -> dict[str, Any]:
    return {"id": "ESP_12AB34", **kw}


@pytest.mark.parametrize(
    ("data", "field", "value", "allowed"),
    [
        (device(sensors=[{"gpio": 40, "sensor_type": "ds18b20"}]), "sensors[0].gpio", 40, "39"),
        (
            device(sensors=[{"gpio": 4, "sensor_type": "ds18b20", "interval_s": 0}]),
            "sensors[0].interval_s",
            0,
            ">= 1",
        ),
        (
            device(sensors=[{"gpio": 4, "sensor_type": "dht22"}]),
            "sensors[0].sensor_type",
            "dht22",
            "bmp280, ds18b20, ec, moisture, ph, sht31",
        ),
        ({"id": "ESP/12AB34"}, "id", "ESP/12AB34", "ESP_[A-F0-9]{6,8}"),
        (
            device(sensors=[{"gpio": 4, "sensor_type": "ds18b20", "quality": "excellent"}]),
            "sensors[0].quality",
            "excellent",
            "good, fair, poor, suspect, error, unknown",
        ),
        (
            device(sensors=[{"gpio": 4, "sensor_type": "ds18b20", "pattern": {"kind": "sinus"}}]),
            "sensors[0].pattern",
            "sinus",
            "constant, drift, random, sine, spike, stuck, walk",
        ),
        (device(sensors=[{"gpio": 4, "sensor_type": "ph"}]), "sensors[0].gpio", 4, "32-39"),
        (
            device(actuators=[{"gpio": 5, "actuator_type": "motor"}]),
            "actuators[0].actuator_type",
            "motor",
            "pump, pwm, relay, valve",
        ),
        (device(heartbeat_interval_s=2), "heartbeat_interval_s", 2, ">= 5"),
        (
            device(
                sensors=[
                    {
                        "gpio": 4,
                        "sensor_type": "ds18b20",
                        "pattern": {"kind": "drift", "min": 5, "max": 1},
                    }
                ]
            ),
            "sensors[0].pattern.min",
            5.0,
            "<= max",
        ),
    ],
)
def test_bad_spec_error_names_field_value_and_allowed_values(
    data: dict[str, Any], field: str, value: Any, allowed: str
) -> None:
    with pytest.raises(SpecError) as info:
        DeviceSpec.model_validate(data)
    err = info.value
    assert err.field == field
    assert err.value == value
    assert allowed in err.allowed
    assert str(err).startswith(f"{field}: {value!r}")
    assert isinstance(err, ValueError)


def test_constructor_and_model_validate_raise_the_same_error() -> None:
    with pytest.raises(SpecError, match="gpio"):
        SensorSpec(gpio=99, sensor_type="ds18b20")


def test_duplicate_sensor_and_actuator_gpios_are_refused() -> None:
    with pytest.raises(SpecError, match=r"sensors\[1\]"):
        DeviceSpec.model_validate(device(sensors=[{"gpio": 4, "sensor_type": "ds18b20"}] * 2))
    with pytest.raises(SpecError, match=r"actuators\[1\].gpio"):
        DeviceSpec.model_validate(device(actuators=[{"gpio": 5, "actuator_type": "pump"}] * 2))
    ok = DeviceSpec.model_validate(
        device(
            sensors=[
                {"gpio": 4, "sensor_type": "ds18b20", "onewire_address": "28FF000000000001"},
                {"gpio": 4, "sensor_type": "ds18b20", "onewire_address": "28FF000000000002"},
            ]
        )
    )
    assert len({s.key for s in ok.sensors}) == 2


def test_default_ids_look_like_firmware_and_are_reproducible() -> None:
    ids = [default_device_id(42, i) for i in range(100)]
    assert ids == [default_device_id(42, i) for i in range(100)]
    assert ids != [default_device_id(43, i) for i in range(100)]
    for i in ids:
        DeviceSpec(id=i)
        assert len(i) == 10
        assert i.startswith("ESP_")


def test_replace_validates() -> None:
    spec = DeviceSpec.model_validate(device())
    assert spec.replace(zone_id="z").zone_id == "z"
    with pytest.raises(SpecError, match="heartbeat_interval_s"):
        spec.replace(heartbeat_interval_s=1)

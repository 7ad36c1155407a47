"""The device creator: id, zone, heartbeat, sensors and actuators from the catalogue → Create.

Sensors and actuators are collected in a list first (each checked by its spec as it is added);
Create makes one :meth:`Fleet.add_device` call. A bad input shows its field and the allowed
values in the panel, and creates nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from mocksim.catalog import ACTUATOR_TYPES, SENSOR_TYPES, Bus
from mocksim.fleet import DeviceHandle, Fleet
from mocksim.spec import ActuatorSpec, SensorSpec
from mocksim.widgets._panel import Panel

__all__ = ["CreatorPanel"]

#: A gpio that suits each bus, offered when the sensor type changes (OneWire data pin, I2C SDA,
#: an ADC1 pin: ADC2 is unusable while Wi-Fi runs).
DEFAULT_GPIO = {Bus.ONEWIRE: 4, Bus.I2C: 21, Bus.ANALOG: 34}
DEFAULT_SENSOR_INTERVAL_S = 10.0
DEFAULT_HEARTBEAT_S = 60.0


def _wide() -> Any:
    """A fresh layout (layouts are widgets: a shared one would hide or resize them all)."""
    return widgets.Layout(width="22em")


def _narrow() -> Any:
    return widgets.Layout(width="9em")


def _type() -> Any:
    return widgets.Layout(width="17em")


def _short() -> dict[str, str]:
    """A label style that leaves the narrow number fields room for their digits."""
    return {"description_width": "initial"}


class CreatorPanel(Panel):
    """Build a device spec from the catalogue and create it with :meth:`Fleet.add_device`.

    Args:
        fleet: the fleet to add devices to.
        on_created: called with the new device's handle after each successful Create.
    """

    def __init__(
        self, fleet: Fleet, *, on_created: Callable[[DeviceHandle], object] | None = None
    ) -> None:
        self.device_id = widgets.Text(
            description="id", placeholder="MOCK_… / ESP_…; empty: from the seed", layout=_wide()
        )
        self.zone_id = widgets.Text(description="zone", placeholder="optional", layout=_wide())
        self.heartbeat_s = widgets.FloatText(
            value=DEFAULT_HEARTBEAT_S, description="heartbeat s", layout=_wide()
        )
        self.sensor_type = widgets.Dropdown(
            options=sorted(SENSOR_TYPES), value="ds18b20", description="sensor", layout=_type()
        )
        self.sensor_gpio = widgets.IntText(
            value=4, description="gpio", layout=_narrow(), style=_short()
        )
        self.sensor_interval_s = widgets.FloatText(
            value=DEFAULT_SENSOR_INTERVAL_S,
            description="every s",
            layout=_narrow(),
            style=_short(),
        )
        self.add_sensor_button = widgets.Button(description="Add sensor", icon="plus")
        self.actuator_type = widgets.Dropdown(
            options=sorted(ACTUATOR_TYPES), value="pump", description="actuator", layout=_type()
        )
        self.actuator_gpio = widgets.IntText(
            value=5, description="gpio", layout=_narrow(), style=_short()
        )
        self.add_actuator_button = widgets.Button(description="Add actuator", icon="plus")
        self.parts = widgets.Select(options=[], rows=4, description="parts", layout=_wide())
        self.remove_part_button = widgets.Button(description="Remove part", icon="minus")
        self.create_button = widgets.Button(
            description="Create", button_style="success", icon="check"
        )
        # Stable CSS hooks for browser tests and custom styling.
        self.device_id.add_class("mocksim-device-id")
        self.add_sensor_button.add_class("mocksim-add-sensor")
        self.create_button.add_class("mocksim-create")
        self._sensors: list[dict[str, Any]] = []
        self._actuators: list[dict[str, Any]] = []
        self._on_created: list[Callable[[DeviceHandle], object]] = []
        if on_created is not None:
            self._on_created.append(on_created)

        self.sensor_type.observe(self._sensor_type_changed, names="value")
        self.add_sensor_button.on_click(lambda _b: self.add_sensor())
        self.add_actuator_button.on_click(lambda _b: self.add_actuator())
        self.remove_part_button.on_click(lambda _b: self.remove_part())
        self.create_button.on_click(lambda _b: self.create())
        super().__init__(
            fleet,
            "Create a device",
            [
                widgets.HBox([self.device_id, self.zone_id]),
                self.heartbeat_s,
                widgets.HBox([self.sensor_type, self.sensor_gpio, self.sensor_interval_s]),
                widgets.HBox([self.actuator_type, self.actuator_gpio]),
                widgets.HBox(
                    [self.add_sensor_button, self.add_actuator_button, self.remove_part_button]
                ),
                self.parts,
                self.create_button,
            ],
        )

    def on_created(self, callback: Callable[[DeviceHandle], object]) -> None:
        """Call ``callback(handle)`` after every successful Create (dashboards refresh pickers)."""
        self._on_created.append(callback)

    # ------------------------------------------------------------------ the parts list

    def _sensor_type_changed(self, change: dict[str, Any]) -> None:
        self.sensor_gpio.value = DEFAULT_GPIO[SENSOR_TYPES[change["new"]].bus]

    def add_sensor(self) -> None:
        """Add the sensor row to the parts list if its spec is valid (else show why)."""
        data = {
            "gpio": self.sensor_gpio.value,
            "sensor_type": self.sensor_type.value,
            "interval_s": self.sensor_interval_s.value,
        }
        ok, spec = self.call(SensorSpec.model_validate, data)
        if ok and spec is not None:
            self._sensors.append(data)
            self._show_parts()

    def add_actuator(self) -> None:
        """Add the actuator row to the parts list if its spec is valid (else show why)."""
        data = {"gpio": self.actuator_gpio.value, "actuator_type": self.actuator_type.value}
        ok, _spec = self.call(ActuatorSpec.model_validate, data)
        if ok:
            self._actuators.append(data)
            self._show_parts()

    def remove_part(self) -> None:
        """Drop the selected part from the list."""
        index = self.parts.index
        if index is None:
            return
        if index < len(self._sensors):
            del self._sensors[index]
        else:
            del self._actuators[index - len(self._sensors)]
        self._show_parts()

    def _show_parts(self) -> None:
        labels = [
            f"sensor {s['sensor_type']} · gpio {s['gpio']} · every {s['interval_s']:g} s"
            for s in self._sensors
        ]
        labels += [f"actuator {a['actuator_type']} · gpio {a['gpio']}" for a in self._actuators]
        self.parts.options = labels

    # ------------------------------------------------------------------ create

    def spec(self) -> dict[str, Any]:
        """The device fields the form holds now (what Create passes to ``add_device``)."""
        data: dict[str, Any] = {
            "zone_id": self.zone_id.value.strip(),
            "heartbeat_interval_s": self.heartbeat_s.value,
            "sensors": [dict(s) for s in self._sensors],
            "actuators": [dict(a) for a in self._actuators],
        }
        device_id = self.device_id.value.strip()
        if device_id:
            data["id"] = device_id
        return data

    def create(self) -> DeviceHandle | None:
        """Create the device (one ``Fleet.add_device`` call); returns its handle, or None."""
        ok, handle = self.call(self.fleet.add_device, self.spec())
        if not ok or handle is None:
            return None
        self.say(
            f"created {handle.id}: {len(self._sensors)} sensor(s), "
            f"{len(self._actuators)} actuator(s)"
        )
        self._sensors.clear()
        self._actuators.clear()
        self._show_parts()
        self.device_id.value = ""
        for callback in self._on_created:
            self.call(callback, handle)
        return handle

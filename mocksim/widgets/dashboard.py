"""All panels together: create devices, drive actuators, watch readings, tune, start/stop.

The dashboard wires the panels (a new device appears in every picker) and runs one refresher
thread that redraws the chart and the table; it ends with :meth:`Dashboard.close` or by itself
once the fleet closes.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from mocksim.fleet import DeviceHandle, Fleet
from mocksim.widgets._refresh import Refresher
from mocksim.widgets.actuators import ActuatorPanel
from mocksim.widgets.chart import ChartPanel
from mocksim.widgets.creator import CreatorPanel
from mocksim.widgets.table import TablePanel
from mocksim.widgets.tuner import TunerPanel

__all__ = ["Dashboard", "dashboard"]


class Dashboard:
    """The five panels of one fleet in one view, kept current by a refresher thread.

    Args:
        fleet: the fleet to show and drive.
        refresh_s: seconds between redraws of chart and table (>= 0.2: at most 5 Hz).
        window_min: minutes of readings the chart shows.
        sensor_type: the wire sensor type the chart shows first.
        auto_refresh: start the refresher thread now.
    """

    def __init__(
        self,
        fleet: Fleet,
        *,
        refresh_s: float = 1.0,
        window_min: int = 5,
        sensor_type: str = "ds18b20",
        auto_refresh: bool = True,
    ) -> None:
        self.fleet = fleet
        self.creator = CreatorPanel(fleet)
        self.tuner = TunerPanel(fleet)
        self.chart = ChartPanel(fleet, window_min=window_min, sensor_type=sensor_type)
        self.table = TablePanel(fleet)
        self.actuators = ActuatorPanel(fleet)
        self.refresher = Refresher(fleet, [self.chart.refresh, self.table.refresh], refresh_s)
        self.creator.on_created(self._created)
        self.creator.widget.layout.width = self.actuators.widget.layout.width = "50%"
        self.tuner.widget.layout.width = self.table.widget.layout.width = "50%"
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.creator.widget, self.actuators.widget]),
                self.chart.widget,
                widgets.HBox([self.tuner.widget, self.table.widget]),
            ]
        )
        self.widget.add_class("mocksim-dashboard")
        self.tuner.reload()
        self.actuators.reload()
        self.table.refresh(force=True)
        if auto_refresh:
            self.refresher.start()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def _created(self, handle: DeviceHandle) -> None:
        """Show a new device everywhere and select it in the tuner and actuator panel."""
        self.tuner.reload()
        self.tuner.device.value = handle.id
        self.actuators.reload()
        if handle.id in self.actuators.device.options:
            self.actuators.device.value = handle.id
        self.table.refresh(force=True)

    def refresh(self) -> None:
        """Redraw chart and table now."""
        self.chart.refresh(force=True)
        self.table.refresh(force=True)

    def close(self) -> None:
        """Stop the refresher thread and the actuator panel's server connection.

        The fleet stays open (close it yourself); calling this twice does nothing more.
        """
        self.refresher.stop()
        self.actuators.close()

    def __enter__(self) -> Dashboard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def dashboard(fleet: Fleet, **options: Any) -> Dashboard:
    """Every panel of ``fleet`` in one view (see :class:`Dashboard` for the options)."""
    return Dashboard(fleet, **options)

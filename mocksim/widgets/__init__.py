"""Notebook panels over a :class:`~mocksim.Fleet`: create, tune, chart, list and drive devices.

Each panel is a thin arrangement of ipywidgets (and a bqplot Figure it owns) whose controls
each call one public Fleet method; errors show in the panel's own Output. ``dashboard(fleet)``
puts them all together. Needs the ``notebooks`` extra (ipywidgets, bqplot).
"""

from mocksim.widgets._refresh import MAX_RATE_HZ, Refresher, Throttle
from mocksim.widgets.actuators import ActuatorPanel
from mocksim.widgets.chart import ChartPanel, plot
from mocksim.widgets.creator import CreatorPanel
from mocksim.widgets.dashboard import Dashboard, dashboard
from mocksim.widgets.table import TablePanel
from mocksim.widgets.tuner import TunerPanel, pattern_fields

__all__ = [
    "MAX_RATE_HZ",
    "ActuatorPanel",
    "ChartPanel",
    "CreatorPanel",
    "Dashboard",
    "Refresher",
    "TablePanel",
    "Throttle",
    "TunerPanel",
    "dashboard",
    "pattern_fields",
    "plot",
]

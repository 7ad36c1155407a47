"""The live chart: the last N minutes of chosen sensors, from what the broker delivered.

The panel owns its bqplot :class:`~bqplot.Figure` (never pyplot's global figure) and a fixed
pool of ``Lines`` marks, one per series, built once; a refresh makes one
:meth:`Fleet.readings` call and only assigns mark values, so it may run on the refresher
thread. Redraws are throttled to at most 5 per second. :func:`plot` draws a static chart of any
readings-like frame (for notebooks).
"""

from __future__ import annotations

import html
import threading
import warnings
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd

with warnings.catch_warnings():
    # bqscales 0.3 passes trait metadata the traitlets-4.0 way; harmless, but a
    # DeprecationWarning at import (an error under our pytest settings, noise in notebooks).
    warnings.simplefilter("ignore", DeprecationWarning)
    import bqplot

from mocksim.catalog import VALUE_TYPES
from mocksim.fleet import Fleet
from mocksim.widgets._panel import Panel
from mocksim.widgets._refresh import MIN_INTERVAL_S, Throttle

__all__ = ["ChartPanel", "plot"]

#: d3's category10, the colours bqplot uses by default.
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
MAX_SERIES = 8


def _times(values: pd.Series) -> np.ndarray:
    """Timestamps as naive UTC ``datetime64`` (bqplot's DateScale wants those)."""
    s = pd.to_datetime(values, utc=True)
    return s.dt.tz_convert(None).to_numpy()


def _is_time(values: pd.Series) -> bool:
    return bool(pd.api.types.is_datetime64_any_dtype(values))


def _series(
    frame: pd.DataFrame, x: str, y: str, by: Sequence[str]
) -> list[tuple[str, pd.DataFrame]]:
    """``(label, rows sorted by x)`` per group of ``by``, in a stable order."""
    if frame.empty:
        return []
    keys = [k for k in by if k in frame.columns]
    if not keys:
        return [(y, frame.sort_values(x))]
    out = []
    for key, rows in frame.groupby(keys, sort=True, observed=True):
        parts = key if isinstance(key, tuple) else (key,)
        label = " · ".join(
            f"{k} {v}" if k == "gpio" else str(v) for k, v in zip(keys, parts, strict=True)
        )
        out.append((label, rows.sort_values(x)))
    return out


def plot(
    frame: pd.DataFrame,
    *,
    x: str = "received_at",
    y: str = "value",
    by: Sequence[str] = ("device_id", "sensor_type"),
    title: str = "",
    y_label: str = "",
    height: str = "300px",
) -> Any:
    """A static bqplot Figure with one line per group of ``by`` (a readings frame by default).

    Args:
        frame: rows to draw; ``x`` may be timestamps (tz-aware or naive UTC) or numbers.
        x, y: the columns to draw.
        by: columns whose value combinations become separate lines (missing ones are ignored).
        title, y_label: texts on the chart.
        height: CSS height of the figure.
    """
    time_axis = x in frame.columns and _is_time(frame[x])
    x_scale = bqplot.DateScale() if time_axis else bqplot.LinearScale()
    y_scale = bqplot.LinearScale()
    marks = []
    for i, (label, rows) in enumerate(_series(frame, x, y, by)):
        xs = _times(rows[x]) if time_axis else rows[x].to_numpy(dtype=float)
        marks.append(
            bqplot.Lines(
                x=xs,
                y=rows[y].to_numpy(dtype=float),
                scales={"x": x_scale, "y": y_scale},
                colors=[PALETTE[i % len(PALETTE)]],
                labels=[label],
                display_legend=True,
            )
        )
    axes = [
        bqplot.Axis(
            scale=x_scale,
            label="time" if time_axis else x,
            side="bottom",
            tick_format="%H:%M:%S" if time_axis else None,
        ),
        bqplot.Axis(scale=y_scale, side="left", label=y_label or y),
    ]
    return bqplot.Figure(
        marks=marks,
        axes=axes,
        title=title,
        legend_location="top-left",
        animation_duration=0,
        layout=widgets.Layout(width="100%", height=height),
    )


class ChartPanel(Panel):
    """A live line chart of one sensor type over the last minutes, per device and gpio.

    Args:
        fleet: a Fleet with ``readings()`` (what its recorder received from the broker).
        sensor_type: the wire sensor type shown first (``ds18b20``, ``sht31_temp`` …).
        window_min: how many minutes back the chart reaches.
        max_series: how many lines it draws at most (the rest is counted, not drawn).
        min_interval_s: the throttle: no redraw sooner than this after the last (>= 0.2 s).
    """

    def __init__(
        self,
        fleet: Fleet,
        *,
        sensor_type: str = "ds18b20",
        window_min: int = 5,
        max_series: int = MAX_SERIES,
        min_interval_s: float = MIN_INTERVAL_S,
    ) -> None:
        self.sensor_type = widgets.Dropdown(
            options=sorted(VALUE_TYPES), value=sensor_type, description="sensor"
        )
        self.devices = widgets.SelectMultiple(
            options=[], rows=3, description="devices", tooltip="none selected: all devices"
        )
        self.window_min = widgets.IntSlider(
            value=window_min, min=1, max=60, description="last min", continuous_update=False
        )
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.summary = widgets.HTML("no readings yet")
        self.summary.add_class("mocksim-chart-summary")
        self.x_scale = bqplot.DateScale()
        self.y_scale = bqplot.LinearScale()
        self.lines = [
            bqplot.Lines(
                x=np.array([], dtype="datetime64[ms]"),
                y=np.array([], dtype=float),
                scales={"x": self.x_scale, "y": self.y_scale},
                colors=[PALETTE[i % len(PALETTE)]],
                labels=[""],
                marker="circle",
                marker_size=16,
                display_legend=False,
                visible=False,
            )
            for i in range(max_series)
        ]
        self.x_axis = bqplot.Axis(
            scale=self.x_scale,
            label="received (browser time)",
            side="bottom",
            tick_format="%H:%M:%S",  # the default mixes ".500" and ":52" ticks at this zoom
        )
        self.y_axis = bqplot.Axis(scale=self.y_scale, side="left", label="value")
        self.figure = bqplot.Figure(
            marks=self.lines,
            axes=[self.x_axis, self.y_axis],
            legend_location="top-left",
            animation_duration=0,
            layout=widgets.Layout(width="100%", height="320px"),
        )
        self.figure.add_class("mocksim-chart")
        self.frame = pd.DataFrame()
        self.redraws = 0
        self._throttle = Throttle(min_interval_s)
        self._lock = threading.Lock()

        self.refresh_button.on_click(lambda _b: self.refresh(force=True))
        for w in (self.sensor_type, self.devices, self.window_min):
            w.observe(lambda _c: self.refresh(force=True), names="value")
        super().__init__(
            fleet,
            "Live readings",
            [
                widgets.HBox([self.sensor_type, self.window_min, self.refresh_button]),
                self.devices,
                self.figure,
                self.summary,
            ],
        )

    def refresh(self, *, force: bool = False) -> bool:
        """Fetch the window's readings (one ``Fleet.readings`` call) and redraw.

        Returns False when the throttle held it back (``force``, used by the controls, skips
        the throttle) or the call failed (shown in the panel).
        """
        with self._lock:
            if not self._throttle.ready() and not force:
                return False
            now = pd.Timestamp.now(tz="UTC")
            since = now - pd.Timedelta(minutes=self.window_min.value)
            ok, frame = self.call(
                self.fleet.readings,
                sensor_type=self.sensor_type.value,
                since=since,
                reraise_closed=True,
            )
            if not ok or frame is None:
                return False
            self._draw(frame, since, now)
            return True

    def _draw(self, frame: pd.DataFrame, since: pd.Timestamp, now: pd.Timestamp) -> None:
        ids = sorted({str(i) for i in frame["device_id"]} | set(self.devices.options))
        if ids != list(self.devices.options):
            chosen = self.devices.value
            self.devices.options = ids
            self.devices.value = tuple(i for i in chosen if i in ids)
        if self.devices.value:
            frame = frame[frame["device_id"].isin(self.devices.value)]
        self.frame = frame
        series = _series(frame, "received_at", "value", ("device_id", "gpio"))
        for line, (label, rows) in zip(self.lines, series, strict=False):
            with line.hold_sync():
                line.x = _times(rows["received_at"])
                line.y = rows["value"].to_numpy(dtype=float)
                line.labels = [label]
                line.display_legend = True
                line.visible = True
        for line in self.lines[len(series) :]:
            if line.visible:
                with line.hold_sync():
                    line.visible = False
                    line.display_legend = False
        # The axis spans the window, or less while the data is younger than the window, so
        # a minute-old device does not sit as a speck at the right edge of five minutes.
        start = since
        if not frame.empty:
            start = max(since, pd.Timestamp(frame["received_at"].min()) - pd.Timedelta(seconds=1))
        with self.x_scale.hold_sync():
            self.x_scale.min = start.tz_convert(None).to_datetime64()
            self.x_scale.max = now.tz_convert(None).to_datetime64()
        vt = self.sensor_type.value
        unit = VALUE_TYPES[vt].unit
        self.y_axis.label = f"{vt} ({unit})"
        self.summary.value = self._summary(frame, series, unit)
        self.redraws += 1

    def _summary(
        self, frame: pd.DataFrame, series: list[tuple[str, pd.DataFrame]], unit: str
    ) -> str:
        if frame.empty:
            return (
                f"no {html.escape(self.sensor_type.value)} readings in the last "
                f"{self.window_min.value} min"
            )
        last = frame.sort_values("received_at").iloc[-1]
        at = pd.Timestamp(last["received_at"]).strftime("%H:%M:%S")
        hidden = max(0, len(series) - len(self.lines))
        more = f" ({hidden} more not drawn)" if hidden else ""
        return (
            f"{len(series)} series{more} · {len(frame)} readings · last "
            f"{float(last['value']):.4g} {html.escape(unit)} from "
            f"{html.escape(str(last['device_id']))} at {at} UTC"
        )

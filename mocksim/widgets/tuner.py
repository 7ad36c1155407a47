"""The pattern tuner: pick a device's sensor, shape its value pattern with sliders, apply live.

Sliders map onto the pattern fields of :mod:`mocksim.spec` (``base`` is a drift's ``start``,
``range`` a sine's ``amplitude`` …). Each change makes one :meth:`Fleet.update_sensor` call: the
fleet stores it, then the running device's next reading follows the new pattern.
"""

from __future__ import annotations

import math
from typing import Any

import ipywidgets as widgets

from mocksim.catalog import VALUE_TYPES, ValueModel
from mocksim.fleet import Fleet
from mocksim.spec import PATTERN_KINDS, DeviceSpec, PatternSpec, SensorSpec
from mocksim.widgets._panel import Panel, set_options

__all__ = ["TunerPanel", "pattern_fields"]

#: Which sliders each pattern kind reads (``base``, ``min`` and ``max`` apply to all).
USES: dict[str, frozenset[str]] = {
    "constant": frozenset(),
    "random": frozenset({"range"}),
    "drift": frozenset({"rate"}),
    "sine": frozenset({"range", "period_s"}),
    "walk": frozenset({"rate"}),
    "spike": frozenset({"range"}),
    "stuck": frozenset(),
}


def _w() -> Any:
    """A fresh layout (layouts are widgets: a shared one would hide or resize them all)."""
    return widgets.Layout(width="28em")


def pattern_fields(
    kind: str,
    *,
    base: float,
    spread: float = 0.0,
    rate: float = 0.0,
    period_s: float = 600.0,
    low: float | None = None,
    high: float | None = None,
) -> dict[str, Any]:
    """The pattern mapping the sliders describe (validated later by the fleet).

    ``spread`` is a random ``range``, a sine ``amplitude`` or a spike ``magnitude``; ``rate``
    a drift ``step`` or a walk's step σ (its size).
    """
    fields: dict[str, Any] = {"kind": kind}
    if kind in ("constant", "stuck"):
        fields["value"] = base
    elif kind == "drift":
        fields.update(start=base, step=rate)
    elif kind == "walk":
        fields.update(base=base, step=abs(rate))
    elif kind == "random":
        fields.update(base=base, range=spread)
    elif kind == "sine":
        fields.update(base=base, amplitude=spread, period_s=period_s)
    elif kind == "spike":
        fields.update(base=base, magnitude=spread)
    else:
        fields["kind"] = kind  # unknown: let the spec name the allowed kinds
    if low is not None:
        fields["min"] = low
    if high is not None:
        fields["max"] = high
    return fields


def _nice_step(span: float) -> float:
    """A round slider step of about a thousandth of the span (0.1 for 180 °C)."""
    return float(10 ** math.floor(math.log10(span / 1000.0)))


def _configure(slider: Any, low: float, high: float, step: float, value: float) -> None:
    """Give a slider a new range without tripping ipywidgets' ``min > max`` check."""
    if low > slider.max:
        slider.max = high
        slider.min = low
    else:
        slider.min = low
        slider.max = high
    slider.step = step
    slider.value = min(max(value, low), high)


class TunerPanel(Panel):
    """Tune a running sensor's pattern and interval with sliders.

    Args:
        fleet: the fleet whose devices are tuned.
        auto_apply: apply every slider change at once (else only on Apply).
    """

    def __init__(self, fleet: Fleet, *, auto_apply: bool = True) -> None:
        self.device = widgets.Dropdown(options=[], description="device", layout=_w())
        self.reload_button = widgets.Button(
            icon="refresh", tooltip="reload the device list", layout=widgets.Layout(width="3em")
        )
        self.sensor = widgets.Dropdown(options=[], description="sensor", layout=_w())
        self.value_type = widgets.Dropdown(options=[], description="value", layout=_w())
        self.kind = widgets.Dropdown(
            options=PATTERN_KINDS, value="drift", description="pattern", layout=_w()
        )

        def slider(name: str, **kw: Any) -> Any:
            return widgets.FloatSlider(
                description=name, continuous_update=False, layout=_w(), readout_format=".4g", **kw
            )

        self.base = slider("base", min=-100.0, max=100.0, value=0.0)
        self.spread = slider("range", min=0.0, max=10.0, value=1.0)
        self.rate = slider("rate", min=-1.0, max=1.0, value=0.1)
        self.period_s = slider("period s", min=10.0, max=3600.0, step=10.0, value=600.0)
        self.low = slider("min", min=-100.0, max=100.0, value=-100.0)
        self.high = slider("max", min=-100.0, max=100.0, value=100.0)
        self.interval_s = slider("interval s", min=1.0, max=600.0, step=1.0, value=30.0)
        self.auto_apply = widgets.Checkbox(value=auto_apply, description="apply on change")
        self.apply_button = widgets.Button(description="Apply", button_style="primary")
        self._spec: DeviceSpec | None = None
        self._model: ValueModel | None = None
        self._loading = False

        self.reload_button.on_click(lambda _b: self.reload())
        self.apply_button.on_click(lambda _b: self.apply())
        self.device.observe(lambda _c: self._device_changed(), names="value")
        self.sensor.observe(lambda _c: self._sensor_changed(), names="value")
        self.value_type.observe(lambda _c: self._value_type_changed(), names="value")
        self.kind.observe(lambda _c: self._kind_changed(), names="value")
        for w in self.sliders:
            w.observe(lambda _c: self._changed(), names="value")
        super().__init__(
            fleet,
            "Tune a pattern",
            [
                widgets.HBox([self.device, self.reload_button]),
                self.sensor,
                self.value_type,
                self.kind,
                *self.sliders,
                widgets.HBox([self.auto_apply, self.apply_button]),
            ],
        )
        self._show_sliders()

    @property
    def sliders(self) -> tuple[Any, ...]:
        """Every slider, in display order."""
        return (
            self.base,
            self.spread,
            self.rate,
            self.period_s,
            self.low,
            self.high,
            self.interval_s,
        )

    # ------------------------------------------------------------------ pickers

    def reload(self) -> None:
        """Refresh the device list (one ``Fleet.devices`` call); keeps the selection."""
        ok, frame = self.call(self.fleet.devices)
        if not ok or frame is None:
            return
        set_options(self.device, [str(i) for i in frame["device_id"]], first=False)

    def _device_changed(self) -> None:
        if self.device.value is None:
            self._spec = None
            self.sensor.options = []
            return
        ok, spec = self.call(self.fleet.spec, self.device.value)
        self._spec = spec if ok else None
        set_options(self.sensor, [s.key for s in spec.sensors] if spec is not None else [])

    def _sensor(self) -> SensorSpec | None:
        if self._spec is None or self.sensor.value is None:
            return None
        try:
            return self._spec.sensor(self.sensor.value)
        except KeyError:
            return None

    def _sensor_changed(self) -> None:
        sensor = self._sensor()
        set_options(self.value_type, list(sensor.value_types) if sensor is not None else [])
        if sensor is not None:
            self._loading = True
            try:
                self.interval_s.value = min(max(sensor.interval_s, 1.0), self.interval_s.max)
            finally:
                self._loading = False

    def _value_type_changed(self) -> None:
        """Fit the sliders to the value's physical range and show its current pattern."""
        sensor = self._sensor()
        vt = self.value_type.value
        if sensor is None or vt is None:
            self._model = None
            return
        model = self._model = VALUE_TYPES[vt]
        self._loading = True
        try:
            self._load(model, sensor.pattern_for(vt))
        finally:
            self._loading = False
        self._show_sliders()

    def _load(self, model: ValueModel, pattern: PatternSpec | None) -> None:
        lo, hi = model.phys_min, model.phys_max
        span = hi - lo
        step = _nice_step(span)
        p: dict[str, Any] = pattern.model_dump() if pattern is not None else {}
        base = next(
            (p[k] for k in ("start", "base", "value") if p.get(k) is not None), model.default
        )
        spread = next((p[k] for k in ("range", "amplitude", "magnitude") if k in p), span / 50)
        _configure(self.base, lo, hi, step, base)
        _configure(self.spread, 0.0, span / 4, step, spread)
        _configure(self.rate, -span / 50, span / 50, step / 10, p.get("step", step))
        low, high = p.get("min"), p.get("max")
        _configure(self.low, lo, hi, step, lo if low is None else float(low))
        _configure(self.high, lo, hi, step, hi if high is None else float(high))
        self.period_s.value = p.get("period_s", self.period_s.value)
        if p.get("kind") in PATTERN_KINDS:
            self.kind.value = p["kind"]

    def _kind_changed(self) -> None:
        self._show_sliders()
        self._changed()

    def _show_sliders(self) -> None:
        uses = USES.get(self.kind.value, frozenset())
        for name, w in (("range", self.spread), ("rate", self.rate), ("period_s", self.period_s)):
            w.layout.display = None if name in uses else "none"

    # ------------------------------------------------------------------ apply

    def _changed(self) -> None:
        if self.auto_apply.value and not self._loading:
            self.apply()

    def pattern(self) -> dict[str, Any]:
        """The pattern the controls describe now."""
        model = self._model
        at_low = model is not None and self.low.value <= model.phys_min
        at_high = model is not None and self.high.value >= model.phys_max
        return pattern_fields(
            self.kind.value,
            base=self.base.value,
            spread=self.spread.value,
            rate=self.rate.value,
            period_s=self.period_s.value,
            low=None if at_low else self.low.value,
            high=None if at_high else self.high.value,
        )

    def apply(self) -> SensorSpec | None:
        """Apply pattern and interval to the running sensor (one ``Fleet.update_sensor`` call).

        Returns the stored sensor spec, or None (the reason is shown in the panel).
        """
        sensor = self._sensor()
        device_id, vt = self.device.value, self.value_type.value
        if sensor is None or device_id is None or vt is None:
            self.error("choose a device and a sensor first")
            return None
        pattern = self.pattern()
        changes: dict[str, Any] = {"interval_s": self.interval_s.value}
        if len(sensor.value_types) == 1:
            changes["pattern"] = pattern
        else:
            merged = {k: v.model_dump() for k, v in sensor.patterns.items()}
            merged[vt] = pattern
            changes["patterns"] = merged
        ok, new = self.call(self.fleet.update_sensor, device_id, sensor.key, **changes)
        if not ok or new is None or self._spec is None:
            return None
        self._spec = self._spec.replace(
            sensors=[
                new.model_dump() if s.key == sensor.key else s.model_dump()
                for s in self._spec.sensors
            ]
        )
        shown = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in pattern.items()
            if k != "kind"
        )
        self.say(f"{device_id} {vt}: {pattern['kind']} ({shown}), every {new.interval_s:g} s")
        return new

"""The actuator panel: send ON / OFF / PWM / TOGGLE and emergency stop as the server would.

Commands go through the broker, as the AutomationOne server sends them, using one
:class:`~mocksim.ServerClient` from :meth:`Fleet.server`, opened at the first command and kept
(a connection per click would cost a connect and a close each); :meth:`ActuatorPanel.close`
closes it. The panel shows the device's answer (the actuator response, the emergency ack or
the recovery confirm).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import orjson

from mocksim.fleet import Fleet
from mocksim.server import ServerClient
from mocksim.widgets._panel import Panel, set_options

__all__ = ["ActuatorPanel"]


def _w() -> Any:
    """A fresh layout (layouts are widgets: a shared one would hide or resize them all)."""
    return widgets.Layout(width="22em")


def _button() -> Any:
    return widgets.Layout(width="7em")


class ActuatorPanel(Panel):
    """Drive one device's actuators through the broker and show the answers.

    Args:
        fleet: the fleet whose devices are driven.
    """

    def __init__(self, fleet: Fleet) -> None:
        self.device = widgets.Dropdown(options=[], description="device", layout=_w())
        self.reload_button = widgets.Button(
            icon="refresh", tooltip="reload the device list", layout=widgets.Layout(width="3em")
        )
        self.gpio = widgets.Dropdown(options=[], description="actuator", layout=_w())
        self.value = widgets.FloatSlider(
            value=0.5, min=0.0, max=1.0, step=0.05, description="pwm value", layout=_w()
        )
        self.duration_s = widgets.FloatText(
            value=0.0,
            description="duration s",
            layout=_w(),
            tooltip="ON only: auto-off after this; 0 = never",
        )
        self.buttons = {
            name: widgets.Button(description=name, layout=_button())
            for name in ("ON", "OFF", "PWM", "TOGGLE")
        }
        self.stop_button = widgets.Button(
            description="Emergency stop",
            button_style="danger",
            icon="hand-paper-o",
            layout=widgets.Layout(width="12em"),
        )
        self.clear_button = widgets.Button(
            description="Clear emergency",
            button_style="warning",
            layout=widgets.Layout(width="12em"),
        )
        self.last_response: dict[str, Any] | None = None
        self._client: ServerClient | None = None
        self.response = widgets.HTML("")

        self.reload_button.on_click(lambda _b: self.reload())
        self.device.observe(lambda _c: self._device_changed(), names="value")
        for name, button in self.buttons.items():
            button.on_click(lambda _b, n=name: self.command(n))
        self.stop_button.on_click(lambda _b: self.emergency_stop())
        self.clear_button.on_click(lambda _b: self.clear_emergency())
        super().__init__(
            fleet,
            "Actuators (as the server)",
            [
                widgets.HBox([self.device, self.reload_button]),
                self.gpio,
                self.value,
                self.duration_s,
                widgets.HBox(list(self.buttons.values())),
                widgets.HBox([self.stop_button, self.clear_button]),
                self.response,
            ],
        )

    # ------------------------------------------------------------------ pickers

    def reload(self) -> None:
        """Refresh the device list (one ``Fleet.devices`` call); keeps the selection."""
        ok, frame = self.call(self.fleet.devices)
        if not ok or frame is None:
            return
        with_actuators = frame[frame["actuators"] > 0]
        set_options(self.device, [str(i) for i in with_actuators["device_id"]], first=False)

    def _device_changed(self) -> None:
        if self.device.value is None:
            self.gpio.options = []
            return
        ok, spec = self.call(self.fleet.spec, self.device.value)
        actuators = spec.actuators if ok and spec is not None else []
        set_options(self.gpio, [(f"gpio {a.gpio} · {a.actuator_type}", a.gpio) for a in actuators])

    # ------------------------------------------------------------------ commands

    def _server(self) -> ServerClient:
        if self._client is None:
            self._client = self.fleet.server()
        return self._client

    def close(self) -> None:
        """Close the panel's server connection (a later command opens a new one)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _show(self, what: str, answer: Any) -> None:
        self.last_response = answer if isinstance(answer, dict) else {"answers": answer}
        text = orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode()
        self.response.value = f"<b>{what}</b><pre style='margin:0'>{text}</pre>"
        ok = all(a.get("success", True) for a in (answer if isinstance(answer, list) else [answer]))
        (self.say if ok else self.error)(
            f"{what}: "
            + (
                answer.get("message", "ok")
                if isinstance(answer, dict)
                else f"{len(answer)} answer(s)"
            )
        )

    def command(self, name: str) -> dict[str, Any] | None:
        """Send ON / OFF / PWM / TOGGLE to the chosen actuator; returns the device's response."""
        device_id, gpio = self.device.value, self.gpio.value
        if device_id is None or gpio is None:
            self.error("choose a device and an actuator first")
            return None
        value = self.value.value if name == "PWM" else None
        duration = self.duration_s.value if name == "ON" else 0.0

        def send() -> dict[str, Any] | None:
            return self._server().actuator_command(
                device_id, gpio, name, value=value, duration_s=duration
            )

        ok, answer = self.call(send)
        if ok and answer is not None:
            self._show(f"{name} → {device_id} gpio {gpio}", answer)
        return answer

    def emergency_stop(self) -> list[dict[str, Any]] | None:
        """Emergency-stop the chosen device; returns its emergency ack."""
        return self._emergency(
            "emergency stop", lambda server, i: server.emergency_stop(i, reason="dashboard")
        )

    def clear_emergency(self) -> list[dict[str, Any]] | None:
        """Clear the chosen device's emergency (actuators stay off); returns the confirm."""
        return self._emergency(
            "clear emergency", lambda server, i: server.clear_emergency(i, reason="dashboard")
        )

    def _emergency(
        self, what: str, send: Callable[[ServerClient, str], list[dict[str, Any]]]
    ) -> list[dict[str, Any]] | None:
        device_id = self.device.value
        if device_id is None:
            self.error("choose a device first")
            return None

        def run() -> list[dict[str, Any]]:
            return send(self._server(), device_id)

        ok, answers = self.call(run)
        if ok and answers is not None:
            self._show(f"{what} → {device_id}", answers)
        return answers

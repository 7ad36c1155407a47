"""The fleet table: each device's state, last publish and counters, with start/stop/pause.

A refresh is one :meth:`Fleet.devices` call rendered as an HTML table; each button makes one
:meth:`Fleet.start` / ``stop`` / ``pause`` / ``resume`` call for the selected devices.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import MappingProxyType

import ipywidgets as widgets
import pandas as pd

from mocksim.fleet import Fleet
from mocksim.widgets._panel import Panel
from mocksim.widgets._refresh import MIN_INTERVAL_S, Throttle

__all__ = ["TablePanel"]

#: ``Fleet.devices()`` columns the table shows, and their headers.
COLUMNS = MappingProxyType(
    {
        "device_id": "device",
        "desired_state": "desired",
        "runtime_status": "state",
        "connected": "online",
        "published": "published",
        "dropped": "dropped",
        "boot_count": "boots",
        "last_publish": "last seen",
    }
)


class TablePanel(Panel):
    """A table of every device in the fleet's database, and buttons to change their state.

    Args:
        fleet: the fleet to show.
        min_interval_s: the throttle: no redraw sooner than this after the last (>= 0.2 s).
    """

    def __init__(self, fleet: Fleet, *, min_interval_s: float = MIN_INTERVAL_S) -> None:
        self.select = widgets.SelectMultiple(options=[], rows=4, description="devices")
        self.buttons = {
            verb: widgets.Button(
                description=verb.capitalize(), icon=icon, layout=widgets.Layout(width="7em")
            )
            for verb, icon in (
                ("start", "play"),
                ("pause", "pause"),
                ("resume", "step-forward"),
                ("stop", "stop"),
            )
        }
        self.refresh_button = widgets.Button(
            icon="refresh", tooltip="refresh the table", layout=widgets.Layout(width="3em")
        )
        self.table = widgets.HTML("", layout=widgets.Layout(overflow="auto"))
        self.frame = pd.DataFrame(columns=list(COLUMNS))
        self._throttle = Throttle(min_interval_s)
        self._lock = threading.Lock()
        verbs: dict[str, Callable[..., None]] = {
            "start": fleet.start,
            "pause": fleet.pause,
            "resume": fleet.resume,
            "stop": fleet.stop,
        }
        for verb, button in self.buttons.items():
            button.on_click(lambda _b, v=verb: self.act(v, verbs[v]))
        self.refresh_button.on_click(lambda _b: self.refresh(force=True))
        super().__init__(
            fleet,
            "Fleet",
            [
                self.table,
                widgets.HBox(
                    [self.select, widgets.VBox([*self.buttons.values(), self.refresh_button])]
                ),
            ],
        )

    def act(self, verb: str, method: Callable[..., None]) -> None:
        """Apply one state verb to the selected devices, then redraw."""
        ids = list(self.select.value)
        if not ids:
            self.error(f"select devices to {verb}")
            return
        ok, _ = self.call(method, ids)
        if ok:
            self.say(f"{verb}: {', '.join(ids)}")
        self.refresh(force=True)

    def refresh(self, *, force: bool = False) -> bool:
        """Redraw from one ``Fleet.devices`` call; False when throttled or failed."""
        with self._lock:
            if not self._throttle.ready() and not force:
                return False
            ok, frame = self.call(self.fleet.devices, reraise_closed=True)
            if not ok or frame is None:
                return False
            self.frame = frame
            shown = frame[list(COLUMNS)].rename(columns=dict(COLUMNS))
            shown["last seen"] = shown["last seen"].map(
                lambda t: "" if pd.isna(t) else pd.Timestamp(t).strftime("%H:%M:%S")
            )
            self.table.value = shown.to_html(
                index=False, border=0, na_rep="", classes="mocksim-table"
            )
            ids = [str(i) for i in frame["device_id"]]
            if ids != list(self.select.options):
                chosen = self.select.value
                self.select.options = ids
                self.select.value = tuple(i for i in chosen if i in ids)
            return True

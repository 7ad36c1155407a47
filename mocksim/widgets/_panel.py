"""What every panel shares: a box to display, and an Output that shows what its controls did.

A callback's exception in JupyterLab goes nowhere unless an ``Output`` shows it, so every panel
runs its one Fleet call through :meth:`Panel.call`, which turns errors into a visible line: a
:class:`~mocksim.errors.SpecError` with its field and allowed values, anything else as
``TypeName: message``.
"""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import ipywidgets as widgets

from mocksim.errors import FleetClosedError, MocksimError, SpecError
from mocksim.fleet import Fleet

__all__ = ["Panel", "set_options"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: How many messages a panel's Output keeps (older ones scroll away).
KEEP_MESSAGES = 20


def set_options(picker: Any, options: list[Any], *, first: bool = True) -> None:
    """Give a Dropdown/Select new options, keeping its value when it is still offered.

    ipywidgets clears the value on a new options list; ``first`` picks the first option then.
    """
    values = [o[1] if isinstance(o, tuple) else o for o in options]
    current = picker.value
    if list(picker.options) != options:
        picker.options = options
    if current in values:
        picker.value = current
    elif first and values and picker.value is None:
        picker.value = values[0]


class Panel:
    """A group of controls bound to one :class:`~mocksim.Fleet`, shown as one ipywidgets box.

    Subclasses build their controls and call ``super().__init__`` with them; ``widget`` is the
    box to display (the panel displays itself in a notebook, too), ``output`` its message log.
    """

    def __init__(self, fleet: Fleet, title: str, children: list[Any]) -> None:
        self.fleet = fleet
        self.output = widgets.Output(layout=widgets.Layout(max_height="9em", overflow="auto"))
        self.output.add_class("mocksim-output")
        self.title = widgets.HTML(f"<b>{html.escape(title)}</b>")
        self.widget = widgets.VBox(
            [self.title, *children, self.output],
            layout=widgets.Layout(border="1px solid #ddd", padding="4px", margin="2px"),
        )
        # The refresher thread and the kernel thread may both write messages.
        self._out_lock = threading.Lock()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    # ------------------------------------------------------------------ messages

    @property
    def messages(self) -> list[str]:
        """The text lines the Output shows now, oldest first (tests read these)."""
        return [o.get("text", "").rstrip("\n") for o in self.output.outputs]

    def say(self, text: str) -> None:
        """Show a line of information."""
        self._append("stdout", text)

    def error(self, text: str) -> None:
        """Show a line as an error."""
        self._append("stderr", text)

    def _append(self, stream: str, text: str) -> None:
        entry = {"output_type": "stream", "name": stream, "text": text.rstrip("\n") + "\n"}
        with self._out_lock:
            self.output.outputs = (*self.output.outputs, entry)[-KEEP_MESSAGES:]

    def clear(self) -> None:
        """Forget the messages shown."""
        with self._out_lock:
            self.output.outputs = ()

    def report(self, exc: BaseException) -> None:
        """Show an error so the user can fix the input: field and allowed values inline."""
        self.error(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, SpecError):
            detail = f"  field: {exc.field}"
            if exc.allowed:
                detail += f" · allowed: {exc.allowed}"
            self.error(detail)

    def call(
        self, fn: Callable[..., T], *args: Any, reraise_closed: bool = False, **kwargs: Any
    ) -> tuple[bool, T | None]:
        """Run one public Fleet call; returns ``(True, result)``, or shows the error and
        returns ``(False, None)``.

        Errors never escape into the widget machinery, where they would vanish, except
        :class:`FleetClosedError` with ``reraise_closed`` (the refresher stops on it).
        """
        try:
            return True, fn(*args, **kwargs)
        except FleetClosedError:
            if reraise_closed:
                raise
            self.error("FleetClosedError: the fleet is closed; open a new Fleet and panel")
        except (MocksimError, TimeoutError, ValueError, KeyError) as exc:
            self.report(exc)
        except Exception as exc:  # a callback's error must be seen, not lost
            logger.exception("panel call %s failed", getattr(fn, "__name__", fn))
            self.report(exc)
        return False, None

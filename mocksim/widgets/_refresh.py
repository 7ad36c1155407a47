"""Keeping panels current: a throttle (at most 5 redraws a second) and a refresher thread.

The refresher is one named daemon thread per dashboard. It calls the panels' ``refresh()``,
which read through the public Fleet API and only assign widget values (``lines.y = …``,
``html.value = …``): ipywidgets sends those from any thread. It ends on ``stop()`` or by itself
once the fleet is closed, so it never outlives the fleet by more than one interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from mocksim.errors import FleetClosedError, SpecError
from mocksim.fleet import Fleet

__all__ = ["MAX_RATE_HZ", "Refresher", "Throttle"]

logger = logging.getLogger(__name__)

#: No panel redraws more often than this.
MAX_RATE_HZ = 5.0
MIN_INTERVAL_S = 1.0 / MAX_RATE_HZ


class Throttle:
    """Lets an action through at most once per ``min_interval_s`` (monotonic clock)."""

    def __init__(self, min_interval_s: float = MIN_INTERVAL_S) -> None:
        if not min_interval_s >= MIN_INTERVAL_S:
            raise SpecError("min_interval_s", min_interval_s, f"a number >= {MIN_INTERVAL_S}")
        self.min_interval_s = min_interval_s
        self._last = -float("inf")
        self._lock = threading.Lock()

    def ready(self) -> bool:
        """True (and the clock restarts) if the last pass was long enough ago."""
        with self._lock:
            now = time.monotonic()
            if now - self._last < self.min_interval_s:
                return False
            self._last = now
            return True


class Refresher:
    """Calls ``refreshers`` every ``interval_s`` seconds on a daemon thread.

    Args:
        fleet: the fleet the panels show.
        refreshers: callables that fetch and assign; they report their own errors, and raise
            :class:`FleetClosedError` once the fleet is closed, which ends the thread.
        interval_s: seconds between rounds (>= 0.2, the 5 Hz cap).
    """

    def __init__(
        self, fleet: Fleet, refreshers: Sequence[Callable[[], object]], interval_s: float = 1.0
    ) -> None:
        if not interval_s >= MIN_INTERVAL_S:
            raise SpecError("interval_s", interval_s, f"a number of seconds >= {MIN_INTERVAL_S}")
        self.fleet = fleet
        self.interval_s = interval_s
        self._refreshers = list(refreshers)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._main, name=f"mocksim-widgets-refresh-{id(self):x}", daemon=True
        )

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (once)."""
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread and wait for it; safe to call twice or before ``start``."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    def _main(self) -> None:
        while not self._stop.wait(self.interval_s):
            for refresh in self._refreshers:
                if self._stop.is_set():
                    return
                try:
                    refresh()
                except FleetClosedError:
                    logger.debug("fleet closed; %s ends", self._thread.name)
                    return
                except Exception:  # keep refreshing the other panels
                    logger.exception("widget refresh failed")

"""Resilience for broker connections: circuit breaker, reconnect backoff, connection pacing.

All three are plain objects with an injectable clock and random generator, so their rules are
tested without a broker or a loop; the MQTT transport only asks them for decisions and delays.

Backoff is five lines here rather than tenacity's ``wait_exponential_jitter``: tenacity's wait
strategies take a ``RetryCallState`` (they are built to decorate a retried call, and our retries
are loop callbacks of many sessions), and their jitter is an absolute number of seconds added on
top, while the firmware's jitter is a fraction of the delay.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from mocksim.errors import SpecError
from mocksim.transport.base import BreakerState

__all__ = ["BackoffConfig", "BreakerConfig", "CircuitBreaker", "ConnectPacer"]

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Circuit breaker settings (the firmware's: 5 failures, 30 s open, 3 successes to close).

    Attributes:
        failures: consecutive failures that open the breaker.
        open_s: how long it stays open before letting probe connections through.
        successes_to_close: successes in half-open state that close it again.
    """

    failures: int = 5
    open_s: float = 30.0
    successes_to_close: int = 3

    def __post_init__(self) -> None:
        if self.failures < 1:
            raise SpecError("breaker.failures", self.failures, "an integer >= 1")
        if self.open_s < 0:
            raise SpecError("breaker.open_s", self.open_s, "a number of seconds >= 0")
        if self.successes_to_close < 1:
            raise SpecError(
                "breaker.successes_to_close", self.successes_to_close, "an integer >= 1"
            )


@dataclass(frozen=True, slots=True)
class BackoffConfig:
    """Reconnect backoff: ``initial_s`` multiplied by ``factor`` per attempt, capped at ``max_s``.

    ``jitter`` is a fraction: each delay is scaled by a random factor in ``1 ± jitter``, so a
    thousand sessions that lost the broker together do not come back together.
    """

    initial_s: float = 1.0
    max_s: float = 60.0
    factor: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.initial_s <= 0:
            raise SpecError("backoff.initial_s", self.initial_s, "a number of seconds > 0")
        if self.max_s < self.initial_s:
            raise SpecError(
                "backoff.max_s", self.max_s, f"a number >= initial_s ({self.initial_s})"
            )
        if self.factor < 1:
            raise SpecError("backoff.factor", self.factor, "a number >= 1")
        if not 0 <= self.jitter < 1:
            raise SpecError("backoff.jitter", self.jitter, "a fraction in [0, 1)")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt`` (1 for the first retry)."""
        base = min(self.max_s, self.initial_s * self.factor ** max(attempt - 1, 0))
        return base * (1.0 + rng.uniform(-self.jitter, self.jitter))


class CircuitBreaker:
    """A circuit breaker guarding connection attempts to one broker endpoint.

    CLOSED counts consecutive failures (any success resets the count) and opens after
    ``failures``. OPEN refuses attempts for ``open_s``, then turns HALF_OPEN, which lets up to
    ``successes_to_close`` attempts through at a time as probes: a failure re-opens it, and
    ``successes_to_close`` successes close it. Successes are successful connects and QoS 1 publishes
    the broker acknowledged.
    """

    __slots__ = (
        "_clock",
        "_failures",
        "_opened_at",
        "_probes",
        "_state",
        "_successes",
        "config",
        "opened",
    )

    def __init__(
        self, config: BreakerConfig | None = None, *, clock: Clock = time.monotonic
    ) -> None:
        self.config = config or BreakerConfig()
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._successes = 0
        self._probes = 0
        self._opened_at = 0.0
        self.opened = 0  # how often it opened

    @property
    def state(self) -> BreakerState:
        """The state now (OPEN turns HALF_OPEN by itself once ``open_s`` has passed)."""
        if self._state is BreakerState.OPEN and self.open_remaining_s() <= 0:
            self._state = BreakerState.HALF_OPEN
            self._successes = 0
            self._probes = 0
        return self._state

    def open_remaining_s(self) -> float:
        """Seconds until an OPEN breaker lets probes through (0 if not open)."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.config.open_s - self._clock())

    def allow_attempt(self) -> bool:
        """Whether a connection attempt may start now; in HALF_OPEN it takes a probe slot.

        Every allowed attempt must be followed by ``attempt_done``.
        """
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN or self._probes >= self.config.successes_to_close:
            return False
        self._probes += 1
        return True

    def attempt_done(self) -> None:
        """An allowed attempt finished (either way): free its probe slot."""
        if self._probes > 0:
            self._probes -= 1

    def record_success(self) -> bool:
        """Count a success; returns True if this closed the breaker."""
        state = self.state
        if state is BreakerState.CLOSED:
            self._failures = 0
            return False
        if state is BreakerState.HALF_OPEN:
            self._successes += 1
            if self._successes >= self.config.successes_to_close:
                self._state = BreakerState.CLOSED
                self._failures = 0
                self._probes = 0
                return True
        return False  # successes while OPEN (a session that stayed up) change nothing

    def record_failure(self) -> bool:
        """Count a failure; returns True if this opened the breaker."""
        state = self.state
        if state is BreakerState.OPEN:
            return False
        if state is BreakerState.CLOSED:
            self._failures += 1
            if self._failures < self.config.failures:
                return False
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._failures = 0
        self._successes = 0
        self.opened += 1
        return True


class ConnectPacer:
    """Spaces connection attempts ``1 / rate_per_s`` apart, plus up to one interval of jitter.

    Without it a thousand sessions (or a thousand reconnects after an outage) would hit the
    broker in the same millisecond: a connection storm.
    """

    __slots__ = ("_clock", "_interval", "_next", "_rng")

    def __init__(
        self, rate_per_s: float, rng: random.Random, *, clock: Clock = time.monotonic
    ) -> None:
        if rate_per_s <= 0:
            raise SpecError("connect_rate_per_s", rate_per_s, "a rate > 0")
        self._interval = 1.0 / rate_per_s
        self._rng = rng
        self._clock = clock
        self._next = 0.0

    def reserve(self) -> float:
        """Reserve the next slot; returns the seconds to wait before connecting."""
        now = self._clock()
        slot = max(now, self._next)
        self._next = slot + self._interval
        return slot - now + self._rng.uniform(0.0, self._interval)

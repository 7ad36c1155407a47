"""The one timer heap that drives every periodic and one-shot job of every device.

A single heap of ``(due, seq, entry)`` holds all jobs; ``seq`` is a counter that breaks
ties, so jobs due at the same time fire in the order they were scheduled and every run in
virtual time is deterministic (the SimPy kernel's design). There is no task per job and no
polling: in real time the loop arms one ``loop.call_later`` timer for the earliest due time
and re-arms it when an earlier job arrives. Firings due within ``slack_s`` of the wake-up
are fired in the same batch, because a wake-up costs far more CPU than a firing.

The two clocks differ only in how time moves: :meth:`Scheduler.advance` moves a
:class:`VirtualClock` from due time to due time as fast as the CPU allows, and
:meth:`Scheduler.run` sleeps on a :class:`RealClock`. Both fire through the same code.

Not thread-safe: call every method on the thread that runs :meth:`Scheduler.run` (the
fleet's loop thread), or on any one thread when driving a virtual clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import itertools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from mocksim.errors import SpecError

__all__ = [
    "Clock",
    "Job",
    "JobCallback",
    "JobKey",
    "JobKind",
    "RealClock",
    "Scheduler",
    "SchedulerStats",
    "VirtualClock",
]

logger = logging.getLogger(__name__)

#: 2026-01-01T00:00:00Z: virtual time is Unix seconds, so a virtual run has real dates.
DEFAULT_VIRTUAL_START = 1_767_225_600.0
#: Firings per wake-up before the loop yields, so MQTT I/O is not starved by a big batch.
_MAX_BATCH = 1000
#: Recent lateness samples kept for the p50/p99 in :meth:`Scheduler.stats` (power of two).
_LAG_RING = 4096
#: Tombstones tolerated in the heap before it is rebuilt without them.
_MIN_COMPACT = 1024


# --------------------------------------------------------------------------- clocks


@runtime_checkable
class Clock(Protocol):
    """Where the scheduler reads the time: seconds on a monotonic scale."""

    def now(self) -> float:
        """The current clock time in seconds."""
        ...

    def wall_time(self, t: float) -> float:
        """Unix seconds for clock time ``t`` (devices stamp payloads with this)."""
        ...


class RealClock:
    """``time.monotonic`` time, mapped to Unix seconds by an offset fixed at construction.

    The offset is fixed so that wall times derived from due times stay evenly spaced even if
    NTP steps the system clock while a fleet runs.
    """

    def __init__(self) -> None:
        self._offset = time.time() - time.monotonic()

    def now(self) -> float:
        """Monotonic seconds."""
        return time.monotonic()

    def wall(self) -> float:
        """Unix seconds now (``time.time()``)."""
        return time.time()

    def wall_time(self, t: float) -> float:
        """Unix seconds for monotonic time ``t``."""
        return t + self._offset

    def to_wall(self, t: float) -> float:
        """Same as :meth:`wall_time` (kept for callers that use this name)."""
        return t + self._offset


class VirtualClock:
    """Simulated time in Unix seconds that moves only through :meth:`advance` or :meth:`set`.

    Args:
        start: the first time, Unix seconds (default 2026-01-01T00:00:00Z).
    """

    def __init__(self, start: float = DEFAULT_VIRTUAL_START) -> None:
        if not math.isfinite(start):
            raise SpecError("start", start, message=f"start: {start!r} is not a finite time")
        self._now = float(start)

    def now(self) -> float:
        """The current virtual time (Unix seconds)."""
        return self._now

    def wall(self) -> float:
        """Unix seconds now: virtual time already is Unix time."""
        return self._now

    def wall_time(self, t: float) -> float:
        """Unix seconds for virtual time ``t``: the identity."""
        return t

    def to_wall(self, t: float) -> float:
        """Same as :meth:`wall_time`."""
        return t

    def set(self, t: float) -> None:
        """Move the clock to ``t``.

        Raises:
            SpecError: ``t`` lies before the current time (time never runs backwards).
        """
        if not t >= self._now:  # also rejects NaN
            raise SpecError(
                "t", t, message=f"t: {t!r} is before the virtual clock's now {self._now!r}"
            )
        self._now = float(t)

    def advance(self, dt: float) -> None:
        """Move the clock forward by ``dt`` seconds.

        Raises:
            SpecError: ``dt`` is negative.
        """
        if not dt >= 0:
            raise SpecError("dt", dt, message=f"dt: {dt!r} must be >= 0 seconds")
        self._now += dt


# --------------------------------------------------------------------------- values


class JobKind(StrEnum):
    """What a job does; one device has at most one job per (kind, name)."""

    HEARTBEAT = "heartbeat"
    SENSOR = "sensor"
    AUTO_OFF = "auto_off"
    WATCHDOG = "watchdog"
    CHECKPOINT = "checkpoint"
    OTHER = "other"  # fleet-internal jobs use this with device_id ""


@dataclass(frozen=True, slots=True)
class JobKey:
    """Identity of one job: the device, the kind of job and a name within that kind."""

    device_id: str
    kind: JobKind
    name: str

    def __str__(self) -> str:
        return f"{self.device_id}/{self.kind.value}/{self.name}"


#: Called as ``callback(key, due)`` with the scheduled due time (clock seconds).
JobCallback = Callable[[JobKey, float], None]


@dataclass(frozen=True, slots=True)
class Job:
    """Snapshot of one scheduled job, for listing."""

    key: JobKey
    interval_s: float | None  # None for a one-shot job
    next_due: float  # clock seconds
    fired: int
    misfires: int  # periodic firings skipped (coalesced) after a stall


@dataclass(frozen=True, slots=True)
class SchedulerStats:
    """Counters since the scheduler was made; lag percentiles over recent firings."""

    jobs: int
    fired: int
    misfires: int
    callback_errors: int
    lag_p50_ms: float
    lag_p99_ms: float
    wakeups: int  # real-time timer wake-ups (0 in virtual time)


class _Entry:
    """The mutable state of one job; lives in the heap, so it is a slotted class.

    ``seq`` is the counter of the heap item that is currently valid for this entry, or -1
    when the entry has none (being fired, or removed). Heap items whose ``seq`` differs are
    tombstones left by remove/retime and are skipped when popped (lazy deletion).
    """

    __slots__ = (
        "anchor",
        "callback",
        "due",
        "fired",
        "interval",
        "key",
        "last_due",
        "misfires",
        "n",
        "seq",
    )

    def __init__(
        self, key: JobKey, callback: JobCallback, interval: float | None, due: float
    ) -> None:
        self.key = key
        self.callback = callback
        self.interval = interval
        # Slot n of a periodic job is due at anchor + n * interval: computed, not summed,
        # so no rounding error accumulates (at 1.7e9 s one float step is 2.4e-7 s).
        self.anchor = due
        self.n = 0
        self.due = due
        self.seq = -1
        self.fired = 0
        self.misfires = 0
        self.last_due: float | None = None


def _key_fraction(key: JobKey) -> float:
    """A stable number in [0, 1) from the key: the same in every process and every run."""
    raw = f"{key.device_id}\x1f{key.kind.value}\x1f{key.name}".encode()
    digest = hashlib.blake2b(raw, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def _check_interval(field: str, interval_s: float | None) -> None:
    if interval_s is not None and not (math.isfinite(interval_s) and interval_s > 0):
        raise SpecError(
            field,
            interval_s,
            message=f"{field}: {interval_s!r} must be a positive number of seconds or None",
        )


def _check_time(field: str, t: float) -> None:
    if not math.isfinite(t):
        raise SpecError(field, t, message=f"{field}: {t!r} is not a finite time")


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# --------------------------------------------------------------------------- scheduler


class Scheduler:
    """One heap of due times for every job of every device.

    Args:
        clock: a :class:`RealClock` for :meth:`run`, a :class:`VirtualClock` for
            :meth:`advance`.
        slack_s: in real time, jobs due within this many seconds after a wake-up fire in the
            same batch (up to ``slack_s`` early) instead of costing their own wake-up.
        spread_s: first firings of jobs added without ``first_due`` are spread over
            ``min(interval, spread_s)`` seconds; None spreads over the whole interval.

    Raises:
        SpecError: ``slack_s`` is negative or ``spread_s`` is not positive.
    """

    def __init__(
        self, clock: Clock, *, slack_s: float = 0.002, spread_s: float | None = None
    ) -> None:
        if not (math.isfinite(slack_s) and slack_s >= 0):
            raise SpecError("slack_s", slack_s, message=f"slack_s: {slack_s!r} must be >= 0")
        _check_interval("spread_s", spread_s)
        self._clock = clock
        self._slack = float(slack_s)
        self._spread = spread_s
        self._heap: list[tuple[float, int, _Entry]] = []
        self._seq = itertools.count()
        self._entries: dict[JobKey, _Entry] = {}
        self._by_device: dict[str, set[JobKey]] = {}
        self._dead = 0  # tombstones in the heap
        self._firing = False
        # counters
        self._fired = 0
        self._misfires = 0
        self._errors = 0
        self._wakeups = 0
        self._lags = [0.0] * _LAG_RING
        self._lag_count = 0
        # real-time loop state, set only while run() is active
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Future[None] | None = None
        self._handle: asyncio.Handle | None = None
        self._armed_due: float | None = None

    # ------------------------------------------------------------------ editing jobs

    @property
    def clock(self) -> Clock:
        """The clock this scheduler reads."""
        return self._clock

    def add(
        self,
        key: JobKey,
        callback: JobCallback,
        *,
        interval_s: float | None,
        first_due: float | None = None,
        phase: float | None = None,
    ) -> None:
        """Schedule a job; an existing job with the same key is replaced and re-timed.

        Without ``first_due``, a periodic job first fires at ``now + f * window`` where
        ``window`` is the interval (or ``spread_s`` if smaller) and ``f`` is ``phase``, or
        else a stable hash of the key: ten thousand devices added at once spread out.
        Later firings keep that phase: slot ``n`` is due at ``first_due + n * interval_s``.

        Args:
            key: the job's identity.
            callback: called as ``callback(key, due)``; may add, remove or re-time jobs.
            interval_s: seconds between firings, or None for a one-shot job.
            first_due: clock time of the first firing (required for one-shot jobs).
            phase: fraction in [0, 1) of the spread window, instead of the key's hash.

        Raises:
            SpecError: a bad interval, phase or first_due; both first_due and phase given;
                a one-shot job without first_due. Nothing is changed then.
        """
        _check_interval("interval_s", interval_s)
        if first_due is not None:
            _check_time("first_due", first_due)
            if phase is not None:
                raise SpecError("phase", phase, message="phase: give first_due or phase, not both")
        elif interval_s is None:
            raise SpecError(
                "first_due", None, message="first_due: a one-shot job (interval_s=None) needs it"
            )
        if phase is not None and not 0.0 <= phase < 1.0:
            raise SpecError("phase", phase, message=f"phase: {phase!r} is not in [0, 1)")

        if first_due is None:
            assert interval_s is not None
            window = interval_s if self._spread is None else min(interval_s, self._spread)
            frac = _key_fraction(key) if phase is None else phase
            first_due = self._clock.now() + frac * window

        entry = _Entry(key, callback, interval_s, float(first_due))
        old = self._entries.get(key)
        if old is not None:
            entry.fired, entry.misfires = old.fired, old.misfires
            self._invalidate(old)
        else:
            self._by_device.setdefault(key.device_id, set()).add(key)
        self._entries[key] = entry
        self._push(entry)

    def remove(self, key: JobKey) -> bool:
        """Unschedule a job; returns False when there was no such job."""
        entry = self._entries.pop(key, None)
        if entry is None:
            return False
        self._unindex(key)
        self._invalidate(entry)
        return True

    def remove_device(self, device_id: str) -> int:
        """Unschedule every job of one device; returns how many were removed."""
        keys = self._by_device.pop(device_id, None)
        if not keys:
            return 0
        for key in keys:
            self._invalidate(self._entries.pop(key))
        return len(keys)

    def retime(
        self, key: JobKey, interval_s: float | None, *, next_due: float | None = None
    ) -> bool:
        """Change a job's interval and next due time; returns False when there is no such job.

        Without ``next_due`` a periodic job keeps its rhythm: the next firing is the first
        slot ``last + k * interval_s`` (k >= 1) not before now, where ``last`` is the due
        time of its last firing. A one-shot job turned periodic fires ``interval_s`` from now.

        Raises:
            SpecError: a bad interval or next_due, or a one-shot re-time without next_due.
        """
        _check_interval("interval_s", interval_s)
        if next_due is not None:
            _check_time("next_due", next_due)
        entry = self._entries.get(key)
        if entry is None:
            return False
        if next_due is None:
            if interval_s is None:
                raise SpecError(
                    "next_due", None, message="next_due: re-timing to a one-shot job needs it"
                )
            now = self._clock.now()
            if entry.interval is None:
                next_due = now + interval_s
            else:
                base = entry.last_due if entry.last_due is not None else entry.due - entry.interval
                k = max(1, math.ceil((now - base) / interval_s))
                next_due = base + k * interval_s
        self._invalidate(entry)
        entry.interval = interval_s
        entry.anchor = entry.due = float(next_due)
        entry.n = 0
        self._push(entry)
        return True

    # ------------------------------------------------------------------ reading

    def has(self, key: JobKey) -> bool:
        """Whether a job with this key is scheduled."""
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def jobs(self, device_id: str | None = None) -> list[Job]:
        """Snapshot of the scheduled jobs (of one device, or all), soonest first."""
        if device_id is None:
            entries = list(self._entries.values())
        else:
            entries = [self._entries[k] for k in self._by_device.get(device_id, ())]
        entries.sort(key=lambda e: (e.due, e.seq))
        return [Job(e.key, e.interval, e.due, e.fired, e.misfires) for e in entries]

    def stats(self) -> SchedulerStats:
        """Counters, and lateness percentiles over the last 4,096 firings."""
        ordered = sorted(self._lags[: min(self._lag_count, _LAG_RING)])
        return SchedulerStats(
            jobs=len(self._entries),
            fired=self._fired,
            misfires=self._misfires,
            callback_errors=self._errors,
            lag_p50_ms=_percentile(ordered, 0.50) * 1e3,
            lag_p99_ms=_percentile(ordered, 0.99) * 1e3,
            wakeups=self._wakeups,
        )

    # ------------------------------------------------------------------ virtual time

    def advance(self, until: float) -> int:
        """Fire, in (due, seq) order, every job due at or before ``until``; return the count.

        The virtual clock is set to each due time before its job fires and to ``until`` at
        the end, so callbacks read the time they were scheduled for.

        Raises:
            SpecError: the clock is not a VirtualClock, or ``until`` lies in the past.
            RuntimeError: called from inside a job callback.
        """
        clock = self._clock
        if not isinstance(clock, VirtualClock):
            raise SpecError(
                "clock",
                type(clock).__name__,
                "VirtualClock",
                message=f"advance() needs a VirtualClock, not {type(clock).__name__}; "
                "use run() in real time",
            )
        if not until >= clock.now():
            raise SpecError(
                "until", until, message=f"until: {until!r} is before now {clock.now()!r}"
            )
        if self._firing:
            raise RuntimeError("advance() was called from inside a job callback")
        heap = self._heap
        fired = 0
        self._firing = True
        try:
            while heap and heap[0][0] <= until:
                due, seq, entry = heapq.heappop(heap)
                if seq != entry.seq:
                    self._dead -= 1
                    continue
                entry.seq = -1
                if due > clock.now():
                    clock.set(due)
                now = clock.now()
                self._fire(entry, now, now)
                fired += 1
        finally:
            self._firing = False
        if until > clock.now():  # a callback may have moved the clock past until already
            clock.set(until)
        return fired

    # ------------------------------------------------------------------ real time

    async def run(self) -> None:
        """Fire jobs in real time on the running event loop until :meth:`stop` is called.

        Jobs can be added, removed and re-timed while this runs (from the same loop).

        Raises:
            SpecError: the clock is a VirtualClock (use :meth:`advance`).
            RuntimeError: run() is already active.
        """
        if isinstance(self._clock, VirtualClock):
            raise SpecError(
                "clock",
                "VirtualClock",
                "RealClock",
                message="run() needs a real clock; drive a VirtualClock with advance()",
            )
        if self._loop is not None:
            raise RuntimeError("Scheduler.run() is already active")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stop = loop.create_future()
        try:
            self._arm()
            await self._stop
        finally:
            if self._handle is not None:
                self._handle.cancel()
            self._handle = self._armed_due = None
            self._loop = self._stop = None

    def stop(self) -> None:
        """End :meth:`run`; a no-op when it is not running. Jobs stay scheduled."""
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(None)

    def _arm(self) -> None:
        """Set the one timer to the earliest live due time."""
        heap = self._heap
        while heap and heap[0][1] != heap[0][2].seq:
            heapq.heappop(heap)
            self._dead -= 1
        if not heap or self._loop is None:
            return
        self._arm_at(heap[0][0])

    def _arm_at(self, due: float) -> None:
        assert self._loop is not None
        if self._handle is not None:
            if self._armed_due is not None and self._armed_due <= due:
                return
            self._handle.cancel()
        self._armed_due = due
        delay = max(0.0, due - self._clock.now())
        self._handle = self._loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._handle = self._armed_due = None
        if self._stop is None or self._stop.done():
            return
        self._wakeups += 1
        now = self._clock.now()
        horizon = now + self._slack
        heap = self._heap
        budget = _MAX_BATCH
        self._firing = True
        try:
            while heap and heap[0][0] <= horizon:
                _due, seq, entry = heapq.heappop(heap)
                if seq != entry.seq:
                    self._dead -= 1
                    continue
                entry.seq = -1
                self._fire(entry, now, horizon)
                budget -= 1
                if budget == 0:
                    break
        finally:
            self._firing = False
        if self._stop is None or self._stop.done() or self._loop is None:
            return
        if budget == 0 and heap and heap[0][0] <= horizon:
            # A big batch: let the loop run I/O, then carry on at once.
            self._armed_due = -math.inf
            self._handle = self._loop.call_soon(self._on_timer)
        else:
            self._arm()

    # ------------------------------------------------------------------ internals

    def _fire(self, entry: _Entry, now: float, horizon: float) -> None:
        """Fire one popped entry: reschedule it first, then call back.

        Rescheduling before the callback lets the callback remove or re-time its own job,
        and keeps the schedule when the callback raises. A periodic job behind by whole
        intervals fires once for the latest slot not after ``horizon``; the skipped slots
        are counted as misfires and the next due is the following slot of the same phase.
        """
        first = entry.due
        interval = entry.interval
        skipped = 0
        if interval is None:
            slot = first
            del self._entries[entry.key]
            self._unindex(entry.key)
        else:
            n = entry.n
            anchor = entry.anchor
            nxt = anchor + (n + 1) * interval
            if nxt <= horizon:
                skipped = max(0, math.floor((horizon - first) / interval))
                n += skipped
                nxt = anchor + (n + 1) * interval
                while nxt <= horizon:  # floor() may fall one short in floating point
                    n += 1
                    skipped += 1
                    nxt = anchor + (n + 1) * interval
            slot = anchor + n * interval if skipped else first
            entry.n = n + 1
            entry.due = nxt
            # _push() inlined (hot path); no re-arming while firing, the caller re-arms.
            seq = next(self._seq)
            entry.seq = seq
            heapq.heappush(self._heap, (nxt, seq, entry))
        entry.fired += 1
        entry.last_due = slot
        self._fired += 1
        if skipped:
            entry.misfires += skipped
            self._misfires += skipped
        lag = now - first
        self._lags[self._lag_count & (_LAG_RING - 1)] = lag if lag > 0.0 else 0.0
        self._lag_count += 1
        try:
            entry.callback(entry.key, slot)
        except Exception:
            self._errors += 1
            logger.exception("scheduler job %s raised; it keeps its schedule", entry.key)

    def _push(self, entry: _Entry) -> None:
        seq = next(self._seq)
        entry.seq = seq
        heapq.heappush(self._heap, (entry.due, seq, entry))
        if (
            self._loop is not None
            and not self._firing
            and (self._armed_due is None or entry.due < self._armed_due)
        ):
            self._arm_at(entry.due)

    def _invalidate(self, entry: _Entry) -> None:
        """Turn the entry's heap item into a tombstone; rebuild the heap when they pile up."""
        if entry.seq == -1:
            return
        entry.seq = -1
        self._dead += 1
        heap = self._heap
        if self._dead > _MIN_COMPACT and self._dead * 2 > len(heap):
            # In place: a firing loop may hold a reference to this list.
            heap[:] = [item for item in heap if item[1] == item[2].seq]
            heapq.heapify(heap)
            self._dead = 0

    def _unindex(self, key: JobKey) -> None:
        keys = self._by_device.get(key.device_id)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_device[key.device_id]

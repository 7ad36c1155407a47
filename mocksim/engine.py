"""The engine: runs pure devices on the one scheduler and hands their messages to a sink.

The engine is the glue between :class:`~mocksim.device.Device` (pure) and
:class:`~mocksim.scheduler.Scheduler` (timers). It turns a device's :class:`Step` into
scheduler jobs and published messages. It does no I/O itself: the fleet gives it a publish
function backed by the MQTT transport; :func:`mocksim.virtual.simulate` gives it a list.

Device time is Unix seconds. The scheduler's clock may differ (monotonic in real time) and may
run faster (``time_factor`` > 1, used by ``MOCKSIM_FAST``): every interval and delay is divided
by the factor, while message timestamps stay the device's own clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from mocksim.device import Device, Step, Timer, TimerKind
from mocksim.protocol.message import Message
from mocksim.scheduler import JobKey, JobKind, Scheduler
from mocksim.spec import DeviceSpec

__all__ = ["DeviceCounters", "Engine"]

logger = logging.getLogger(__name__)

_JOB_KIND = {
    TimerKind.HEARTBEAT: JobKind.HEARTBEAT,
    TimerKind.SENSOR: JobKind.SENSOR,
    TimerKind.AUTO_OFF: JobKind.AUTO_OFF,
    TimerKind.RUNTIME: JobKind.AUTO_OFF,
    TimerKind.TRAVEL: JobKind.AUTO_OFF,
    TimerKind.WATCHDOG: JobKind.WATCHDOG,
}


def job_key(device_id: str, timer_name: str) -> JobKey:
    """The scheduler key of a device timer (its kind follows from the name's prefix)."""
    prefix = timer_name.partition(":")[0]
    return JobKey(device_id, _JOB_KIND[TimerKind(prefix)], timer_name)


@dataclass(slots=True)
class DeviceCounters:
    """What one device produced in this process: messages handed to the sink, and rejects."""

    produced: int = 0
    suppressed: int = 0  # produced while paused and not published (actuator deadlines)
    rejected: int = 0
    last_publish: float | None = None


@dataclass(slots=True)
class _Slot:
    device: Device
    active: bool = False  # timers scheduled (running, not paused)
    counters: DeviceCounters = field(default_factory=DeviceCounters)


Publish = Callable[[str, Message], object]
SpecChanged = Callable[[str, DeviceSpec], None]
RestartSession = Callable[[str], None]


class Engine:
    """Devices on one scheduler.

    Args:
        scheduler: the one scheduler (real or virtual clock).
        publish: called as ``publish(device_id, message)`` for every message a device sends.
        time_factor: run every timer this many times sooner (``MOCKSIM_FAST``).
        on_spec_change: a device changed its own configuration (zone assign, config push).
        on_restart_session: a device rebooted and needs a fresh MQTT session.
    """

    def __init__(
        self,
        scheduler: Scheduler,
        publish: Publish,
        *,
        time_factor: float = 1.0,
        on_spec_change: SpecChanged | None = None,
        on_restart_session: RestartSession | None = None,
    ) -> None:
        self.scheduler = scheduler
        self._publish = publish
        self._factor = float(time_factor)
        self._on_spec_change = on_spec_change
        self._on_restart = on_restart_session
        self._slots: dict[str, _Slot] = {}

    # ------------------------------------------------------------------ time

    def now(self) -> float:
        """Device time (Unix seconds) for the scheduler's current time."""
        clock = self.scheduler.clock
        return clock.wall_time(clock.now())

    def _clock_due(self, due_wall: float) -> float:
        clock = self.scheduler.clock
        now = clock.now()
        return now + max(0.0, due_wall - clock.wall_time(now)) / self._factor

    # ------------------------------------------------------------------ devices

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._slots

    def __len__(self) -> int:
        return len(self._slots)

    def ids(self) -> list[str]:
        """Ids of every device the engine holds."""
        return list(self._slots)

    def device(self, device_id: str) -> Device:
        """The device model; KeyError if absent."""
        return self._slots[device_id].device

    def counters(self, device_id: str) -> DeviceCounters:
        """Counters of one device."""
        return self._slots[device_id].counters

    def is_active(self, device_id: str) -> bool:
        """Whether the device's timers are scheduled (running, not paused or stopped)."""
        slot = self._slots.get(device_id)
        return slot is not None and slot.active

    def add(self, device: Device, *, reason: str = "POWERON", active: bool = True) -> None:
        """Boot a device and, when ``active``, schedule its timers."""
        slot = _Slot(device)
        self._slots[device.id] = slot
        step = device.boot(self.now(), reason)
        if active:
            slot.active = True
            self.apply(device.id, step)

    def remove(self, device_id: str) -> Device | None:
        """Forget a device and unschedule every timer of it."""
        self.scheduler.remove_device(device_id)
        slot = self._slots.pop(device_id, None)
        return None if slot is None else slot.device

    def pause(self, device_id: str) -> None:
        """Stop heartbeats and readings: the device publishes nothing until resumed.

        Actuator deadlines (auto-off, max-runtime protection, valve travel) keep running, as
        the board's own safety would; what they change is published on resume.
        """
        slot = self._slots[device_id]
        slot.active = False
        for job in self.scheduler.jobs(device_id):
            if job.key.kind is not JobKind.AUTO_OFF:
                self.scheduler.remove(job.key)

    def resume(self, device_id: str) -> None:
        """Schedule the device's timers again (sensors continue from their last values)."""
        slot = self._slots[device_id]
        if slot.active:
            return
        slot.active = True
        now = self.now()
        self._schedule(device_id, slot.device.timers(now))
        self.apply(device_id, slot.device.actuator_statuses(now))

    # ------------------------------------------------------------------ inputs

    def connected(self, device_id: str, *, reconnect: bool) -> None:
        """The device's session is up: announce and heartbeat (if it is running)."""
        slot = self._slots.get(device_id)
        if slot is None or not slot.active:
            return
        self.apply(device_id, slot.device.on_connected(self.now(), reconnect=reconnect))

    def run(self, device_id: str, fn: Callable[[Device, float], Step]) -> Step:
        """Call ``fn(device, now)`` and apply the step it returns (for fleet verbs)."""
        slot = self._slots[device_id]
        step = fn(slot.device, self.now())
        self.apply(device_id, step)
        return step

    def apply(self, device_id: str, step: Step) -> None:
        """Publish a step's messages and apply its timer changes."""
        slot = self._slots.get(device_id)
        if slot is None:
            return
        for name in step.cancel:
            self.scheduler.remove(job_key(device_id, name))
        if slot.active:
            self._schedule(device_id, step.timers)
        else:
            # Paused: only actuator deadlines run; nothing is published until resume.
            self._schedule(
                device_id, [t for t in step.timers if _JOB_KIND[t.kind] is JobKind.AUTO_OFF]
            )
            if step.messages:
                slot.counters.suppressed += len(step.messages)
                step = Step(
                    spec=step.spec, restart_session=step.restart_session, rejected=step.rejected
                )
        if step.messages:
            counters = slot.counters
            for msg in step.messages:
                self._publish(device_id, msg)
            counters.produced += len(step.messages)
            counters.last_publish = self.now()
        if step.rejected:
            slot.counters.rejected += 1
            logger.debug("%s: ignored: %s", device_id, step.rejected)
        if step.spec is not None and self._on_spec_change is not None:
            self._on_spec_change(device_id, step.spec)
        if step.restart_session and self._on_restart is not None:
            self._on_restart(device_id)

    def _schedule(self, device_id: str, timers: Iterable[Timer]) -> None:
        for t in timers:
            interval = None if t.interval_s is None else t.interval_s / self._factor
            first = None if t.due is None else self._clock_due(t.due)
            self.scheduler.add(
                job_key(device_id, t.name), self._fire, interval_s=interval, first_due=first
            )

    def _fire(self, key: JobKey, due: float) -> None:
        slot = self._slots.get(key.device_id)
        if slot is None:
            return
        now = self.scheduler.clock.wall_time(due)
        step = slot.device.on_timer(now, key.name)
        self.apply(key.device_id, step)

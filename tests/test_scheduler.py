"""The timer heap: ordering, phase, re-timing, misfires, spread, errors, real-time waking."""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections import Counter

import pytest

from mocksim.errors import SpecError
from mocksim.scheduler import (
    Job,
    JobKey,
    JobKind,
    RealClock,
    Scheduler,
    VirtualClock,
)

T0 = 1_767_225_600.0


def key(device: str, name: str = "s", kind: JobKind = JobKind.SENSOR) -> JobKey:
    return JobKey(device, kind, name)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(T0)


@pytest.fixture
def sched(clock: VirtualClock) -> Scheduler:
    return Scheduler(clock)


class Log:
    """A callback that records (key, due, now) for every firing."""

    def __init__(self, clock: VirtualClock | RealClock) -> None:
        self.clock = clock
        self.calls: list[tuple[JobKey, float, float]] = []

    def __call__(self, k: JobKey, due: float) -> None:
        self.calls.append((k, due, self.clock.now()))

    def fired_keys(self) -> list[JobKey]:
        return [c[0] for c in self.calls]


# -- order and determinism -------------------------------------------------------------------


def test_jobs_fire_in_due_order_and_ties_in_insertion_order(clock, sched):
    log = Log(clock)
    a, b, c, d = key("a"), key("b"), key("c"), key("d")
    sched.add(c, log, interval_s=None, first_due=T0 + 2)
    sched.add(b, log, interval_s=None, first_due=T0 + 1)
    sched.add(d, log, interval_s=None, first_due=T0 + 1)  # same time as b, added later
    sched.add(a, log, interval_s=None, first_due=T0 + 1)
    assert sched.advance(T0 + 5) == 4
    assert log.fired_keys() == [b, d, a, c]
    assert [due for _, due, _ in log.calls] == [T0 + 1, T0 + 1, T0 + 1, T0 + 2]


def test_callback_sees_the_virtual_clock_at_its_due_time(clock, sched):
    log = Log(clock)
    sched.add(key("a"), log, interval_s=1.5, first_due=T0 + 0.5)
    sched.advance(T0 + 4)
    assert [(due, now) for _, due, now in log.calls] == [
        (T0 + 0.5, T0 + 0.5),
        (T0 + 2.0, T0 + 2.0),
        (T0 + 3.5, T0 + 3.5),
    ]
    assert clock.now() == T0 + 4


def test_two_identical_runs_fire_identically():
    def run() -> list[tuple[JobKey, float, float]]:
        clock = VirtualClock(T0)
        sched = Scheduler(clock)
        log = Log(clock)
        for i in range(200):
            sched.add(key(f"d{i}", "hb", JobKind.HEARTBEAT), log, interval_s=7.0)
            sched.add(key(f"d{i}"), log, interval_s=1.0)
        sched.advance(T0 + 30)
        return log.calls

    first, second = run(), run()
    assert len(first) > 6000
    assert first == second


def test_advance_returns_the_number_of_firings_and_moves_the_clock(clock, sched):
    sched.add(key("a"), lambda k, d: None, interval_s=0.25, first_due=T0)
    assert sched.advance(T0 + 1) == 5  # T0, .25, .5, .75, 1.0
    assert sched.advance(T0 + 1) == 0
    assert clock.now() == T0 + 1


# -- periodic phase --------------------------------------------------------------------------


def test_periodic_job_keeps_its_phase_without_drift(clock, sched):
    log = Log(clock)
    sched.add(key("a"), log, interval_s=0.1, first_due=T0 + 0.05)
    sched.advance(T0 + 10_000.0)
    dues = [due for _, due, _ in log.calls]
    assert len(dues) == 100_000
    # Summing 0.1 a hundred thousand times at 1.7e9 s would drift by milliseconds.
    assert dues[-1] == pytest.approx(T0 + 0.05 + 99_999 * 0.1, abs=1e-6)
    assert all(abs(due - (T0 + 0.05 + i * 0.1)) < 1e-6 for i, due in enumerate(dues))


def test_late_callback_does_not_shift_the_next_due(clock, sched):
    """A slow body in virtual time still leaves the next slot at previous due + interval."""

    def slow(k: JobKey, due: float) -> None:
        clock.set(due + 0.4)  # the body "took" 0.4 s

    sched.add(key("a"), slow, interval_s=1.0, first_due=T0 + 1)
    sched.advance(T0 + 1)
    assert sched.jobs()[0].next_due == T0 + 2


# -- editing while running -------------------------------------------------------------------


def test_callback_can_retime_its_own_job(clock, sched):
    log = Log(clock)
    k = key("a")

    def cb(kk: JobKey, due: float) -> None:
        log(kk, due)
        if len(log.calls) == 2:
            assert sched.retime(kk, 5.0)

    sched.add(k, cb, interval_s=1.0, first_due=T0 + 1)
    sched.advance(T0 + 20)
    assert [due - T0 for _, due, _ in log.calls] == [1, 2, 7, 12, 17]


def test_callback_can_remove_itself_and_others(clock, sched):
    log = Log(clock)
    a, b = key("a"), key("b")

    def cb_a(kk: JobKey, due: float) -> None:
        log(kk, due)
        sched.remove(b)
        sched.remove(a)

    sched.add(a, cb_a, interval_s=1.0, first_due=T0 + 1)
    sched.add(b, log, interval_s=1.0, first_due=T0 + 1)  # due in the same instant, after a
    assert sched.advance(T0 + 10) == 1
    assert log.fired_keys() == [a]
    assert len(sched) == 0


def test_one_shot_callback_can_reschedule_its_own_key(clock, sched):
    log = Log(clock)
    k = key("pump", "auto_off", JobKind.AUTO_OFF)

    def cb(kk: JobKey, due: float) -> None:
        log(kk, due)
        assert not sched.has(kk)  # a one-shot job is gone once it fires
        if len(log.calls) < 3:
            sched.add(kk, cb, interval_s=None, first_due=due + 2)

    sched.add(k, cb, interval_s=None, first_due=T0 + 1)
    sched.advance(T0 + 100)
    assert [due - T0 for _, due, _ in log.calls] == [1, 3, 5]
    assert not sched.has(k)


def test_callback_adding_a_job_due_now_fires_it_in_the_same_advance(clock, sched):
    log = Log(clock)

    def cb(kk: JobKey, due: float) -> None:
        log(kk, due)
        sched.add(key("late"), log, interval_s=None, first_due=clock.now())

    sched.add(key("a"), cb, interval_s=None, first_due=T0 + 1)
    sched.advance(T0 + 1)
    assert log.fired_keys() == [key("a"), key("late")]


def test_retime_keeps_the_rhythm_of_the_last_firing(clock, sched):
    log = Log(clock)
    k = key("a")
    sched.add(k, log, interval_s=10.0, first_due=T0 + 10)
    sched.advance(T0 + 13)  # fired at T0+10
    assert sched.retime(k, 2.0)
    assert sched.jobs()[0].next_due == T0 + 14  # 10 + 2k, the first not before 13
    assert sched.retime(k, 3.0, next_due=T0 + 13.5)
    sched.advance(T0 + 20)
    assert [due - T0 for _, due, _ in log.calls] == [10, 13.5, 16.5, 19.5]


def test_replacing_a_key_retimes_it_and_keeps_one_job(clock, sched):
    log = Log(clock)
    k = key("a")
    sched.add(k, log, interval_s=1.0, first_due=T0 + 1)
    sched.add(k, log, interval_s=5.0, first_due=T0 + 3)
    assert len(sched) == 1
    sched.advance(T0 + 10)
    assert [due - T0 for _, due, _ in log.calls] == [3, 8]


def test_remove_and_retime_report_unknown_keys(sched):
    assert sched.remove(key("nope")) is False
    assert sched.retime(key("nope"), 1.0) is False


def test_remove_device_removes_only_that_devices_jobs(clock, sched):
    log = Log(clock)
    for dev in ("a", "b"):
        sched.add(key(dev, "hb", JobKind.HEARTBEAT), log, interval_s=60.0)
        for i in range(3):
            sched.add(key(dev, f"s{i}"), log, interval_s=1.0)
    assert sched.remove_device("a") == 4
    assert sched.remove_device("a") == 0
    assert sched.jobs("a") == []
    assert {j.key.device_id for j in sched.jobs()} == {"b"}
    sched.advance(T0 + 120)
    assert {k.device_id for k in log.fired_keys()} == {"b"}


def test_many_removals_keep_the_heap_small(clock, sched):
    for i in range(5000):
        sched.add(key(f"d{i}"), lambda k, d: None, interval_s=1.0)
    for i in range(4990):
        sched.remove(key(f"d{i}"))
    assert len(sched) == 10
    assert len(sched._heap) < 2100  # tombstones were compacted away
    assert sched.advance(T0 + 1) == 10


def test_jobs_snapshot_lists_next_due_soonest_first(clock, sched):
    sched.add(key("a", "hb", JobKind.HEARTBEAT), lambda k, d: None, interval_s=60.0, phase=0.5)
    sched.add(key("a"), lambda k, d: None, interval_s=2.0, first_due=T0 + 1)
    sched.add(key("b"), lambda k, d: None, interval_s=None, first_due=T0 + 5)
    sched.advance(T0 + 2)
    jobs = sched.jobs()
    assert jobs == [
        Job(key("a"), 2.0, T0 + 3, fired=1, misfires=0),
        Job(key("b"), None, T0 + 5, fired=0, misfires=0),
        Job(key("a", "hb", JobKind.HEARTBEAT), 60.0, T0 + 30, fired=0, misfires=0),
    ]
    assert [j.key for j in sched.jobs("b")] == [key("b")]


# -- misfires --------------------------------------------------------------------------------


def test_stalled_periodic_job_fires_once_and_counts_the_skipped_slots(clock, sched):
    log = Log(clock)
    k = key("a")
    sched.add(k, log, interval_s=1.0, first_due=T0 + 1)
    sched.advance(T0 + 1)
    # The loop stalls for 4.5 s: slots 2, 3, 4, 5 are all behind when it wakes.
    clock.set(T0 + 5.5)
    sched.advance(T0 + 5.5)
    assert [due - T0 for _, due, _ in log.calls] == [1, 5]  # once, for the latest slot
    job = sched.jobs()[0]
    assert job.misfires == 3
    assert job.next_due == T0 + 6  # the original phase, no burst
    assert sched.stats().misfires == 3
    sched.advance(T0 + 8)
    assert [due - T0 for _, due, _ in log.calls] == [1, 5, 6, 7, 8]


# -- spreading -------------------------------------------------------------------------------


def test_ten_thousand_jobs_added_at_once_spread_over_the_interval(clock, sched):
    for i in range(10_000):
        sched.add(key(f"esp-{i:05d}"), lambda k, d: None, interval_s=10.0)
    offsets = [j.next_due - T0 for j in sched.jobs()]
    assert all(0 <= o < 10.0 for o in offsets)
    per_ms = Counter(math.floor(o * 1000) for o in offsets)
    assert max(per_ms.values()) <= 8  # ~1 per ms on average; never a thundering herd
    per_second = Counter(math.floor(o) for o in offsets)
    assert len(per_second) == 10
    assert all(850 <= n <= 1150 for n in per_second.values())


def test_spread_is_stable_across_schedulers_and_respects_spread_s(clock):
    a = Scheduler(VirtualClock(T0))
    b = Scheduler(VirtualClock(T0), spread_s=2.0)
    c = Scheduler(VirtualClock(T0))
    for s in (a, b, c):
        for i in range(100):
            s.add(key(f"d{i}", "hb", JobKind.HEARTBEAT), lambda k, d: None, interval_s=60.0)
    assert [j.next_due for j in a.jobs()] == [j.next_due for j in c.jobs()]
    assert max(j.next_due for j in a.jobs()) - T0 > 30
    assert all(T0 <= j.next_due < T0 + 2.0 for j in b.jobs())


# -- errors ----------------------------------------------------------------------------------


def test_a_raising_callback_is_logged_counted_and_keeps_its_schedule(clock, sched, caplog):
    log = Log(clock)
    bad = key("bad")

    def boom(k: JobKey, due: float) -> None:
        raise ValueError("sensor exploded")

    sched.add(bad, boom, interval_s=1.0, first_due=T0 + 1)
    sched.add(key("good"), log, interval_s=1.0, first_due=T0 + 1)
    with caplog.at_level(logging.ERROR, logger="mocksim.scheduler"):
        sched.advance(T0 + 3)
    assert len(log.calls) == 3
    assert sched.stats().callback_errors == 3
    assert sched.jobs("bad")[0].next_due == T0 + 4
    assert "bad/sensor/s" in caplog.text
    assert "sensor exploded" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"interval_s": 0.0}, "interval_s"),
        ({"interval_s": -1.0}, "interval_s"),
        ({"interval_s": math.nan}, "interval_s"),
        ({"interval_s": None}, "first_due"),
        ({"interval_s": 1.0, "phase": 1.0}, "phase"),
        ({"interval_s": 1.0, "phase": 0.5, "first_due": T0}, "phase"),
        ({"interval_s": 1.0, "first_due": math.inf}, "first_due"),
    ],
)
def test_bad_add_arguments_name_the_field_and_change_nothing(sched, kwargs, field):
    with pytest.raises(SpecError) as err:
        sched.add(key("a"), lambda k, d: None, **kwargs)
    assert err.value.field == field
    assert len(sched) == 0


def test_virtual_clock_never_runs_backwards(clock, sched):
    with pytest.raises(SpecError):
        clock.set(T0 - 1)
    with pytest.raises(SpecError):
        clock.advance(-0.1)
    with pytest.raises(SpecError):
        sched.advance(T0 - 1)


def test_clocks_map_to_unix_seconds():
    virtual = VirtualClock()
    assert virtual.now() == T0
    assert virtual.wall_time(T0 + 5) == T0 + 5
    real = RealClock()
    assert abs(real.wall_time(real.now()) - time.time()) < 0.5
    assert real.to_wall(10.0) == real.wall_time(10.0)


def test_advance_refuses_a_real_clock_and_run_refuses_a_virtual_one(sched):
    with pytest.raises(SpecError):
        Scheduler(RealClock()).advance(time.monotonic() + 1)
    with pytest.raises(SpecError):
        asyncio.run(sched.run())


# -- real time -------------------------------------------------------------------------------


def test_real_time_jobs_fire_in_a_generous_window_and_stop_ends_run():
    clock = RealClock()
    sched = Scheduler(clock)
    fired: list[tuple[JobKey, float, float]] = []

    def cb(k: JobKey, due: float) -> None:
        fired.append((k, due, clock.now()))

    async def main() -> None:
        start = clock.now()
        sched.add(key("p"), cb, interval_s=0.05, first_due=start + 0.05)
        sched.add(key("o"), cb, interval_s=None, first_due=start + 0.12)
        runner = asyncio.create_task(sched.run())
        await asyncio.sleep(0.5)
        sched.stop()
        await asyncio.wait_for(runner, 1.0)

    asyncio.run(main())
    periodic = [f for f in fired if f[0] == key("p")]
    assert 5 <= len(periodic) <= 11
    assert [f[0] for f in fired].count(key("o")) == 1
    for _, due, now in fired:
        assert -0.0021 <= now - due < 0.25  # early by at most the slack, never very late
    stats = sched.stats()
    assert stats.wakeups >= 1
    assert stats.fired == len(fired)
    assert len(sched) == 1  # the periodic job stays scheduled after stop()


def test_adding_an_earlier_job_wakes_a_sleeping_run():
    clock = RealClock()
    sched = Scheduler(clock)
    fired: dict[str, float] = {}

    def cb(k: JobKey, due: float) -> None:
        fired[k.device_id] = clock.now()

    async def main() -> float:
        start = clock.now()
        sched.add(key("late"), cb, interval_s=None, first_due=start + 1.5)
        runner = asyncio.create_task(sched.run())
        await asyncio.sleep(0.05)  # run() is now asleep until start + 1.5
        sched.add(key("early"), cb, interval_s=None, first_due=start + 0.2)
        while "early" not in fired and clock.now() - start < 1.4:
            await asyncio.sleep(0.01)
        sched.stop()
        await asyncio.wait_for(runner, 1.0)
        return start

    start = asyncio.run(main())
    assert "early" in fired
    assert fired["early"] - start < 1.0  # on time, not at the old wake-up
    assert "late" not in fired


def test_real_time_stall_is_coalesced_not_burst():
    clock = RealClock()
    sched = Scheduler(clock)
    fired: list[float] = []

    async def main() -> None:
        start = clock.now()
        sched.add(
            key("p"),
            lambda k, due: fired.append(clock.now()),
            interval_s=0.05,
            first_due=start + 0.05,
        )
        runner = asyncio.create_task(sched.run())
        await asyncio.sleep(0.12)
        time.sleep(0.4)  # block the event loop: about seven slots go by
        await asyncio.sleep(0.2)
        sched.stop()
        await asyncio.wait_for(runner, 1.0)

    asyncio.run(main())
    assert sched.stats().misfires >= 3
    gaps = [b - a for a, b in itertools.pairwise(fired)]
    assert min(gaps) > 0.01  # one firing after the stall, then the normal rhythm

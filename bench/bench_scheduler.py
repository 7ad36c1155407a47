"""Scheduler benchmark: mocksim's one heap against task-per-device and APScheduler 3.11.

Covers: CPU seconds per wall second, CPU µs per firing and p50/p99 lateness at 1k / 10k /
100k devices, each with 4 jobs (a 60 s heartbeat and three sensors, 5 / 10 / 30 s by
default), with a trivial job body that appends its lateness to a list.

Designs: (a) ``mocksim.scheduler.Scheduler.run`` in real time; (b) one asyncio task per
device sleeping 100 ms and checking its due times (the refactoring guide's starting point);
(c) APScheduler 3.11 ``AsyncIOScheduler`` with one ``IntervalTrigger`` job per job.

Each case runs in its own subprocess with a hard wall-time limit, so a design that
collapses is reported as such instead of hanging the run. Nothing is written to disk.

    python bench/bench_scheduler.py            # 1k, 10k, 100k; 15 s windows
    python bench/bench_scheduler.py --quick    # 1k, 10k; 5 s windows
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mocksim.scheduler import (  # noqa: E402  (the repo root is put on sys.path first)
    JobKey,
    JobKind,
    RealClock,
    Scheduler,
    _key_fraction,
)

DESIGNS = {"a": "mocksim Scheduler.run", "b": "task per device (100 ms)", "c": "APScheduler 3.11"}


def job_table(n_devices: int, heartbeat_s: float, sensors_s: list[float]) -> list[tuple]:
    """(device index, key, interval, phase fraction) for every job, the same for all designs."""
    rows = []
    for i in range(n_devices):
        dev = f"esp-{i:06d}"
        specs = [(JobKind.HEARTBEAT, "hb", heartbeat_s)]
        specs += [(JobKind.SENSOR, f"s{j}", s) for j, s in enumerate(sensors_s)]
        for kind, name, interval in specs:
            k = JobKey(dev, kind, name)
            rows.append((i, k, interval, _key_fraction(k)))
    return rows


def summarize(samples: list[float], cpu: float, wall: float, setup_s: float, jobs: int) -> dict:
    late = sorted(max(0.0, s) for s in samples)
    n = len(late)

    def pct(q: float) -> float:
        return late[max(0, int(q * n + 0.999999) - 1)] * 1e3 if n else float("nan")

    return {
        "firings": n,
        "firings_per_s": n / wall,
        "cpu_s_per_s": cpu / wall,
        "cpu_us_per_firing": cpu / n * 1e6 if n else float("nan"),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": late[-1] * 1e3 if n else float("nan"),
        "early": sum(1 for s in samples if s < 0),
        "setup_us_per_job": setup_s / jobs * 1e6,
        "wall_s": wall,
    }


async def measure(samples: list[float], warmup: float, window: float) -> tuple[int, float, float]:
    """Sleep through the warm-up, then return (first sample index, CPU s, wall s) of a window.

    Callers pass the warm-up plus their set-up time: jobs added early in a long set-up are
    already behind when the loop starts, and the window should see the steady state.
    """
    await asyncio.sleep(warmup)
    i0, c0, w0 = len(samples), time.process_time(), time.monotonic()
    await asyncio.sleep(window)
    return i0, time.process_time() - c0, time.monotonic() - w0


def run_mocksim(rows: list[tuple], warmup: float, window: float, slack: float) -> dict:
    samples: list[float] = []
    app = samples.append
    mono = time.monotonic

    def body(key: JobKey, due: float) -> None:
        app(mono() - due)

    async def main() -> dict:
        clock = RealClock()
        sched = Scheduler(clock, slack_s=slack)
        t0 = time.perf_counter()
        for _, k, interval, frac in rows:
            sched.add(k, body, interval_s=interval, phase=frac)
        setup = time.perf_counter() - t0
        runner = asyncio.create_task(sched.run())
        i0, cpu, wall = await measure(samples, warmup + setup, window)
        sched.stop()
        await runner
        out = summarize(samples[i0:], cpu, wall, setup, len(rows))
        st = sched.stats()
        out["wakeups_per_s"] = st.wakeups / (warmup + window)
        out["misfires"] = st.misfires
        return out

    return asyncio.run(main())


def run_tasks(rows: list[tuple], warmup: float, window: float, slack: float) -> dict:
    samples: list[float] = []
    app = samples.append
    mono = time.monotonic

    async def device(dues: list[float], intervals: list[float]) -> None:
        while True:
            await asyncio.sleep(0.1)
            now = mono()
            for j in range(len(dues)):
                if now >= dues[j]:
                    app(now - dues[j])
                    d = dues[j] + intervals[j]
                    while d <= now:
                        d += intervals[j]
                    dues[j] = d

    async def main() -> dict:
        t0 = time.perf_counter()
        start = mono()
        per_dev: dict[int, tuple[list[float], list[float]]] = {}
        for i, _, interval, frac in rows:
            dues, ivs = per_dev.setdefault(i, ([], []))
            dues.append(start + frac * interval)
            ivs.append(interval)
        tasks = [asyncio.create_task(device(d, v)) for d, v in per_dev.values()]
        setup = time.perf_counter() - t0
        i0, cpu, wall = await measure(samples, warmup + setup, window)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return summarize(samples[i0:], cpu, wall, setup, len(rows))

    return asyncio.run(main())


def run_apscheduler(rows: list[tuple], warmup: float, window: float, slack: float) -> dict:
    # Imported here so the other designs run without APScheduler installed.
    from apscheduler.schedulers.asyncio import AsyncIOScheduler  # noqa: PLC0415
    from apscheduler.triggers.interval import IntervalTrigger  # noqa: PLC0415

    samples: list[float] = []
    app = samples.append
    wall_now = time.time

    # A coroutine body: a plain function would be sent to a thread pool by AsyncIOExecutor.
    # APScheduler passes no due time and its first run is the first slot after start(), so
    # the lateness is taken modulo the interval from the job's grid (it never fires early;
    # lateness beyond one interval would be under-reported, and shows as lost firings/s).
    async def body(first: float, interval: float) -> None:
        app((wall_now() - first) % interval)

    async def main() -> dict:
        sched = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )
        t0 = time.perf_counter()
        start = wall_now()
        for _, _, interval, frac in rows:
            first = start + frac * interval
            trig = IntervalTrigger(
                seconds=interval, start_date=datetime.fromtimestamp(first, UTC), timezone=UTC
            )
            sched.add_job(body, trig, args=(first, interval))
        sched.start()
        setup = time.perf_counter() - t0
        i0, cpu, wall = await measure(samples, warmup + setup, window)
        sched.shutdown(wait=False)
        return summarize(samples[i0:], cpu, wall, setup, len(rows))

    return asyncio.run(main())


RUNNERS = {"a": run_mocksim, "b": run_tasks, "c": run_apscheduler}


def cpu_available(seconds: float = 0.5) -> float:
    """CPU seconds a busy loop gets per wall second now: < 1 when other processes compete."""
    c0, w0 = time.process_time(), time.monotonic()
    while time.monotonic() - w0 < seconds:
        pass
    return (time.process_time() - c0) / (time.monotonic() - w0)


def worker(args: argparse.Namespace) -> None:
    avail = cpu_available()
    rows = job_table(args.devices[0], args.heartbeat, args.sensors)
    result = RUNNERS[args.worker](rows, args.warmup, args.window, args.slack)
    result["cpu_available"] = avail
    result["load1"] = os.getloadavg()[0]
    print(json.dumps(result))


# --------------------------------------------------------------------------- driver


def run_case(design: str, n: int, args: argparse.Namespace, window: float) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        design,
        "--devices",
        str(n),
        "--window",
        str(window),
        "--warmup",
        str(args.warmup),
        "--heartbeat",
        str(args.heartbeat),
        "--slack",
        str(args.slack),
        "--sensors",
        ",".join(str(s) for s in args.sensors),
    ]
    limit = args.case_timeout + window
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, check=False)
    except subprocess.TimeoutExpired:
        return {"status": f"collapsed: no result within {limit:.0f} s"}
    if proc.returncode != 0:
        return {"status": f"failed: {proc.stderr.strip().splitlines()[-1:]}"}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["status"] = "ok" if out["firings"] else "collapsed: 0 firings"
    return out


def skip_reason(design: str, n: int, args: argparse.Namespace) -> str | None:
    if design == "c" and n > args.max_aps:
        return (
            f"skipped: > {args.max_aps} devices (O(n) add_job, collapses at 20k in "
            "measured-facts; --max-aps to try)"
        )
    if design == "b" and n > args.max_tasks:
        return f"skipped: > {args.max_tasks} devices (--max-tasks to try)"
    return None


def fmt(v: object, spec: str) -> str:
    return format(v, spec) if isinstance(v, (int, float)) else "-"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1k and 10k devices, 5 s windows")
    p.add_argument("--devices", type=lambda s: [int(x) for x in s.split(",")], default=None)
    p.add_argument("--designs", default="a,b,c")
    p.add_argument("--window", type=float, default=None, help="measured seconds per case")
    p.add_argument("--window-100k", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--heartbeat", type=float, default=60.0)
    p.add_argument("--slack", type=float, default=0.002, help="mocksim slack_s")
    p.add_argument(
        "--sensors", type=lambda s: [float(x) for x in s.split(",")], default=[5.0, 10.0, 30.0]
    )
    p.add_argument("--case-timeout", type=float, default=90.0, help="setup + warm-up budget")
    p.add_argument("--max-aps", type=int, default=10_000)
    p.add_argument("--max-tasks", type=int, default=100_000)
    p.add_argument("--worker", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    devices = args.devices or ([1_000, 10_000] if args.quick else [1_000, 10_000, 100_000])
    window = args.window or (5.0 if args.quick else 15.0)
    designs = args.designs.split(",")

    rate = 1 / args.heartbeat + sum(1 / s for s in args.sensors)
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
        f"{platform.machine()}; heartbeat {args.heartbeat:g} s + sensors "
        f"{', '.join(f'{s:g}' for s in args.sensors)} s = {rate:.3f} firings/s per device; "
        f"mocksim slack_s={args.slack:g}"
    )
    header = (
        "| design | devices | firings/s | CPU s/s | CPU µs/firing | p50 ms | p99 ms | max ms "
        "| add µs/job | CPU free | load | status |"
    )
    print(header)
    print("|" + "---|" * 12)
    results: dict[tuple[str, int], dict] = {}
    for n in devices:
        for d in designs:
            reason = skip_reason(d, n, args)
            w = args.window_100k if n >= 100_000 and not args.window else window
            r = {"status": reason} if reason else run_case(d, n, args, w)
            results[(d, n)] = r
            print(
                f"| {DESIGNS[d]} | {n:,} | {fmt(r.get('firings_per_s'), ',.0f')} "
                f"| {fmt(r.get('cpu_s_per_s'), '.3f')} | {fmt(r.get('cpu_us_per_firing'), '.1f')} "
                f"| {fmt(r.get('p50_ms'), '.2f')} | {fmt(r.get('p99_ms'), '.2f')} "
                f"| {fmt(r.get('max_ms'), '.1f')} | {fmt(r.get('setup_us_per_job'), '.1f')} "
                f"| {fmt(r.get('cpu_available'), '.2f')} | {fmt(r.get('load1'), '.1f')} "
                f"| {r['status']} |",
                flush=True,
            )
    print()
    for n in devices:
        a = results.get(("a", n), {})
        for d in ("b", "c"):
            other = results.get((d, n), {})
            if "cpu_s_per_s" in a and "cpu_s_per_s" in other:
                print(
                    f"{n:,} devices: {DESIGNS[d]} / mocksim: CPU s/s x"
                    f"{other['cpu_s_per_s'] / a['cpu_s_per_s']:.1f}, CPU per firing x"
                    f"{other['cpu_us_per_firing'] / a['cpu_us_per_firing']:.1f}"
                )
        if "wakeups_per_s" in a:
            print(f"{n:,} devices: mocksim wake-ups/s {a['wakeups_per_s']:.0f}")


if __name__ == "__main__":
    main()

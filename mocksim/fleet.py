"""The Fleet: a persisted set of simulated boards, run by one scheduler on one loop thread.

A :class:`Fleet` owns a daemon thread with its own asyncio event loop (the way
``dask.distributed.Client`` does in notebooks). Public methods check their arguments in the
caller's thread, then post a coroutine to that loop and wait for it (``asynchronous=True``
returns the awaitable instead). Everything a change touches is written to the database first
and then applied to the running devices; the scheduler's loop never waits on the database:
store calls run in a small worker pool, checkpoints are batched.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import itertools
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, TypeVar, cast
from urllib.parse import quote

import orjson
import pandas as pd

from mocksim.device import Device, Step
from mocksim.engine import Engine
from mocksim.errors import (
    FleetClosedError,
    MocksimError,
    SpecError,
    TopicError,
    UnknownDeviceError,
)
from mocksim.protocol.message import Message
from mocksim.protocol.topics import TopicBuilder, TopicKind
from mocksim.recorder import (
    Recorder,
    RecorderStats,
    TimeArg,
    delivery,
    events_frame,
    readings_frame,
)
from mocksim.scheduler import JobKey, JobKind, RealClock, Scheduler
from mocksim.server import ServerClient
from mocksim.spec import ActuatorSpec, DeviceSpec, PatternSpec, SensorSpec, default_device_id
from mocksim.store import Checkpoint, DesiredState, DeviceRecord, RuntimeStatus, Store
from mocksim.transport import (
    DeviceSession,
    OfflinePolicy,
    SessionMode,
    Transport,
    transport_from_url,
)
from mocksim.transport.endpoint import BrokerEndpoint
from mocksim.virtual import REBOOT_DELAY_S

__all__ = ["FAST_FACTOR", "DeviceHandle", "Fleet", "FleetStats", "FleetStatus"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: ``MOCKSIM_FAST=1`` runs every timer this many times sooner (heartbeat 60 s → 6 s,
#: a 10 s sensor → 1 s). Message timestamps stay real Unix seconds.
FAST_FACTOR = 10.0
_TRUE = ("1", "true", "yes", "on")
SCHEDULER_SLACK_S = 0.010
_fleet_numbers = itertools.count(1)


class FleetStatus(StrEnum):
    """Life cycle of a Fleet."""

    STARTING = "starting"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class FleetStats:
    """Fleet-wide counters (a snapshot).

    Attributes:
        devices: devices this fleet runs now (running or paused).
        running: of those, how many have their timers scheduled.
        produced: messages the devices produced.
        published: messages handed to the broker connection.
        dropped: messages that could not be published (offline, caps), counted, never silent.
        buffered: messages waiting in offline buffers.
        inbound: messages received from the broker.
        malformed: inbound messages that were not JSON objects, or empty.
        unknown_topic: inbound messages on topics that are not the contract's.
        rejected: inbound messages a device ignored (bad fields, gate closed, paused).
        fired: scheduler firings; misfires: firings coalesced after a stall.
        lag_p50_ms, lag_p99_ms: scheduler lateness over recent firings.
        connected: devices whose MQTT session is up; breaker: the circuit breaker state,
        breaker_opened: how often it opened; reconnects: sessions that came back.
    """

    devices: int
    running: int
    produced: int
    published: int
    dropped: int
    buffered: int
    inbound: int
    malformed: int
    unknown_topic: int
    rejected: int
    fired: int
    misfires: int
    callback_errors: int
    lag_p50_ms: float
    lag_p99_ms: float
    connected: int
    breaker: str
    breaker_opened: int
    reconnects: int

    def as_dict(self) -> dict[str, Any]:
        """The counters as a plain dict."""
        return asdict(self)


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def _check_options(
    session_mode: SessionMode | str, offline_policy: OfflinePolicy | str, **seconds: float
) -> tuple[SessionMode, OfflinePolicy]:
    """Validate Fleet options in the caller's thread, before any thread or I/O starts."""
    for name, value in seconds.items():
        if not value > 0:
            raise SpecError(name, value, "a number of seconds > 0")
    try:
        mode = SessionMode(session_mode)
    except ValueError:
        raise SpecError("session_mode", session_mode, [m.value for m in SessionMode]) from None
    try:
        policy = OfflinePolicy(offline_policy)
    except ValueError:
        raise SpecError(
            "offline_policy", offline_policy, [p.value for p in OfflinePolicy]
        ) from None
    return mode, policy


class _LoopThread:
    """A named daemon thread running one asyncio loop; start-up errors surface in start()."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            try:
                pending = asyncio.all_tasks(self.loop)
                for task in pending:
                    task.cancel()
                if pending:
                    self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            finally:
                self.loop.close()

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join(timeout)


class Fleet:
    """A fleet of simulated ESP32 boards, persisted in a database and run by one scheduler.

    Args:
        db: database URL (``sqlite:///file.db`` or ``postgresql+psycopg://…``); default
            ``MOCKSIM_DB_URL`` or ``sqlite:///mocksim.db``.
        mqtt: broker URL (``mqtt://host:port``, ``mqtts://…``, credentials in the URL); default
            ``MOCKSIM_MQTT_URL`` or an embedded broker started in-process.
        seed: every random draw derives from it (same seed, same data).
        asynchronous: public methods return awaitables instead of blocking.
        session_mode: ``per_device`` (own client id, will and subscriptions per device) or
            ``shared`` (a few connections for many devices; no per-device will).
        offline_policy: what happens to readings while a device is offline: ``drop``
            (firmware default, counted) or ``buffer`` (bounded, replayed on reconnect).
        fast: run every timer ``FAST_FACTOR`` times sooner; default ``MOCKSIM_FAST``.
        resume: start the devices whose desired state is running (default True).
        checkpoint_interval_s: how often runtime counters are saved.
        lease_ttl_s: how long this fleet's ownership of a device lasts unless renewed.
        watch_interval_s: how often changes written by other processes are picked up.
        transport: a ready transport instead of ``mqtt`` (tests, in-memory runs).
        transport_options: more :class:`~mocksim.transport.MqttTransport` keywords, e.g.
            ``{"breaker": BreakerConfig(open_s=5)}`` or ``{"connect_rate_per_s": 500}``.
        record: run a recorder that subscribes like a server and stores what the broker
            delivered (``readings()``, ``events()``, ``delivery()``); False switches it off.
        retention_s: keep recorded readings and events this long (None: keep everything).
        timeout_s: how long a blocking call waits for the loop.

    Raises:
        MocksimError: the database or broker cannot be opened (the original error is kept).
    """

    def __init__(
        self,
        db: str | None = None,
        mqtt: str | None = None,
        *,
        seed: int = 0,
        asynchronous: bool = False,
        session_mode: SessionMode | str = SessionMode.PER_DEVICE,
        offline_policy: OfflinePolicy | str = OfflinePolicy.DROP,
        fast: bool | None = None,
        resume: bool = True,
        checkpoint_interval_s: float = 10.0,
        lease_ttl_s: float = 30.0,
        watch_interval_s: float = 2.0,
        transport: Transport | None = None,
        transport_options: Mapping[str, Any] | None = None,
        record: bool = True,
        retention_s: float | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        mode, policy = _check_options(
            session_mode,
            offline_policy,
            checkpoint_interval_s=checkpoint_interval_s,
            lease_ttl_s=lease_ttl_s,
            watch_interval_s=watch_interval_s,
            timeout_s=timeout_s,
        )
        self._db_url = db or os.environ.get("MOCKSIM_DB_URL") or None
        self._mqtt_url = mqtt or os.environ.get("MOCKSIM_MQTT_URL") or None
        self.seed = int(seed)
        self._asynchronous = asynchronous
        self._mode = mode
        self._policy = policy
        self._fast = _env_true("MOCKSIM_FAST") if fast is None else fast
        self.time_factor = FAST_FACTOR if self._fast else 1.0
        self._resume = resume
        self._checkpoint_s = checkpoint_interval_s
        self._lease_ttl_s = lease_ttl_s
        self._watch_s = watch_interval_s
        self._timeout = timeout_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._number = next(_fleet_numbers)
        self._status = FleetStatus.STARTING
        self._store: Store | None = None
        self._transport = transport
        self._transport_options = dict(transport_options or {})
        self._record = record
        self._retention_s = retention_s
        self._recorder: Recorder | None = None
        self._builders: dict[str, TopicBuilder] = {}
        self._revision = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._maintenance_busy: set[str] = set()
        # Devices that should run but were leased by another owner: retried every watch.
        self._orphans: set[str] = set()
        # The highest config_version this fleet has applied or written per device; a record
        # below it is stale (read before a newer write) and is never applied.
        self._seen: dict[str, int] = {}
        # The stored spec each running device was last brought in line with.
        self._known: dict[str, DeviceSpec] = {}
        self._starting: set[str] = set()  # ids between "not running" and "running"
        self._rebooting: set[str] = set()  # rebooted boards: next connect is a boot
        self._locks: dict[str, asyncio.Lock] = {}
        # Device-made changes (zone, config push) not stored yet: records read meanwhile are
        # older than the running device and must not be applied.
        self._pending: dict[str, int] = {}
        self._inbound = self._malformed = self._unknown_topic = self._rejected = 0
        # 10 ms of wake-up batching: jobs due within 10 ms fire together (up to 10 ms early),
        # which halves the scheduler's CPU at 10k devices (bench/README.md).
        self._scheduler = Scheduler(RealClock(), slack_s=SCHEDULER_SLACK_S)
        self._engine = Engine(
            self._scheduler,
            self._publish,
            time_factor=self.time_factor,
            on_spec_change=self._device_changed_spec,
            on_restart_session=self._device_rebooted,
        )
        self._run_task: asyncio.Task[None] | None = None
        self._db_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=2, thread_name_prefix=f"mocksim-db-{self._number}"
        )
        self._runner = _LoopThread(f"mocksim-fleet-{self._number}")
        self._runner.start()
        try:
            fut = asyncio.run_coroutine_threadsafe(self._astart(), self._runner.loop)
            fut.result(timeout_s)
        except BaseException:
            self._shutdown_threads()
            self._status = FleetStatus.CLOSED
            raise
        self._status = FleetStatus.RUNNING
        atexit.register(self.close)

    # ------------------------------------------------------------------ plumbing

    def __repr__(self) -> str:
        store = self._store.url if self._store is not None else "?"
        return (
            f"<Fleet #{self._number} {self._status.value} devices={len(self._engine)} "
            f"db={store} fast={self._fast}>"
        )

    @property
    def lifecycle(self) -> FleetStatus:
        """Where the fleet is in its life cycle (starting, running, closing, closed)."""
        return self._status

    @property
    def broker_url(self) -> str:
        """URL of the broker the fleet publishes to (the embedded one, if it runs one).

        It carries the credentials, so do not print it; ``str(fleet.broker)`` is safe.
        """
        ep = self.broker
        scheme = "mqtts" if ep.tls else "mqtt"
        login = ""
        if ep.username is not None:
            login = quote(ep.username, safe="")
            if ep.password is not None:
                login += ":" + quote(ep.password, safe="")
            login += "@"
        return f"{scheme}://{login}{ep.host}:{ep.port}"

    @property
    def broker(self) -> BrokerEndpoint:
        """Host, port and login of the broker (``str()`` shows ``host:port`` only)."""
        endpoint = getattr(self._transport, "endpoint", None)
        if not isinstance(endpoint, BrokerEndpoint):
            raise MocksimError("this fleet's transport has no broker endpoint")
        return endpoint

    def server(self, *, kaiser_id: str = "god", timeout_s: float = 5.0) -> ServerClient:
        """A :class:`ServerClient` on the fleet's broker: act as the server would.

        Close it when done (or use it in ``with``).
        """
        return ServerClient(self.broker_url, kaiser_id=kaiser_id, timeout_s=timeout_s)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The fleet's own event loop (runs in its daemon thread)."""
        return self._runner.loop

    def _run(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any, **kw: Any) -> T:
        """Run ``fn(*args)`` on the loop; block for the result (or return an awaitable)."""
        if self._status in (FleetStatus.CLOSED, FleetStatus.CLOSING):
            raise FleetClosedError(f"this fleet is {self._status.value}; open a new Fleet")
        if threading.current_thread() is self._runner.thread:
            raise RuntimeError(
                "a Fleet method was called from the fleet's own loop thread; "
                "this would deadlock (use asynchronous=True and await it)"
            )
        fut = asyncio.run_coroutine_threadsafe(fn(*args, **kw), self._runner.loop)
        if self._asynchronous:
            return cast(T, asyncio.wrap_future(fut))
        try:
            return fut.result(self._timeout)
        except KeyboardInterrupt:
            fut.cancel()
            raise
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise TimeoutError(f"the fleet loop did not answer within {self._timeout} s") from None

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a store call in the worker pool, off the loop."""
        return await self._runner.loop.run_in_executor(self._db_pool, lambda: fn(*args))

    @property
    def store(self) -> Store:
        """The database store (single source of truth)."""
        if self._store is None:
            raise FleetClosedError("the fleet has no open store")
        return self._store

    def _spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        task = self._runner.loop.create_task(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                logger.error("fleet task %s failed: %r", what, t.exception())

        task.add_done_callback(done)

    def _builder(self, kaiser_id: str) -> TopicBuilder:
        b = self._builders.get(kaiser_id)
        if b is None:
            b = self._builders[kaiser_id] = TopicBuilder(kaiser_id)
        return b

    # ------------------------------------------------------------------ start & close

    async def _astart(self) -> None:
        try:
            await self._astart_parts()
        except BaseException:
            await self._abort_start()
            raise

    async def _astart_parts(self) -> None:
        self._store = await self._db(Store.open, self._db_url)
        self._revision = await self._db(self.store.revision)
        records = await self._db(self.store.list_devices)
        if self._transport is None:
            self._transport = transport_from_url(
                self._mqtt_url,
                mode=self._mode,
                offline_policy=self._policy,
                **self._transport_options,
            )
        await self._transport.start(self)
        if self._record:
            self._recorder = Recorder(
                self.store,
                self.broker_url,
                kaiser_ids=sorted({r.spec.kaiser_id for r in records} | {"god"}),
                retention_s=self._retention_s,
            )
            await self._db(self._recorder.start)
        self._run_task = self._runner.loop.create_task(self._scheduler.run())
        self._add_maintenance("checkpoint", self._checkpoint_s, self._checkpoint)
        self._add_maintenance("leases", self._lease_ttl_s / 3.0, self._renew_leases)
        self._add_maintenance("watch", self._watch_s, self._watch)
        if self._resume:
            wanted = [r for r in records if r.desired_state is not DesiredState.STOPPED]
            await self._start_records(wanted, reason="POWERON")

    async def _abort_start(self) -> None:
        """Undo a half-done start: whatever was opened is closed, errors of closing are logged."""
        self._scheduler.stop()
        steps: list[tuple[str, Callable[[], Coroutine[Any, Any, Any]]]] = []
        if self._recorder is not None:
            recorder = self._recorder
            steps.append(("recorder", lambda: self._db(recorder.stop)))
        if self._transport is not None:
            transport = self._transport
            steps.append(("transport", transport.close))
        if self._store is not None:
            store = self._store
            steps.append(("store", lambda: self._db(store.close)))
        for what, step in steps:
            try:
                await step()
            except Exception:
                logger.warning("closing the %s after a failed start failed", what, exc_info=True)

    def _add_maintenance(
        self, name: str, interval_s: float, fn: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        """A fleet job on the same scheduler; its DB work runs as a task, never overlapping."""

        def fire(_key: JobKey, _due: float) -> None:
            if name in self._maintenance_busy:
                return
            self._maintenance_busy.add(name)

            async def run() -> None:
                try:
                    await fn()
                finally:
                    self._maintenance_busy.discard(name)

            self._spawn(run(), name)

        self._scheduler.add(
            JobKey("", JobKind.CHECKPOINT if name == "checkpoint" else JobKind.OTHER, name),
            fire,
            interval_s=interval_s,
        )

    def close(self) -> None:
        """Stop every device, checkpoint, disconnect cleanly (no last will); idempotent.

        Desired states stay as they are, so the next Fleet on this database resumes.
        """
        if self._status in (FleetStatus.CLOSED, FleetStatus.CLOSING):
            return
        atexit.unregister(self.close)
        if threading.current_thread() is self._runner.thread:
            raise RuntimeError("Fleet.close() cannot run on the fleet's own loop thread")
        self._status = FleetStatus.CLOSING
        try:
            fut = asyncio.run_coroutine_threadsafe(self._aclose(), self._runner.loop)
            fut.result(self._timeout)
        finally:
            self._shutdown_threads()
            self._status = FleetStatus.CLOSED

    async def aclose(self) -> None:
        """Async form of :meth:`close` for ``asynchronous=True`` fleets."""
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    async def _aclose(self) -> None:
        self._scheduler.stop()
        if self._run_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._run_task
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self._timeout / 2)
        ids = self._engine.ids()
        try:
            if ids and self._store is not None:
                await self._checkpoint()
                await self._db(self.store.set_runtime_status, ids, RuntimeStatus.STOPPED)
                await self._db(self.store.release_leases, self.owner, ids)
        finally:
            for device_id in ids:
                self._engine.remove(device_id)
            # Stop the recorder while the broker (maybe embedded in the transport) still runs.
            try:
                if self._recorder is not None:
                    await self._db(self._recorder.stop)
            finally:
                try:
                    if self._transport is not None:
                        await self._transport.close()
                finally:
                    if self._store is not None:
                        await self._db(self._store.close)

    def _shutdown_threads(self) -> None:
        self._runner.stop()
        self._db_pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Fleet:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    # ------------------------------------------------------------------ running devices

    async def _start_records(self, records: list[DeviceRecord], *, reason: str) -> list[str]:
        """Lease, boot and connect devices from their records; returns the ids started."""
        records = [
            r
            for r in records
            if r.spec.id not in self._engine
            and r.spec.id not in self._starting
            and r.config_version >= self._seen.get(r.spec.id, 0)
        ]
        if not records:
            return []
        ids = [r.spec.id for r in records]
        self._starting.update(ids)
        try:
            return await self._start_claimed(records, ids, reason)
        finally:
            self._starting.difference_update(ids)

    async def _start_claimed(
        self, records: list[DeviceRecord], ids: list[str], reason: str
    ) -> list[str]:
        claimed = set(await self._db(self.store.claim_leases, self.owner, ids, self._lease_ttl_s))
        skipped = [i for i in ids if i not in claimed]
        self._orphans.difference_update(claimed)
        if skipped:
            self._orphans.update(skipped)
            logger.info(
                "%d device(s) are leased by another owner: %s", len(skipped), ", ".join(skipped[:5])
            )
        todo = [r for r in records if r.spec.id in claimed]
        if self._recorder is not None:
            for kaiser in {r.spec.kaiser_id for r in todo} - set(self._recorder.kaiser_ids):
                self._recorder.add_kaiser(kaiser)
        cps = await self._db(self.store.load_checkpoints, [r.spec.id for r in todo])
        for rec in todo:
            cp = cps.get(rec.spec.id)
            state = dict(cp.state) if cp else {}
            if cp:
                state.setdefault("boot_count", cp.boot_count)
                state.setdefault("seq", cp.seq)
            device = Device(
                rec.spec,
                seed=self.seed,
                builder=self._builder(rec.spec.kaiser_id),
                checkpoint=state or None,
            )
            self._apply_overrides(device, rec.overrides)
            active = rec.desired_state is DesiredState.RUNNING
            self._seen[rec.spec.id] = rec.config_version
            self._known[rec.spec.id] = rec.spec
            self._engine.add(device, reason=reason, active=active)
            try:
                await self._connect(device)
            except MocksimError:
                logger.exception("%s: cannot open its MQTT session; not started", rec.spec.id)
                self._engine.remove(rec.spec.id)
                await self._db(self.store.release_leases, self.owner, [rec.spec.id])
        todo = [r for r in todo if r.spec.id in self._engine]
        started = [r.spec.id for r in todo]
        running = [r.spec.id for r in todo if r.desired_state is DesiredState.RUNNING]
        paused = [r.spec.id for r in todo if r.desired_state is DesiredState.PAUSED]
        if running:
            await self._db(self.store.set_runtime_status, running, RuntimeStatus.RUNNING)
        if paused:
            await self._db(self.store.set_runtime_status, paused, RuntimeStatus.PAUSED)
        return started

    async def _connect(self, device: Device) -> None:
        assert self._transport is not None
        session = DeviceSession(
            device.id, device.will(self._engine.now()), tuple(device.subscriptions())
        )
        await self._transport.add_device(session)

    async def _drop_local(self, device_id: str, *, graceful: bool = True) -> None:
        """Stop running a device here (timers off, session closed) without touching the DB."""
        if device_id not in self._engine:
            return
        self._known.pop(device_id, None)
        self._engine.remove(device_id)
        assert self._transport is not None
        await self._transport.remove_device(device_id, graceful=graceful)

    @staticmethod
    def _apply_overrides(device: Device, overrides: Mapping[str, float]) -> None:
        current = device.overrides()
        for key in current.keys() - overrides.keys():
            sensor_key, _, vt = key.rpartition("/")
            device.set_override(sensor_key, vt, None)
        for key, value in overrides.items():
            if current.get(key) != value:
                sensor_key, _, vt = key.rpartition("/")
                with contextlib.suppress(SpecError):
                    device.set_override(sensor_key, vt, value)

    def _apply_record(self, rec: DeviceRecord) -> None:
        """Make the running device match its record (idempotent)."""
        device_id = rec.spec.id
        if device_id not in self._engine:
            return
        # The watcher may hold a record read before a newer write was applied: never go back.
        if rec.config_version < self._seen.get(device_id, 0) or self._pending.get(device_id):
            return
        self._seen[device_id] = rec.config_version
        self._known[device_id] = rec.spec
        device = self._engine.device(device_id)
        if device.spec.kaiser_id != rec.spec.kaiser_id:
            # Other topics, will and subscriptions: a new session under the new kaiser.
            self._spawn(self._restart_device(rec), f"restart {device_id}")
            return
        if device.spec != rec.spec:
            self._engine.run(device_id, lambda d, now: d.apply_spec(now, rec.spec))
        self._apply_overrides(device, rec.overrides)
        if rec.desired_state is DesiredState.PAUSED and self._engine.is_active(device_id):
            self._engine.pause(device_id)
        elif rec.desired_state is DesiredState.RUNNING and not self._engine.is_active(device_id):
            self._engine.resume(device_id)

    async def _restart_device(self, rec: DeviceRecord) -> None:
        await self._drop_local(rec.spec.id)
        await self._start_records([rec], reason="SW")

    def _device_lock(self, device_id: str) -> asyncio.Lock:
        lock = self._locks.get(device_id)
        if lock is None:
            lock = self._locks[device_id] = asyncio.Lock()
        return lock

    async def _locked(
        self, device_id: str, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any
    ) -> T:
        """Run one write-then-apply change of a device, in order with its other changes."""
        async with self._device_lock(device_id):
            return await fn(*args)

    # ------------------------------------------------------------------ engine callbacks

    def _publish(self, device_id: str, msg: Message) -> None:
        assert self._transport is not None
        self._transport.publish(device_id, msg)

    def _device_changed_spec(self, device_id: str, spec: DeviceSpec) -> None:
        """A device changed its own configuration (zone assign, config push): persist it."""
        base = self._known.get(device_id)
        self._pending[device_id] = self._pending.get(device_id, 0) + 1
        self._spawn(self._persist_device_change(device_id, base, spec), f"persist {device_id}")

    async def _persist_device_change(
        self, device_id: str, base: DeviceSpec | None, spec: DeviceSpec
    ) -> None:
        """Store only the fields the device itself changed, onto the current stored spec.

        A full replace would erase a change someone stored meanwhile (a sensor update here,
        or another process's edit the watcher has not applied yet).
        """
        fields = [
            name
            for name in DeviceSpec.model_fields
            if base is None or getattr(spec, name) != getattr(base, name)
        ]
        new = spec.model_dump()

        def patch() -> DeviceRecord:
            current = self.store.get_device(device_id).spec.model_dump()
            current.update({name: new[name] for name in fields})
            return self.store.update_device(current)

        try:
            if not fields:
                return
            async with self._device_lock(device_id):
                rec = await self._db(patch)
        finally:
            left = self._pending.get(device_id, 1) - 1
            if left:
                self._pending[device_id] = left
            else:
                self._pending.pop(device_id, None)
        self._apply_record(rec)

    def _device_rebooted(self, device_id: str) -> None:
        """A board restarts: its session drops without DISCONNECT and comes back as a boot."""
        self._rebooting.add(device_id)
        transport = self._transport
        assert transport is not None

        def restart() -> None:
            if device_id in self._engine:
                transport.crash(device_id, reconnect_after_s=REBOOT_DELAY_S / self.time_factor)

        # Let the command response that announced the reboot leave the socket first.
        self._runner.loop.call_later(0.2, restart)

    # ------------------------------------------------------------------ transport listener

    def on_connected(self, device_id: str, reconnect: bool) -> None:
        """Transport: the device's session is up (announce, heartbeat, statuses)."""
        if device_id in self._rebooting:
            self._rebooting.discard(device_id)
            reconnect = False
        self._engine.connected(device_id, reconnect=reconnect)

    def on_disconnected(self, device_id: str, reason: str) -> None:
        """Transport: the device's session went down; its timers keep running."""
        logger.debug("%s disconnected: %s", device_id, reason)

    def on_message(self, device_id: str | None, topic: str, payload: bytes) -> None:
        """Transport: an inbound message; garbage is counted and logged, never raised."""
        self._inbound += 1
        builder = None
        parsed = None
        for b in self._builders.values():
            try:
                parsed = b.parse(topic)
                builder = b
                break
            except TopicError:
                continue
        if parsed is None or builder is None:
            self._unknown_topic += 1
            logger.debug("inbound on unknown topic %r", topic)
            return
        if not payload:
            # The server clears retained wills with empty publishes: expected, ignored.
            self._malformed += 1
            return
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self._malformed += 1
            logger.debug("inbound non-JSON payload on %s (%d bytes)", topic, len(payload))
            return
        if device_id is not None and parsed.esp_id is None:
            targets = [device_id]  # per-device session: a broadcast reaches each board once
        elif parsed.kind is TopicKind.BROADCAST_EMERGENCY:
            targets = self._engine.ids()  # every board, whatever its kaiser
        elif parsed.esp_id is None:
            targets = [
                i
                for i in self._engine.ids()
                if self._engine.device(i).spec.kaiser_id == builder.kaiser_id
            ]
        else:
            targets = [parsed.esp_id]
        for target in targets:
            if target not in self._engine or not self._engine.is_active(target):
                self._rejected += 1
                continue
            try:
                step = self._engine.run(target, lambda d, now: d.on_message(now, parsed, data))
            except Exception:
                # A device-model bug must not kill the loop: count, log, go on.
                self._rejected += 1
                logger.exception("%s: handling %s failed", target, topic)
                continue
            if step.rejected:
                self._rejected += 1

    # ------------------------------------------------------------------ maintenance

    async def _checkpoint(self) -> None:
        now = self._engine.now()
        cps = []
        for device_id in self._engine.ids():
            d = self._engine.device(device_id)
            state = d.checkpoint(now)
            cps.append(Checkpoint(device_id, d.boot_count, d.seq, state))
        if cps:
            await self._db(self.store.save_checkpoints, cps)

    async def _renew_leases(self) -> None:
        ids = self._engine.ids()
        if not ids:
            return
        held = set(await self._db(self.store.renew_leases, self.owner, ids, self._lease_ttl_s))
        for device_id in ids:
            if device_id not in held:
                logger.warning("lost the lease of %s; stopping it here", device_id)
                await self._drop_local(device_id)

    async def _watch(self) -> None:
        """Pick up configuration written by anyone (this fleet included) since last time."""
        changes = await self._db(self.store.changes_since, self._revision)
        self._revision = max(self._revision, changes.revision)
        for device_id in changes.deleted:
            self._orphans.discard(device_id)
            self._seen.pop(device_id, None)
            await self._drop_local(device_id)
        new = []
        for rec in changes.changed:
            device_id = rec.spec.id
            if rec.config_version < self._seen.get(device_id, 0):
                continue  # read before a newer change this fleet made or saw
            if device_id in self._engine:
                if rec.desired_state is DesiredState.STOPPED:
                    self._seen[device_id] = rec.config_version
                    await self._drop_local(device_id)
                    await self._db(self.store.set_runtime_status, device_id, RuntimeStatus.STOPPED)
                    await self._db(self.store.release_leases, self.owner, [device_id])
                else:
                    self._apply_record(rec)
            elif rec.desired_state is not DesiredState.STOPPED:
                new.append(rec)
        if new:
            await self._start_records(new, reason="POWERON")
        await self._adopt_orphans()

    async def _adopt_orphans(self) -> None:
        """Start devices whose lease another owner let expire (it died or let go)."""
        if not self._orphans:
            return
        ids = sorted(self._orphans)
        claimed = await self._db(self.store.claim_leases, self.owner, ids, self._lease_ttl_s)
        if not claimed:
            return
        records = []
        for device_id in claimed:
            try:
                rec = await self._db(self.store.get_device, device_id)
            except UnknownDeviceError:
                self._orphans.discard(device_id)
                continue
            if rec.desired_state is DesiredState.STOPPED:
                self._orphans.discard(device_id)
                await self._db(self.store.release_leases, self.owner, [device_id])
            else:
                records.append(rec)
        if records:
            logger.info("taking over %d device(s) whose lease expired", len(records))
            await self._start_records(records, reason="POWERON")

    # ------------------------------------------------------------------ verbs: devices

    def add_device(
        self,
        spec: DeviceSpec | Mapping[str, Any] | None = None,
        *,
        start: bool = True,
        **fields: Any,
    ) -> DeviceHandle:
        """Create a device (written to the database first) and, by default, start it.

        Args:
            spec: a DeviceSpec or a mapping; or give the fields as keywords
                (``sensors=[…]``, ``zone_id=…``). Without ``id`` a firmware-looking id is
                derived from the fleet seed.
            start: run it now (desired state running) or keep it stopped.

        Raises:
            SpecError: an invalid spec or a duplicate id; nothing is written.
        """
        data = self._spec_from(spec, fields)
        if isinstance(data, dict) and data.get("id"):
            DeviceSpec.model_validate(data)  # fail in the caller's thread, before any I/O
        return self._run(self._add_one, data, start)

    async def _add_one(self, spec: DeviceSpec | dict[str, Any], start: bool) -> DeviceHandle:
        handles = await self._add_devices([spec], start)
        return handles[0]

    def add_devices(
        self, specs: Iterable[DeviceSpec | Mapping[str, Any]], *, start: bool = True
    ) -> list[DeviceHandle]:
        """Create many devices in one transaction (all or none) and start them.

        Raises:
            SpecError: any invalid spec or duplicate id; nothing is written.
        """
        prepared = [s if isinstance(s, DeviceSpec) else dict(s) for s in specs]
        for i, s in enumerate(prepared):
            if isinstance(s, dict) and "id" in s:
                try:
                    DeviceSpec.model_validate(s)
                except SpecError as exc:
                    raise exc.with_prefix(f"specs[{i}]") if len(prepared) > 1 else exc from None
        return self._run(self._add_devices, prepared, start)

    @staticmethod
    def _spec_from(
        spec: DeviceSpec | Mapping[str, Any] | None, fields: Mapping[str, Any]
    ) -> DeviceSpec | dict[str, Any]:
        if spec is None:
            return dict(fields)
        if fields:
            base = spec.model_dump() if isinstance(spec, DeviceSpec) else dict(spec)
            base.update(fields)
            return base
        return spec if isinstance(spec, DeviceSpec) else dict(spec)

    async def _add_devices(
        self, specs: list[DeviceSpec | dict[str, Any]], start: bool
    ) -> list[DeviceHandle]:
        existing = set(await self._db(self.store.device_ids))
        taken = set(existing)
        ready: list[DeviceSpec] = []
        index = len(existing)
        for s in specs:
            if isinstance(s, DeviceSpec):
                ready.append(s)
                taken.add(s.id)
                continue
            data = dict(s)
            if not data.get("id"):
                while True:
                    candidate = default_device_id(self.seed, index)
                    index += 1
                    if candidate not in taken:
                        break
                data["id"] = candidate
            spec = DeviceSpec.model_validate(data)
            taken.add(spec.id)
            ready.append(spec)
        state = DesiredState.RUNNING if start else DesiredState.STOPPED
        records = await self._db(self.store.create_devices, ready, state)
        if start:
            await self._start_records(records, reason="POWERON")
        return [DeviceHandle(self, r.spec.id) for r in records]

    def device(self, device_id: str) -> DeviceHandle:
        """A handle on one device of this fleet's database.

        Raises:
            UnknownDeviceError: no such device.
        """
        self._run(self._get_record, device_id)
        return DeviceHandle(self, device_id)

    async def _get_record(self, device_id: str) -> DeviceRecord:
        return await self._db(self.store.get_device, device_id)

    def spec(self, device_id: str) -> DeviceSpec:
        """The stored configuration of one device."""
        rec: DeviceRecord = self._run(self._get_record, device_id)
        return rec.spec

    def remove_device(self, device_id: str, *, purge_readings: bool = False) -> None:
        """Stop a device (clean disconnect) and delete it with its checkpoint and lease.

        Its recorded readings and events stay unless ``purge_readings=True``.

        Raises:
            UnknownDeviceError: no such device.
        """
        self._run(self._remove, device_id, purge_readings)

    async def _remove(self, device_id: str, purge_readings: bool = False) -> None:
        self._locks.pop(device_id, None)
        await self._db(lambda: self.store.delete_device(device_id, purge_readings=purge_readings))
        await self._drop_local(device_id)

    def devices(self) -> pd.DataFrame:
        """Every device of the database with its state and counters, as a DataFrame."""
        return self._run(self._devices)

    async def _devices(self) -> pd.DataFrame:
        records = await self._db(self.store.list_devices)
        assert self._transport is not None
        rows = []
        for r in records:
            did = r.spec.id
            local = did in self._engine
            ts = self._transport.device_stats(did) if local else None
            dev = self._engine.device(did) if local else None
            counters = self._engine.counters(did) if local else None
            rows.append(
                {
                    "device_id": did,
                    "desired_state": r.desired_state.value,
                    "runtime_status": (
                        ("running" if self._engine.is_active(did) else "paused")
                        if local
                        else r.runtime_status.value
                    ),
                    "zone_id": r.spec.zone_id,
                    "sensors": len(r.spec.sensors),
                    "actuators": len(r.spec.actuators),
                    "connected": bool(ts.connected) if ts else False,
                    "produced": counters.produced if counters else 0,
                    "published": ts.published if ts else 0,
                    "dropped": ts.dropped if ts else 0,
                    "boot_count": dev.boot_count if dev else None,
                    "seq": dev.seq if dev else None,
                    "last_publish": (
                        pd.Timestamp(counters.last_publish, unit="s", tz="UTC")
                        if counters and counters.last_publish
                        else pd.NaT
                    ),
                    "config_version": r.config_version,
                }
            )
        cols = [
            "device_id",
            "desired_state",
            "runtime_status",
            "zone_id",
            "sensors",
            "actuators",
            "connected",
            "produced",
            "published",
            "dropped",
            "boot_count",
            "seq",
            "last_publish",
            "config_version",
        ]
        return pd.DataFrame(rows, columns=cols)

    def status(self, device_id: str) -> dict[str, Any]:
        """One device's state: desired and runtime state, counters, actuators, connection.

        Raises:
            UnknownDeviceError: no such device.
        """
        return self._run(self._status_of, device_id)

    async def _status_of(self, device_id: str) -> dict[str, Any]:
        rec = await self._db(self.store.get_device, device_id)
        out: dict[str, Any] = {
            "device_id": device_id,
            "desired_state": rec.desired_state.value,
            "runtime_status": rec.runtime_status.value,
            "config_version": rec.config_version,
            "overrides": dict(rec.overrides),
            "local": device_id in self._engine,
        }
        if device_id in self._engine:
            assert self._transport is not None
            d = self._engine.device(device_id)
            now = self._engine.now()
            c = self._engine.counters(device_id)
            ts = self._transport.device_stats(device_id)
            out.update(
                {
                    "runtime_status": "running" if self._engine.is_active(device_id) else "paused",
                    "boot_count": d.boot_count,
                    "boot_sequence_id": d.boot_sequence_id,
                    "uptime_s": d.uptime(now),
                    "seq": d.seq,
                    "gated": d.gated,
                    "zone_id": d.zone_id,
                    "actuators": [d.actuator_state(a.gpio, now) for a in d.spec.actuators],
                    "produced": c.produced,
                    "rejected": c.rejected,
                    "connected": ts.connected,
                    "published": ts.published,
                    "dropped": ts.dropped,
                    "lost": ts.lost,
                    "buffered": ts.buffered,
                    "reconnects": ts.reconnects,
                    "breaker": ts.breaker_state.value,
                    "last_error": ts.last_error,
                }
            )
        return out

    # ------------------------------------------------------------------ verbs: state

    def _ids_arg(self, device_id: str | Iterable[str] | None) -> list[str] | None:
        if device_id is None:
            return None
        if isinstance(device_id, str):
            return [device_id]
        return list(device_id)

    def start(self, device_id: str | Iterable[str] | None = None) -> None:
        """Run one device, several, or (None) every device of the database."""
        self._run(self._set_state, self._ids_arg(device_id), DesiredState.RUNNING)

    def stop(self, device_id: str | Iterable[str] | None = None) -> None:
        """Stop devices: timers off, clean disconnect (no will); they stay in the database."""
        self._run(self._set_state, self._ids_arg(device_id), DesiredState.STOPPED)

    def pause(self, device_id: str | Iterable[str] | None = None) -> None:
        """Pause devices: nothing is published until resumed; the session stays up."""
        self._run(self._set_state, self._ids_arg(device_id), DesiredState.PAUSED)

    def resume(self, device_id: str | Iterable[str] | None = None) -> None:
        """Resume paused (or stopped) devices."""
        self._run(self._set_state, self._ids_arg(device_id), DesiredState.RUNNING)

    async def _set_state(self, ids: list[str] | None, state: DesiredState) -> None:
        if ids is None:
            ids = await self._db(self.store.device_ids)
        if not ids:
            return
        revision = await self._db(self.store.set_desired_state, ids, state)
        for device_id in ids:
            self._seen[device_id] = max(self._seen.get(device_id, 0), revision)
        if state is DesiredState.STOPPED:
            # Bulk: one status write and one lease release for all, whatever the fleet size.
            for device_id in ids:
                await self._drop_local(device_id)
            await self._db(self.store.set_runtime_status, ids, RuntimeStatus.STOPPED)
            await self._db(self.store.release_leases, self.owner, ids)
            return
        wanted = set(ids)
        if len(wanted) == 1:
            records = [await self._db(self.store.get_device, ids[0])]
        else:
            records = [r for r in await self._db(self.store.list_devices) if r.spec.id in wanted]
        local = [r for r in records if r.spec.id in self._engine]
        for rec in local:
            self._apply_record(rec)
        if local:
            status = RuntimeStatus.PAUSED if state is DesiredState.PAUSED else RuntimeStatus.RUNNING
            await self._db(self.store.set_runtime_status, [r.spec.id for r in local], status)
        to_start = [r for r in records if r.spec.id not in self._engine]
        if to_start:
            await self._start_records(to_start, reason="POWERON")

    # ------------------------------------------------------------------ verbs: sensors

    def add_sensor(self, device_id: str, sensor: SensorSpec | Mapping[str, Any]) -> str:
        """Add (or replace, same key) a sensor while the device runs; returns its key.

        Raises:
            SpecError: an invalid sensor, or one that clashes with the device's other parts.
            UnknownDeviceError: no such device.
        """
        spec = sensor if isinstance(sensor, SensorSpec) else SensorSpec.model_validate(sensor)
        self._run(self._locked, device_id, self._upsert_sensor, device_id, spec)
        return spec.key

    def update_sensor(self, device_id: str, sensor_key: str, **changes: Any) -> SensorSpec:
        """Change a sensor while it runs (``pattern=``, ``interval_s=``, ``min=`` …).

        The change is stored, then applied: the next reading follows the new pattern; a new
        interval takes effect at once.

        Raises:
            SpecError: a bad field or value (names the field and allowed values), or an
                unknown sensor key.
            UnknownDeviceError: no such device.
        """
        if not changes:
            raise SpecError("changes", None, "at least one sensor field")
        return cast(
            SensorSpec,
            self._run(self._locked, device_id, self._update_sensor, device_id, sensor_key, changes),
        )

    def set_pattern(
        self,
        device_id: str,
        sensor_key: str,
        pattern: PatternSpec | Mapping[str, Any] | None,
        *,
        value_type: str | None = None,
    ) -> SensorSpec:
        """Give a sensor (or one value of a multi-value sensor) a new pattern while it runs."""
        data: Mapping[str, Any] | None
        data = pattern if pattern is None or isinstance(pattern, Mapping) else pattern.model_dump()
        if value_type is None:
            return self.update_sensor(device_id, sensor_key, pattern=data)
        return cast(
            SensorSpec,
            self._run(
                self._locked,
                device_id,
                self._update_sensor,
                device_id,
                sensor_key,
                {"patterns": {value_type: data}},
                True,  # merge with the other values' patterns
            ),
        )

    async def _update_sensor(
        self, device_id: str, key: str, changes: dict[str, Any], merge_patterns: bool = False
    ) -> SensorSpec:
        rec = await self._db(self.store.get_device, device_id)
        try:
            current = rec.spec.sensor(key)
        except KeyError:
            raise SpecError("sensor_key", key, [s.key for s in rec.spec.sensors]) from None
        if merge_patterns:
            merged = {k: v.model_dump() for k, v in current.patterns.items()}
            merged.update(changes["patterns"])
            changes = {"patterns": merged}
        new = current.replace(**changes)
        await self._upsert_sensor(device_id, new, replace_key=key)
        return new

    async def _upsert_sensor(
        self, device_id: str, sensor: SensorSpec, replace_key: str | None = None
    ) -> None:
        if replace_key is not None and replace_key != sensor.key:
            await self._db(self.store.remove_sensor, device_id, replace_key)
        rec = await self._db(self.store.upsert_sensor, device_id, sensor)
        self._apply_record(rec)

    def remove_sensor(self, device_id: str, sensor_key: str) -> None:
        """Remove a sensor while the device runs; its readings stop at once."""
        self._run(self._locked, device_id, self._remove_sensor, device_id, sensor_key)

    async def _remove_sensor(self, device_id: str, key: str) -> None:
        rec = await self._db(self.store.remove_sensor, device_id, key)
        self._apply_record(rec)

    def add_actuator(self, device_id: str, actuator: ActuatorSpec | Mapping[str, Any]) -> None:
        """Add (or replace, same gpio) an actuator while the device runs."""
        spec = (
            actuator
            if isinstance(actuator, ActuatorSpec)
            else ActuatorSpec.model_validate(actuator)
        )
        self._run(self._locked, device_id, self._upsert_actuator, device_id, spec)

    async def _upsert_actuator(self, device_id: str, spec: ActuatorSpec) -> None:
        rec = await self._db(self.store.upsert_actuator, device_id, spec)
        self._apply_record(rec)

    def remove_actuator(self, device_id: str, gpio: int) -> None:
        """Remove an actuator while the device runs."""
        self._run(self._locked, device_id, self._remove_actuator, device_id, gpio)

    async def _remove_actuator(self, device_id: str, gpio: int) -> None:
        rec = await self._db(self.store.remove_actuator, device_id, gpio)
        self._apply_record(rec)

    def set_value(
        self,
        device_id: str,
        sensor_key: str,
        value: float | None,
        *,
        value_type: str | None = None,
    ) -> None:
        """Pin a sensor to a manual value (None clears it); it shows in the next reading.

        Raises:
            SpecError: unknown sensor or value type, or a non-finite value.
        """
        self._run(
            self._locked, device_id, self._set_value, device_id, sensor_key, value_type, value
        )

    def clear_value(
        self, device_id: str, sensor_key: str, *, value_type: str | None = None
    ) -> None:
        """Let a sensor follow its pattern again."""
        self.set_value(device_id, sensor_key, None, value_type=value_type)

    async def _set_value(
        self, device_id: str, key: str, value_type: str | None, value: float | None
    ) -> None:
        if value_type is None:
            rec = await self._db(self.store.get_device, device_id)
            try:
                value_type = rec.spec.sensor(key).value_types[0]
            except KeyError:
                raise SpecError("sensor_key", key, [s.key for s in rec.spec.sensors]) from None
        rec = await self._db(self.store.set_override, device_id, key, value_type, value)
        self._apply_record(rec)

    def heartbeat(self, device_id: str) -> None:
        """Publish a heartbeat now, out of schedule."""
        self._run(self._local_step, device_id, lambda d, now: d.heartbeat_now(now))

    def read_now(self, device_id: str, sensor_key: str) -> None:
        """Take and publish one reading of a sensor now."""
        self._run(
            self._local_step,
            device_id,
            lambda d, now: Step(messages=d.read_sensor(now, sensor_key)),
        )

    async def _local_step(self, device_id: str, fn: Callable[[Device, float], Step]) -> None:
        if device_id not in self._engine:
            await self._db(self.store.get_device, device_id)  # UnknownDeviceError if absent
            raise MocksimError(f"device {device_id} is not running in this fleet")
        self._engine.run(device_id, fn)

    def crash(self, device_id: str, *, reconnect_after_s: float = 5.0) -> None:
        """Drop a device's connection without DISCONNECT: the broker publishes its last will.

        The device reconnects after ``reconnect_after_s`` device seconds (fault injection;
        ``MOCKSIM_FAST`` shortens it like every other timer).
        """
        if not reconnect_after_s >= 0:
            raise SpecError("reconnect_after_s", reconnect_after_s, "a number of seconds >= 0")
        self._run(self._crash, device_id, reconnect_after_s)

    async def _crash(self, device_id: str, delay: float) -> None:
        if device_id not in self._engine:
            raise UnknownDeviceError(device_id)
        assert self._transport is not None
        self._transport.crash(device_id, reconnect_after_s=delay / self.time_factor)

    def network_outage(self, duration_s: float) -> None:
        """Cut the network to the broker for ``duration_s`` wall seconds (fault injection).

        Sessions drop abruptly and reconnects fail until the time is up: devices keep running
        and count what they cannot publish, backoff and the circuit breaker act as in a real
        outage, and the broker (still up) publishes per-device wills. ``duration_s`` is not
        scaled by ``MOCKSIM_FAST``; nor is the breaker's open period.

        Raises:
            SpecError: not a positive duration.
            MocksimError: the transport cannot simulate an outage.
        """
        if not (isinstance(duration_s, int | float) and duration_s > 0):
            raise SpecError("duration_s", duration_s, "a number of seconds > 0")
        self._run(self._network_outage, float(duration_s))

    async def _network_outage(self, duration_s: float) -> None:
        partition = getattr(self._transport, "partition", None)
        if partition is None:
            raise MocksimError("this fleet's transport cannot simulate a network outage")
        partition(duration_s)

    # ------------------------------------------------------------------ verbs: views

    def jobs(self) -> pd.DataFrame:
        """Every scheduled job: id, device, kind, interval (device seconds) and next due time."""
        return self._run(self._jobs)

    async def _jobs(self) -> pd.DataFrame:
        clock = self._scheduler.clock
        rows = [
            {
                "job_id": str(j.key),
                "device_id": j.key.device_id,
                "kind": j.key.kind.value,
                "name": j.key.name,
                "interval_s": None if j.interval_s is None else j.interval_s * self.time_factor,
                "next_due": pd.Timestamp(clock.wall_time(j.next_due), unit="s", tz="UTC"),
                "fired": j.fired,
                "misfires": j.misfires,
            }
            for j in self._scheduler.jobs()
            if j.key.device_id
        ]
        cols = [
            "job_id",
            "device_id",
            "kind",
            "name",
            "interval_s",
            "next_due",
            "fired",
            "misfires",
        ]
        return pd.DataFrame(rows, columns=cols)

    def stats(self) -> FleetStats:
        """Fleet-wide counters: published, dropped, inbound garbage, misfires, lag p50/p99."""
        return self._run(self._stats)

    async def _stats(self) -> FleetStats:
        assert self._transport is not None
        s = self._scheduler.stats()
        t = self._transport.stats()
        ids = self._engine.ids()
        return FleetStats(
            devices=len(ids),
            running=sum(1 for i in ids if self._engine.is_active(i)),
            produced=sum(self._engine.counters(i).produced for i in ids),
            published=t.published,
            dropped=t.dropped,
            buffered=t.buffered,
            inbound=self._inbound,
            malformed=self._malformed,
            unknown_topic=self._unknown_topic,
            rejected=self._rejected,
            fired=s.fired,
            misfires=s.misfires,
            callback_errors=s.callback_errors,
            lag_p50_ms=s.lag_p50_ms,
            lag_p99_ms=s.lag_p99_ms,
            connected=t.connected,
            breaker=t.breaker_state.value,
            breaker_opened=t.breaker_opened,
            reconnects=t.reconnects,
        )

    # ------------------------------------------------------------------ verbs: recorded data

    def _require_recorder(self) -> Recorder:
        if self._recorder is None:
            raise MocksimError("recording is off for this fleet (Fleet(record=False))")
        return self._recorder

    async def _flushed(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """Write what the recorder received so far, then run a query off the loop."""
        recorder = self._require_recorder()
        await self._db(recorder.flush, 5.0)
        return await self._db(lambda: fn(*args, **kw))

    def readings(
        self,
        device: str | None = None,
        sensor_type: str | None = None,
        *,
        since: TimeArg | None = None,
        until: TimeArg | None = None,
        last: int | None = None,
    ) -> pd.DataFrame:
        """Readings as the broker delivered them, oldest first (a typed DataFrame).

        Columns: received_at and device_time (UTC), device_id, gpio, sensor_type, raw, value,
        unit, quality (categorical), seq. ``since``/``until`` take datetimes, ISO strings or a
        timedelta ("the last ..."); ``last=N`` keeps the newest N rows.
        """
        return cast(
            pd.DataFrame,
            self._run(
                self._flushed,
                readings_frame,
                self.store,
                device,
                sensor_type,
                since=since,
                until=until,
                last=last,
            ),
        )

    def events(
        self,
        device: str | None = None,
        kind: TopicKind | str | None = None,
        *,
        since: TimeArg | None = None,
        until: TimeArg | None = None,
        last: int | None = None,
    ) -> pd.DataFrame:
        """Heartbeats, actuator, ack and lifecycle messages as delivered (a DataFrame)."""
        return cast(
            pd.DataFrame,
            self._run(
                self._flushed,
                events_frame,
                self.store,
                device,
                kind,
                since=since,
                until=until,
                last=last,
            ),
        )

    def delivery(self, device: str | None = None, *, since: TimeArg | None = None) -> pd.DataFrame:
        """Per device: sent, received, lost, duplicated, out of order (from seq), latency."""
        return cast(pd.DataFrame, self._run(self._flushed, delivery, self.store, device, since))

    def recorder_stats(self) -> RecorderStats:
        """The recorder's counters (received, written, dropped when its queue was full, ...)."""
        return self._require_recorder().stats()

    def wait_connected(self, timeout_s: float = 10.0) -> bool:
        """Block until every local device's session is up (or the timeout passes)."""
        return self._run(self._wait_connected, min(timeout_s, self._timeout * 0.9))

    async def _wait_connected(self, timeout_s: float) -> bool:
        assert self._transport is not None
        deadline = self._runner.loop.time() + timeout_s
        while self._runner.loop.time() < deadline:
            if all(self._transport.is_connected(i) for i in self._engine.ids()):
                return True
            await asyncio.sleep(0.02)
        return False


class DeviceHandle:
    """A handle on one device: thin shortcuts to the Fleet's verbs for that device id."""

    def __init__(self, fleet: Fleet, device_id: str) -> None:
        self.fleet = fleet
        self.id = device_id

    def __repr__(self) -> str:
        return f"<Device {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DeviceHandle) and (other.fleet, other.id) == (self.fleet, self.id)

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def spec(self) -> DeviceSpec:
        """The stored configuration."""
        return self.fleet.spec(self.id)

    def status(self) -> dict[str, Any]:
        """State and counters (see :meth:`Fleet.status`)."""
        return self.fleet.status(self.id)

    def start(self) -> None:
        """Run it."""
        self.fleet.start(self.id)

    def stop(self) -> None:
        """Stop it (clean disconnect)."""
        self.fleet.stop(self.id)

    def pause(self) -> None:
        """Publish nothing until resumed."""
        self.fleet.pause(self.id)

    def resume(self) -> None:
        """Continue after a pause."""
        self.fleet.resume(self.id)

    def remove(self) -> None:
        """Delete it from the fleet and the database."""
        self.fleet.remove_device(self.id)

    def set_value(
        self, sensor_key: str, value: float | None, *, value_type: str | None = None
    ) -> None:
        """Pin a manual value (None clears)."""
        self.fleet.set_value(self.id, sensor_key, value, value_type=value_type)

    def update_sensor(self, sensor_key: str, **changes: Any) -> SensorSpec:
        """Change a running sensor (pattern, interval_s, …)."""
        return self.fleet.update_sensor(self.id, sensor_key, **changes)

    def heartbeat(self) -> None:
        """Publish a heartbeat now."""
        self.fleet.heartbeat(self.id)

    def crash(self, *, reconnect_after_s: float = 5.0) -> None:
        """Drop the connection abruptly (the broker publishes the will)."""
        self.fleet.crash(self.id, reconnect_after_s=reconnect_after_s)

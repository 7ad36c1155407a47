"""The recorder: listens to the broker the way a server does and keeps what arrived.

A backend engineer cares about what the broker delivered, not what the simulator meant to send,
so the :class:`Recorder` has its own MQTT session (one paho client, its own network thread) on
``kaiser/{K}/esp/+/#`` and stores every device → server message it receives: sensor data as
rows of ``readings``, everything else (heartbeats, actuator status/response/alert, acks, config
responses, wills, session announces) as rows of ``events``, each with its arrival time.

Nothing on the receiving path waits for the database. The paho callback only stamps the
arrival time and puts the raw message into a bounded queue (full → dropped and counted); a
writer thread parses, validates and writes batches (every ``flush_interval_s`` or
``batch_size`` rows). The fleet's loop is never involved.

The module-level functions turn the store back into typed pandas frames:
:func:`readings_frame`, :func:`events_frame`, :func:`wide` (a pivot for charts) and
:func:`delivery` (sent / received / lost / duplicated / out of order and latency per device,
from the per-device ``seq`` counter).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final, Self

import numpy as np
import orjson
import paho.mqtt.client as mqtt
import pandas as pd
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from mocksim.catalog import QUALITIES
from mocksim.errors import MocksimError, SpecError, StoreError, TopicError, TransportError
from mocksim.protocol.topics import DEFAULT_KAISER_ID, Direction, TopicBuilder, TopicKind
from mocksim.store import EventRecord, Store
from mocksim.transport.endpoint import BrokerEndpoint, TlsOptions

__all__ = [
    "DELIVERY_COLUMNS",
    "EVENT_COLUMNS",
    "QUALITY_CATEGORIES",
    "READING_COLUMNS",
    "Recorder",
    "RecorderStats",
    "TimeArg",
    "delivery",
    "events_frame",
    "readings_frame",
    "wide",
]

logger = logging.getLogger(__name__)

#: The categories of the ``quality`` column, exactly the values the real server accepts.
QUALITY_CATEGORIES: Final = tuple(QUALITIES)
#: Columns of :func:`readings_frame`, in order.
READING_COLUMNS: Final = (
    "received_at",
    "device_time",
    "device_id",
    "gpio",
    "sensor_type",
    "raw",
    "value",
    "unit",
    "quality",
    "seq",
)
#: Columns of :func:`events_frame`, in order.
EVENT_COLUMNS: Final = (
    "received_at",
    "device_time",
    "device_id",
    "kind",
    "topic",
    "seq",
    "payload",
)
#: Columns of :func:`delivery`, in order.
DELIVERY_COLUMNS: Final = (
    "device_id",
    "sent",
    "received",
    "lost",
    "duplicated",
    "out_of_order",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_samples",
    "fine_latency_p50_ms",
    "fine_latency_p95_ms",
    "fine_latency_p99_ms",
    "fine_latency_samples",
)

TimeArg = datetime | pd.Timestamp | str | timedelta | pd.Timedelta | np.datetime64
"""A point in time for ``since``/``until``: a datetime or Timestamp (naive means UTC), an ISO
string, or a timedelta meaning "that long before now"."""

_TIME_DTYPE: Final = pd.DatetimeTZDtype(unit="us", tz="UTC")
_KIND_DTYPE: Final = pd.CategoricalDtype([k.value for k in TopicKind])
_QUALITY_DTYPE: Final = pd.CategoricalDtype(list(QUALITY_CATEGORIES))
_INT64_MAX: Final = 2**63 - 1
#: Reconnect delays of the recorder's own client (paho doubles from min to max).
_RECONNECT_MIN_S: Final = 1
_RECONNECT_MAX_S: Final = 30
#: How often a repeated warning (drops, write errors) may be logged.
_WARN_EVERY_S: Final = 10.0
#: Attempts per batch when the database fails (then the batch is dropped and counted).
_WRITE_ATTEMPTS: Final = 3
_WRITE_RETRY_S: Final = 0.25
_STOP_JOIN_S: Final = 30.0

# One queued message: (arrival Unix time, topic, payload, retain flag); None wakes the writer.
_Item = tuple[float, str, bytes | bytearray, bool]


class _State(enum.Enum):
    NEW = "new"  # created; start() connects
    RUNNING = "running"  # subscribed (or reconnecting after a broker outage)
    STOPPED = "stopped"  # stop() ran; a stopped recorder cannot be started again


@dataclass(frozen=True, slots=True)
class RecorderStats:
    """The recorder's counters (a snapshot).

    Attributes:
        received: messages the broker delivered to the recorder (every one, garbage included).
        readings_written: reading rows committed to the store.
        events_written: event rows committed to the store.
        dropped_queue_full: messages dropped because the write queue was full.
        malformed: payloads that were not a JSON object, or sensor data without a usable
            ``sensor_type``.
        foreign_topic: topics that are not the contract's device → server topics of a
            recorded kaiser (or not UTF-8).
        empty: empty payloads (the server clears retained wills with them): ignored.
        ignored: server → device commands that match the subscription: not recorded.
        write_errors: rows lost because the database refused a batch (after retries).
        retention_deleted: rows deleted by the retention window.
        queue_depth: messages waiting for the writer now.
        disconnects: times the broker connection was lost (the client reconnects by itself).
        connected: whether the recorder's session is up and subscribed now.
    """

    received: int
    readings_written: int
    events_written: int
    dropped_queue_full: int
    malformed: int
    foreign_topic: int
    empty: int
    ignored: int
    write_errors: int
    retention_deleted: int
    queue_depth: int
    disconnects: int
    connected: bool

    def as_dict(self) -> dict[str, Any]:
        """The counters as a plain dict."""
        return asdict(self)


class _Throttle:
    """Lets a repeated warning through at most once per interval and counts the rest."""

    def __init__(self, interval_s: float) -> None:
        self._interval = interval_s
        self._next = 0.0
        self._suppressed = 0

    def ready(self) -> int | None:
        """None to stay quiet; else how many warnings were suppressed since the last one."""
        now = time.monotonic()
        if now < self._next:
            self._suppressed += 1
            return None
        self._next = now + self._interval
        suppressed, self._suppressed = self._suppressed, 0
        return suppressed


def _number(value: Any) -> float | None:
    """A finite JSON number as float; None for anything else (bools are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _int64(value: Any) -> int | None:
    """A JSON integer (or integral float) that fits a BIGINT; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and -_INT64_MAX <= value <= _INT64_MAX:
        return value
    return None


def _device_ts(data: Mapping[str, Any]) -> int | None:
    """The device's send time in whole Unix seconds: ``ts``, ``timestamp`` or ``ts_ms // 1000``."""
    for key in ("ts", "timestamp"):
        number = _number(data.get(key))
        if number is not None:
            return _int64(math.floor(number))
    ms = _int64(data.get("ts_ms"))
    return None if ms is None else ms // 1000


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class Recorder:
    """Records what the broker delivers on the fleet's device topics into a :class:`Store`.

    Args:
        store: where readings and events go (shared with the fleet; it is thread-safe).
        broker_url: ``mqtt://[user[:password]@]host[:port]`` or ``mqtts://…``.
        kaiser_ids: the kaisers whose devices are recorded (``kaiser/{K}/esp/+/#`` each).
        username: overrides the URL's user name.
        password: overrides the URL's password.
        tls: TLS settings; ``mqtts://`` without them verifies against the system CAs.
        retention_s: keep only this many seconds of readings and events (older rows are
            deleted now and then); None keeps everything.
        queue_size: messages that may wait for the writer; beyond it they are dropped and
            counted, so a slow database never stalls the broker connection.
        batch_size: rows per write.
        flush_interval_s: the longest a received message waits before it is written.
        connect_timeout_s: limit for the TCP connect and for CONNACK + SUBACK in ``start()``.
        keepalive_s: MQTT keepalive.

    Raises:
        SpecError: a bad URL, kaiser id or setting.
    """

    def __init__(
        self,
        store: Store,
        broker_url: str,
        *,
        kaiser_ids: Iterable[str] = (DEFAULT_KAISER_ID,),
        username: str | None = None,
        password: str | None = None,
        tls: TlsOptions | None = None,
        retention_s: float | None = None,
        queue_size: int = 100_000,
        batch_size: int = 1000,
        flush_interval_s: float = 0.5,
        connect_timeout_s: float = 10.0,
        keepalive_s: int = 60,
    ) -> None:
        if isinstance(kaiser_ids, str):
            kaiser_ids = (kaiser_ids,)
        builders = {k: TopicBuilder(k) for k in kaiser_ids}  # SpecError for a bad id
        if not builders:
            raise SpecError("kaiser_ids", kaiser_ids, "at least one kaiser id")
        if retention_s is not None and not (_number(retention_s) is not None and retention_s > 0):
            raise SpecError("retention_s", retention_s, "a number of seconds > 0, or None")
        for name, count in (("queue_size", queue_size), ("batch_size", batch_size)):
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise SpecError(name, count, "an integer >= 1")
        for name, seconds in (
            ("flush_interval_s", flush_interval_s),
            ("connect_timeout_s", connect_timeout_s),
        ):
            if _number(seconds) is None or seconds <= 0:
                raise SpecError(name, seconds, "a number of seconds > 0")
        self._store = store
        self._endpoint = BrokerEndpoint.parse(broker_url, username=username, password=password)
        self._tls = tls if tls is not None else (TlsOptions() if self._endpoint.tls else None)
        self._builders = builders
        self._retention_s = None if retention_s is None else float(retention_s)
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._flush_interval = float(flush_interval_s)
        self._connect_timeout = float(connect_timeout_s)
        self._keepalive = int(keepalive_s)
        self.client_id = f"mocksim-recorder-{uuid.uuid4().hex[:12]}"

        self._state = _State.NEW
        self._state_lock = threading.Lock()
        self._queue: queue.Queue[_Item | None] = queue.Queue(queue_size)
        self._client: mqtt.Client | None = None
        self._writer: threading.Thread | None = None
        self._stopping = threading.Event()
        self._flush_wanted = threading.Event()
        self._done = threading.Condition()  # guards _processed for flush()
        self._subscribed = threading.Event()
        self._start_error: str | None = None
        self._sub_mids: set[int] = set()

        # Each counter has one writer thread: paho's network thread owns these ...
        self._received = 0
        self._enqueued = 0
        self._dropped = 0
        self._bad_topic_bytes = 0
        self._disconnects = 0
        self._connected = False
        self._drop_throttle = _Throttle(_WARN_EVERY_S)
        # ... and the writer thread owns these.
        self._processed = 0
        self._readings_written = 0
        self._events_written = 0
        self._malformed = 0
        self._foreign = 0
        self._empty = 0
        self._ignored = 0
        self._write_errors = 0
        self._retention_deleted = 0
        self._write_throttle = _Throttle(_WARN_EVERY_S)

    def __repr__(self) -> str:
        kaisers = ",".join(self._builders)
        return (
            f"<Recorder {self._state.value} {self._endpoint} kaiser={kaisers} "
            f"store={self._store.url}>"
        )

    # ------------------------------------------------------------------ properties

    @property
    def store(self) -> Store:
        """The store the recorder writes to."""
        return self._store

    @property
    def kaiser_ids(self) -> tuple[str, ...]:
        """The kaisers whose device topics are recorded."""
        return tuple(self._builders)

    @property
    def retention_s(self) -> float | None:
        """The retention window in seconds (None: keep everything)."""
        return self._retention_s

    @property
    def running(self) -> bool:
        """Whether ``start()`` succeeded and ``stop()`` has not been called."""
        return self._state is _State.RUNNING

    def topic_filters(self) -> list[str]:
        """The subscription filters, one ``kaiser/{K}/esp/+/#`` per kaiser id."""
        return [b.device_wildcard() for b in self._builders.values()]

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Connect, subscribe (QoS 1) and wait for the SUBACK; calling it again does nothing.

        Raises:
            TransportError: the broker is unreachable, refused the login or the subscription,
                or did not answer within ``connect_timeout_s``.
            RuntimeError: the recorder was stopped (create a new one).
        """
        with self._state_lock:
            if self._state is _State.RUNNING:
                return
            if self._state is _State.STOPPED:
                msg = "this Recorder was stopped; create a new Recorder"
                raise RuntimeError(msg)
            self._state = _State.RUNNING
        try:
            self._start()
        except BaseException:
            self._shutdown(flush=False)
            raise

    def _start(self) -> None:
        self._writer = threading.Thread(
            target=self._writer_main, name=f"{self.client_id}-writer", daemon=True
        )
        self._writer.start()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=True,
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        if self._endpoint.username is not None:
            client.username_pw_set(self._endpoint.username, self._endpoint.password)
        if self._tls is not None:
            client.tls_set_context(self._tls.context())
        client.reconnect_delay_set(_RECONNECT_MIN_S, _RECONNECT_MAX_S)
        client.connect_timeout = self._connect_timeout
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client
        where = str(self._endpoint)
        try:
            client.connect(self._endpoint.host, self._endpoint.port, self._keepalive)
        except (OSError, ValueError) as exc:
            msg = f"recorder cannot connect to the broker at {where}: {exc}"
            raise TransportError(msg) from exc
        client.loop_start()
        if not self._subscribed.wait(self._connect_timeout):
            msg = f"recorder: no CONNACK/SUBACK from {where} within {self._connect_timeout} s"
            raise TransportError(msg)
        if self._start_error is not None:
            raise TransportError(f"recorder at {where}: {self._start_error}")
        logger.info(
            "recorder %s subscribed to %s on %s",
            self.client_id,
            ", ".join(self.topic_filters()),
            where,
        )

    def stop(self, timeout_s: float = _STOP_JOIN_S) -> None:
        """Disconnect, write everything still queued and join the threads; safe to repeat."""
        with self._state_lock:
            if self._state is _State.STOPPED:
                return
            self._state = _State.STOPPED
        self._shutdown(flush=True, timeout_s=timeout_s)

    def _shutdown(self, *, flush: bool, timeout_s: float = _STOP_JOIN_S) -> None:
        self._state = _State.STOPPED
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.disconnect()
            client.loop_stop()
            self._connected = False
        writer = self._writer
        if writer is not None:
            if not flush:
                self._drain_queue()
            self._stopping.set()
            self._wake()
            writer.join(timeout_s)
            if writer.is_alive():
                logger.warning("recorder writer did not finish within %.1f s", timeout_s)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def add_kaiser(self, kaiser_id: str) -> None:
        """Record one more kaiser's devices too (subscribes at once if connected).

        Raises:
            SpecError: the kaiser id is not a topic-safe level.
        """
        if kaiser_id in self._builders:
            return
        builder = TopicBuilder(kaiser_id)
        self._builders = {**self._builders, kaiser_id: builder}  # the writer reads a snapshot
        client = self._client
        if client is not None and self._connected:
            client.subscribe(builder.device_wildcard(), qos=1)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Block until every message received so far is written (or dropped and counted).

        Returns:
            True when caught up, False if ``timeout_s`` passed first.
        """
        target = self._enqueued
        if self._processed >= target:
            return True
        self._flush_wanted.set()
        self._wake()
        with self._done:
            return self._done.wait_for(lambda: self._processed >= target, timeout_s)

    def stats(self) -> RecorderStats:
        """A snapshot of the counters."""
        return RecorderStats(
            received=self._received,
            readings_written=self._readings_written,
            events_written=self._events_written,
            dropped_queue_full=self._dropped,
            malformed=self._malformed,
            foreign_topic=self._foreign + self._bad_topic_bytes,
            empty=self._empty,
            ignored=self._ignored,
            write_errors=self._write_errors,
            retention_deleted=self._retention_deleted,
            queue_depth=self._queue.qsize(),
            disconnects=self._disconnects,
            connected=self._connected,
        )

    def apply_retention(self) -> int:
        """Delete readings and events older than ``retention_s`` now; return how many went.

        The writer calls this periodically; it does nothing without a retention window.

        Raises:
            StoreError: the database failed.
        """
        if self._retention_s is None:
            return 0
        cutoff = datetime.now(UTC) - timedelta(seconds=self._retention_s)
        deleted = self._store.delete_readings_before(cutoff)
        deleted += self._store.delete_events_before(cutoff)
        return deleted

    # ------------------------------------------------------------------ paho thread

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        try:
            if reason.is_failure:
                why = f"the broker refused the connection: {reason}"
                if not self._subscribed.is_set():
                    self._start_error = why
                    self._subscribed.set()
                else:
                    logger.warning("recorder %s: %s", self.client_id, why)
                return
            filters = [(f, 1) for f in self.topic_filters()]
            rc, mid = client.subscribe(filters)
            if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and mid is not None:
                self._sub_mids.add(mid)
        except Exception:  # an exception here would end paho's thread
            logger.exception("recorder on_connect failed")

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reasons: Sequence[Any], _p: Any
    ) -> None:
        try:
            if mid not in self._sub_mids:
                return  # a later add_kaiser(); its outcome only matters if it failed
            self._sub_mids.discard(mid)
            refused = [str(r) for r in reasons if r.is_failure]
            if refused:
                why = f"the broker refused the subscription: {', '.join(refused)}"
                if not self._subscribed.is_set():
                    self._start_error = why
                else:
                    logger.error("recorder %s: %s", self.client_id, why)
            else:
                self._connected = True
            self._subscribed.set()
        except Exception:  # an exception here would end paho's thread
            logger.exception("recorder on_subscribe failed")

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        was_connected, self._connected = self._connected, False
        if was_connected and self._state is _State.RUNNING:
            self._disconnects += 1
            logger.warning("recorder %s lost the broker (%s); reconnecting", self.client_id, reason)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        """Only stamp and enqueue: the paho thread must keep reading the socket."""
        arrival = time.time()
        self._received += 1
        try:
            topic = message.topic
        except UnicodeDecodeError:
            self._bad_topic_bytes += 1
            return
        try:
            self._queue.put_nowait((arrival, topic, message.payload, message.retain))
        except queue.Full:
            self._dropped += 1
            suppressed = self._drop_throttle.ready()
            if suppressed is not None:
                logger.warning(
                    "recorder queue full (%d): dropping messages (%d total dropped; the "
                    "database is slower than the broker)",
                    self._queue_size,
                    self._dropped,
                )
            return
        self._enqueued += 1

    # ------------------------------------------------------------------ writer thread

    def _wake(self) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)

    def _drain_queue(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()

    def _retention_every(self) -> float:
        assert self._retention_s is not None
        return min(60.0, max(0.5, self._retention_s / 4.0))

    def _writer_main(self) -> None:
        batch: list[_Item] = []
        deadline = 0.0
        next_retention = time.monotonic()
        while True:
            now = time.monotonic()
            if self._retention_s is not None and now >= next_retention:
                self._retention_pass()
                next_retention = time.monotonic() + self._retention_every()
            urgent = self._stopping.is_set() or self._flush_wanted.is_set()
            wait = max(0.0, deadline - now) if batch else self._flush_interval
            if self._retention_s is not None:
                wait = min(wait, max(0.0, next_retention - now))
            try:
                item = (
                    self._queue.get(timeout=wait)
                    if wait > 0 and not urgent
                    else (self._queue.get_nowait())
                )
            except queue.Empty:
                item = None
            was_empty = not batch
            if item is not None:
                batch.append(item)
            with contextlib.suppress(queue.Empty):
                while len(batch) < self._batch_size:
                    more = self._queue.get_nowait()
                    if more is not None:
                        batch.append(more)
            if was_empty and batch:
                deadline = time.monotonic() + self._flush_interval
            due = len(batch) >= self._batch_size or time.monotonic() >= deadline
            if batch and (due or urgent):
                self._write_batch(batch)
                batch = []
            if not batch and self._queue.empty():
                if self._flush_wanted.is_set():
                    self._flush_wanted.clear()
                if self._stopping.is_set():
                    return

    def _retention_pass(self) -> None:
        try:
            self._retention_deleted += self.apply_retention()
        except Exception as exc:  # noqa: BLE001 - the writer must survive a database hiccup
            if self._write_throttle.ready() is not None:
                logger.warning("recorder retention failed: %s", exc)

    def _write_batch(self, batch: list[_Item]) -> None:
        try:
            readings, events = self._rows(batch)
            if readings:
                self._readings_written += self._insert(self._store.insert_readings, readings)
            if events:
                self._events_written += self._insert(self._store.insert_events, events)
        except Exception:  # the writer thread must never die
            logger.exception("recorder failed to handle a batch of %d messages", len(batch))
        finally:
            with self._done:
                self._processed += len(batch)
                self._done.notify_all()

    def _insert(
        self, insert: Callable[[list[dict[str, Any]]], int], rows: list[dict[str, Any]]
    ) -> int:
        """Write one batch, retrying a failing database briefly; return the rows written."""
        error: Exception | None = None
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                return insert(rows)
            except StoreError as exc:
                error = exc
                if self._store.closed:
                    break
                time.sleep(_WRITE_RETRY_S * 2**attempt)
            except MocksimError as exc:  # SpecError: a row the store refuses; no retry helps
                error = exc
                break
        self._write_errors += len(rows)
        suppressed = self._write_throttle.ready()
        if suppressed is not None:
            logger.warning(
                "recorder could not write %d rows (%d lost so far): %s",
                len(rows),
                self._write_errors,
                error,
            )
        return 0

    def _rows(self, batch: list[_Item]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Parse a batch into reading rows and event rows; count what is not recordable."""
        readings: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        builders = self._builders
        for arrival, topic, payload, _retain in batch:
            levels = topic.split("/", 2)
            builder = builders.get(levels[1]) if len(levels) > 2 else None
            if builder is None:
                self._foreign += 1
                continue
            try:
                parsed = builder.parse(topic)
            except TopicError:
                self._foreign += 1
                continue
            device_id = parsed.esp_id
            if device_id is None:
                self._foreign += 1
                continue
            kind = parsed.kind
            if TopicBuilder.direction(kind) is Direction.SERVER_TO_DEVICE:
                self._ignored += 1
                continue
            if not payload:
                self._empty += 1
                continue
            try:
                data = orjson.loads(payload)
            except orjson.JSONDecodeError:
                self._malformed += 1
                logger.debug("recorder: non-JSON payload on %s (%d bytes)", topic, len(payload))
                continue
            if not isinstance(data, dict):
                self._malformed += 1
                continue
            received_at = datetime.fromtimestamp(arrival, UTC)
            if kind is TopicKind.SENSOR_DATA:
                sensor_type = data.get("sensor_type")
                if not isinstance(sensor_type, str) or not sensor_type:
                    self._malformed += 1
                    continue
                raw = data.get("raw")
                readings.append(
                    {
                        "device_id": device_id,
                        "gpio": parsed.gpio,
                        "sensor_type": sensor_type,
                        "raw": _number(data.get("raw_value") if raw is None else raw),
                        "value": _number(data.get("value")),
                        "unit": _text(data.get("unit")),
                        "quality": _text(data.get("quality")),
                        "seq": _int64(data.get("seq")),
                        "device_ts": _device_ts(data),
                        "received_at": received_at,
                    }
                )
            else:
                events.append(
                    {
                        "device_id": device_id,
                        "kind": kind.value,
                        "topic": topic,
                        "payload": data,
                        "seq": _int64(data.get("seq")),
                        "device_ts": _device_ts(data),
                        "received_at": received_at,
                    }
                )
        return readings, events


# ---------------------------------------------------------------------------- frames


def _time_arg(value: TimeArg | None, field: str, now: datetime) -> datetime | None:
    """An aware UTC datetime from the accepted spellings (see :data:`TimeArg`)."""
    if value is None:
        return None
    if isinstance(value, timedelta):  # pd.Timedelta is a timedelta too
        return now - value
    if isinstance(value, str | np.datetime64 | datetime):
        try:
            stamp = pd.Timestamp(value)
        except (ValueError, TypeError):
            raise SpecError(field, value, "an ISO date/time string") from None
        if pd.isna(stamp):
            raise SpecError(field, value, "a date/time, not NaT")
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        return stamp.to_pydatetime()
    raise SpecError(
        field, value, "a datetime, pandas Timestamp, ISO string or timedelta (the last …)"
    )


def _times(series: pd.Series[Any]) -> pd.Series[Any]:
    return pd.to_datetime(series, utc=True).astype(_TIME_DTYPE)


def _seconds_to_times(series: pd.Series[Any]) -> pd.Series[Any]:
    ints = series.astype("Int64")
    return pd.to_datetime(ints, unit="s", utc=True).astype(_TIME_DTYPE)


def _categorical(series: pd.Series[Any], dtype: pd.CategoricalDtype) -> pd.Series[Any]:
    """``series`` as ``dtype``; values outside its categories become NaN."""
    values = series.astype(object)
    known = values.where(values.isin(list(dtype.categories)), None)
    return known.astype(dtype)


def _typed_readings(frame: pd.DataFrame) -> pd.DataFrame:
    """The store's raw reading columns as the documented, typed frame."""
    raw = pd.to_numeric(frame["raw"], errors="coerce").astype("float64").round()
    out = pd.DataFrame(
        {
            "received_at": _times(frame["received_at"]),
            "device_time": _seconds_to_times(frame["device_ts"]),
            "device_id": frame["device_id"].astype("string"),
            "gpio": frame["gpio"].astype("int64"),
            "sensor_type": frame["sensor_type"].astype("string"),
            "raw": raw.astype("Int64"),
            "value": pd.to_numeric(frame["value"], errors="coerce").astype("float64"),
            "unit": frame["unit"].astype("string"),
            "quality": _categorical(frame["quality"], _QUALITY_DTYPE),
            "seq": frame["seq"].astype("Int64"),
        }
    )
    return out.reset_index(drop=True)


def readings_frame(
    store: Store,
    device: str | None = None,
    sensor_type: str | None = None,
    *,
    since: TimeArg | None = None,
    until: TimeArg | None = None,
    last: int | None = None,
) -> pd.DataFrame:
    """Readings the recorder stored, oldest first, as a typed DataFrame.

    Args:
        store: the fleet's store.
        device: only this device id.
        sensor_type: only this wire sensor type (``"sht31_temp"``, ``"ds18b20"`` …).
        since: received at or after this (datetime/Timestamp — naive means UTC —, ISO string,
            or a timedelta meaning "the last …").
        until: received before this (same spellings).
        last: only the newest N rows of the selection, overall (not per device or sensor).

    Returns:
        Columns :data:`READING_COLUMNS`: ``received_at`` and ``device_time`` (the device's
        whole-second ``ts``) as tz-aware UTC timestamps, ``device_id``, ``sensor_type`` and
        ``unit`` as strings, ``gpio`` int64, ``raw`` Int64, ``value`` float64, ``quality`` a
        Categorical over :data:`QUALITY_CATEGORIES` (other strings become NaN), ``seq`` Int64.
        An empty selection gives an empty frame with the same columns and dtypes.

    Raises:
        SpecError: a bad ``since``, ``until`` or ``last``.
        StoreError: the database failed.
    """
    now = datetime.now(UTC)
    frame = store.readings_frame(
        device, sensor_type, _time_arg(since, "since", now), _time_arg(until, "until", now), last
    )
    return _typed_readings(frame)


def _kind_arg(kind: TopicKind | str | None) -> str | None:
    if kind is None:
        return None
    try:
        return TopicKind(kind).value
    except ValueError:
        raise SpecError("kind", kind, [k.value for k in TopicKind]) from None


def _events_table(records: list[EventRecord]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "received_at": [r.received_at for r in records],
            "device_ts": pd.array([r.device_ts for r in records], dtype="Int64"),
            "device_id": [r.device_id for r in records],
            "kind": [r.kind for r in records],
            "topic": [r.topic for r in records],
            "seq": pd.array([r.seq for r in records], dtype="Int64"),
            "payload": pd.Series([r.payload for r in records], dtype=object),
        }
    )


def events_frame(
    store: Store,
    device: str | None = None,
    kind: TopicKind | str | None = None,
    *,
    since: TimeArg | None = None,
    until: TimeArg | None = None,
    last: int | None = None,
) -> pd.DataFrame:
    """Events (everything but sensor data) the recorder stored, oldest first.

    Args:
        store: the fleet's store.
        device: only this device id.
        kind: only this topic kind (``TopicKind.HEARTBEAT`` or ``"heartbeat"``).
        since, until, last: as in :func:`readings_frame`.

    Returns:
        Columns :data:`EVENT_COLUMNS`: ``received_at``/``device_time`` UTC timestamps,
        ``device_id`` and ``topic`` strings, ``kind`` a Categorical over the ``TopicKind``
        values, ``seq`` Int64 (NA for heartbeats, wills, announces), ``payload`` the decoded
        JSON object.

    Raises:
        SpecError: a bad ``kind``, ``since``, ``until`` or ``last``.
        StoreError: the database failed.
    """
    now = datetime.now(UTC)
    records = store.events(
        device,
        _kind_arg(kind),
        _time_arg(since, "since", now),
        _time_arg(until, "until", now),
        last,
    )
    table = _events_table(records)
    out = pd.DataFrame(
        {
            "received_at": _times(table["received_at"]),
            "device_time": _seconds_to_times(table["device_ts"]),
            "device_id": table["device_id"].astype("string"),
            "kind": _categorical(table["kind"], _KIND_DTYPE),
            "topic": table["topic"].astype("string"),
            "seq": table["seq"],
            "payload": table["payload"],
        }
    )
    return out.reset_index(drop=True)


def wide(
    readings: pd.DataFrame,
    value: str = "value",
    freq: str | pd.Timedelta | timedelta | None = None,
    *,
    time: str = "received_at",
) -> pd.DataFrame:
    """Pivot a :func:`readings_frame` for charting: one column per series, time as the index.

    Columns are ``"{device_id}/{sensor_type}"``, or just the sensor type when the frame holds
    one device. Without ``freq`` each distinct time is a row (series that did not report then
    are NaN; the last value wins when one series reports twice at the same instant); with
    ``freq`` (``"1s"``, ``"5min"`` …) values are averaged per time bin, which aligns series
    that report at different moments.

    Args:
        readings: a frame from :func:`readings_frame`.
        value: the column to chart (``"value"`` or ``"raw"``).
        freq: optional resampling frequency.
        time: the index: ``"received_at"`` (arrival) or ``"device_time"`` (device clock).

    Raises:
        SpecError: an unknown ``value`` or ``time`` column.
    """
    if value not in ("value", "raw"):
        raise SpecError("value", value, ["value", "raw"])
    if time not in ("received_at", "device_time"):
        raise SpecError("time", time, ["received_at", "device_time"])
    for column in (value, time, "device_id", "sensor_type"):
        if column not in readings.columns:
            raise SpecError(
                "readings",
                list(readings.columns),
                None,
                f"readings: column {column!r} is missing; pass a readings_frame()",
            )
    sensor = readings["sensor_type"].astype(str)
    device = readings["device_id"].astype(str)
    label = sensor if device.nunique() <= 1 else device + "/" + sensor
    table = pd.DataFrame(
        {
            "t": readings[time],
            "series": label,
            "v": pd.to_numeric(readings[value], errors="coerce").astype("float64"),
        }
    ).dropna(subset=["t"])
    out = table.groupby(["t", "series"], sort=True)["v"].last().unstack("series")
    if out.empty:
        out = pd.DataFrame(index=pd.DatetimeIndex([], dtype=_TIME_DTYPE))
    out.index.name = time
    out.columns.name = None
    out = out.reindex(sorted(out.columns), axis=1)
    if freq is not None:
        out = out.resample(freq).mean()
    return out


def _percentiles(samples: np.ndarray[Any, Any]) -> tuple[float, float, float]:
    if samples.size == 0:
        return (math.nan, math.nan, math.nan)
    p50, p95, p99 = np.percentile(samples, [50, 95, 99])
    return (float(p50), float(p95), float(p99))


def _seq_stats(seqs: np.ndarray[Any, Any]) -> tuple[int, int, int, int, int]:
    """(received, distinct, duplicated, out_of_order, span) of seqs in arrival order."""
    received = int(seqs.size)
    if received == 0:
        return (0, 0, 0, 0, 0)
    first = ~pd.Series(seqs).duplicated().to_numpy()
    fresh = seqs[first]
    distinct = int(fresh.size)
    running_max = np.maximum.accumulate(fresh)
    out_of_order = int(np.count_nonzero(fresh[1:] < running_max[:-1]))
    span = int(fresh.max() - fresh.min() + 1)
    return (received, distinct, received - distinct, out_of_order, span)


def delivery(
    store: Store,
    device: str | None = None,
    since: TimeArg | None = None,
    published: Mapping[str, int] | None = None,
    *,
    until: TimeArg | None = None,
) -> pd.DataFrame:
    """Delivery per device, reconstructed from the per-device ``seq`` counter.

    A device numbers every message that carries ``seq`` (sensor data, actuator status /
    response / alert, acks, config responses); heartbeats, wills and announces carry none.
    Over the readings **and** events received in the window, in arrival order:

    - ``sent``: ``max(seq) − min(seq) + 1``, or ``published[device]`` when given (the number
      of seq-carrying messages the device published in the window; for a recorder that ran
      since the device's first boot that is the device's current ``seq``, e.g.
      ``fleet.status(id)["seq"]``). The seq span cannot see messages lost before the first or
      after the last one received.
    - ``received``: seq-carrying messages that arrived, duplicates included.
    - ``lost``: ``sent −`` distinct seqs received (never negative).
    - ``duplicated``: arrivals of a seq that had arrived before.
    - ``out_of_order``: first arrivals of a seq lower than one that arrived earlier.

    Latency is ``received_at − device ts`` in milliseconds (p50 / p95 / p99) over every
    message with a device time except wills (a will carries its connect time). The contract's
    ``ts`` is **whole seconds** (the firmware truncates), so each sample is an upper bound with
    1 s resolution: it lies in ``[true latency, true latency + 1 s)``, on average 0.5 s high.
    ``fine_latency_*`` use the millisecond ``ts_ms`` instead, which only ``session/announce``
    carries (one per connect), so it has few samples; NaN when there are none.

    Args:
        store: the fleet's store.
        device: only this device.
        since: received at or after this (see :func:`readings_frame`).
        published: per-device counts of seq-carrying messages published (overrides the span).
        until: received before this.

    Returns:
        One row per device (sorted by id) with :data:`DELIVERY_COLUMNS`; counts are int64,
        latencies float64 (NaN without samples).

    Raises:
        SpecError: a bad ``since`` or ``until``.
        StoreError: the database failed.
    """
    now = datetime.now(UTC)
    start = _time_arg(since, "since", now)
    end = _time_arg(until, "until", now)
    readings = store.readings_frame(device, None, start, end, None)
    records = store.events(device, None, start, end, None)
    events = _events_table(records)
    fine_ms = pd.array(
        [_int64(r.payload.get("ts_ms")) if isinstance(r.payload, dict) else None for r in records],
        dtype="Int64",
    )
    both = pd.concat(
        [
            pd.DataFrame(
                {
                    "device_id": readings["device_id"].astype(object),
                    "received_at": _times(readings["received_at"]),
                    "seq": readings["seq"].astype("Int64"),
                    "device_ts": readings["device_ts"].astype("Int64"),
                    "fine_ms": pd.array([None] * len(readings), dtype="Int64"),
                    "will": np.zeros(len(readings), dtype=bool),
                }
            ),
            pd.DataFrame(
                {
                    "device_id": events["device_id"].astype(object),
                    "received_at": _times(events["received_at"]),
                    "seq": events["seq"],
                    "device_ts": events["device_ts"],
                    "fine_ms": fine_ms,
                    "will": (events["kind"] == TopicKind.WILL.value).to_numpy(dtype=bool),
                }
            ),
        ],
        ignore_index=True,
    )
    both = both.sort_values(["received_at", "seq"], kind="stable", na_position="last")
    arrived_ms = both["received_at"].astype("int64") / 1000.0  # µs since the epoch → ms
    both["latency_ms"] = arrived_ms - both["device_ts"].astype("Float64") * 1000.0
    both["fine_latency_ms"] = arrived_ms - both["fine_ms"].astype("Float64")
    devices = set(both["device_id"].unique())
    if published is not None:
        devices |= {d for d in published if device is None or d == device}
    rows = []
    for device_id in sorted(devices):
        group = both[both["device_id"] == device_id]
        seqs = group["seq"].dropna().to_numpy(dtype="int64")
        received, distinct, duplicated, out_of_order, span = _seq_stats(seqs)
        sent = int(published[device_id]) if published and device_id in published else span
        timed = group.loc[~group["will"], "latency_ms"].dropna().to_numpy(dtype="float64")
        fine = group["fine_latency_ms"].dropna().to_numpy(dtype="float64")
        rows.append(
            (
                device_id,
                sent,
                received,
                max(sent - distinct, 0),
                duplicated,
                out_of_order,
                *_percentiles(timed),
                int(timed.size),
                *_percentiles(fine),
                int(fine.size),
            )
        )
    out = pd.DataFrame.from_records(rows, columns=list(DELIVERY_COLUMNS))
    ints = (
        "sent",
        "received",
        "lost",
        "duplicated",
        "out_of_order",
        "latency_samples",
        "fine_latency_samples",
    )
    floats = [c for c in DELIVERY_COLUMNS if c.endswith("_ms")]
    return out.astype(
        {"device_id": "string", **dict.fromkeys(ints, "int64"), **dict.fromkeys(floats, "float64")}
    )

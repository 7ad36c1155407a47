"""MQTT transport: paho-mqtt clients driven by the fleet's asyncio loop, one thread for all.

paho's own network loop (``loop_start``/``loop_forever``) uses ``select()`` and breaks for
sockets numbered >= 1024 (about 330 threaded clients per process), so no paho thread runs here.
Each client's socket is connected without blocking (``loop.sock_connect``, TLS handshake on
readiness), handed to paho, and watched with ``add_reader``/``add_writer``; paho's
``loop_read``/``loop_write`` run when the socket is ready and one loop-wide timer calls
``loop_misc`` (keepalive, CONNACK/SUBACK timeouts) for every client once a second. paho's
callbacks therefore already run on the loop thread and only touch loop state.

Session modes:

- ``PER_DEVICE``: one client per device, client id = device id, the device's own last will and
  subscriptions (in contract order). The listener hears ``on_connected`` once the SUBACK is in.
- ``SHARED``: ``shared_connections`` clients publish for all devices (a device sticks to one by
  a hash of its id); the first one subscribes to the devices' filters with the device level
  replaced by ``+`` and routes inbound messages by the topic's device level. There is **no
  per-device last will** in this mode (the broker knows no per-device session); ``crash()``
  only takes the device offline for a while.

Resilience: every connection attempt goes through the endpoint's :class:`CircuitBreaker` and a
:class:`ConnectPacer` (connection storms are spread out). A failed attempt or a lost connection
is retried after an exponential backoff with jitter (1 s doubling to 60 s). While the breaker is
OPEN, sessions park instead of trying; when it turns HALF_OPEN a few parked sessions probe the
broker, and when it closes again every waiting session reconnects at once (paced), skipping the
rest of its backoff: the breaker has just shown the broker is back. A live session keeps
publishing whatever the breaker says (there is nothing to protect a connected socket from).

Each connection attempt uses a fresh paho client, so a lost connection takes its unacknowledged
QoS 1 messages with it (counted as ``lost``), as on the firmware with a clean session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import ssl
import time
import uuid
import zlib
from collections.abc import Iterable
from enum import Enum
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from mocksim.errors import SpecError, TransportError, UnknownDeviceError
from mocksim.protocol.message import Message
from mocksim.transport.base import (
    DeviceSession,
    DeviceTransportStats,
    OfflinePolicy,
    PublishOutcome,
    SessionMode,
    Transport,
    TransportListener,
    TransportStats,
)
from mocksim.transport.endpoint import BrokerEndpoint, TlsOptions
from mocksim.transport.outbox import Counters, DeviceOutbox
from mocksim.transport.resilience import (
    BackoffConfig,
    BreakerConfig,
    CircuitBreaker,
    ConnectPacer,
)
from mocksim.transport.routing import device_id_of, shared_filter

if TYPE_CHECKING:
    from paho.mqtt.client import ConnectFlags, DisconnectFlags, MQTTMessage, SocketLike
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

    from mocksim.transport.broker import EmbeddedBroker

__all__ = ["MqttTransport"]

logger = logging.getLogger(__name__)

_MISC_INTERVAL_S = 1.0
_LISTENER_ERROR_LOG_EVERY = 1000


class _LinkState(Enum):
    IDLE = "idle"  # waiting for a retry timer, the pacer or the breaker
    CONNECTING = "connecting"  # TCP/TLS connect in progress
    AWAITING_CONNACK = "awaiting_connack"
    SUBSCRIBING = "subscribing"  # CONNACK in, SUBACK pending
    READY = "ready"
    CLOSED = "closed"  # removed or transport closed: never reconnects


class _TransportState(Enum):
    NEW = "new"
    STARTED = "started"
    CLOSED = "closed"


class _Client(mqtt.Client):
    """paho's client, fed a socket we connected without blocking the loop.

    paho's ``reconnect()`` builds its socket with a blocking ``socket.create_connection`` (and a
    blocking TLS handshake); overriding its private ``_create_socket`` lets us keep paho's
    packet handling while doing the connect on the loop.
    """

    prepared: SocketLike | None = None

    def _create_socket(self) -> SocketLike:
        sock, self.prepared = self.prepared, None
        if sock is None:
            raise ConnectionError("no prepared socket")
        return sock


class _Device:
    __slots__ = ("crashed", "ever_ready", "link", "outbox", "ready", "session")

    def __init__(self, session: DeviceSession, link: _Link, outbox: DeviceOutbox) -> None:
        self.session = session
        self.link = link
        self.outbox = outbox
        self.ready = False  # on_connected delivered, no on_disconnected since
        self.ever_ready = False
        self.crashed = False  # shared mode: offline on purpose until the crash timer ends


class _Link:
    """One broker connection and its life cycle (a device's own, or a shared one)."""

    __slots__ = (
        "attempts",
        "client",
        "client_id",
        "closed_waiter",
        "deadline",
        "devices",
        "filters",
        "in_flight",
        "last_error",
        "probe",
        "probing",
        "retry",
        "state",
        "sub_mid",
        "subscribes",
        "task",
        "waiting",
        "will",
    )

    def __init__(self, client_id: str, will: Message | None, *, subscribes: bool) -> None:
        self.client_id = client_id
        self.will = will
        self.subscribes = subscribes
        self.filters: dict[str, int] = {}  # in subscription order
        self.devices: dict[str, _Device] = {}
        self.client: _Client | None = None
        self.state = _LinkState.IDLE
        self.attempts = 0
        self.deadline = 0.0
        self.sub_mid = -1
        self.in_flight: dict[int, DeviceOutbox] = {}  # mid → sender, QoS 1 awaiting PUBACK
        self.waiting: dict[str, None] = {}  # devices with buffered messages to replay
        self.retry: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None
        self.last_error: str | None = None
        self.probing = False  # holds a breaker attempt slot
        self.probe: asyncio.Future[None] | None = None  # start()'s credential probe
        self.closed_waiter: asyncio.Future[None] | None = None


class MqttTransport(Transport):
    """Carries a fleet over MQTT to mosquitto, amqtt or any MQTT 3.1.1 broker.

    Args:
        url: ``mqtt://[user[:password]@]host[:port]`` or ``mqtts://…`` (TLS).
        mode: one session per device (default) or a few shared connections.
        username: overrides the URL's user name.
        password: overrides the URL's password.
        tls: TLS settings; ``mqtts://`` without them verifies against the system CAs.
        keepalive_s: MQTT keepalive (the contract's 60 s).
        connect_rate_per_s: connection attempts per second (storm pacing, plus jitter).
        max_inflight_qos1: QoS 1 messages awaiting PUBACK per connection; beyond it the
            offline policy applies (a client can run out of packet ids).
        offline_policy: DROP (firmware default) or BUFFER.
        buffer_size: per-device buffer bound for BUFFER (oldest dropped and counted when full).
        shared_connections: connections in SHARED mode.
        breaker: circuit breaker settings for the endpoint.
        backoff: reconnect backoff settings per connection.
        connect_timeout_s: limit for TCP/TLS connect and for CONNACK and SUBACK each.
        close_timeout_s: how long ``close()`` waits for PUBACKs and DISCONNECTs to go out.
        probe_on_start: ``start()`` first connects once with the URL's credentials and raises
            a clear TransportError if the broker is unreachable or refuses them.
        embedded: an embedded broker this transport owns (started and closed with it).
        seed: seeds the jitter of pacing and backoff.

    Raises:
        SpecError: the URL or a setting is invalid.
    """

    def __init__(
        self,
        url: str,
        *,
        mode: SessionMode = SessionMode.PER_DEVICE,
        username: str | None = None,
        password: str | None = None,
        tls: TlsOptions | None = None,
        keepalive_s: int = 60,
        connect_rate_per_s: float = 200.0,
        max_inflight_qos1: int = 1000,
        offline_policy: OfflinePolicy = OfflinePolicy.DROP,
        buffer_size: int = 1000,
        shared_connections: int = 4,
        breaker: BreakerConfig | None = None,
        backoff: BackoffConfig | None = None,
        connect_timeout_s: float = 10.0,
        close_timeout_s: float = 3.0,
        probe_on_start: bool = True,
        embedded: EmbeddedBroker | None = None,
        seed: int | None = None,
    ) -> None:
        self._url = url
        self._username = username
        self._password = password
        self._endpoint = BrokerEndpoint.parse(url, username=username, password=password)
        self._mode = SessionMode(mode)
        self._tls = tls if tls is not None else (TlsOptions() if self._endpoint.tls else None)
        self._keepalive_s = int(keepalive_s)
        self._max_inflight = max(1, int(max_inflight_qos1))
        self._policy = OfflinePolicy(offline_policy)
        self._buffer_size = int(buffer_size)
        self._shared_count = max(1, int(shared_connections))
        self._backoff = backoff or BackoffConfig()
        self._connect_timeout_s = connect_timeout_s
        self._close_timeout_s = close_timeout_s
        self._probe_on_start = probe_on_start
        self._embedded = embedded
        self._rng = random.Random(seed)  # jitter, not cryptography
        self._breaker = CircuitBreaker(breaker or BreakerConfig())
        self._pacer = ConnectPacer(connect_rate_per_s, self._rng)
        self._tag = uuid.uuid4().hex[:8]  # keeps shared/probe client ids of two fleets apart
        self._state = _TransportState.NEW
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: TransportListener | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._addr: tuple[Any, ...] = ()
        self._family = socket.AF_INET
        self._devices: dict[str, _Device] = {}
        self._partition_until = 0.0  # loop time until which the network is "cut"
        self._links: dict[str, _Link] = {}
        self._shared: list[_Link] = []
        self._parked: dict[_Link, None] = {}  # refused by the breaker, waiting for it
        self._retired = Counters()  # counts of removed devices
        self._misc_timer: asyncio.TimerHandle | None = None
        self._half_open_timer: asyncio.TimerHandle | None = None
        self._ready_count = 0
        self._connect_failures = 0
        self._inbound = 0
        self._inbound_unrouted = 0
        self._listener_errors = 0

    def __repr__(self) -> str:
        return f"<MqttTransport {self._endpoint} {self._mode} {self._state.value}>"

    @property
    def endpoint(self) -> BrokerEndpoint:
        """The broker this transport talks to."""
        return self._endpoint

    @property
    def mode(self) -> SessionMode:
        """The session mode."""
        return self._mode

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self, listener: TransportListener) -> None:
        """Resolve the broker, probe it with the credentials, and start the loop-wide timer.

        Raises:
            TransportError: already started or closed; the broker is unreachable or refused
                the credentials (the message names host:port and user, never the password).
        """
        if self._state is not _TransportState.NEW:
            raise TransportError(f"transport to {self._endpoint} was already started")
        self._loop = asyncio.get_running_loop()
        self._listener = listener
        if self._embedded is not None:
            await self._embedded.start()
            self._endpoint = BrokerEndpoint.parse(
                self._embedded.url, username=self._username, password=self._password
            )
        try:
            if self._tls is not None:
                self._ssl_context = self._tls.context()
            infos = await self._loop.getaddrinfo(
                self._endpoint.host, self._endpoint.port, type=socket.SOCK_STREAM
            )
        except (OSError, ssl.SSLError) as exc:
            await self._close_embedded()
            raise TransportError(f"cannot resolve broker {self._endpoint}: {exc}") from exc
        family, _, _, _, addr = infos[0]
        self._family, self._addr = socket.AddressFamily(family), tuple(addr)
        self._state = _TransportState.STARTED
        self._misc_timer = self._loop.call_later(_MISC_INTERVAL_S, self._misc)
        if self._probe_on_start:
            try:
                await self._probe()
            except BaseException:
                await self.close()
                raise
        if self._mode is SessionMode.SHARED:
            for index in range(self._shared_count):
                link = _Link(f"mocksim-{self._tag}-shared-{index}", None, subscribes=index == 0)
                self._shared.append(link)
                self._links[link.client_id] = link
                self._paced(link)

    async def _probe(self) -> None:
        assert self._loop is not None
        link = _Link(f"mocksim-{self._tag}-probe", None, subscribes=False)
        link.probe = self._loop.create_future()
        self._start_attempt(link)
        try:
            await asyncio.wait_for(asyncio.shield(link.probe), self._connect_timeout_s * 2)
        except TimeoutError as exc:
            self._abort(link)
            raise TransportError(f"broker {self._endpoint} did not answer in time") from exc
        await self._disconnect(link)

    async def close(self) -> None:
        """Wait briefly for PUBACKs, then DISCONNECT every session (no wills); idempotent."""
        if self._state is _TransportState.CLOSED:
            return
        started = self._state is _TransportState.STARTED
        self._state = _TransportState.CLOSED
        if started:
            deadline = time.monotonic() + self._close_timeout_s
            while time.monotonic() < deadline and any(
                link.in_flight for link in self._links.values()
            ):
                await asyncio.sleep(0.02)
            links = list(self._links.values())
            await asyncio.gather(*(self._disconnect(link) for link in links))
        for handle in (self._misc_timer, self._half_open_timer):
            if handle is not None:
                handle.cancel()
        self._parked.clear()
        await self._close_embedded()

    async def _close_embedded(self) -> None:
        if self._embedded is not None:
            await self._embedded.close()

    # -- devices -------------------------------------------------------------------------------

    async def add_device(self, session: DeviceSession) -> None:
        """Register the device and start connecting its session (paced); returns at once.

        Connection errors (also refused credentials) never raise here: they are retried with
        backoff and shown in ``device_stats(...).last_error``.

        Raises:
            TransportError: the transport is not started or closed, or the device is known.
        """
        if self._state is not _TransportState.STARTED:
            raise TransportError(f"add_device({session.device_id!r}): transport not running")
        if session.device_id in self._devices:
            raise TransportError(f"device {session.device_id!r} already has a session")
        outbox = DeviceOutbox(session.device_id, self._policy, self._buffer_size)
        if self._mode is SessionMode.PER_DEVICE:
            link = _Link(session.device_id, session.will, subscribes=True)
            link.filters = dict(session.subscriptions)
            device = _Device(session, link, outbox)
            link.devices[session.device_id] = device
            self._links[session.device_id] = link
            self._devices[session.device_id] = device
            self._paced(link)
            return
        index = zlib.crc32(session.device_id.encode()) % len(self._shared)
        link = self._shared[index]
        device = _Device(session, link, outbox)
        link.devices[session.device_id] = device
        self._devices[session.device_id] = device
        self._add_shared_filters(session)
        if link.state is _LinkState.READY:
            self._call_soon(self._mark_ready, device)

    def _add_shared_filters(self, session: DeviceSession) -> None:
        inbound = self._shared[0]
        new = [
            (topic_filter, qos)
            for topic_filter, qos in (
                (shared_filter(f, session.device_id), q) for f, q in session.subscriptions
            )
            if topic_filter not in inbound.filters
        ]
        inbound.filters.update(new)
        client = inbound.client
        if new and client is not None and inbound.state is _LinkState.READY:
            client.subscribe(new)

    async def remove_device(self, device_id: str, *, graceful: bool = True) -> None:
        """Close the device's session (DISCONNECT if ``graceful``, else abruptly: will sent).

        Buffered messages are dropped and counted; the device's counts stay in ``stats()``.

        Raises:
            UnknownDeviceError: no session for ``device_id``.
        """
        device = self._devices.get(device_id)
        if device is None:
            raise UnknownDeviceError(device_id)
        link = device.link
        self._mark_unready(device, "removed")
        if self._mode is SessionMode.PER_DEVICE:
            if graceful:
                await self._disconnect(link)
            else:
                self._abort(link)
                link.state = _LinkState.CLOSED
            self._links.pop(device_id, None)
            self._parked.pop(link, None)
        else:
            link.devices.pop(device_id, None)
            link.waiting.pop(device_id, None)
        del self._devices[device_id]
        device.outbox.discard_buffer()
        self._retired.absorb(device.outbox)

    def crash(self, device_id: str, *, reconnect_after_s: float = 5.0) -> None:
        """Drop the device's connection without DISCONNECT; reconnect after the delay.

        In per-device mode the broker then publishes the device's retained will. In shared mode
        there is no per-device session: the device only goes offline for the delay.

        Raises:
            UnknownDeviceError: no session for ``device_id``.
        """
        device = self._devices.get(device_id)
        if device is None:
            raise UnknownDeviceError(device_id)
        assert self._loop is not None
        delay = max(0.0, reconnect_after_s)
        if self._mode is SessionMode.SHARED:
            device.crashed = True
            self._mark_unready(device, "crash")
            self._loop.call_later(delay, self._end_shared_crash, device)
            return
        link = device.link
        self._abort(link)
        self._mark_unready(device, "crash")
        if self._state is _TransportState.STARTED and link.state is not _LinkState.CLOSED:
            link.attempts = 0  # a deliberate crash is no broker failure
            link.state = _LinkState.IDLE
            link.retry = self._loop.call_later(delay, self._paced, link)

    def partition(self, duration_s: float) -> None:
        """Cut the network between the fleet and the broker for ``duration_s`` seconds.

        Every connection drops without DISCONNECT and every reconnect attempt fails as refused
        until the time is up, so backoff, the circuit breaker and the offline policy act as in
        a real outage (fault injection). The broker itself keeps running and sees the sessions
        vanish, so in per-device mode it publishes their wills, as for a Wi-Fi loss.

        Raises:
            SpecError: ``duration_s`` is not a positive number.
        """
        if not (isinstance(duration_s, int | float) and duration_s > 0):
            raise SpecError("duration_s", duration_s, "a number of seconds > 0")
        assert self._loop is not None
        self._partition_until = self._loop.time() + float(duration_s)
        links = {id(d.link): d.link for d in self._devices.values()}
        for link in links.values():
            if link.state in (_LinkState.SUBSCRIBING, _LinkState.READY):
                self._connection_lost(link, "network partition (simulated)")
            elif link.state in (_LinkState.CONNECTING, _LinkState.AWAITING_CONNACK):
                self._attempt_failed(link, "network partition (simulated)")

    def _end_shared_crash(self, device: _Device) -> None:
        if self._devices.get(device.session.device_id) is not device:
            return
        device.crashed = False
        if device.link.state is _LinkState.READY:
            self._mark_ready(device)

    # -- publishing ----------------------------------------------------------------------------

    def publish(self, device_id: str, msg: Message) -> PublishOutcome:
        """Publish ``msg`` for the device with its own QoS and retain flag; never raises.

        Returns SENT when the message went to a live connection, else what the offline policy
        did with it (BUFFERED or DROPPED, counted); unknown devices are DROPPED and counted.
        """
        device = self._devices.get(device_id)
        if device is None:
            self._retired.dropped += 1
            return PublishOutcome.DROPPED
        outbox = device.outbox
        if not device.ready or outbox.buffer:  # buffered ones go first
            return outbox.hold(msg)
        outcome = self._send(device.link, outbox, msg)
        if outcome is None:
            outcome = outbox.hold(msg)
            if outcome is PublishOutcome.BUFFERED:
                device.link.waiting[device_id] = None
        return outcome

    def _send(self, link: _Link, outbox: DeviceOutbox, msg: Message) -> PublishOutcome | None:
        """Hand ``msg`` to paho; None if there is no room now (in-flight cap, no connection)."""
        client = link.client
        qos = msg.qos
        if client is None or (qos and len(link.in_flight) >= self._max_inflight):
            return None
        try:
            info = client.publish(msg.topic, msg.data, qos, msg.retain)
        except (ValueError, TypeError) as exc:  # a wildcard in the topic, a bad QoS
            logger.warning("not publishing to %r for %s: %s", msg.topic, outbox.device_id, exc)
            return outbox.drop()
        rc = info.rc
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            outbox.published += 1
            if qos:
                if not link.in_flight:
                    client.on_publish = self._on_publish
                link.in_flight[info.mid] = outbox
            return PublishOutcome.SENT
        if rc in (MQTTErrorCode.MQTT_ERR_NO_CONN, MQTTErrorCode.MQTT_ERR_QUEUE_SIZE):
            return None
        logger.warning("paho refused a publish for %s: %s", outbox.device_id, rc.name)
        if self._breaker.record_failure():
            self._on_breaker_opened()
        return outbox.drop()

    def _drain(self, link: _Link) -> None:
        """Replay buffered messages of the link's devices while there is room."""
        for device_id in list(link.waiting):
            device = link.devices.get(device_id)
            if device is None or not device.ready:
                link.waiting.pop(device_id, None)
                continue
            outbox = device.outbox
            while (msg := outbox.take()) is not None:
                outcome = self._send(link, outbox, msg)
                if outcome is None:
                    outbox.put_back(msg)
                    return
                if outcome is PublishOutcome.SENT:
                    outbox.replayed += 1
            link.waiting.pop(device_id, None)

    # -- queries -------------------------------------------------------------------------------

    def is_connected(self, device_id: str) -> bool:
        """Whether the device's session is up (and subscribed)."""
        device = self._devices.get(device_id)
        return device is not None and device.ready

    def stats(self) -> TransportStats:
        """A snapshot of the fleet-wide counters."""
        totals = Counters.total(d.outbox for d in self._devices.values())
        totals.absorb(self._retired)
        return TransportStats(
            sessions=len(self._devices),
            connections=len(self._links),
            connected=self._ready_count,
            published=totals.published,
            acked=totals.acked,
            dropped=totals.dropped,
            buffered=sum(len(d.outbox.buffer) for d in self._devices.values()),
            replayed=totals.replayed,
            lost=totals.lost,
            in_flight=sum(len(link.in_flight) for link in self._links.values()),
            reconnects=totals.reconnects,
            connect_failures=self._connect_failures,
            breaker_state=self._breaker.state,
            breaker_opened=self._breaker.opened,
            inbound=self._inbound,
            inbound_unrouted=self._inbound_unrouted,
            listener_errors=self._listener_errors,
        )

    def device_stats(self, device_id: str) -> DeviceTransportStats:
        """A snapshot of one device's counters.

        Raises:
            UnknownDeviceError: no session for ``device_id``.
        """
        device = self._devices.get(device_id)
        if device is None:
            raise UnknownDeviceError(device_id)
        outbox = device.outbox
        return DeviceTransportStats(
            device_id=device_id,
            connected=device.ready,
            published=outbox.published,
            acked=outbox.acked,
            dropped=outbox.dropped,
            buffered=len(outbox.buffer),
            replayed=outbox.replayed,
            lost=outbox.lost,
            reconnects=outbox.reconnects,
            breaker_state=self._breaker.state,
            last_error=device.link.last_error,
        )

    # -- connecting ----------------------------------------------------------------------------

    def _paced(self, link: _Link) -> None:
        """Queue a connection attempt at the pacer's next slot."""
        assert self._loop is not None
        link.retry = None
        if self._state is not _TransportState.STARTED or link.state is _LinkState.CLOSED:
            return
        link.state = _LinkState.IDLE
        link.retry = self._loop.call_later(self._pacer.reserve(), self._start_attempt, link)

    def _start_attempt(self, link: _Link) -> None:
        assert self._loop is not None
        link.retry = None
        if self._state is not _TransportState.STARTED or link.state is _LinkState.CLOSED:
            return
        if not self._breaker.allow_attempt():
            link.state = _LinkState.IDLE
            self._parked[link] = None
            self._schedule_half_open()
            return
        link.probing = True
        link.state = _LinkState.CONNECTING
        link.task = self._loop.create_task(self._open(link), name=f"mqtt-connect-{link.client_id}")

    async def _open(self, link: _Link) -> None:
        """Connect TCP (and TLS) without blocking the loop, then let paho send CONNECT."""
        try:
            sock = await asyncio.wait_for(self._open_socket(), self._connect_timeout_s)
        except (OSError, TimeoutError, ssl.SSLError, ssl.CertificateError) as exc:
            link.task = None
            reason = (
                "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            )
            self._attempt_failed(link, f"cannot connect to broker {self._endpoint}: {reason}")
            return
        link.task = None
        if link.state is not _LinkState.CONNECTING:  # closed while connecting
            sock.close()
            self._finish_attempt(link)
            return
        client = self._new_client(link)
        client.prepared = sock
        link.client = client
        try:
            client.connect_async(self._endpoint.host, self._endpoint.port, self._keepalive_s)
            client.reconnect()
        except (OSError, ValueError) as exc:
            self._attempt_failed(link, f"cannot start the MQTT session: {exc}")
            return
        if link.client is client and link.state is _LinkState.CONNECTING:
            link.state = _LinkState.AWAITING_CONNACK
            link.deadline = time.monotonic() + self._connect_timeout_s

    async def _open_socket(self) -> SocketLike:
        assert self._loop is not None
        if self._loop.time() < self._partition_until:
            raise ConnectionRefusedError("network partition (simulated)")
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await self._loop.sock_connect(sock, self._addr)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl_context is None:
                return sock
            tls = self._ssl_context.wrap_socket(
                sock, server_hostname=self._endpoint.host, do_handshake_on_connect=False
            )
            try:
                await self._handshake(tls)
            except BaseException:
                tls.close()
                raise
            return tls
        except BaseException:
            sock.close()
            raise

    async def _handshake(self, tls: ssl.SSLSocket) -> None:
        """Drive a non-blocking TLS handshake from socket readiness."""
        assert self._loop is not None
        while True:
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                await self._ready(tls, write=False)
            except ssl.SSLWantWriteError:
                await self._ready(tls, write=True)
            else:
                return

    async def _ready(self, sock: ssl.SSLSocket, *, write: bool) -> None:
        assert self._loop is not None
        waiter: asyncio.Future[None] = self._loop.create_future()

        def wake() -> None:
            if not waiter.done():
                waiter.set_result(None)

        fd = sock.fileno()
        if write:
            self._loop.add_writer(fd, wake)
        else:
            self._loop.add_reader(fd, wake)
        try:
            await waiter
        finally:
            if write:
                self._loop.remove_writer(fd)
            else:
                self._loop.remove_reader(fd)

    def _new_client(self, link: _Link) -> _Client:
        client = _Client(
            CallbackAPIVersion.VERSION2,
            client_id=link.client_id,
            clean_session=True,
            userdata=link,
            protocol=MQTTProtocolVersion.MQTTv311,
            reconnect_on_failure=False,
        )
        if self._endpoint.username is not None:
            client.username_pw_set(self._endpoint.username, self._endpoint.password)
        if link.will is not None:
            will = link.will
            client.will_set(will.topic, will.data, will.qos, will.retain)
        client.max_inflight_messages_set(0)  # our own cap applies; paho must never queue
        client.max_queued_messages_set(0)
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_socket_register_write
        client.on_socket_unregister_write = self._on_socket_unregister_write
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        # on_publish is set only while QoS 1 messages are in flight: for QoS 0 paho would build
        # a ReasonCode and a Properties object per message just to tell us it was written.
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        return client

    def _finish_attempt(self, link: _Link) -> None:
        if link.probing:
            link.probing = False
            self._breaker.attempt_done()

    def _attempt_failed(self, link: _Link, reason: str) -> None:
        """A connection attempt failed: count it, tell the breaker, retry after a backoff."""
        self._finish_attempt(link)
        self._abort(link)
        self._connect_failures += 1
        link.last_error = reason
        if link.probe is not None:
            if not link.probe.done():
                link.probe.set_exception(TransportError(reason))
            link.state = _LinkState.CLOSED
            return
        logger.debug("%s: %s", link.client_id, reason)
        if self._breaker.record_failure():
            self._on_breaker_opened()
        self._retry_later(link)

    def _retry_later(self, link: _Link) -> None:
        assert self._loop is not None
        if self._state is not _TransportState.STARTED or link.state is _LinkState.CLOSED:
            return
        link.attempts += 1
        link.state = _LinkState.IDLE
        delay = self._backoff.delay(link.attempts, self._rng)
        link.retry = self._loop.call_later(delay, self._paced, link)

    def _abort(self, link: _Link) -> None:
        """Close the link's socket without DISCONNECT and forget its client and attempt."""
        if link.retry is not None:
            link.retry.cancel()
            link.retry = None
        if link.task is not None:
            link.task.cancel()
            link.task = None
            self._finish_attempt(link)
        client, link.client = link.client, None
        if client is not None:
            sock = client.socket()
            if sock is not None:
                self._on_socket_close(client, link, sock)
                sock.close()
            client.prepared = None
        for outbox in link.in_flight.values():
            outbox.lost += 1
        link.in_flight.clear()
        if link.state is not _LinkState.CLOSED:
            link.state = _LinkState.IDLE

    async def _disconnect(self, link: _Link) -> None:
        """Close the link for good: DISCONNECT if the session is up (no will), else abort."""
        assert self._loop is not None
        was = link.state
        link.state = _LinkState.CLOSED
        self._parked.pop(link, None)
        for device in link.devices.values():
            self._mark_unready(device, "closed", notify=False)
        client = link.client
        if client is None or was not in (_LinkState.SUBSCRIBING, _LinkState.READY):
            self._abort(link)
            return
        link.closed_waiter = self._loop.create_future()
        client.disconnect()
        client.loop_write()  # a DISCONNECT nearly always fits the socket buffer right now
        if link.client is client and client.socket() is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(link.closed_waiter), self._close_timeout_s)
        self._abort(link)

    # -- breaker -------------------------------------------------------------------------------

    def _on_breaker_opened(self) -> None:
        logger.warning(
            "broker %s: circuit breaker opened after %d consecutive failures;"
            " sessions wait %.0f s before probing it",
            self._endpoint,
            self._breaker.config.failures,
            self._breaker.config.open_s,
        )
        self._schedule_half_open()

    def _schedule_half_open(self) -> None:
        assert self._loop is not None
        if self._half_open_timer is not None:
            self._half_open_timer.cancel()
        delay = self._breaker.open_remaining_s()
        self._half_open_timer = self._loop.call_later(delay, self._on_half_open)

    def _on_half_open(self) -> None:
        self._half_open_timer = None
        if self._state is not _TransportState.STARTED or not self._parked:
            return
        self._release_parked(self._breaker.config.successes_to_close)

    def _release_parked(self, count: int | None = None) -> None:
        """Send parked links (all, or ``count``) back to the pacer."""
        links = list(self._parked)
        if count is not None:
            links = links[:count]
        for link in links:
            self._parked.pop(link, None)
            self._paced(link)

    def _on_success(self) -> None:
        if self._breaker.record_success():
            logger.warning("broker %s: circuit breaker closed; reconnecting", self._endpoint)
            self._release_parked()
            # Sessions still sitting out a backoff come back now: the broker is back.
            for link in self._links.values():
                if link.state is _LinkState.IDLE and link.retry is not None:
                    link.retry.cancel()
                    self._paced(link)

    # -- paho callbacks (on the loop thread: we call loop_read/loop_write ourselves) ----------

    def _on_socket_open(self, client: mqtt.Client, link: _Link, sock: SocketLike) -> None:
        assert self._loop is not None
        self._loop.add_reader(sock, self._on_readable, client, link)

    def _on_socket_close(self, client: mqtt.Client, link: _Link, sock: SocketLike) -> None:
        # paho may call this again for a socket we already closed (a stale client's __del__).
        loop = self._loop
        if loop is None or loop.is_closed() or sock.fileno() < 0:
            return
        loop.remove_reader(sock)
        loop.remove_writer(sock)

    def _on_socket_register_write(self, client: mqtt.Client, link: _Link, sock: SocketLike) -> None:
        assert self._loop is not None
        self._loop.add_writer(sock, self._on_writable, client, link)

    def _on_socket_unregister_write(
        self, client: mqtt.Client, link: _Link, sock: SocketLike
    ) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or sock.fileno() < 0:
            return
        loop.remove_writer(sock)

    def _on_readable(self, client: mqtt.Client, link: _Link) -> None:
        try:
            client.loop_read()
            sock = client.socket()
            # TLS may hold decrypted bytes the kernel no longer reports as readable.
            while isinstance(sock, ssl.SSLSocket) and sock.pending() and client.socket() is sock:
                client.loop_read()
        except Exception:
            logger.exception("%s: reading from the broker failed", link.client_id)
            if link.client is client:
                self._connection_lost(link, "read error")

    def _on_writable(self, client: mqtt.Client, link: _Link) -> None:
        try:
            client.loop_write()
        except Exception:
            logger.exception("%s: writing to the broker failed", link.client_id)
            if link.client is client:
                self._connection_lost(link, "write error")

    def _on_connect(
        self,
        client: mqtt.Client,
        link: _Link,
        flags: ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if link.client is not client:
            return
        link.deadline = 0.0
        if reason.is_failure:
            self._attempt_failed(link, self._refusal(link, reason))
            return
        self._finish_attempt(link)
        link.attempts = 0
        link.last_error = None
        self._on_success()
        if link.probe is not None:
            link.state = _LinkState.SUBSCRIBING  # "session up" for _disconnect
            if not link.probe.done():
                link.probe.set_result(None)
            return
        filters = list(link.filters.items()) if link.subscribes else []
        if not filters:
            self._link_ready(link)
            return
        link.state = _LinkState.SUBSCRIBING
        link.deadline = time.monotonic() + self._connect_timeout_s
        _, mid = client.subscribe(filters)
        link.sub_mid = mid if mid is not None else -1

    def _refusal(self, link: _Link, reason: ReasonCode) -> str:
        why = str(reason).lower()
        user = self._endpoint.username
        if reason.value in (134, 135):  # bad user name or password / not authorized
            who = f"the credentials for user {user!r}" if user else "anonymous access"
            return f"broker {self._endpoint} refused {who} ({why})"
        return f"broker {self._endpoint} refused client {link.client_id!r} ({why})"

    def _on_subscribe(
        self,
        client: mqtt.Client,
        link: _Link,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if link.client is not client or mid != link.sub_mid:
            return
        refused = [code for code in reason_codes if code.is_failure]
        if refused:
            logger.warning("%s: broker refused %d subscription(s)", link.client_id, len(refused))
        link.deadline = 0.0
        if link.state is _LinkState.SUBSCRIBING:
            self._link_ready(link)

    def _link_ready(self, link: _Link) -> None:
        link.state = _LinkState.READY
        for device in list(link.devices.values()):
            if not device.crashed:
                self._mark_ready(device)
        if link.waiting:
            self._drain(link)

    def _on_publish(
        self,
        client: mqtt.Client,
        link: _Link,
        mid: int,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if link.client is not client:
            return
        outbox = link.in_flight.pop(mid, None)
        if outbox is None:
            return  # a QoS 0 message written while QoS 1 ones were in flight
        outbox.acked += 1
        self._on_success()
        if link.waiting:
            self._drain(link)
        if not link.in_flight:
            client.on_publish = None

    def _on_message(self, client: mqtt.Client, link: _Link, message: MQTTMessage) -> None:
        if link.client is not client:
            return
        try:
            topic = message.topic
        except UnicodeDecodeError:
            self._inbound_unrouted += 1
            return
        device_id: str | None
        if self._mode is SessionMode.PER_DEVICE:
            device_id = next(iter(link.devices), None)
        else:
            device_id = device_id_of(topic)
        if device_id is not None:
            device = self._devices.get(device_id)
            if device is None or not device.ready:  # commands to offline devices are lost
                self._inbound_unrouted += 1
                return
        payload = message.payload
        self._deliver(device_id, topic, payload if isinstance(payload, bytes) else bytes(payload))

    def _deliver(self, device_id: str | None, topic: str, payload: bytes) -> None:
        self._inbound += 1
        listener = self._listener
        if listener is None:
            return
        try:
            listener.on_message(device_id, topic, payload)
        except Exception:  # noqa: BLE001 - a listener bug must not kill the loop
            self._listener_error("on_message", topic)

    def _listener_error(self, what: str, subject: str) -> None:
        self._listener_errors += 1
        if self._listener_errors % _LISTENER_ERROR_LOG_EVERY == 1:
            logger.exception(
                "listener.%s(%s) raised (%d listener errors so far)",
                what,
                subject,
                self._listener_errors,
            )

    def _on_disconnect(
        self,
        client: mqtt.Client,
        link: _Link,
        flags: DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if link.client is not client:
            return
        if link.state is _LinkState.CLOSED:  # our own DISCONNECT went out
            if link.closed_waiter is not None and not link.closed_waiter.done():
                link.closed_waiter.set_result(None)
            return
        self._connection_lost(link, str(reason).lower())

    def _connection_lost(self, link: _Link, reason: str) -> None:
        if link.state in (_LinkState.CONNECTING, _LinkState.AWAITING_CONNACK):
            self._attempt_failed(link, f"broker {self._endpoint} closed the connection: {reason}")
            return
        self._abort(link)
        link.last_error = f"connection to {self._endpoint} lost: {reason}"
        logger.debug("%s: %s", link.client_id, link.last_error)
        for device in list(link.devices.values()):
            self._mark_unready(device, reason)
        if self._breaker.record_failure():
            self._on_breaker_opened()
        self._retry_later(link)

    # -- device readiness and listener calls ---------------------------------------------------

    def _mark_ready(self, device: _Device) -> None:
        if device.ready or device.crashed or device.link.state is not _LinkState.READY:
            return
        device.ready = True
        self._ready_count += 1
        reconnect = device.ever_ready
        device.ever_ready = True
        if reconnect:
            device.outbox.reconnects += 1
        listener = self._listener
        if listener is not None:
            try:
                listener.on_connected(device.session.device_id, reconnect)
            except Exception:  # noqa: BLE001 - a listener bug must not kill the loop
                self._listener_error("on_connected", device.session.device_id)
        if device.outbox.buffer:
            device.link.waiting[device.session.device_id] = None
            self._drain(device.link)

    def _mark_unready(self, device: _Device, reason: str, *, notify: bool = True) -> None:
        if not device.ready:
            return
        device.ready = False
        self._ready_count -= 1
        listener = self._listener
        if notify and listener is not None:
            try:
                listener.on_disconnected(device.session.device_id, reason)
            except Exception:  # noqa: BLE001 - a listener bug must not kill the loop
                self._listener_error("on_disconnected", device.session.device_id)

    def _call_soon(self, callback: Any, *args: Any) -> None:
        assert self._loop is not None
        self._loop.call_soon(callback, *args)

    # -- the loop-wide timer -------------------------------------------------------------------

    def _misc(self) -> None:
        """Keepalive pings and CONNACK/SUBACK timeouts for every client, once a second."""
        assert self._loop is not None
        if self._state is not _TransportState.STARTED:
            return
        now = time.monotonic()
        for link in list(self._iter_live_links()):
            client = link.client
            if client is None:
                continue
            if link.deadline and now > link.deadline:
                waiting_for = "CONNACK" if link.state is _LinkState.AWAITING_CONNACK else "SUBACK"
                if link.state is _LinkState.AWAITING_CONNACK:
                    self._attempt_failed(link, f"no {waiting_for} from {self._endpoint} in time")
                else:
                    self._connection_lost(link, f"no {waiting_for} in time")
                continue
            try:
                client.loop_misc()
            except Exception:
                logger.exception("%s: keepalive handling failed", link.client_id)
        self._misc_timer = self._loop.call_later(_MISC_INTERVAL_S, self._misc)

    def _iter_live_links(self) -> Iterable[_Link]:
        return (link for link in self._links.values() if link.client is not None)

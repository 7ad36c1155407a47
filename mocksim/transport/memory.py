"""The in-memory transport: a broker-less bus for virtual time and pure unit tests.

It keeps the MQTT transport's rules (offline policy, counters, will on crash, routing of inbound
topics by device level) but calls the listener synchronously, inside the call that caused the
event, so a test sees the consequences when the call returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from mocksim.errors import TransportError, UnknownDeviceError
from mocksim.protocol.message import Message
from mocksim.transport.base import (
    BreakerState,
    DeviceSession,
    DeviceTransportStats,
    OfflinePolicy,
    PublishOutcome,
    Transport,
    TransportListener,
    TransportStats,
)
from mocksim.transport.outbox import Counters, DeviceOutbox
from mocksim.transport.routing import device_id_of

__all__ = ["MemoryTransport"]

logger = logging.getLogger(__name__)


class _MemDevice:
    __slots__ = ("ever_online", "online", "outbox", "reconnect", "session")

    def __init__(self, session: DeviceSession, outbox: DeviceOutbox) -> None:
        self.session = session
        self.outbox = outbox
        self.online = False
        self.ever_online = False
        self.reconnect: asyncio.TimerHandle | None = None


class MemoryTransport(Transport):
    """Records what devices publish and injects what a server would send.

    Attributes:
        published: every message sent, as ``(device_id, message)`` in order (replays included).
        wills: the will of every crash, as ``(device_id, will)``: what a broker would publish.

    Args:
        offline_policy: DROP (firmware default) or BUFFER while a device is offline.
        buffer_size: per-device bound of the BUFFER policy.
    """

    def __init__(
        self, *, offline_policy: OfflinePolicy = OfflinePolicy.DROP, buffer_size: int = 1000
    ) -> None:
        self._policy = OfflinePolicy(offline_policy)
        self._buffer_size = buffer_size
        self._devices: dict[str, _MemDevice] = {}
        self._listener: TransportListener | None = None
        self._started = False
        self._closed = False
        self._retired = Counters()
        self._inbound = 0
        self._inbound_unrouted = 0
        self._listener_errors = 0
        self.published: list[tuple[str, Message]] = []
        self.wills: list[tuple[str, Message]] = []

    def __repr__(self) -> str:
        return f"<MemoryTransport devices={len(self._devices)} published={len(self.published)}>"

    async def start(self, listener: TransportListener) -> None:
        """Remember the listener.

        Raises:
            TransportError: already started or closed.
        """
        if self._started or self._closed:
            raise TransportError("memory transport was already started")
        self._listener = listener
        self._started = True

    async def close(self) -> None:
        """Take every device offline without wills; idempotent."""
        if self._closed:
            return
        self._closed = True
        for device in self._devices.values():
            self._cancel_reconnect(device)
            device.online = False

    async def add_device(self, session: DeviceSession) -> None:
        """Register the device; it comes online at once (``on_connected`` is called now).

        Raises:
            TransportError: not started, closed, or the device is known.
        """
        if not self._started or self._closed:
            raise TransportError(f"add_device({session.device_id!r}): transport not running")
        if session.device_id in self._devices:
            raise TransportError(f"device {session.device_id!r} already has a session")
        device = _MemDevice(
            session, DeviceOutbox(session.device_id, self._policy, self._buffer_size)
        )
        self._devices[session.device_id] = device
        self._go_online(device)

    async def remove_device(self, device_id: str, *, graceful: bool = True) -> None:
        """Forget the device; ``graceful=False`` records its will as a crash would.

        Raises:
            UnknownDeviceError: no session for ``device_id``.
        """
        device = self._get(device_id)
        self._cancel_reconnect(device)
        if not graceful and device.online:
            self.wills.append((device_id, device.session.will))
        self._go_offline(device, "removed")
        del self._devices[device_id]
        device.outbox.discard_buffer()
        self._retired.absorb(device.outbox)

    def publish(self, device_id: str, msg: Message) -> PublishOutcome:
        """Record ``msg`` if the device is online, else apply the offline policy; never raises."""
        device = self._devices.get(device_id)
        if device is None:
            self._retired.dropped += 1
            return PublishOutcome.DROPPED
        if not device.online or self._closed:
            return device.outbox.hold(msg)
        self._record(device, msg)
        return PublishOutcome.SENT

    def _record(self, device: _MemDevice, msg: Message) -> None:
        self.published.append((device.session.device_id, msg))
        device.outbox.published += 1
        if msg.qos:
            device.outbox.acked += 1

    def crash(self, device_id: str, *, reconnect_after_s: float = 5.0) -> None:
        """Record the device's will, take it offline and bring it back after the delay.

        A delay <= 0 reconnects at once. A positive delay needs a running event loop (real
        time); without one the device stays offline until ``set_online(device_id, True)``.

        Raises:
            UnknownDeviceError: no session for ``device_id``.
        """
        device = self._get(device_id)
        self._cancel_reconnect(device)
        if device.online:
            self.wills.append((device_id, device.session.will))
        self._go_offline(device, "crash")
        if reconnect_after_s <= 0:
            self._go_online(device)
            return
        with contextlib.suppress(RuntimeError):  # no running loop: stay offline
            loop = asyncio.get_running_loop()
            device.reconnect = loop.call_later(reconnect_after_s, self._go_online, device)

    def set_online(self, device_id: str, online: bool) -> None:
        """Simulate an outage (``False``) or its end (``True``) for one device.

        Raises:
            UnknownDeviceError: no session for ``device_id``.
        """
        device = self._get(device_id)
        self._cancel_reconnect(device)
        if online:
            self._go_online(device)
        else:
            self._go_offline(device, "offline")

    def inject(self, topic: str, payload: bytes, device_id: str | None = None) -> bool:
        """Deliver an inbound message as a broker would; returns whether a device got it.

        Without ``device_id`` the topic's device level routes it (shared-mode routing):
        broadcast and kaiser-wide topics go to the listener with ``device_id=None``. Messages
        for unknown or offline devices are lost (clean session) and counted as unrouted.
        """
        target = device_id if device_id is not None else device_id_of(topic)
        if target is not None:
            device = self._devices.get(target)
            if device is None or not device.online:
                self._inbound_unrouted += 1
                return False
        self._inbound += 1
        listener = self._listener
        if listener is not None:
            try:
                listener.on_message(target, topic, payload)
            except Exception:  # noqa: BLE001 - a listener bug must not kill the loop
                self._listener_error("on_message", topic)
        return True

    def is_connected(self, device_id: str) -> bool:
        """Whether the device is online."""
        device = self._devices.get(device_id)
        return device is not None and device.online

    def stats(self) -> TransportStats:
        """A snapshot of the fleet-wide counters."""
        totals = Counters.total(d.outbox for d in self._devices.values())
        totals.absorb(self._retired)
        return TransportStats(
            sessions=len(self._devices),
            connections=len(self._devices),
            connected=sum(d.online for d in self._devices.values()),
            published=totals.published,
            acked=totals.acked,
            dropped=totals.dropped,
            buffered=sum(len(d.outbox.buffer) for d in self._devices.values()),
            replayed=totals.replayed,
            lost=totals.lost,
            in_flight=0,
            reconnects=totals.reconnects,
            connect_failures=0,
            breaker_state=BreakerState.CLOSED,
            breaker_opened=0,
            inbound=self._inbound,
            inbound_unrouted=self._inbound_unrouted,
            listener_errors=self._listener_errors,
        )

    def device_stats(self, device_id: str) -> DeviceTransportStats:
        """A snapshot of one device's counters.

        Raises:
            UnknownDeviceError: no session for ``device_id``.
        """
        device = self._get(device_id)
        outbox = device.outbox
        return DeviceTransportStats(
            device_id=device_id,
            connected=device.online,
            published=outbox.published,
            acked=outbox.acked,
            dropped=outbox.dropped,
            buffered=len(outbox.buffer),
            replayed=outbox.replayed,
            lost=outbox.lost,
            reconnects=outbox.reconnects,
            breaker_state=BreakerState.CLOSED,
            last_error=None,
        )

    # -- internals -----------------------------------------------------------------------------

    def _get(self, device_id: str) -> _MemDevice:
        device = self._devices.get(device_id)
        if device is None:
            raise UnknownDeviceError(device_id)
        return device

    def _cancel_reconnect(self, device: _MemDevice) -> None:
        if device.reconnect is not None:
            device.reconnect.cancel()
            device.reconnect = None

    def _go_online(self, device: _MemDevice) -> None:
        device.reconnect = None
        if device.online or self._closed:
            return
        device.online = True
        reconnect = device.ever_online
        device.ever_online = True
        if reconnect:
            device.outbox.reconnects += 1
        device_id = device.session.device_id
        listener = self._listener
        if listener is not None:
            try:
                listener.on_connected(device_id, reconnect)
            except Exception:  # noqa: BLE001 - a listener bug must not kill the loop
                self._listener_error("on_connected", device_id)
        while device.online and (msg := device.outbox.take()) is not None:
            self._record(device, msg)
            device.outbox.replayed += 1

    def _go_offline(self, device: _MemDevice, reason: str) -> None:
        if not device.online:
            return
        device.online = False
        listener = self._listener
        if listener is not None:
            try:
                listener.on_disconnected(device.session.device_id, reason)
            except Exception:  # noqa: BLE001 - a listener bug must not kill the loop
                self._listener_error("on_disconnected", device.session.device_id)

    def _listener_error(self, what: str, subject: str) -> None:
        self._listener_errors += 1
        logger.exception("listener.%s(%s) raised", what, subject)

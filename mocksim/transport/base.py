"""The transport interface: what the fleet hands over, what it gets back, and the counters.

Every transport (MQTT, in-memory) implements :class:`Transport`. All of its methods run on the
fleet's event loop thread, and it calls the fleet's :class:`TransportListener` on that thread
too, so no state here needs a lock.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from mocksim.protocol.message import Message

__all__ = [
    "BreakerState",
    "DeviceSession",
    "DeviceTransportStats",
    "OfflinePolicy",
    "PublishOutcome",
    "SessionMode",
    "Transport",
    "TransportListener",
    "TransportStats",
]


class SessionMode(StrEnum):
    """How devices map onto broker connections."""

    PER_DEVICE = "per_device"  # one client id, last will and subscription set per device
    SHARED = "shared"  # a few connections publish for all; no per-device last will


class OfflinePolicy(StrEnum):
    """What happens to a publish the broker cannot take now (offline, in-flight cap reached)."""

    DROP = "drop"  # the firmware's default: drop it and count it
    BUFFER = "buffer"  # keep it in a bounded per-device buffer, replayed on reconnect


class PublishOutcome(StrEnum):
    """What ``Transport.publish`` did with a message."""

    SENT = "sent"  # handed to a live broker connection
    BUFFERED = "buffered"  # held for replay (BUFFER policy)
    DROPPED = "dropped"  # refused and counted


class BreakerState(StrEnum):
    """Circuit breaker state of a broker endpoint."""

    CLOSED = "closed"  # healthy: connection attempts go through
    OPEN = "open"  # failing: connection attempts wait until the open period ends
    HALF_OPEN = "half_open"  # probing: a few connection attempts test the broker


@dataclass(frozen=True, slots=True)
class DeviceSession:
    """What the fleet hands the transport for one device.

    Attributes:
        device_id: the device id; in per-device mode also the MQTT client id.
        will: the last will (contract: ``…/system/will``, QoS 1, retained).
        subscriptions: ``(topic filter, qos)`` pairs in the contract's order.
    """

    device_id: str
    will: Message
    subscriptions: tuple[tuple[str, int], ...]


class TransportListener(Protocol):
    """Implemented by the fleet; always called on the loop thread.

    Exceptions raised here are caught, counted (``listener_errors``) and logged by the transport.
    """

    def on_connected(self, device_id: str, reconnect: bool) -> None:
        """The device's session is up and subscribed (``reconnect``: it was up before)."""

    def on_disconnected(self, device_id: str, reason: str) -> None:
        """The device's session went down (crash, broker loss, removal)."""

    def on_message(self, device_id: str | None, topic: str, payload: bytes) -> None:
        """An inbound message; ``device_id`` is None for broadcast topics in shared mode."""


@dataclass(frozen=True, slots=True)
class TransportStats:
    """Fleet-wide transport counters (a snapshot).

    Attributes:
        sessions: devices with a session.
        connections: broker connections held (sessions in per-device mode).
        connected: devices whose session is up now.
        published: messages handed to a live connection (SENT), including replays.
        acked: QoS 1 messages the broker acknowledged (PUBACK).
        dropped: messages refused (offline, in-flight cap, full buffer, removal, bad message).
        buffered: messages held in buffers now.
        replayed: buffered messages sent after a reconnect or once in-flight room came back.
        lost: QoS 1 messages sent whose connection died before the PUBACK came.
        in_flight: QoS 1 messages awaiting a PUBACK now.
        reconnects: sessions that came up again after having been up.
        connect_failures: failed connection attempts (refused, timed out, not authorised).
        breaker_state: the endpoint's circuit breaker state.
        breaker_opened: how often the breaker opened.
        inbound: inbound messages handed to the listener.
        inbound_unrouted: inbound messages for no known device (not handed over).
        listener_errors: exceptions raised by the listener (caught).
    """

    sessions: int
    connections: int
    connected: int
    published: int
    acked: int
    dropped: int
    buffered: int
    replayed: int
    lost: int
    in_flight: int
    reconnects: int
    connect_failures: int
    breaker_state: BreakerState
    breaker_opened: int
    inbound: int
    inbound_unrouted: int
    listener_errors: int


@dataclass(frozen=True, slots=True)
class DeviceTransportStats:
    """One device's transport counters (a snapshot); fields as in :class:`TransportStats`.

    ``last_error`` is the last connection error of the device's session (None once it is up).
    """

    device_id: str
    connected: bool
    published: int
    acked: int
    dropped: int
    buffered: int
    replayed: int
    lost: int
    reconnects: int
    breaker_state: BreakerState
    last_error: str | None


class Transport(ABC):
    """Carries a fleet's messages to and from a broker; every method runs on the loop thread."""

    @abstractmethod
    async def start(self, listener: TransportListener) -> None:
        """Get ready to carry messages and remember who to tell about them.

        Raises:
            TransportError: the broker is unreachable or refused the credentials.
        """

    @abstractmethod
    async def close(self) -> None:
        """Disconnect every session gracefully (brokers publish no will); safe to call twice."""

    @abstractmethod
    async def add_device(self, session: DeviceSession) -> None:
        """Open the device's session; returns at once, the connection follows (paced).

        Raises:
            TransportError: the transport is not started or closed, or the device is known.
        """

    @abstractmethod
    async def remove_device(self, device_id: str, *, graceful: bool = True) -> None:
        """Close the device's session: with DISCONNECT (``graceful``) or abruptly (will sent).

        Raises:
            UnknownDeviceError: no session for ``device_id``.
        """

    @abstractmethod
    def publish(self, device_id: str, msg: Message) -> PublishOutcome:
        """Publish ``msg`` for the device; never blocks and never raises."""

    @abstractmethod
    def crash(self, device_id: str, *, reconnect_after_s: float = 5.0) -> None:
        """Drop the session without DISCONNECT (the broker publishes the will), reconnect later.

        Raises:
            UnknownDeviceError: no session for ``device_id``.
        """

    @abstractmethod
    def is_connected(self, device_id: str) -> bool:
        """Whether the device's session is up (False for unknown devices)."""

    @abstractmethod
    def stats(self) -> TransportStats:
        """A snapshot of the fleet-wide counters."""

    @abstractmethod
    def device_stats(self, device_id: str) -> DeviceTransportStats:
        """A snapshot of one device's counters.

        Raises:
            UnknownDeviceError: no session for ``device_id``.
        """

"""Transports carry a fleet's messages: MQTT (paho on the fleet's loop), embedded broker, memory.

The fleet talks to :class:`Transport` only; ``transport_from_url`` picks the MQTT transport for a
broker URL (or an embedded amqtt broker for ``None``), and :class:`MemoryTransport` serves
virtual time and unit tests.
"""

from mocksim.transport.base import (
    BreakerState,
    DeviceSession,
    DeviceTransportStats,
    OfflinePolicy,
    PublishOutcome,
    SessionMode,
    Transport,
    TransportListener,
    TransportStats,
)
from mocksim.transport.broker import EmbeddedBroker
from mocksim.transport.endpoint import BrokerEndpoint, TlsOptions
from mocksim.transport.factory import transport_from_url
from mocksim.transport.memory import MemoryTransport
from mocksim.transport.mqtt import MqttTransport
from mocksim.transport.resilience import BackoffConfig, BreakerConfig, CircuitBreaker

__all__ = [
    "BackoffConfig",
    "BreakerConfig",
    "BreakerState",
    "BrokerEndpoint",
    "CircuitBreaker",
    "DeviceSession",
    "DeviceTransportStats",
    "EmbeddedBroker",
    "MemoryTransport",
    "MqttTransport",
    "OfflinePolicy",
    "PublishOutcome",
    "SessionMode",
    "TlsOptions",
    "Transport",
    "TransportListener",
    "TransportStats",
    "transport_from_url",
]

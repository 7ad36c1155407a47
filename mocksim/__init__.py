"""mocksim: simulated AutomationOne ESP32 fleets over real MQTT.

Build a :class:`Fleet`, add devices from :class:`DeviceSpec` s, tune their value patterns while
they run, break things on purpose, and read back what the broker delivered.
"""

from mocksim.errors import (
    ContractError,
    FleetClosedError,
    LeaseError,
    MocksimError,
    SpecError,
    StoreError,
    TopicError,
    TransportError,
    UnknownDeviceError,
)
from mocksim.fleet import FAST_FACTOR, DeviceHandle, Fleet, FleetStats, FleetStatus
from mocksim.protocol.message import Message
from mocksim.protocol.topics import TopicBuilder, TopicKind
from mocksim.protocol.validate import check as check_message
from mocksim.protocol.validate import validate as validate_message
from mocksim.server import ServerClient
from mocksim.spec import (
    ActuatorSpec,
    ConstantPattern,
    DeviceSpec,
    DriftPattern,
    RandomPattern,
    SensorSpec,
    SinePattern,
    SpikePattern,
    StuckPattern,
    WalkPattern,
)
from mocksim.store import DesiredState, RuntimeStatus
from mocksim.transport import BackoffConfig, BreakerConfig
from mocksim.virtual import messages_frame, simulate

__all__ = [
    "FAST_FACTOR",
    "ActuatorSpec",
    "BackoffConfig",
    "BreakerConfig",
    "ConstantPattern",
    "ContractError",
    "DesiredState",
    "DeviceHandle",
    "DeviceSpec",
    "DriftPattern",
    "Fleet",
    "FleetClosedError",
    "FleetStats",
    "FleetStatus",
    "LeaseError",
    "Message",
    "MocksimError",
    "RandomPattern",
    "RuntimeStatus",
    "SensorSpec",
    "ServerClient",
    "SinePattern",
    "SpecError",
    "SpikePattern",
    "StoreError",
    "StuckPattern",
    "TopicBuilder",
    "TopicError",
    "TopicKind",
    "TransportError",
    "UnknownDeviceError",
    "WalkPattern",
    "check_message",
    "messages_frame",
    "simulate",
    "validate_message",
]

__version__ = "0.1.0"

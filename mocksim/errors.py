"""The one error tree of mocksim.

::

    MocksimError
    ├── SpecError(MocksimError, ValueError)     bad user input: names .field, .value, .allowed
    ├── ContractError(MocksimError, ValueError) a message or topic breaks the wire contract
    │   └── TopicError                         a topic that is foreign or malformed
    ├── UnknownDeviceError(MocksimError, KeyError)
    ├── FleetClosedError(MocksimError, RuntimeError)
    ├── TransportError                         the broker connection failed or refused us
    └── StoreError                             the database failed or holds a newer schema
        └── LeaseError                         another owner holds the device

paho, SQLAlchemy and pydantic errors are translated where they enter, with ``raise … from exc``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = [
    "ContractError",
    "FleetClosedError",
    "LeaseError",
    "MocksimError",
    "SpecError",
    "StoreError",
    "TopicError",
    "TransportError",
    "UnknownDeviceError",
]


class MocksimError(Exception):
    """Root of every error mocksim raises on purpose."""


def _fmt_allowed(allowed: Iterable[Any] | str | None) -> str:
    if allowed is None:
        return ""
    if isinstance(allowed, str):
        return allowed
    return ", ".join(str(a) for a in allowed)


class SpecError(MocksimError, ValueError):
    """Invalid user input: the message names the field, the bad value and the allowed values."""

    def __init__(
        self,
        field: str,
        value: Any,
        allowed: Iterable[Any] | str | None = None,
        message: str | None = None,
    ) -> None:
        self.field = field
        self.value = value
        self.allowed = _fmt_allowed(allowed)
        if message is None:
            if allowed is None or not self.allowed:
                message = f"{field}: {value!r} is not allowed"
            elif isinstance(allowed, str):
                message = f"{field}: {value!r} is not allowed; allowed: {self.allowed}"
            else:
                message = f"{field}: {value!r} is not one of {self.allowed}"
        self.message = message
        super().__init__(message)

    def with_prefix(self, prefix: str) -> SpecError:
        """The same error seen from an enclosing spec: ``gpio`` becomes ``sensors[0].gpio``."""
        if not prefix:
            return self
        field = f"{prefix}.{self.field}" if self.field else prefix
        message = self.message
        if self.field and message.startswith(f"{self.field}:"):
            message = field + message[len(self.field) :]
        else:
            message = f"{prefix}: {message}"
        return SpecError(field, self.value, self.allowed or None, message)

    def __str__(self) -> str:
        return self.message


class ContractError(MocksimError, ValueError):
    """A message or topic breaks the AutomationOne wire contract."""

    def __init__(self, message: str, problems: Iterable[str] = ()) -> None:
        self.problems = list(problems)
        super().__init__(message)


class TopicError(ContractError):
    """A topic that is not one of the contract's topics, or is malformed."""


class UnknownDeviceError(MocksimError, KeyError):
    """No device with that id in this fleet."""

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        super().__init__(device_id)

    def __str__(self) -> str:
        return f"no device {self.device_id!r} in this fleet"


class FleetClosedError(MocksimError, RuntimeError):
    """The fleet was closed; open a new one."""


class TransportError(MocksimError):
    """The broker connection failed, refused our credentials or timed out."""


class StoreError(MocksimError):
    """The database failed, or was written by a newer mocksim schema."""


class LeaseError(StoreError):
    """Another owner holds a fresh lease on the device."""

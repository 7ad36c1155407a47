"""The values the store hands out: device records, checkpoints, changes, readings and events.

They are frozen dataclasses, so a record read from the database cannot be mistaken for a live,
writable view of it; to change a device, call the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from mocksim.spec import DeviceSpec

__all__ = [
    "Changes",
    "Checkpoint",
    "DesiredState",
    "DeviceRecord",
    "EventRecord",
    "ReadingRecord",
    "RuntimeStatus",
    "override_key",
]


class DesiredState(StrEnum):
    """What the user wants a device to do; configuration, so it lives in the database."""

    STOPPED = "stopped"
    RUNNING = "running"
    PAUSED = "paused"


class RuntimeStatus(StrEnum):
    """What the simulation reports a device is doing; not configuration (no revision bump)."""

    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    ERROR = "error"


def override_key(sensor_key: str, value_type: str) -> str:
    """Key of a manual override in :attr:`DeviceRecord.overrides`: ``"sensor_key/value_type"``."""
    return f"{sensor_key}/{value_type}"


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """One device as stored: its spec, desired state, last runtime status and overrides.

    ``config_version`` is the store revision of the device's last configuration change.
    ``overrides`` maps ``"sensor_key/value_type"`` to a manually pinned value.
    """

    spec: DeviceSpec
    desired_state: DesiredState
    runtime_status: RuntimeStatus
    error: str | None
    config_version: int
    overrides: dict[str, float]
    created_at: datetime
    updated_at: datetime

    @property
    def id(self) -> str:
        """The device id (``spec.id``)."""
        return self.spec.id


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed after a revision: devices created or changed, and ids deleted.

    ``revision`` is the store revision these changes bring a reader up to; pass it to the next
    :meth:`Store.changes_since` call.
    """

    revision: int
    changed: list[DeviceRecord]
    deleted: list[str]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Runtime state of one device that must survive a restart, saved now and then.

    ``state`` is JSON (drift positions, actuator on-time, …); the device decides its shape.
    """

    device_id: str
    boot_count: int
    seq: int
    state: dict[str, Any]
    saved_at: datetime = field(default_factory=_utc_now)


@dataclass(frozen=True, slots=True)
class ReadingRecord:
    """One sensor reading as the recorder received it."""

    id: int
    device_id: str
    gpio: int
    sensor_type: str
    raw: float | None
    value: float | None
    unit: str | None
    quality: str | None
    seq: int | None
    device_ts: int | None
    received_at: datetime


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One non-reading message (heartbeat, actuator status, alert, …) as received."""

    id: int
    device_id: str
    kind: str
    topic: str
    payload: Any
    seq: int | None
    device_ts: int | None
    received_at: datetime

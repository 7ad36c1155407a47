"""The SQLAlchemy tables of the store, as typed ORM models.

The repository issues Core statements against these tables (fast batches); the ORM mapping
exists for typing, for Alembic's model/migration comparison and for ad-hoc sessions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Base",
    "CheckpointRow",
    "DeviceRow",
    "EventRow",
    "LeaseRow",
    "MetaRow",
    "OverrideRow",
    "ReadingRow",
    "TombstoneRow",
    "UTCDateTime",
    "metadata",
]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: The key of the global configuration revision in the meta table.
REVISION_KEY = "revision"

# SQLite makes only an INTEGER PRIMARY KEY an alias of the rowid (autoincrementing).
_ROW_ID = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both dialects.

    SQLite has no time zones: values are stored as naive UTC text (which sorts correctly) and
    come back tagged UTC. PostgreSQL stores ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations name constraints the same."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


metadata = Base.metadata


class MetaRow(Base):
    """Store-wide counters; ``revision`` is bumped by every configuration change."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class DeviceRow(Base):
    """One device: the full validated spec as JSON, plus the columns one filters by."""

    __tablename__ = "devices"
    __table_args__ = (
        CheckConstraint("desired_state IN ('stopped', 'running', 'paused')", name="desired_state"),
        CheckConstraint(
            "runtime_status IN ('stopped', 'starting', 'running', 'paused', 'error')",
            name="runtime_status",
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kaiser_id: Mapped[str] = mapped_column(String)
    zone_id: Mapped[str] = mapped_column(String)
    subzone_id: Mapped[str] = mapped_column(String)
    hardware_type: Mapped[str] = mapped_column(String)
    heartbeat_interval_s: Mapped[float] = mapped_column(Float)
    desired_state: Mapped[str] = mapped_column(String(16), index=True)
    runtime_status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    config_version: Mapped[int] = mapped_column(BigInteger, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OverrideRow(Base):
    """A manually pinned value for one value type of one sensor."""

    __tablename__ = "device_overrides"

    device_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    sensor_key: Mapped[str] = mapped_column(String, primary_key=True)
    value_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[float] = mapped_column(Float)


class TombstoneRow(Base):
    """A deleted device, kept so another process learns of the deletion."""

    __tablename__ = "tombstones"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger, index=True)
    deleted_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CheckpointRow(Base):
    """Runtime state of one device that must survive a restart."""

    __tablename__ = "checkpoints"

    device_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    boot_count: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LeaseRow(Base):
    """Which process runs a device, until when."""

    __tablename__ = "leases"

    device_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    owner: Mapped[str] = mapped_column(String, index=True)
    renewed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class ReadingRow(Base):
    """One sensor reading as the recorder received it (no foreign key: readings outlive devices)."""

    __tablename__ = "readings"
    __table_args__ = (
        Index("ix_readings_device_id_received_at", "device_id", "received_at"),
        Index("ix_readings_received_at", "received_at"),
    )

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String)
    gpio: Mapped[int] = mapped_column(Integer)
    sensor_type: Mapped[str] = mapped_column(String)
    raw: Mapped[float | None] = mapped_column(Float, nullable=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    unit: Mapped[str | None] = mapped_column(String, nullable=True)
    quality: Mapped[str | None] = mapped_column(String, nullable=True)
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    device_ts: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EventRow(Base):
    """One non-reading message (heartbeat, actuator status, alert, …) as received."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_device_id_received_at", "device_id", "received_at"),
        Index("ix_events_received_at", "received_at"),
    )

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String)
    kind: Mapped[str] = mapped_column(String)
    topic: Mapped[str] = mapped_column(String)
    payload: Mapped[Any] = mapped_column(JSON)
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    device_ts: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)

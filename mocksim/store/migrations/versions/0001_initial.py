"""Initial schema: devices, overrides, tombstones, checkpoints, leases, readings, events, meta.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# SQLite makes only an INTEGER PRIMARY KEY an alias of the rowid (autoincrementing).
_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create every table, and the revision counter at 0."""
    meta = op.create_table(
        "meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_meta")),
    )
    assert meta is not None
    op.bulk_insert(meta, [{"key": "revision", "value": 0}])

    op.create_table(
        "devices",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kaiser_id", sa.String(), nullable=False),
        sa.Column("zone_id", sa.String(), nullable=False),
        sa.Column("subzone_id", sa.String(), nullable=False),
        sa.Column("hardware_type", sa.String(), nullable=False),
        sa.Column("heartbeat_interval_s", sa.Float(), nullable=False),
        sa.Column("desired_state", sa.String(length=16), nullable=False),
        sa.Column("runtime_status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("config_version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.CheckConstraint(
            "desired_state IN ('stopped', 'running', 'paused')",
            name=op.f("ck_devices_desired_state"),
        ),
        sa.CheckConstraint(
            "runtime_status IN ('stopped', 'starting', 'running', 'paused', 'error')",
            name=op.f("ck_devices_runtime_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
    )
    op.create_index(op.f("ix_devices_config_version"), "devices", ["config_version"])
    op.create_index(op.f("ix_devices_desired_state"), "devices", ["desired_state"])

    op.create_table(
        "device_overrides",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("sensor_key", sa.String(), nullable=False),
        sa.Column("value_type", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_device_overrides_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "device_id", "sensor_key", "value_type", name=op.f("pk_device_overrides")
        ),
    )

    op.create_table(
        "tombstones",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_tombstones")),
    )
    op.create_index(op.f("ix_tombstones_revision"), "tombstones", ["revision"])

    op.create_table(
        "checkpoints",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("boot_count", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("saved_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_checkpoints_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_checkpoints")),
    )

    op.create_table(
        "leases",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("renewed_at", _utc(), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_leases_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_leases")),
    )
    op.create_index(op.f("ix_leases_expires_at"), "leases", ["expires_at"])
    op.create_index(op.f("ix_leases_owner"), "leases", ["owner"])

    op.create_table(
        "readings",
        sa.Column("id", _ROW_ID, autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(), nullable=False),
        sa.Column("gpio", sa.Integer(), nullable=False),
        sa.Column("sensor_type", sa.String(), nullable=False),
        sa.Column("raw", sa.Float(), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("unit", sa.String(), nullable=True),
        sa.Column("quality", sa.String(), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("device_ts", sa.BigInteger(), nullable=True),
        sa.Column("received_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_readings")),
    )
    op.create_index("ix_readings_device_id_received_at", "readings", ["device_id", "received_at"])
    op.create_index("ix_readings_received_at", "readings", ["received_at"])

    op.create_table(
        "events",
        sa.Column("id", _ROW_ID, autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("topic", sa.String(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("device_ts", sa.BigInteger(), nullable=True),
        sa.Column("received_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index("ix_events_device_id_received_at", "events", ["device_id", "received_at"])
    op.create_index("ix_events_received_at", "events", ["received_at"])


def downgrade() -> None:
    """Drop every table (children first)."""
    for table in (
        "events",
        "readings",
        "leases",
        "checkpoints",
        "tombstones",
        "device_overrides",
        "devices",
        "meta",
    ):
        op.drop_table(table)

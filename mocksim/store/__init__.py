"""The store: the database is the single source of truth of a fleet.

It holds every device's configuration and desired state, runtime checkpoints, ownership leases,
and the readings and events the recorder received. SQLite by default, PostgreSQL through
psycopg; the schema is created and upgraded by Alembic migrations shipped in this package.
"""

from mocksim.store.engine import DEFAULT_URL, Backend
from mocksim.store.records import (
    Changes,
    Checkpoint,
    DesiredState,
    DeviceRecord,
    EventRecord,
    ReadingRecord,
    RuntimeStatus,
    override_key,
)
from mocksim.store.repository import Clock, Store

__all__ = [
    "DEFAULT_URL",
    "Backend",
    "Changes",
    "Checkpoint",
    "Clock",
    "DesiredState",
    "DeviceRecord",
    "EventRecord",
    "ReadingRecord",
    "RuntimeStatus",
    "Store",
    "override_key",
]

"""Apply the Alembic migrations shipped in this package, refusing schemas from a newer mocksim.

Runs on every open, inside one transaction that holds the database's migration lock: a
PostgreSQL advisory lock, or SQLite's write lock (``BEGIN IMMEDIATE``). So two processes opening
a fresh database at once do not race: the second waits, then finds the schema at head.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from mocksim.errors import StoreError
from mocksim.store.engine import SQLITE_BEGIN_OPTION, Backend

__all__ = ["MIGRATIONS_DIR", "alembic_config", "head_revision", "upgrade"]

logger = logging.getLogger(__name__)

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
#: Key of the PostgreSQL advisory lock held while migrating (any constant 64-bit integer).
MIGRATION_LOCK_KEY: Final = 0x6D6F636B73696D  # "mocksim"


def alembic_config() -> Config:
    """An Alembic config pointing at the shipped migrations; no alembic.ini needed."""
    cfg = Config()
    # ConfigParser interpolates '%': escape it in case the install path contains one.
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    cfg.set_main_option("path_separator", "os")
    return cfg


def head_revision() -> str:
    """The newest schema revision this mocksim knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the shipped migrations have one head"
    return head


def upgrade(engine: Engine, backend: Backend, *, create: bool, where: str) -> str:
    """Bring the schema to head under the migration lock and return the head revision.

    Args:
        engine: an engine from :func:`mocksim.store.engine.make_engine`.
        backend: its backend.
        create: whether an empty database may get a fresh schema.
        where: the masked URL, for messages.

    Raises:
        StoreError: the database holds a schema revision this mocksim does not know (written
            by a newer mocksim), or it is empty and ``create`` is false.
    """
    cfg = alembic_config()
    script = ScriptDirectory.from_config(cfg)
    head = script.get_current_head()
    assert head is not None, "the shipped migrations have one head"
    known = {rev.revision for rev in script.walk_revisions()}
    with engine.connect() as conn:
        if backend is Backend.SQLITE:
            conn.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        with conn.begin():
            if backend is Backend.POSTGRESQL:
                lock = text("SELECT pg_advisory_xact_lock(:key)")
                conn.execute(lock, {"key": MIGRATION_LOCK_KEY})
            current = MigrationContext.configure(conn).get_current_heads()
            unknown = [rev for rev in current if rev not in known]
            if unknown:
                msg = (
                    f"database schema {unknown[0]} is newer than this mocksim (knows up to "
                    f"{head}); upgrade mocksim ({where})"
                )
                raise StoreError(msg)
            if not current and not create:
                msg = f"{where} holds no mocksim schema (open with create=True to create one)"
                raise StoreError(msg)
            if tuple(current) != (head,):
                logger.info("migrating %s from %s to %s", where, current or "empty", head)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
    return head

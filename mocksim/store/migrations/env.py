"""Alembic environment of mocksim's shipped migrations.

The store runs them through :func:`mocksim.store.migrate.upgrade`, which passes its open
connection (already in a transaction, holding the migration lock) as
``config.attributes["connection"]``; there is no alembic.ini and no offline mode.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from mocksim.store.models import metadata


def run_migrations_online() -> None:
    """Run the migrations on the connection the store handed us."""
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection) or context.is_offline_mode():
        msg = "mocksim migrations run only through Store.open(), with an open connection"
        raise RuntimeError(msg)
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()

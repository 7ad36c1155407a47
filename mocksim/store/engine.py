"""Engines from a URL, and the one place database errors become StoreError with masked secrets.

SQLite (the default, ``sqlite:///mocksim.db``) runs in WAL mode with ``synchronous=NORMAL``, a
busy timeout and foreign keys on; transactions are begun by us (``BEGIN`` or, for writers,
``BEGIN IMMEDIATE``) instead of by pysqlite's legacy implicit transactions, so a writer takes the
write lock up front and waits for it instead of failing half-way. PostgreSQL goes through
psycopg 3 (``postgresql+psycopg://``; a bare ``postgresql://`` is taken to mean it).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, quote_plus

import orjson
import psycopg
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from mocksim.errors import StoreError

__all__ = [
    "DEFAULT_URL",
    "Backend",
    "JSONText",
    "backend_of",
    "make_engine",
    "mask_url",
    "parse_url",
    "scrub",
    "translate_errors",
]

logger = logging.getLogger(__name__)

DEFAULT_URL: Final = "sqlite:///mocksim.db"
SQLITE_BUSY_TIMEOUT_MS: Final = 30_000
#: Execution option naming how a SQLite transaction begins ("DEFERRED" or "IMMEDIATE").
SQLITE_BEGIN_OPTION: Final = "mocksim_sqlite_begin"


class Backend(StrEnum):
    """The database kinds the store supports."""

    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


def parse_url(url: str | URL) -> URL:
    """Parse and normalise a database URL (``postgresql://`` → ``postgresql+psycopg://``).

    Raises:
        StoreError: not a URL, or a database other than SQLite and PostgreSQL/psycopg. The
            message never repeats the URL text, which may hold a password.
    """
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        msg = (
            "not a database URL; use sqlite:///path/to/file.db or "
            "postgresql+psycopg://user:password@host:port/dbname"
        )
        raise StoreError(msg) from None
    name = parsed.get_backend_name()
    driver = parsed.get_driver_name()
    if name == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        elif driver != "psycopg":
            msg = f"{mask_url(parsed)}: driver {driver!r} is not supported; use postgresql+psycopg"
            raise StoreError(msg)
    elif name == "sqlite":
        if driver != "pysqlite":
            msg = f"{mask_url(parsed)}: driver {driver!r} is not supported; use sqlite:///path"
            raise StoreError(msg)
    else:
        msg = f"{mask_url(parsed)}: database {name!r} is not supported; use sqlite or postgresql"
        raise StoreError(msg)
    return parsed


def backend_of(url: URL) -> Backend:
    """Which backend a (parsed) URL points at."""
    return Backend(url.get_backend_name())


def mask_url(url: URL) -> str:
    """The URL as text with its password replaced by ``***``."""
    return url.render_as_string(hide_password=True)


def scrub(text: str, url: URL) -> str:
    """``text`` with every spelling of the URL's password replaced by ``***``.

    Driver messages may echo a connection string; this is the last line of defence.
    """
    password = url.password
    if not password:
        return text
    secret = str(password)
    for spelling in {secret, quote(secret, safe=""), quote_plus(secret)}:
        if spelling:
            text = text.replace(spelling, "***")
    return text


class JSONText(str):
    """JSON that is already serialised (e.g. by pydantic); stored as it is, not re-encoded."""

    __slots__ = ()


def _json_dumps(value: Any) -> str:
    if type(value) is JSONText:
        return str.__str__(value)
    return orjson.dumps(value).decode()


def _sqlite_path(url: URL) -> str | None:
    """The file a SQLite URL points at, or None for an in-memory database."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return database


def make_engine(url: URL, *, create: bool = True) -> Engine:
    """Create an engine for a parsed URL with the per-connection settings the store relies on.

    Raises:
        StoreError: ``create`` is false and the SQLite file does not exist.
    """
    if backend_of(url) is Backend.POSTGRESQL:
        return create_engine(
            url,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            pool_pre_ping=True,
            hide_parameters=True,
        )
    path = _sqlite_path(url)
    if path is not None and not create and not Path(path).exists():
        msg = f"{mask_url(url)}: no such database file (open with create=True to make one)"
        raise StoreError(msg)
    options: dict[str, Any] = {}
    if path is None:
        # One shared connection, or every connection would see its own empty database.
        options = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    engine = create_engine(
        url,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        hide_parameters=True,
        **options,
    )
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    # Autocommit at the driver level: we emit BEGIN ourselves in _sqlite_on_begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first, so that switching to WAL waits for a concurrent opener.
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
    if mode not in ("DEFERRED", "IMMEDIATE"):  # never interpolate anything else into SQL
        mode = "DEFERRED"
    connection.exec_driver_sql(f"BEGIN {mode}")


@contextmanager
def translate_errors(what: str, url: URL) -> Iterator[None]:
    """Turn driver and SQLAlchemy errors into StoreError naming ``what`` and the masked URL.

    The original error is chained unless its text holds the password, in which case the chain
    is cut so no traceback can show it.
    """
    try:
        yield
    except (SQLAlchemyError, psycopg.Error, sqlite3.Error) as exc:
        text = str(exc).split("\n(Background on this error", 1)[0].strip()
        error = StoreError(scrub(f"{what} failed on {mask_url(url)}: {text}", url))
        if _leaks(exc, url):
            raise error from None
        raise error from exc


def _leaks(exc: BaseException, url: URL) -> bool:
    """Whether the text of ``exc`` or of any error chained to it holds the URL's password."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = f"{current!s} {current!r}"
        if scrub(text, url) != text:
            return True
        current = current.__cause__ or current.__context__
    return False

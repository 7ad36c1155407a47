"""Fixtures that start real services and keep tests apart from each other and the user's env.

- ``mosquitto`` / ``mqtt_url``: one real broker per session; ``fresh_mosquitto`` and
  ``mosquitto_factory`` give a test private brokers it may stop, restart or kill.
- ``pg_server``: one PostgreSQL per session (a throwaway cluster, or the server on :5432;
  ``MOCKSIM_TEST_PG=throwaway|server`` forces one); ``db_url`` runs a test on SQLite and on a
  fresh PostgreSQL database.
- ``topic_prefix``: a topic prefix unique to the test; ``no_thread_leak``: fails a test that
  leaves threads running. Every ``MOCKSIM_*`` variable is cleared for every test.

SIGTERM is turned into KeyboardInterrupt for the session, so a CI timeout still stops the
services. Tests using PostgreSQL get the ``postgres`` marker and tests using a broker the
``mqtt`` marker automatically, so ``pytest -m "not postgres"`` gives a quick local run.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services import PG_MODES, Mosquitto, PgMode, PostgresServer, threads_left_over

MQTT_FIXTURES = frozenset({"mosquitto", "mqtt_url", "fresh_mosquitto", "mosquitto_factory"})
THREAD_GRACE_S = 2.0
_PG_MODE = pytest.StashKey[PgMode | None]()
_MARKERS = (
    "mqtt: needs the real mosquitto broker started by the harness",
    "postgres: needs the throwaway PostgreSQL started by the harness",
    "slow: takes more than a few seconds",
)


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers and read the harness settings before any test clears the env."""
    declared = {line.split(":", 1)[0] for line in config.getini("markers")}
    for marker in _MARKERS:
        if marker.split(":", 1)[0] not in declared:
            config.addinivalue_line("markers", marker)
    raw = os.environ.get("MOCKSIM_TEST_PG", "").strip().lower()
    if raw in {"", "auto"}:
        config.stash[_PG_MODE] = None
    elif raw in PG_MODES:
        config.stash[_PG_MODE] = raw
    else:
        msg = f"MOCKSIM_TEST_PG: {raw!r} is not one of auto, {', '.join(PG_MODES)}"
        raise pytest.UsageError(msg)


def _interrupt_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def pytest_sessionstart(session: pytest.Session) -> None:
    """Treat SIGTERM (a CI timeout, ``timeout(1)``) like Ctrl-C, so services are torn down.

    Python's default SIGTERM ends the process without running finalizers, which would leave
    the session's mosquitto and PostgreSQL running.
    """
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    ):
        signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
        session.config.add_cleanup(_restore_sigterm)


def _restore_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the services they use, so ``-m "not postgres"`` and ``-m mqtt`` work."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        params: dict[str, Any] = callspec.params if callspec is not None else {}
        if "pg_server" in fixtures or params.get("db_url") == "postgresql":
            item.add_marker(pytest.mark.postgres)
        if fixtures & MQTT_FIXTURES:
            item.add_marker(pytest.mark.mqtt)


@pytest.fixture(autouse=True)
def _clear_mocksim_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clear every MOCKSIM_* variable, so the developer's shell cannot change a test."""
    for name in list(os.environ):
        if name.startswith("MOCKSIM_"):
            monkeypatch.delenv(name)


# -- MQTT ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[Mosquitto]:
    """The session's real mosquitto broker; do not stop it (use ``fresh_mosquitto``)."""
    with Mosquitto() as broker:
        yield broker


@pytest.fixture(scope="session")
def mqtt_url(mosquitto: Mosquitto) -> str:
    """``mqtt://127.0.0.1:PORT`` of the session broker."""
    return mosquitto.url


@pytest.fixture
def mosquitto_factory() -> Iterator[Callable[..., Mosquitto]]:
    """Start private brokers with options (``users=``, ``max_connections=``, ``nofile=``).

    Every broker made here is closed when the test ends.
    """
    brokers: list[Mosquitto] = []

    def make(**options: Any) -> Mosquitto:
        broker = Mosquitto(**options)
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.close()


@pytest.fixture
def fresh_mosquitto(
    request: pytest.FixtureRequest, mosquitto_factory: Callable[..., Mosquitto]
) -> Mosquitto:
    """A broker of the test's own, free to ``stop()``, ``start()`` and ``kill()``.

    Options can come through indirect parametrisation with a dict of ``Mosquitto`` keywords.
    """
    options: dict[str, Any] = getattr(request, "param", None) or {}
    return mosquitto_factory(**options)


@pytest.fixture
def topic_prefix(request: pytest.FixtureRequest) -> str:
    """A topic prefix unique to this test, ending in ``/`` (as aiomqtt's tests build theirs)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name).strip("_")
    return f"mocksim-test/{name}/{secrets.token_hex(4)}/"


# -- databases -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server(pytestconfig: pytest.Config) -> Iterator[PostgresServer]:
    """The session's PostgreSQL: a throwaway cluster, or the server on 127.0.0.1:5432."""
    with PostgresServer(mode=pytestconfig.stash[_PG_MODE]) as server:
        yield server


def _database_name(test_name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", test_name.lower()).strip("_")
    return f"mocksim_{slug[:40]}_{secrets.token_hex(4)}"


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQLAlchemy URL of an empty database: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mocksim.db'}"
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    name = _database_name(request.node.name)
    url = server.create_database(name)
    yield url
    server.drop_database(name)


# -- threads ---------------------------------------------------------------------------------


@pytest.fixture
def no_thread_leak() -> Iterator[None]:
    """Fail the test if it leaves threads running (after a short grace period).

    List it before the fixtures that start threads (a Fleet), so it is set up before and
    torn down after them.
    """
    before = threading.enumerate()
    yield
    leaked = threads_left_over(before, grace_s=THREAD_GRACE_S)
    if leaked:
        names = ", ".join(sorted(thread.name for thread in leaked))
        pytest.fail(f"test leaked {len(leaked)} thread(s): {names}", pytrace=False)

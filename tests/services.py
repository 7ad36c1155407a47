"""Real services for the test suite: a mosquitto broker and a throwaway PostgreSQL.

Tests talk to the same servers users run, never to fakes. Each service runs on a free loopback
port chosen below the kernel's ephemeral range, and a broker keeps its port reserved while it
is stopped, so neither client sockets nor another test session can take it during an outage.
Every child process is ended by a finalizer that also runs at interpreter exit, so a failing
test leaves nothing behind.

A missing binary fails the run loudly when ``CI=true`` and is a visible skip elsewhere; both say
how to install it (``service_missing``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import pytest

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "LOOPBACK",
    "PG_MODES",
    "Mosquitto",
    "PgMode",
    "PostgresServer",
    "find_mosquitto",
    "find_pg_bindir",
    "free_port",
    "running_in_ci",
    "service_missing",
    "threads_left_over",
]

LOOPBACK = "127.0.0.1"
MOSQUITTO_HINT = "apt-get install -y mosquitto"
POSTGRES_HINT = "apt-get install -y postgresql"
PgMode = Literal["throwaway", "server"]
PG_MODES: tuple[PgMode, ...] = ("throwaway", "server")
SERVER_PG_PORT = 5432
_START_TIMEOUT_S = 15.0
_STOP_TIMEOUT_S = 10.0
_DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def running_in_ci() -> bool:
    """Whether ``CI`` says we run in CI, where a missing service must fail, not skip."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def service_missing(message: str) -> NoReturn:
    """Fail (in CI) or skip (elsewhere) because a service the test needs is not installed."""
    if running_in_ci():
        pytest.fail(f"{message} (CI=true: refusing to skip)", pytrace=False)
    pytest.skip(message)


def _port_range_floor() -> int:
    """Lowest ephemeral port; ports below it are never handed out to client sockets."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    return 32768


def free_port(host: str = LOOPBACK) -> int:
    """Return a port that is free now, outside the ephemeral range when possible.

    Outside that range no outgoing connection can grab the port while a test has its broker
    stopped, so the broker can always come back on the same port.
    """
    floor = _port_range_floor()
    low = 20000 if floor > 21000 else 1024
    for _ in range(200):
        port = low + secrets.randbelow(max(floor - low, 1))
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # the range is crowded: let the kernel choose
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _find_binary(name: str, extra_dirs: Iterable[str] = ()) -> str | None:
    """Find ``name`` on PATH or in the sbin folders Debian keeps off a user's PATH."""
    found = shutil.which(name)
    if found:
        return found
    for folder in (*extra_dirs, "/usr/sbin", "/usr/local/sbin", "/sbin"):
        candidate = Path(folder, name)
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary, or None."""
    return _find_binary("mosquitto")


def _version_key(path: Path) -> tuple[int, ...]:
    """Sort key for /usr/lib/postgresql/<version>/bin: '15' > '9.6'."""
    parts = re.findall(r"\d+", path.parent.name)
    return tuple(int(part) for part in parts) or (0,)


def find_pg_bindir() -> Path | None:
    """Folder holding initdb and pg_ctl: PATH first, else Debian's newest postgresql/*/bin."""
    on_path = shutil.which("initdb")
    if on_path:
        folder = Path(on_path).resolve().parent
        if (folder / "pg_ctl").is_file():
            return folder
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key)
    for folder in reversed(candidates):
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` itself listens on ``port`` (not some other server)."""
    try:
        import psutil  # noqa: PLC0415 - optional: without it we trust a successful connect
    except ImportError:
        return _accepts(LOOPBACK, port)
    try:
        process = psutil.Process(pid)
        # psutil < 6 names it connections()
        lister = getattr(process, "net_connections", None) or process.connections
        conns = lister(kind="tcp")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in conns)


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _nofile_target(wanted: int) -> tuple[int, int] | None:
    """The (soft, hard) RLIMIT_NOFILE to give a child, or None if it already has enough."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if wanted <= soft:
        return None
    if os.geteuid() == 0:
        ceiling = wanted
        with contextlib.suppress(OSError, ValueError):
            ceiling = min(wanted, int(Path("/proc/sys/fs/nr_open").read_text()))
        return ceiling, max(ceiling, hard)
    if hard == resource.RLIM_INFINITY:
        return wanted, hard
    return min(wanted, hard), hard


class _Child:
    """Holds the child process and its port reservation, so a finalizer can end both."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.reservation: socket.socket | None = None

    def reserve(self, host: str, port: int) -> None:
        """Keep ``port`` bound (not listening) so no other program takes it while we are down.

        Both this socket and mosquitto's listener set SO_REUSEADDR, so the broker can still
        bind the port; a program binding it without SO_REUSEADDR (or probing like
        ``free_port``) is refused, and a connect gets "connection refused" as with no socket.
        """
        self.release()
        sock = socket.socket()
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        except OSError:
            sock.close()
            return
        self.reservation = sock

    def release(self) -> None:
        sock, self.reservation = self.reservation, None
        if sock is not None:
            sock.close()

    def end(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = _STOP_TIMEOUT_S) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout_s)


def _cleanup(child: _Child, tmpdir: Path) -> None:
    child.end()
    child.release()
    shutil.rmtree(tmpdir, ignore_errors=True)


class Mosquitto:
    """A real mosquitto broker on a free loopback port, in its own temp dir.

    It can be stopped and started again on the same port (outage tests) or killed with SIGKILL.
    The child gets a high RLIMIT_NOFILE because that limit is mosquitto's connection limit.

    Args:
        users: user → password; when given, anonymous clients are refused.
        max_connections: mosquitto's ``max_connections`` (-1: no limit but the fd limit).
        nofile: RLIMIT_NOFILE for the broker (clamped to what the system allows).
        port: a fixed port; by default a free one.
        start: start at once (default) or leave it to ``start()``.
        extra_config: more mosquitto.conf lines (benchmarks: ``max_queued_messages …``).
    """

    host = LOOPBACK

    def __init__(
        self,
        *,
        users: Mapping[str, str] | None = None,
        max_connections: int = -1,
        nofile: int = 16384,
        port: int | None = None,
        start: bool = True,
        extra_config: Sequence[str] = (),
    ) -> None:
        binary = find_mosquitto()
        if binary is None:
            service_missing(f"mosquitto is not installed: run `{MOSQUITTO_HINT}`")
        self._binary = binary
        self._fixed_port = port is not None
        self._port = port if port is not None else free_port()
        self._users = dict(users or {})
        self._max_connections = max_connections
        self._extra_config = list(extra_config)
        self._nofile = _nofile_target(nofile)
        self._lock = threading.Lock()
        self.tmpdir = Path(tempfile.mkdtemp(prefix="mocksim-mosquitto-"))
        self.config_path = self.tmpdir / "mosquitto.conf"
        self.log_path = self.tmpdir / "mosquitto.log"
        self._out_path = self.tmpdir / "mosquitto.out"
        self._child = _Child()
        self._child.reserve(self.host, self._port)
        self._finalizer = weakref.finalize(self, _cleanup, self._child, self.tmpdir)
        try:
            self._write_passwords()
            self._write_config()
            if start:
                self._start_first()
        except BaseException:
            self.close()
            raise

    @property
    def port(self) -> int:
        """The listener port; it stays the same across stop()/start()."""
        return self._port

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:PORT`` (credentials are not part of it)."""
        return f"mqtt://{self.host}:{self._port}"

    @property
    def pid(self) -> int | None:
        """Process id of the running broker, or None while stopped."""
        proc = self._child.proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def _write_passwords(self) -> None:
        if not self._users:
            return
        tool = _find_binary("mosquitto_passwd")
        if tool is None:
            service_missing(f"mosquitto_passwd is not installed: run `{MOSQUITTO_HINT}`")
        path = self.tmpdir / "passwords"
        for index, (user, password) in enumerate(self._users.items()):
            create = ["-c"] if index == 0 else []
            subprocess.run(
                [tool, *create, "-b", str(path), user, password],
                check=True,
                capture_output=True,
                timeout=30,
            )
        path.chmod(0o600)

    def _write_config(self) -> None:
        lines = [
            f"listener {self._port} {self.host}",
            "persistence false",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp true",
            f"max_connections {self._max_connections}",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to `mosquitto` and cannot write its files
        if self._users:
            lines += ["allow_anonymous false", f"password_file {self.tmpdir / 'passwords'}"]
        else:
            lines.append("allow_anonymous true")
        lines += self._extra_config
        self.config_path.write_text("\n".join(lines) + "\n")

    def _start_first(self) -> None:
        """Start, moving to another free port if someone took ours in the meantime."""
        for _ in range(5):
            try:
                self._start(_START_TIMEOUT_S, may_move=not self._fixed_port)
            except _PortTakenError:
                self._port = free_port()
                self._child.reserve(self.host, self._port)
                self._write_config()
            else:
                return
        self._start(_START_TIMEOUT_S, may_move=False)

    def start(self, timeout_s: float = _START_TIMEOUT_S) -> None:
        """Start the broker on its port and return once it accepts connections.

        Raises:
            RuntimeError: it is already running, or it did not come up (the log is included).
        """
        self._start(timeout_s, may_move=False)

    def _start(self, timeout_s: float, *, may_move: bool) -> None:
        with self._lock:
            if self.running:
                msg = f"mosquitto on port {self._port} is already running"
                raise RuntimeError(msg)
            self._child.end()  # reap a broker that died by itself
            deadline = time.monotonic() + timeout_s
            first = self._output_sizes()
            while True:
                since = self._output_sizes()
                proc = self._spawn()
                if self._wait_listening(proc, deadline):
                    return
                self._child.end(signal.SIGKILL)
                if may_move and "Address already in use" in self._output(since):
                    raise _PortTakenError(self._output(since))
                if time.monotonic() >= deadline:
                    out = self._output(first)  # every attempt, not just the one cut short
                    msg = f"mosquitto did not start on port {self._port}:\n{out}"
                    raise RuntimeError(msg)
                time.sleep(0.1)  # the port may still be held briefly after a restart

    def _spawn(self) -> subprocess.Popen[bytes]:
        preexec = None
        if self._nofile is not None:
            preexec = functools.partial(resource.setrlimit, resource.RLIMIT_NOFILE, self._nofile)
        with self._out_path.open("ab") as out:
            proc = subprocess.Popen(
                [self._binary, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.tmpdir,
                preexec_fn=preexec,  # noqa: PLW1509 - one C call, no Python state touched
            )
        self._child.proc = proc
        return proc

    def _wait_listening(self, proc: subprocess.Popen[bytes], deadline: float) -> bool:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            if _listens(proc.pid, self._port) and _accepts(self.host, self._port):
                return True
            time.sleep(0.01)
        return False

    def _output_sizes(self) -> tuple[int, int]:
        return _size(self._out_path), _size(self.log_path)

    def _output(self, since: tuple[int, int] = (0, 0)) -> str:
        """What the broker wrote since ``since`` (stdout, then its log file)."""
        parts = []
        for path, offset in zip((self._out_path, self.log_path), since, strict=True):
            with contextlib.suppress(OSError), path.open("rb") as file:
                file.seek(offset)
                parts.append(file.read().decode(errors="replace"))
        return "\n".join(part.strip() for part in parts if part.strip()) or "(no output)"

    def log_text(self) -> str:
        """Everything the broker wrote so far (useful in assertion messages)."""
        return self._output()

    def stop(self, timeout_s: float = _STOP_TIMEOUT_S) -> None:
        """Stop the broker gracefully (SIGTERM); ``start()`` brings it back on the same port."""
        with self._lock:
            self._child.end(signal.SIGTERM, timeout_s)

    def kill(self) -> None:
        """End the broker abruptly with SIGKILL (a crash, as clients see it)."""
        with self._lock:
            self._child.end(signal.SIGKILL)

    def restart(self) -> None:
        """Stop, then start again on the same port."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the broker and remove its temp dir; safe to call twice."""
        self._finalizer()

    def __enter__(self) -> Mosquitto:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Mosquitto {self.url} {state}>"


class _PortTakenError(RuntimeError):
    """Another process grabbed the port between choosing and binding it."""


def _postgres_user() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        return None


def _world_traversable(path: Path) -> bool:
    """Whether another user can reach ``path`` (initdb runs as `postgres` when we are root)."""
    return all(part.stat().st_mode & 0o001 for part in (path, *path.parents))


class _Cluster:
    """What a finalizer needs to stop a throwaway cluster and delete it."""

    def __init__(self, tmpdir: Path, pg_ctl: Path, run_as: list[str]) -> None:
        self.tmpdir = tmpdir
        self.data = tmpdir / "data"
        self.pg_ctl = pg_ctl
        self.run_as = run_as
        self.started = False

    def stop(self) -> None:
        if self.started:
            self.started = False
            result = subprocess.run(
                [
                    *self.run_as,
                    str(self.pg_ctl),
                    "-D",
                    str(self.data),
                    "-m",
                    "immediate",
                    "-w",
                    "-t",
                    "20",
                    "stop",
                ],
                capture_output=True,
                timeout=60,
                check=False,
                cwd=self.tmpdir,
            )
            if result.returncode != 0:
                self._kill_postmaster()
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def _kill_postmaster(self) -> None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGKILL)


class PostgresServer:
    """A PostgreSQL for tests: a throwaway cluster of its own, or the server on 127.0.0.1:5432.

    ``throwaway`` (preferred) runs initdb + pg_ctl into a temp dir (as the `postgres` user when
    we are root, since initdb refuses root) with trust auth and fsync off, on a free port, and
    deletes it on ``close()``. ``server`` uses a server already listening on 127.0.0.1:5432 with
    trust auth for user postgres. Each test gets a fresh database from ``create_database``.

    Args:
        mode: force a mode; None picks throwaway when initdb exists, else server.
    """

    user = "postgres"
    host = LOOPBACK

    def __init__(self, mode: PgMode | None = None) -> None:
        if mode is not None and mode not in PG_MODES:
            msg = f"mode: {mode!r} is not one of {', '.join(PG_MODES)}"
            raise ValueError(msg)
        self._databases: set[str] = set()
        self._lock = threading.Lock()
        self._cluster: _Cluster | None = None
        self._finalizer: weakref.finalize[[], PostgresServer] | None = None
        bindir = find_pg_bindir()
        if mode == "server" or (mode is None and bindir is None):
            self.mode: PgMode = "server"
            self.port = SERVER_PG_PORT
            self._check_server()
        else:
            if bindir is None:
                service_missing(
                    f"PostgreSQL's initdb/pg_ctl are not installed: run `{POSTGRES_HINT}`"
                )
            self.mode = "throwaway"
            self.port = 0
            self._start_throwaway(bindir)

    # -- throwaway cluster -------------------------------------------------------------------

    def _start_throwaway(self, bindir: Path) -> None:
        run_as: list[str] = []
        base = Path(tempfile.gettempdir())
        owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            owner = _postgres_user()
            runuser = _find_binary("runuser")
            if owner is None or runuser is None:
                service_missing(
                    "initdb refuses to run as root and there is no `postgres` user or `runuser`"
                    f" to run it as: run `{POSTGRES_HINT}`"
                )
            run_as = [runuser, "-u", "postgres", "--"]
            if not _world_traversable(base):
                base = Path("/tmp")  # the postgres user must be able to reach the data dir
        tmpdir = Path(tempfile.mkdtemp(prefix="mocksim-pg-", dir=base))
        cluster = _Cluster(tmpdir, bindir / "pg_ctl", run_as)
        self._cluster = cluster
        self._finalizer = weakref.finalize(self, cluster.stop)
        try:
            if owner is not None:
                os.chown(tmpdir, owner.pw_uid, owner.pw_gid)
            self._initdb(bindir, cluster)
            self._pg_ctl_start(cluster)
        except BaseException:
            self.close()
            raise

    def _initdb(self, bindir: Path, cluster: _Cluster) -> None:
        result = subprocess.run(
            [
                *cluster.run_as,
                str(bindir / "initdb"),
                "-D",
                str(cluster.data),
                "-U",
                self.user,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            capture_output=True,
            timeout=120,
            check=False,
            cwd=cluster.tmpdir,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")
            msg = f"initdb failed in {cluster.data}:\n{output}"
            raise RuntimeError(msg)
        settings = [
            f"listen_addresses = '{self.host}'",
            f"unix_socket_directories = '{cluster.tmpdir}'",
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
            "max_connections = 200",
            "shared_buffers = 64MB",
            "logging_collector = off",
        ]
        with (cluster.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# mocksim test harness\n" + "\n".join(settings) + "\n")

    def _pg_ctl_start(self, cluster: _Cluster) -> None:
        log = cluster.tmpdir / "postgres.log"
        output = ""
        for _ in range(5):
            port = free_port()
            cluster.started = True  # a half-started postmaster must be stopped too
            result = subprocess.run(
                [
                    *cluster.run_as,
                    str(cluster.pg_ctl),
                    "-D",
                    str(cluster.data),
                    "-l",
                    str(log),
                    "-o",
                    f"-p {port}",
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
                capture_output=True,
                timeout=90,
                check=False,
                cwd=cluster.tmpdir,
            )
            if result.returncode == 0:
                self.port = port
                return
            output = (result.stdout + result.stderr).decode(errors="replace") + _tail(log)
            cluster.started = False
            if "already in use" not in output and "could not bind" not in output:
                break
        msg = f"PostgreSQL did not start from {cluster.data}:\n{output}"
        raise RuntimeError(msg)

    # -- server mode -------------------------------------------------------------------------

    def _check_server(self) -> None:
        try:
            with self._admin_connection():
                return
        except Exception as exc:  # noqa: BLE001 - any failure means: no usable server
            service_missing(
                f"no PostgreSQL: initdb is not installed and no server with trust auth for user"
                f" postgres answers on {self.host}:{self.port} ({exc}): run `{POSTGRES_HINT}`"
            )

    # -- databases ---------------------------------------------------------------------------

    def _admin_connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        import psycopg  # noqa: PLC0415 - only tests that need PostgreSQL pay for the import

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname="postgres",
            autocommit=True,
            connect_timeout=10,
        )

    def url(self, database: str) -> str:
        """SQLAlchemy URL of ``database`` on this server (psycopg 3 driver)."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Create a fresh, empty database and return its SQLAlchemy URL.

        Args:
            name: lower-case identifier; by default a random ``mocksim_test_<hex>``.

        Raises:
            ValueError: the name is not a plain lower-case identifier.
        """
        from psycopg import sql  # noqa: PLC0415

        name = name or f"mocksim_test_{secrets.token_hex(6)}"
        if not _DB_NAME.fullmatch(name):
            msg = f"name: {name!r} is not a lower-case identifier of at most 63 characters"
            raise ValueError(msg)
        with self._admin_connection() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        with self._lock:
            self._databases.add(name)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name``, ending any session still connected to it."""
        from psycopg import sql  # noqa: PLC0415

        with self._admin_connection() as conn:
            force = sql.SQL(" WITH (FORCE)") if conn.info.server_version >= 130000 else sql.SQL("")
            statement = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
            conn.execute(statement + force)
        with self._lock:
            self._databases.discard(name)

    def close(self) -> None:
        """Drop what we created (server mode) or stop and delete the cluster; safe twice."""
        if self.mode == "server":
            with self._lock:
                names = sorted(self._databases)
            for name in names:
                with contextlib.suppress(Exception):
                    self.drop_database(name)
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<PostgresServer {self.mode} {self.host}:{self.port}>"


def threads_left_over(
    before: Iterable[threading.Thread], grace_s: float = 2.0
) -> list[threading.Thread]:
    """Threads alive now that were not in ``before``, after waiting up to ``grace_s`` for them.

    Dummy threads (foreign threads that touched ``threading``) cannot be joined and are ignored.
    """
    known = set(before)
    deadline = time.monotonic() + grace_s
    while True:
        extra = [
            thread
            for thread in threading.enumerate()
            if thread not in known
            and thread.is_alive()
            and not isinstance(thread, threading._DummyThread)  # foreign threads; cannot be joined
        ]
        if not extra or time.monotonic() >= deadline:
            return extra
        time.sleep(0.02)

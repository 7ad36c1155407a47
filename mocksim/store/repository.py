"""The repository: the only code in mocksim that issues SQL.

Every configuration change runs in one transaction that first bumps the store-wide revision
(a row in ``meta``), so writers are serialised, a device's ``config_version`` says when it last
changed, and :meth:`Store.changes_since` can tell another process what happened. Everything is
validated before the transaction commits; on any error nothing is written.

The API is synchronous: the fleet calls it from a worker thread, off its event loop.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar, cast

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, RowMapping
from sqlalchemy.exc import IntegrityError

from mocksim.errors import LeaseError, SpecError, StoreError, UnknownDeviceError
from mocksim.spec import ActuatorSpec, DeviceSpec, SensorSpec
from mocksim.store.engine import (
    DEFAULT_URL,
    SQLITE_BEGIN_OPTION,
    Backend,
    JSONText,
    backend_of,
    make_engine,
    mask_url,
    parse_url,
    translate_errors,
)
from mocksim.store.migrate import upgrade
from mocksim.store.models import (
    REVISION_KEY,
    CheckpointRow,
    DeviceRow,
    EventRow,
    LeaseRow,
    MetaRow,
    OverrideRow,
    ReadingRow,
    TombstoneRow,
)
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

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.sql.dml import Insert

__all__ = ["Clock", "Store"]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
"""A function returning the current time as a timezone-aware datetime."""

DEVICES: Final = cast(Table, DeviceRow.__table__)
OVERRIDES: Final = cast(Table, OverrideRow.__table__)
TOMBSTONES: Final = cast(Table, TombstoneRow.__table__)
CHECKPOINTS: Final = cast(Table, CheckpointRow.__table__)
LEASES: Final = cast(Table, LeaseRow.__table__)
META: Final = cast(Table, MetaRow.__table__)
READINGS: Final = cast(Table, ReadingRow.__table__)
EVENTS: Final = cast(Table, EventRow.__table__)

#: Ids per IN (…) list; far below SQLite's and PostgreSQL's bound-parameter limits.
ID_CHUNK: Final = 500
#: Rows per executemany on SQLite (COPY on PostgreSQL streams the whole batch).
ROW_CHUNK: Final = 1000

READING_COLUMNS: Final = (
    "device_id",
    "gpio",
    "sensor_type",
    "raw",
    "value",
    "unit",
    "quality",
    "seq",
    "device_ts",
    "received_at",
)
EVENT_COLUMNS: Final = ("device_id", "kind", "topic", "payload", "seq", "device_ts", "received_at")


def _utc_now() -> datetime:
    return datetime.now(UTC)


_T = TypeVar("_T")
_E = TypeVar("_E", DesiredState, RuntimeStatus)


def _chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _ids_arg(ids: str | Iterable[str], field: str = "ids") -> list[str]:
    """Normalise one id or many to a de-duplicated list (order kept)."""
    if isinstance(ids, str):
        return [ids]
    out = list(dict.fromkeys(ids))
    for device_id in out:
        if not isinstance(device_id, str):
            raise SpecError(field, device_id, "device id strings")
    return out


def _as_spec(spec: DeviceSpec | Mapping[str, Any]) -> DeviceSpec:
    if isinstance(spec, DeviceSpec):
        return spec
    if isinstance(spec, Mapping):
        return DeviceSpec.model_validate(dict(spec))
    raise SpecError("spec", spec, "a DeviceSpec or a mapping")


def _enum_arg(kind: type[_E], value: _E | str, field: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        raise SpecError(field, value, [member.value for member in kind]) from None


def _aware(value: datetime, field: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise SpecError(field, value, "a timezone-aware datetime (e.g. datetime.now(UTC))")
    return value.astimezone(UTC)


def _positive_ttl(ttl_s: float) -> timedelta:
    if (
        isinstance(ttl_s, bool)
        or not isinstance(ttl_s, int | float)
        or not (math.isfinite(ttl_s) and ttl_s > 0)
    ):
        raise SpecError("ttl_s", ttl_s, "a number of seconds > 0")
    return timedelta(seconds=float(ttl_s))


def _owner_arg(owner: str) -> str:
    if not isinstance(owner, str) or not owner:
        raise SpecError("owner", owner, "a non-empty string naming the process")
    return owner


def _spec_columns(spec: DeviceSpec) -> dict[str, Any]:
    return {
        "kaiser_id": spec.kaiser_id,
        "zone_id": spec.zone_id,
        "subzone_id": spec.subzone_id,
        "hardware_type": spec.hardware_type,
        "heartbeat_interval_s": spec.heartbeat_interval_s,
        # pydantic's own JSON encoder is about twice as fast as model_dump + orjson.
        "spec": JSONText(spec.model_dump_json()),
    }


def _sqlite_insert_sql(table: Table, columns: tuple[str, ...]) -> str:
    """``INSERT INTO table (columns) VALUES (?, …)`` with the ``?`` in ``columns`` order."""
    stmt = insert(table).values({name: bindparam(name) for name in columns})
    compiled = stmt.compile(dialect=sqlite_dialect.dialect())
    assert tuple(compiled.positiontup or ()) == columns, compiled.positiontup
    return str(compiled)


def _sqlite_timestamp(value: datetime) -> str:
    """An aware datetime as SQLAlchemy stores DateTime in SQLite: naive UTC, microseconds."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _fast_reading(row: Mapping[str, Any], now: datetime) -> tuple[Any, ...] | None:
    """The reading as a tuple if every field has its plain type, else None (slow path)."""
    get = row.get
    values = (
        get("device_id"),
        get("gpio"),
        get("sensor_type"),
        get("raw"),
        get("value"),
        get("unit"),
        get("quality"),
        get("seq"),
        get("device_ts"),
        get("received_at") or now,
    )
    device_id, gpio, sensor_type, raw, value, unit, quality, seq, device_ts, received = values
    if (
        type(device_id) is str
        and type(gpio) is int
        and type(sensor_type) is str
        and (raw is None or type(raw) is float or type(raw) is int)
        and (value is None or type(value) is float or type(value) is int)
        and (unit is None or type(unit) is str)
        and (quality is None or type(quality) is str)
        and (seq is None or type(seq) is int)
        and (device_ts is None or type(device_ts) is int)
        and type(received) is datetime
        and received.tzinfo is not None
    ):
        return values
    return None


def _fast_event(row: Mapping[str, Any], now: datetime) -> tuple[Any, ...] | None:
    """The event as a tuple if every field has its plain type, else None (slow path)."""
    get = row.get
    payload = get("payload")
    values = (
        get("device_id"),
        get("kind"),
        get("topic"),
        {} if payload is None else payload,
        get("seq"),
        get("device_ts"),
        get("received_at") or now,
    )
    device_id, kind, topic, _payload, seq, device_ts, received = values
    if (
        type(device_id) is str
        and type(kind) is str
        and type(topic) is str
        and (seq is None or type(seq) is int)
        and (device_ts is None or type(device_ts) is int)
        and type(received) is datetime
        and received.tzinfo is not None
    ):
        return values
    return None


_REQUIRED: Final = frozenset({"device_id", "gpio", "sensor_type", "kind", "topic"})
_INTS: Final = frozenset({"gpio", "seq", "device_ts"})
_FLOATS: Final = frozenset({"raw", "value"})


def _coerce_row(
    row: Mapping[str, Any], index: int, kind: str, columns: tuple[str, ...], now: datetime
) -> tuple[Any, ...]:
    """Check one row field by field, converting what is safe; SpecError names the field."""
    values: list[Any] = []
    for name in columns:
        value = row.get(name)
        field = f"{kind}[{index}].{name}"
        if value is None:
            if name in _REQUIRED:
                raise SpecError(field, None, None, f"{field}: required field is missing")
            if name == "received_at":
                value = now
            elif name == "payload":
                value = {}
        elif name == "received_at":
            value = _aware(value, field)
        elif name in _INTS:
            integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
            if isinstance(value, bool) or not integral:
                raise SpecError(field, value, "an integer")
            value = int(value)
        elif name in _FLOATS:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SpecError(field, value, "a number")
            value = float(value)
        elif name != "payload":
            if not isinstance(value, str):
                raise SpecError(field, value, "a string")
            value = str(value)
        values.append(value)
    return tuple(values)


class Store:
    """The database of one fleet: device configuration, checkpoints, leases, readings, events.

    Open it with :meth:`Store.open`; close it with :meth:`close` or a ``with`` block. Safe to
    share between threads. Two processes may open the same database; leases keep them from
    running the same device.
    """

    def __init__(self, engine: Engine, url: URL, *, clock: Clock, schema: str) -> None:
        """Wrap an engine whose schema is at ``schema``; use :meth:`Store.open` instead."""
        self._engine = engine
        self._url = url
        self._backend = backend_of(url)
        self._clock = clock
        self._schema = schema
        self._closed = False

    # ------------------------------------------------------------------------ lifecycle

    @classmethod
    def open(
        cls,
        url: str | URL | None = None,
        *,
        create: bool = True,
        clock: Clock | None = None,
    ) -> Store:
        """Open (and create or upgrade) the store at ``url``.

        Args:
            url: ``sqlite:///path.db`` or ``postgresql+psycopg://user:pw@host:port/db``;
                None means ``sqlite:///mocksim.db`` in the current directory.
            create: whether an empty database (or a missing SQLite file) may be given a fresh
                schema. An older schema is upgraded either way.
            clock: returns the current aware time; used for timestamps and lease expiry
                (tests inject one to expire leases without sleeping).

        Raises:
            StoreError: the database cannot be reached, holds a schema from a newer mocksim,
                or holds none and ``create`` is false. The message masks the password.
        """
        parsed = parse_url(DEFAULT_URL if url is None else url)
        where = mask_url(parsed)
        engine = make_engine(parsed, create=create)
        try:
            with translate_errors("opening the store", parsed):
                schema = upgrade(engine, backend_of(parsed), create=create, where=where)
        except BaseException:
            engine.dispose()
            raise
        logger.info("opened store %s (schema %s)", where, schema)
        return cls(engine, parsed, clock=clock or _utc_now, schema=schema)

    def close(self) -> None:
        """Release the connections; calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        self._engine.dispose()
        logger.debug("closed store %s", self.url)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"schema {self._schema}"
        return f"<Store {self.url} {state}>"

    @property
    def url(self) -> str:
        """The database URL with the password masked."""
        return mask_url(self._url)

    @property
    def backend(self) -> Backend:
        """Which kind of database this is."""
        return self._backend

    @property
    def schema_revision(self) -> str:
        """The Alembic revision of the schema (this mocksim's head)."""
        return self._schema

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    # ------------------------------------------------------------------------ plumbing

    def _now(self) -> datetime:
        return _aware(self._clock(), "clock()")

    def _check_open(self) -> None:
        if self._closed:
            msg = f"the store on {self.url} is closed; open a new one"
            raise StoreError(msg)

    @contextmanager
    def _write(self, what: str) -> Iterator[Connection]:
        """One write transaction; on SQLite it takes the write lock up front."""
        self._check_open()
        with translate_errors(what, self._url), self._engine.connect() as conn:
            if self._backend is Backend.SQLITE:
                conn.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self, what: str, *, snapshot: bool = False) -> Iterator[Connection]:
        """One read transaction; ``snapshot`` makes all its queries see one moment."""
        self._check_open()
        with translate_errors(what, self._url), self._engine.connect() as conn:
            if snapshot and self._backend is Backend.POSTGRESQL:
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    def _upsert(self, table: Table) -> Insert:
        if self._backend is Backend.POSTGRESQL:
            return pg_dialect.insert(table)
        return sqlite_dialect.insert(table)

    @staticmethod
    def _bump(conn: Connection) -> int:
        """Increment the revision; its row lock serialises configuration writers."""
        stmt = (
            update(META)
            .where(META.c.key == REVISION_KEY)
            .values(value=META.c.value + 1)
            .returning(META.c.value)
        )
        return int(conn.execute(stmt).scalar_one())

    def _existing(self, conn: Connection, ids: Sequence[str], *, lock: bool = False) -> set[str]:
        """Which of ``ids`` exist; ``lock`` also locks their rows (PostgreSQL)."""
        found: set[str] = set()
        for chunk in _chunks(ids, ID_CHUNK):
            query = select(DEVICES.c.id).where(DEVICES.c.id.in_(chunk))
            if lock and self._backend is Backend.POSTGRESQL:
                query = query.with_for_update()
            found.update(conn.execute(query).scalars())
        return found

    def _record(self, row: Mapping[Any, Any], overrides: dict[str, float]) -> DeviceRecord:
        try:
            spec = DeviceSpec.model_validate(row["spec"])
        except SpecError as exc:
            msg = f"device {row['id']!r} in {self.url} holds a spec that no longer validates: {exc}"
            raise StoreError(msg) from exc
        return DeviceRecord(
            spec=spec,
            desired_state=DesiredState(row["desired_state"]),
            runtime_status=RuntimeStatus(row["runtime_status"]),
            error=row["error"],
            config_version=int(row["config_version"]),
            overrides=overrides,
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    def _records(self, conn: Connection, query: Select[Any]) -> list[DeviceRecord]:
        """Device records for a query over DEVICES, with their overrides, in id order."""
        rows = conn.execute(query.order_by(DEVICES.c.id)).mappings().all()
        if not rows:
            return []
        ids = query.with_only_columns(DEVICES.c.id)
        overrides: dict[str, dict[str, float]] = {}
        override_rows = conn.execute(
            select(OVERRIDES).where(OVERRIDES.c.device_id.in_(ids))
        ).mappings()
        for o in override_rows:
            overrides.setdefault(o["device_id"], {})[
                override_key(o["sensor_key"], o["value_type"])
            ] = float(o["value"])
        return [self._record(row, overrides.get(row["id"], {})) for row in rows]

    def _load_for_change(self, conn: Connection, device_id: str) -> RowMapping:
        row = conn.execute(select(DEVICES).where(DEVICES.c.id == device_id)).mappings().first()
        if row is None:
            raise UnknownDeviceError(device_id)
        return row

    def _overrides_of(self, conn: Connection, device_id: str) -> dict[str, float]:
        rows = conn.execute(select(OVERRIDES).where(OVERRIDES.c.device_id == device_id)).mappings()
        return {override_key(r["sensor_key"], r["value_type"]): float(r["value"]) for r in rows}

    # ------------------------------------------------------------------------ revision

    def revision(self) -> int:
        """The current configuration revision (0 for a fresh store)."""
        with self._read("reading the revision") as conn:
            return int(
                conn.execute(select(META.c.value).where(META.c.key == REVISION_KEY)).scalar_one()
            )

    def changes_since(self, revision: int) -> Changes:
        """Devices created or changed, and ids deleted, after ``revision``.

        A revision ahead of the store (the database was replaced) is answered with every
        device, as for revision 0.
        """
        if isinstance(revision, bool) or not isinstance(revision, int) or revision < 0:
            raise SpecError("revision", revision, "an integer >= 0")
        with self._read("reading changes", snapshot=True) as conn:
            current = int(
                conn.execute(select(META.c.value).where(META.c.key == REVISION_KEY)).scalar_one()
            )
            if revision > current:
                logger.warning(
                    "revision %d is ahead of %s (at %d): was the database replaced?",
                    revision,
                    self.url,
                    current,
                )
                revision = 0
            query = select(DEVICES).where(DEVICES.c.config_version > revision)
            changed = self._records(conn, query)
            deleted = list(
                conn.execute(
                    select(TOMBSTONES.c.device_id)
                    .where(TOMBSTONES.c.revision > revision)
                    .order_by(TOMBSTONES.c.revision, TOMBSTONES.c.device_id)
                ).scalars()
            )
        return Changes(revision=current, changed=changed, deleted=deleted)

    # ------------------------------------------------------------------------ devices: read

    def get_device(self, device_id: str) -> DeviceRecord:
        """The stored device.

        Raises:
            UnknownDeviceError: no device with that id.
        """
        with self._read("reading a device") as conn:
            records = self._records(conn, select(DEVICES).where(DEVICES.c.id == device_id))
        if not records:
            raise UnknownDeviceError(device_id)
        return records[0]

    def list_devices(self, desired_state: DesiredState | str | None = None) -> list[DeviceRecord]:
        """All devices in id order, or only those with the given desired state."""
        query = select(DEVICES)
        if desired_state is not None:
            state = _enum_arg(DesiredState, desired_state, "desired_state")
            query = query.where(DEVICES.c.desired_state == state.value)
        with self._read("listing devices") as conn:
            return self._records(conn, query)

    def device_ids(self) -> list[str]:
        """The ids of all devices, sorted."""
        with self._read("listing device ids") as conn:
            return list(conn.execute(select(DEVICES.c.id).order_by(DEVICES.c.id)).scalars())

    # ------------------------------------------------------------------------ devices: write

    def create_devices(
        self,
        specs: Iterable[DeviceSpec | Mapping[str, Any]],
        desired_state: DesiredState | str = DesiredState.RUNNING,
    ) -> list[DeviceRecord]:
        """Create many devices in one transaction: all of them, or none.

        Args:
            specs: validated specs, or mappings validated here.
            desired_state: the desired state of every new device.

        Raises:
            SpecError: an invalid spec, or an id that repeats in the batch or exists already
                (``field="id"``). Nothing is written.
        """
        state = _enum_arg(DesiredState, desired_state, "desired_state")
        batch = [_as_spec(spec) for spec in specs]
        first_index: dict[str, int] = {}
        for index, spec in enumerate(batch):
            if spec.id in first_index:
                msg = (
                    f"id: {spec.id!r} appears twice in the batch "
                    f"(specs[{first_index[spec.id]}] and specs[{index}])"
                )
                raise SpecError("id", spec.id, None, msg)
            first_index[spec.id] = index
        if not batch:
            return []
        ids = list(first_index)
        now = self._now()
        try:
            with self._write("creating devices") as conn:
                taken = self._existing(conn, ids)
                if taken:
                    dup = next(i for i in ids if i in taken)
                    raise SpecError("id", dup, None, f"id: a device {dup!r} exists already")
                revision = self._bump(conn)
                rows = [
                    {
                        "id": spec.id,
                        **_spec_columns(spec),
                        "desired_state": state.value,
                        "runtime_status": RuntimeStatus.STOPPED.value,
                        "error": None,
                        "config_version": revision,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for spec in batch
                ]
                conn.execute(insert(DEVICES), rows)
                # A re-created id is no longer deleted.
                conn.execute(
                    delete(TOMBSTONES).where(
                        TOMBSTONES.c.device_id.in_(
                            select(DEVICES.c.id).where(DEVICES.c.config_version == revision)
                        )
                    )
                )
        except StoreError as exc:
            # Another process created one of the ids between our check and our insert.
            if isinstance(exc.__cause__, IntegrityError):
                msg = "id: a device in this batch was created by another process meanwhile"
                raise SpecError("id", None, None, msg) from exc
            raise
        logger.debug("created %d devices at revision %d", len(batch), revision)
        return [
            DeviceRecord(
                spec=spec,
                desired_state=state,
                runtime_status=RuntimeStatus.STOPPED,
                error=None,
                config_version=revision,
                overrides={},
                created_at=now,
                updated_at=now,
            )
            for spec in batch
        ]

    def create_device(
        self,
        spec: DeviceSpec | Mapping[str, Any],
        desired_state: DesiredState | str = DesiredState.RUNNING,
    ) -> DeviceRecord:
        """Create one device (see :meth:`create_devices`)."""
        return self.create_devices([spec], desired_state)[0]

    def _change_spec(
        self, device_id: str, what: str, change: Callable[[DeviceSpec], DeviceSpec]
    ) -> DeviceRecord:
        """Replace a device's spec by ``change(old)`` in one revision, pruning stale overrides."""
        now = self._now()
        with self._write(what) as conn:
            revision = self._bump(conn)
            row = self._load_for_change(conn, device_id)
            old = self._record(row, {}).spec
            new = change(old)
            if new.id != device_id:
                msg = f"id: cannot rename {device_id!r} to {new.id!r}"
                raise SpecError("id", new.id, None, msg)
            conn.execute(
                update(DEVICES)
                .where(DEVICES.c.id == device_id)
                .values(**_spec_columns(new), config_version=revision, updated_at=now)
            )
            valid = {override_key(s.key, vt) for s in new.sensors for vt in s.value_types}
            overrides = self._overrides_of(conn, device_id)
            stale = [key for key in overrides if key not in valid]
            if stale:
                conn.execute(
                    delete(OVERRIDES).where(
                        OVERRIDES.c.device_id == device_id,
                        tuple_(OVERRIDES.c.sensor_key, OVERRIDES.c.value_type).in_(
                            [tuple(key.rsplit("/", 1)) for key in stale]
                        ),
                    )
                )
                for key in stale:
                    del overrides[key]
            return DeviceRecord(
                spec=new,
                desired_state=DesiredState(row["desired_state"]),
                runtime_status=RuntimeStatus(row["runtime_status"]),
                error=row["error"],
                config_version=revision,
                overrides=overrides,
                created_at=row["created_at"],
                updated_at=now,
            )

    def update_device(self, spec: DeviceSpec | Mapping[str, Any]) -> DeviceRecord:
        """Replace the spec of the device with ``spec.id``; overrides of vanished sensors go.

        Raises:
            SpecError: the spec is invalid.
            UnknownDeviceError: no device with that id.
        """
        new = _as_spec(spec)
        return self._change_spec(new.id, "updating a device", lambda _old: new)

    def upsert_sensor(self, device_id: str, sensor: SensorSpec | Mapping[str, Any]) -> DeviceRecord:
        """Replace the device's sensor with the same key, or add it.

        Raises:
            SpecError: the sensor is invalid or clashes with the device's other parts.
            UnknownDeviceError: no such device.
        """
        new = sensor if isinstance(sensor, SensorSpec) else SensorSpec.model_validate(dict(sensor))

        def change(old: DeviceSpec) -> DeviceSpec:
            sensors = [s for s in old.sensors if s.key != new.key]
            index = next((i for i, s in enumerate(old.sensors) if s.key == new.key), len(sensors))
            sensors.insert(index, new)
            return old.replace(sensors=sensors)

        return self._change_spec(device_id, "updating a sensor", change)

    def remove_sensor(self, device_id: str, sensor_key: str) -> DeviceRecord:
        """Remove the sensor with this key (see ``SensorSpec.key``) and its overrides.

        Raises:
            SpecError: the device has no sensor with that key (names the keys it has).
            UnknownDeviceError: no such device.
        """

        def change(old: DeviceSpec) -> DeviceSpec:
            keys = [s.key for s in old.sensors]
            if sensor_key not in keys:
                raise SpecError("sensor_key", sensor_key, keys or "none: the device has no sensors")
            return old.replace(sensors=[s for s in old.sensors if s.key != sensor_key])

        return self._change_spec(device_id, "removing a sensor", change)

    def upsert_actuator(
        self, device_id: str, actuator: ActuatorSpec | Mapping[str, Any]
    ) -> DeviceRecord:
        """Replace the device's actuator on the same gpio, or add it.

        Raises:
            SpecError: the actuator is invalid or clashes with the device's other parts.
            UnknownDeviceError: no such device.
        """
        new = (
            actuator
            if isinstance(actuator, ActuatorSpec)
            else ActuatorSpec.model_validate(dict(actuator))
        )

        def change(old: DeviceSpec) -> DeviceSpec:
            actuators = [a for a in old.actuators if a.gpio != new.gpio]
            index = next(
                (i for i, a in enumerate(old.actuators) if a.gpio == new.gpio), len(actuators)
            )
            actuators.insert(index, new)
            return old.replace(actuators=actuators)

        return self._change_spec(device_id, "updating an actuator", change)

    def remove_actuator(self, device_id: str, gpio: int) -> DeviceRecord:
        """Remove the actuator on ``gpio``.

        Raises:
            SpecError: the device has no actuator on that gpio (names the ones it has).
            UnknownDeviceError: no such device.
        """

        def change(old: DeviceSpec) -> DeviceSpec:
            gpios = [a.gpio for a in old.actuators]
            if gpio not in gpios:
                raise SpecError("gpio", gpio, gpios or "none: the device has no actuators")
            return old.replace(actuators=[a for a in old.actuators if a.gpio != gpio])

        return self._change_spec(device_id, "removing an actuator", change)

    def set_override(
        self, device_id: str, sensor_key: str, value_type: str, value: float | None
    ) -> DeviceRecord:
        """Pin one value of one sensor to ``value``, or clear the pin with None.

        Raises:
            SpecError: no such sensor or value type on the device, or a non-finite value.
            UnknownDeviceError: no such device.
        """
        if value is not None:
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise SpecError("value", value, "a finite number, or None to clear")
            value = float(value)
        now = self._now()
        with self._write("setting an override") as conn:
            revision = self._bump(conn)
            row = self._load_for_change(conn, device_id)
            spec = self._record(row, {}).spec
            keys = [s.key for s in spec.sensors]
            if sensor_key not in keys:
                raise SpecError("sensor_key", sensor_key, keys or "none: the device has no sensors")
            value_types = spec.sensor(sensor_key).value_types
            if value_type not in value_types:
                raise SpecError("value_type", value_type, value_types)
            where = (
                OVERRIDES.c.device_id == device_id,
                OVERRIDES.c.sensor_key == sensor_key,
                OVERRIDES.c.value_type == value_type,
            )
            if value is None:
                conn.execute(delete(OVERRIDES).where(*where))
            else:
                stmt = self._upsert(OVERRIDES).values(
                    device_id=device_id, sensor_key=sensor_key, value_type=value_type, value=value
                )
                conn.execute(
                    stmt.on_conflict_do_update(  # type: ignore[attr-defined]  # both dialects' Insert have it
                        index_elements=["device_id", "sensor_key", "value_type"],
                        set_={"value": value},
                    )
                )
            conn.execute(
                update(DEVICES)
                .where(DEVICES.c.id == device_id)
                .values(config_version=revision, updated_at=now)
            )
            overrides = self._overrides_of(conn, device_id)
            return self._record({**row, "config_version": revision, "updated_at": now}, overrides)

    def set_desired_state(self, ids: str | Iterable[str], state: DesiredState | str) -> int:
        """Set the desired state of one device or many, all or none; return the new revision.

        Raises:
            SpecError: not a desired state (names the allowed ones).
            UnknownDeviceError: one of the ids is unknown; nothing changes.
        """
        wanted = _enum_arg(DesiredState, state, "state")
        id_list = _ids_arg(ids)
        if not id_list:
            return self.revision()
        now = self._now()
        with self._write("setting the desired state") as conn:
            revision = self._bump(conn)
            found = self._existing(conn, id_list)
            missing = next((i for i in id_list if i not in found), None)
            if missing is not None:
                raise UnknownDeviceError(missing)
            for chunk in _chunks(id_list, ID_CHUNK):
                conn.execute(
                    update(DEVICES)
                    .where(DEVICES.c.id.in_(chunk))
                    .values(desired_state=wanted.value, config_version=revision, updated_at=now)
                )
        return revision

    def set_runtime_status(
        self,
        ids: str | Iterable[str],
        status: RuntimeStatus | str,
        error: str | None = None,
    ) -> None:
        """Record what the simulation reports for one device or many.

        Runtime status is not configuration: the revision does not move.

        Raises:
            SpecError: not a runtime status (names the allowed ones).
            UnknownDeviceError: one of the ids is unknown; nothing changes.
        """
        reported = _enum_arg(RuntimeStatus, status, "status")
        id_list = _ids_arg(ids)
        if not id_list:
            return
        with self._write("setting the runtime status") as conn:
            found = self._existing(conn, id_list)
            missing = next((i for i in id_list if i not in found), None)
            if missing is not None:
                raise UnknownDeviceError(missing)
            for chunk in _chunks(id_list, ID_CHUNK):
                conn.execute(
                    update(DEVICES)
                    .where(DEVICES.c.id.in_(chunk))
                    .values(runtime_status=reported.value, error=error)
                )

    def delete_devices(self, ids: str | Iterable[str], *, purge_readings: bool = False) -> int:
        """Delete devices with their overrides, checkpoints and leases; return how many.

        Each deletion leaves a tombstone so :meth:`changes_since` reports it. Readings and
        events stay unless ``purge_readings`` is true.

        Raises:
            UnknownDeviceError: one of the ids is unknown; nothing is deleted.
        """
        id_list = _ids_arg(ids)
        if not id_list:
            return 0
        now = self._now()
        with self._write("deleting devices") as conn:
            revision = self._bump(conn)
            # Lock the device rows before touching their leases: a concurrent claimer locks
            # a device row first and its lease second, so this order cannot deadlock with it.
            found = self._existing(conn, id_list, lock=True)
            missing = next((i for i in id_list if i not in found), None)
            if missing is not None:
                raise UnknownDeviceError(missing)
            for chunk in _chunks(id_list, ID_CHUNK):
                # The foreign keys cascade too; explicit deletes do not depend on it.
                for table in (OVERRIDES, CHECKPOINTS, LEASES):
                    conn.execute(delete(table).where(table.c.device_id.in_(chunk)))
                conn.execute(delete(DEVICES).where(DEVICES.c.id.in_(chunk)))
                if purge_readings:
                    for table in (READINGS, EVENTS):
                        conn.execute(delete(table).where(table.c.device_id.in_(chunk)))
            stmt = self._upsert(TOMBSTONES)
            excluded = stmt.excluded  # type: ignore[attr-defined]  # both dialects' Insert have it
            conn.execute(
                stmt.on_conflict_do_update(  # type: ignore[attr-defined]
                    index_elements=["device_id"],
                    set_={"revision": excluded.revision, "deleted_at": excluded.deleted_at},
                ),
                [{"device_id": i, "revision": revision, "deleted_at": now} for i in id_list],
            )
        logger.debug("deleted %d devices at revision %d", len(id_list), revision)
        return len(id_list)

    def delete_device(self, device_id: str, *, purge_readings: bool = False) -> None:
        """Delete one device (see :meth:`delete_devices`).

        Raises:
            UnknownDeviceError: no such device.
        """
        self.delete_devices([device_id], purge_readings=purge_readings)

    # ------------------------------------------------------------------------ checkpoints

    def save_checkpoints(self, checkpoints: Iterable[Checkpoint]) -> int:
        """Upsert many checkpoints in one transaction; return how many were saved.

        Checkpoints of devices that no longer exist are skipped (a deletion may race a flush).
        Of several checkpoints for one device, the last wins.

        Raises:
            SpecError: a checkpoint with a negative counter or a state that is not JSON.
        """
        latest: dict[str, Checkpoint] = {}
        for index, cp in enumerate(checkpoints):
            if not isinstance(cp, Checkpoint):
                raise SpecError(f"checkpoints[{index}]", cp, "a Checkpoint")
            for name in ("boot_count", "seq"):
                number = getattr(cp, name)
                if isinstance(number, bool) or not isinstance(number, int) or number < 0:
                    raise SpecError(f"checkpoints[{index}].{name}", number, "an integer >= 0")
            try:
                orjson.dumps(cp.state)
            except TypeError as exc:
                raise SpecError(
                    f"checkpoints[{index}].state",
                    cp.state,
                    None,
                    f"checkpoints[{index}].state: not JSON-serialisable ({exc})",
                ) from None
            _aware(cp.saved_at, f"checkpoints[{index}].saved_at")
            latest[cp.device_id] = cp
        if not latest:
            return 0
        with self._write("saving checkpoints") as conn:
            found = self._existing(conn, list(latest))
            rows = [
                {
                    "device_id": cp.device_id,
                    "boot_count": cp.boot_count,
                    "seq": cp.seq,
                    "state": cp.state,
                    "saved_at": cp.saved_at,
                }
                for cp in latest.values()
                if cp.device_id in found
            ]
            if rows:
                stmt = self._upsert(CHECKPOINTS)
                excluded = stmt.excluded  # type: ignore[attr-defined]  # both dialects' Insert have it
                conn.execute(
                    stmt.on_conflict_do_update(  # type: ignore[attr-defined]
                        index_elements=["device_id"],
                        set_={
                            "boot_count": excluded.boot_count,
                            "seq": excluded.seq,
                            "state": excluded.state,
                            "saved_at": excluded.saved_at,
                        },
                    ),
                    rows,
                )
        skipped = len(latest) - len(rows)
        if skipped:
            logger.debug("skipped %d checkpoints of deleted devices", skipped)
        return len(rows)

    @staticmethod
    def _checkpoint(row: RowMapping) -> Checkpoint:
        return Checkpoint(
            device_id=row["device_id"],
            boot_count=int(row["boot_count"]),
            seq=int(row["seq"]),
            state=row["state"],
            saved_at=row["saved_at"],
        )

    def load_checkpoint(self, device_id: str) -> Checkpoint | None:
        """The device's last checkpoint, or None if it has none."""
        with self._read("loading a checkpoint") as conn:
            row = (
                conn.execute(select(CHECKPOINTS).where(CHECKPOINTS.c.device_id == device_id))
                .mappings()
                .first()
            )
        return None if row is None else self._checkpoint(row)

    def load_checkpoints(self, ids: Iterable[str] | None = None) -> dict[str, Checkpoint]:
        """Checkpoints by device id: of the given devices (those that have one), or of all."""
        out: dict[str, Checkpoint] = {}
        with self._read("loading checkpoints") as conn:
            if ids is None:
                for row in conn.execute(select(CHECKPOINTS)).mappings():
                    out[row["device_id"]] = self._checkpoint(row)
                return out
            for chunk in _chunks(_ids_arg(ids), ID_CHUNK):
                query = select(CHECKPOINTS).where(CHECKPOINTS.c.device_id.in_(chunk))
                for row in conn.execute(query).mappings():
                    out[row["device_id"]] = self._checkpoint(row)
        return out

    # ------------------------------------------------------------------------ readings, events

    def _normalise(
        self, rows: Iterable[Mapping[str, Any]], kind: str, columns: tuple[str, ...]
    ) -> list[tuple[Any, ...]]:
        """Rows as tuples in column order, checked; received_at defaults to now.

        Well-typed rows take a fast path; any other row goes through :func:`_coerce_row`,
        which converts what it safely can and otherwise raises a SpecError naming the field.
        """
        now = self._now()
        out: list[tuple[Any, ...]] = []
        append = out.append
        fast = _fast_reading if columns is READING_COLUMNS else _fast_event
        for index, row in enumerate(rows):
            values = fast(row, now)
            append(values if values is not None else _coerce_row(row, index, kind, columns, now))
        return out

    def _bulk_insert(
        self, table: Table, columns: tuple[str, ...], rows: list[tuple[Any, ...]], what: str
    ) -> None:
        json_at = columns.index("payload") if "payload" in columns else -1
        at = columns.index("received_at")
        with self._write(what) as conn:
            if self._backend is Backend.POSTGRESQL:
                dbapi = conn.connection.driver_connection
                assert dbapi is not None
                copy_sql = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
                with dbapi.cursor() as cursor, cursor.copy(copy_sql) as copy:
                    if json_at < 0:
                        for row in rows:
                            copy.write_row(row)
                    else:
                        for row in rows:
                            payload = orjson.dumps(row[json_at]).decode()
                            copy.write_row((*row[:json_at], payload, *row[json_at + 1 :]))
                return
            # SQLite: straight to the driver's executemany, with values as SQLAlchemy's
            # column types would store them (naive UTC text with microseconds, JSON text).
            sql = _sqlite_insert_sql(table, columns)
            for chunk in _chunks(rows, ROW_CHUNK):
                params = []
                for row in chunk:
                    values = list(row)
                    values[at] = _sqlite_timestamp(row[at])
                    if json_at >= 0:
                        values[json_at] = orjson.dumps(row[json_at]).decode()
                    params.append(tuple(values))
                conn.exec_driver_sql(sql, params)

    def insert_readings(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert a batch of readings in one transaction (COPY on PostgreSQL); return the count.

        Each row maps ``device_id``, ``gpio``, ``sensor_type`` (required) and ``raw``,
        ``value``, ``unit``, ``quality``, ``seq``, ``device_ts`` (int s) and ``received_at``
        (aware datetime; default now). Other keys are ignored.

        Raises:
            SpecError: a row lacks a required field or has a value of the wrong type; nothing
                is written.
        """
        batch = self._normalise(rows, "readings", READING_COLUMNS)
        if batch:
            self._bulk_insert(READINGS, READING_COLUMNS, batch, "inserting readings")
        return len(batch)

    def insert_events(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert a batch of events in one transaction (COPY on PostgreSQL); return the count.

        Each row maps ``device_id``, ``kind``, ``topic`` (required), ``payload`` (JSON),
        ``seq``, ``device_ts`` and ``received_at`` (aware datetime; default now).

        Raises:
            SpecError: a row lacks a required field or has a value of the wrong type.
        """
        batch = self._normalise(rows, "events", EVENT_COLUMNS)
        if batch:
            self._bulk_insert(EVENTS, EVENT_COLUMNS, batch, "inserting events")
        return len(batch)

    @staticmethod
    def _window(
        table: Table,
        *,
        device_id: str | None,
        since: datetime | None,
        until: datetime | None,
        last: int | None,
        extra: Any = None,
    ) -> Select[Any]:
        """Rows of ``table`` in ``[since, until)``, oldest first; ``last``: only the newest N."""
        conditions = []
        if device_id is not None:
            conditions.append(table.c.device_id == device_id)
        if since is not None:
            conditions.append(table.c.received_at >= _aware(since, "since"))
        if until is not None:
            conditions.append(table.c.received_at < _aware(until, "until"))
        if extra is not None:
            conditions.append(extra)
        query = select(table).where(and_(*conditions)) if conditions else select(table)
        if last is None:
            return query.order_by(table.c.received_at, table.c.id)
        if isinstance(last, bool) or not isinstance(last, int) or last < 0:
            raise SpecError("last", last, "an integer >= 0")
        newest = query.order_by(table.c.received_at.desc(), table.c.id.desc()).limit(last)
        sub = newest.subquery()
        return select(sub).order_by(sub.c.received_at, sub.c.id)

    def _readings_query(
        self,
        device_id: str | None,
        sensor_type: str | None,
        since: datetime | None,
        until: datetime | None,
        last: int | None,
    ) -> Select[Any]:
        extra = None if sensor_type is None else READINGS.c.sensor_type == sensor_type
        return self._window(
            READINGS, device_id=device_id, since=since, until=until, last=last, extra=extra
        )

    def readings(
        self,
        device_id: str | None = None,
        sensor_type: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        last: int | None = None,
    ) -> list[ReadingRecord]:
        """Readings received in ``[since, until)``, oldest first; ``last``: only the newest N."""
        query = self._readings_query(device_id, sensor_type, since, until, last)
        with self._read("reading readings") as conn:
            return [ReadingRecord(**row) for row in conn.execute(query).mappings()]

    def readings_frame(
        self,
        device_id: str | None = None,
        sensor_type: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        last: int | None = None,
    ) -> pd.DataFrame:
        """The same rows as :meth:`readings`, as a DataFrame (``received_at`` in UTC)."""
        import pandas as pd  # noqa: PLC0415 - pandas is heavy; only frames need it

        query = self._readings_query(device_id, sensor_type, since, until, last)
        with self._read("reading readings") as conn:
            frame = pd.read_sql(query, conn)
        frame["received_at"] = pd.to_datetime(frame["received_at"], utc=True)
        return frame

    def events(
        self,
        device_id: str | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        last: int | None = None,
    ) -> list[EventRecord]:
        """Events received in ``[since, until)``, oldest first; ``last``: only the newest N."""
        extra = None if kind is None else EVENTS.c.kind == kind
        query = self._window(
            EVENTS, device_id=device_id, since=since, until=until, last=last, extra=extra
        )
        with self._read("reading events") as conn:
            return [EventRecord(**row) for row in conn.execute(query).mappings()]

    def count_readings(self, device_id: str | None = None) -> int:
        """How many readings are stored (of one device, or of all)."""
        query = select(func.count()).select_from(READINGS)
        if device_id is not None:
            query = query.where(READINGS.c.device_id == device_id)
        with self._read("counting readings") as conn:
            return int(conn.execute(query).scalar_one())

    def delete_readings_before(self, ts: datetime) -> int:
        """Delete readings received before ``ts`` (retention); return how many went."""
        cutoff = _aware(ts, "ts")
        with self._write("deleting old readings") as conn:
            return conn.execute(delete(READINGS).where(READINGS.c.received_at < cutoff)).rowcount

    def delete_events_before(self, ts: datetime) -> int:
        """Delete events received before ``ts`` (retention); return how many went."""
        cutoff = _aware(ts, "ts")
        with self._write("deleting old events") as conn:
            return conn.execute(delete(EVENTS).where(EVENTS.c.received_at < cutoff)).rowcount

    # ------------------------------------------------------------------------ leases

    def claim_leases(
        self,
        owner: str,
        device_ids: Iterable[str] | None = None,
        ttl_s: float = 30.0,
        limit: int | None = None,
    ) -> list[str]:
        """Atomically take the leases of devices that are free, expired or already ours.

        Args:
            owner: who claims (unique per process, e.g. ``"host:pid:uuid"``).
            device_ids: the candidates; None means every device.
            ttl_s: seconds until the lease expires unless renewed.
            limit: claim at most this many.

        Returns:
            The ids now held by ``owner``, sorted. Devices held by a fresh lease of another
            owner, and unknown ids, are not in it.
        """
        owner = _owner_arg(owner)
        ttl = _positive_ttl(ttl_s)
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise SpecError("limit", limit, "an integer >= 0")
        candidates: list[Sequence[str] | None] = [None]
        if device_ids is not None:
            candidates = list(_chunks(_ids_arg(device_ids, "device_ids"), ID_CHUNK))
        now = self._now()
        expires = now + ttl
        claimed: list[str] = []
        with self._write("claiming leases") as conn:
            for chunk in candidates:
                remaining = None if limit is None else limit - len(claimed)
                if remaining == 0:
                    break
                query = (
                    select(DEVICES.c.id)
                    .select_from(DEVICES.outerjoin(LEASES, LEASES.c.device_id == DEVICES.c.id))
                    .where(
                        or_(
                            LEASES.c.device_id.is_(None),
                            LEASES.c.expires_at <= now,
                            LEASES.c.owner == owner,
                        )
                    )
                    .order_by(DEVICES.c.id)
                )
                if chunk is not None:
                    query = query.where(DEVICES.c.id.in_(chunk))
                if remaining is not None:
                    query = query.limit(remaining)
                if self._backend is Backend.POSTGRESQL:
                    # Lock the candidates; a concurrent claimer skips them instead of waiting.
                    query = query.with_for_update(of=DEVICES, skip_locked=True, key_share=True)
                ids = list(conn.execute(query).scalars())
                if not ids:
                    continue
                stmt = self._upsert(LEASES)
                excluded = stmt.excluded  # type: ignore[attr-defined]  # both dialects' Insert have it
                # The WHERE re-checks the lease row under its lock: never steal a fresh lease.
                upsert = stmt.on_conflict_do_update(  # type: ignore[attr-defined]
                    index_elements=["device_id"],
                    set_={
                        "owner": excluded.owner,
                        "renewed_at": excluded.renewed_at,
                        "expires_at": excluded.expires_at,
                    },
                    where=or_(LEASES.c.expires_at <= now, LEASES.c.owner == owner),
                ).returning(LEASES.c.device_id)
                rows = [
                    {"device_id": i, "owner": owner, "renewed_at": now, "expires_at": expires}
                    for i in ids
                ]
                claimed.extend(conn.execute(upsert, rows).scalars())
        claimed.sort()
        logger.debug("%s claimed %d leases", owner, len(claimed))
        return claimed

    def claim_lease(self, owner: str, device_id: str, ttl_s: float = 30.0) -> None:
        """Take the lease of one device, or raise.

        Raises:
            UnknownDeviceError: no such device.
            LeaseError: another owner holds a fresh lease (the message names it).
        """
        if self.claim_leases(owner, [device_id], ttl_s):
            return
        with self._read("reading a lease") as conn:
            self._load_for_change(conn, device_id)
            holder = conn.execute(
                select(LEASES.c.owner, LEASES.c.expires_at).where(LEASES.c.device_id == device_id)
            ).first()
        if holder is None:  # released in between: try once more
            if self.claim_leases(owner, [device_id], ttl_s):
                return
            msg = f"device {device_id!r} was claimed by another owner meanwhile"
            raise LeaseError(msg)
        msg = (
            f"device {device_id!r} is leased by {holder.owner!r} until "
            f"{holder.expires_at.isoformat()}"
        )
        raise LeaseError(msg)

    def renew_leases(self, owner: str, ids: Iterable[str], ttl_s: float = 30.0) -> list[str]:
        """Extend the leases ``owner`` still holds; return those (sorted), without the lost ones.

        A lease that expired but was not taken by anyone is still ours and is renewed.
        """
        owner = _owner_arg(owner)
        ttl = _positive_ttl(ttl_s)
        id_list = _ids_arg(ids)
        now = self._now()
        held: list[str] = []
        if not id_list:
            return held
        with self._write("renewing leases") as conn:
            for chunk in _chunks(id_list, ID_CHUNK):
                stmt = (
                    update(LEASES)
                    .where(LEASES.c.owner == owner, LEASES.c.device_id.in_(chunk))
                    .values(renewed_at=now, expires_at=now + ttl)
                    .returning(LEASES.c.device_id)
                )
                held.extend(conn.execute(stmt).scalars())
        held.sort()
        return held

    def release_leases(self, owner: str, ids: Iterable[str] | None = None) -> int:
        """Give up ``owner``'s leases (of ``ids``, or all); return how many were released."""
        owner = _owner_arg(owner)
        released = 0
        with self._write("releasing leases") as conn:
            if ids is None:
                return conn.execute(delete(LEASES).where(LEASES.c.owner == owner)).rowcount
            for chunk in _chunks(_ids_arg(ids), ID_CHUNK):
                released += conn.execute(
                    delete(LEASES).where(LEASES.c.owner == owner, LEASES.c.device_id.in_(chunk))
                ).rowcount
        return released

    def lease_owner(self, device_id: str) -> str | None:
        """Who holds a fresh lease on the device; None if it is free or the lease expired."""
        now = self._now()
        with self._read("reading a lease") as conn:
            return conn.execute(
                select(LEASES.c.owner).where(
                    LEASES.c.device_id == device_id, LEASES.c.expires_at > now
                )
            ).scalar_one_or_none()

    def leases(self, owner: str | None = None) -> dict[str, str]:
        """Fresh leases as device id → owner (only ``owner``'s when given)."""
        now = self._now()
        query = select(LEASES.c.device_id, LEASES.c.owner).where(LEASES.c.expires_at > now)
        if owner is not None:
            query = query.where(LEASES.c.owner == owner)
        with self._read("listing leases") as conn:
            rows = conn.execute(query.order_by(LEASES.c.device_id))
            return {row.device_id: row.owner for row in rows}

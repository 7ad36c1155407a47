"""The store on SQLite and on a real PostgreSQL: the database is the single source of truth."""

from __future__ import annotations

import logging
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, quote_plus

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from mocksim.errors import LeaseError, SpecError, StoreError, UnknownDeviceError
from mocksim.spec import ActuatorSpec, DeviceSpec, DriftPattern, SensorSpec
from mocksim.store import (
    Checkpoint,
    DesiredState,
    RuntimeStatus,
    Store,
    override_key,
)
from mocksim.store.migrate import head_revision
from mocksim.store.models import metadata
from tests.services import PostgresServer

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[1]
CHILD_TIMEOUT_S = 180


class FakeClock:
    """A clock the test moves by hand, so leases expire without sleeping."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(db_url: str, clock: FakeClock) -> Iterator[Store]:
    with Store.open(db_url, clock=clock) as opened:
        yield opened


def make_spec(n: int, **changes: object) -> DeviceSpec:
    data: dict[str, object] = {
        "id": f"MOCK_{n}",
        "zone_id": "greenhouse",
        "heartbeat_interval_s": 30.0,
        "sensors": [
            SensorSpec(gpio=4, sensor_type="ds18b20", pattern=DriftPattern(start=21.5, step=0.2)),
            SensorSpec(gpio=21, sensor_type="sht31", i2c_address=0x44, interval_s=10.0),
        ],
        "actuators": [ActuatorSpec(gpio=16, actuator_type="pump", max_runtime_ms=60_000)],
    }
    data.update(changes)
    return DeviceSpec.model_validate(data)


@pytest.fixture
def run_child() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start ``python -c code args…`` in the repo; every child is reaped when the test ends."""
    started: list[subprocess.Popen[str]] = []

    def start(code: str, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def child_output(proc: subprocess.Popen[str]) -> str:
    """What the child printed; fails the test if it failed (with its stderr)."""
    out, err = proc.communicate(timeout=CHILD_TIMEOUT_S)
    assert proc.returncode == 0, err
    return out.strip()


# -- devices ---------------------------------------------------------------------------------


def test_created_devices_read_back_equal(store: Store, clock: FakeClock) -> None:
    specs = [make_spec(i) for i in range(3)]
    created = store.create_devices(specs, desired_state=DesiredState.PAUSED)
    assert [r.spec for r in created] == specs
    assert store.device_ids() == ["MOCK_0", "MOCK_1", "MOCK_2"]
    for record in created:
        back = store.get_device(record.id)
        assert back == record
        assert back.spec == specs[int(record.id.removeprefix("MOCK_"))]
        assert back.desired_state is DesiredState.PAUSED
        assert back.runtime_status is RuntimeStatus.STOPPED
        assert back.created_at == clock.now
        assert back.created_at.tzinfo is not None
    assert store.list_devices() == created
    assert store.list_devices(DesiredState.RUNNING) == []
    assert store.revision() == 1
    assert {r.config_version for r in created} == {1}


def test_unknown_device_is_a_clear_error(store: Store) -> None:
    with pytest.raises(UnknownDeviceError, match="MOCK_404"):
        store.get_device("MOCK_404")
    with pytest.raises(UnknownDeviceError):
        store.update_device(make_spec(404))
    with pytest.raises(UnknownDeviceError):
        store.delete_device("MOCK_404")


def test_invalid_spec_in_a_batch_raises_and_writes_nothing(store: Store) -> None:
    bad = make_spec(2).model_dump(mode="json")
    bad["sensors"][0]["pattern"]["kind"] = "sinus"
    with pytest.raises(SpecError) as caught:
        store.create_devices([make_spec(1), bad])
    assert "sinus" in str(caught.value)
    assert store.device_ids() == []
    assert store.revision() == 0


def test_batch_with_a_duplicate_id_writes_nothing(store: Store) -> None:
    with pytest.raises(SpecError) as caught:
        store.create_devices([make_spec(1), make_spec(2), make_spec(1)])
    assert caught.value.field == "id"
    assert caught.value.value == "MOCK_1"
    assert store.device_ids() == []

    store.create_device(make_spec(1))
    with pytest.raises(SpecError) as caught:
        store.create_devices([make_spec(3), make_spec(1)])
    assert caught.value.field == "id"
    assert "exists already" in str(caught.value)
    assert store.device_ids() == ["MOCK_1"]
    assert store.revision() == 1


def test_update_bumps_the_version_and_shows_in_changes_since(store: Store) -> None:
    store.create_devices([make_spec(1), make_spec(2)])
    seen = store.revision()
    updated = store.update_device(make_spec(2, heartbeat_interval_s=90.0))
    assert updated.config_version == seen + 1
    assert store.get_device("MOCK_2").spec.heartbeat_interval_s == 90.0
    assert store.get_device("MOCK_1").config_version == seen

    changes = store.changes_since(seen)
    assert changes.revision == seen + 1
    assert [r.id for r in changes.changed] == ["MOCK_2"]
    assert changes.changed[0] == updated
    assert changes.deleted == []
    assert store.changes_since(changes.revision).changed == []
    assert [r.id for r in store.changes_since(0).changed] == ["MOCK_1", "MOCK_2"]


def test_runtime_status_is_not_configuration(store: Store) -> None:
    store.create_device(make_spec(1))
    before = store.revision()
    store.set_runtime_status("MOCK_1", RuntimeStatus.ERROR, error="broker refused")
    record = store.get_device("MOCK_1")
    assert record.runtime_status is RuntimeStatus.ERROR
    assert record.error == "broker refused"
    assert store.revision() == before
    assert store.changes_since(before).changed == []
    with pytest.raises(SpecError) as caught:
        store.set_runtime_status("MOCK_1", "exploded")
    assert "starting" in caught.value.allowed


def test_desired_state_changes_all_or_nothing(store: Store) -> None:
    store.create_devices([make_spec(1), make_spec(2)])
    with pytest.raises(UnknownDeviceError):
        store.set_desired_state(["MOCK_1", "MOCK_9"], DesiredState.STOPPED)
    assert store.get_device("MOCK_1").desired_state is DesiredState.RUNNING
    assert store.revision() == 1

    revision = store.set_desired_state(["MOCK_1", "MOCK_2"], "paused")
    assert revision == 2
    assert [r.id for r in store.list_devices(DesiredState.PAUSED)] == ["MOCK_1", "MOCK_2"]
    assert [r.id for r in store.changes_since(1).changed] == ["MOCK_1", "MOCK_2"]
    with pytest.raises(SpecError) as caught:
        store.set_desired_state("MOCK_1", "sleeping")
    assert caught.value.field == "state"


def test_sensors_and_actuators_are_replaced_added_and_removed(store: Store) -> None:
    store.create_device(make_spec(1))
    faster = SensorSpec(gpio=4, sensor_type="ds18b20", interval_s=5.0)
    record = store.upsert_sensor("MOCK_1", faster)
    assert record.spec.sensor("4:ds18b20").interval_s == 5.0
    assert len(record.spec.sensors) == 2
    record = store.upsert_sensor("MOCK_1", {"gpio": 33, "sensor_type": "ph"})
    assert [s.key for s in record.spec.sensors] == ["4:ds18b20", "21:sht31:68", "33:ph"]
    record = store.remove_sensor("MOCK_1", "21:sht31:68")
    assert [s.key for s in record.spec.sensors] == ["4:ds18b20", "33:ph"]
    assert store.get_device("MOCK_1") == record

    record = store.upsert_actuator("MOCK_1", ActuatorSpec(gpio=17, actuator_type="valve"))
    assert [a.gpio for a in record.spec.actuators] == [16, 17]
    record = store.remove_actuator("MOCK_1", 16)
    assert [a.gpio for a in record.spec.actuators] == [17]
    assert record.config_version == store.revision()

    before = store.get_device("MOCK_1")
    with pytest.raises(SpecError, match="used by a sensor"):
        store.upsert_actuator("MOCK_1", ActuatorSpec(gpio=4, actuator_type="relay"))
    with pytest.raises(SpecError) as caught:
        store.remove_sensor("MOCK_1", "5:ds18b20")
    assert caught.value.field == "sensor_key"
    assert "4:ds18b20" in caught.value.allowed
    assert store.get_device("MOCK_1") == before
    assert store.revision() == before.config_version


def test_overrides_are_validated_set_and_cleared(store: Store) -> None:
    store.create_device(make_spec(1))
    record = store.set_override("MOCK_1", "21:sht31:68", "sht31_humidity", 95.5)
    key = override_key("21:sht31:68", "sht31_humidity")
    assert record.overrides == {key: 95.5}
    assert store.get_device("MOCK_1").overrides == {key: 95.5}
    assert store.changes_since(1).changed[0].overrides == {key: 95.5}

    with pytest.raises(SpecError) as caught:
        store.set_override("MOCK_1", "21:sht31:68", "ds18b20", 1.0)
    assert caught.value.field == "value_type"
    assert "sht31_temp" in caught.value.allowed
    with pytest.raises(SpecError):
        store.set_override("MOCK_1", "22:sht31:68", "sht31_temp", 1.0)
    with pytest.raises(SpecError):
        store.set_override("MOCK_1", "4:ds18b20", "ds18b20", float("nan"))

    assert store.set_override("MOCK_1", "21:sht31:68", "sht31_humidity", None).overrides == {}
    store.set_override("MOCK_1", "21:sht31:68", "sht31_temp", 40.0)
    # Removing the sensor removes its overrides with it.
    assert store.remove_sensor("MOCK_1", "21:sht31:68").overrides == {}
    assert store.get_device("MOCK_1").overrides == {}


def test_delete_removes_device_checkpoint_lease_and_leaves_a_tombstone(store: Store) -> None:
    store.create_devices([make_spec(1), make_spec(2)])
    store.set_override("MOCK_1", "4:ds18b20", "ds18b20", 30.0)
    store.save_checkpoints([Checkpoint("MOCK_1", boot_count=3, seq=77, state={"drift": 1.0})])
    assert store.claim_leases("owner-a", ["MOCK_1"]) == ["MOCK_1"]
    store.insert_readings([{"device_id": "MOCK_1", "gpio": 4, "sensor_type": "ds18b20"}])
    seen = store.revision()

    store.delete_device("MOCK_1")
    assert store.revision() == seen + 1
    assert store.device_ids() == ["MOCK_2"]
    assert store.load_checkpoint("MOCK_1") is None
    assert store.lease_owner("MOCK_1") is None
    assert store.leases() == {}
    assert store.count_readings("MOCK_1") == 1  # readings outlive their device
    changes = store.changes_since(seen)
    assert changes.deleted == ["MOCK_1"]
    assert changes.changed == []

    # Re-created, the device is no longer reported deleted, and starts clean.
    store.create_device(make_spec(1))
    changes = store.changes_since(seen)
    assert changes.deleted == []
    assert [r.id for r in changes.changed] == ["MOCK_1"]
    assert store.get_device("MOCK_1").overrides == {}

    assert store.delete_devices(["MOCK_1", "MOCK_2", "MOCK_1"], purge_readings=True) == 2
    assert store.count_readings("MOCK_1") == 0
    assert store.device_ids() == []
    assert store.changes_since(seen).deleted == ["MOCK_1", "MOCK_2"]


# -- checkpoints ------------------------------------------------------------------------------


def test_checkpoints_round_trip(store: Store, clock: FakeClock) -> None:
    store.create_devices([make_spec(1), make_spec(2)])
    state = {"drift": {"4:ds18b20/ds18b20": 22.25}, "on_time_ms": {"16": 1234}, "flag": True}
    saved = store.save_checkpoints(
        [
            Checkpoint("MOCK_1", boot_count=1, seq=10, state={}, saved_at=clock.now),
            Checkpoint("MOCK_2", boot_count=2, seq=20, state=state, saved_at=clock.now),
            Checkpoint("MOCK_1", boot_count=1, seq=11, state=state, saved_at=clock.now),
            Checkpoint("MOCK_9", boot_count=1, seq=1, state={}, saved_at=clock.now),
        ]
    )
    assert saved == 2  # MOCK_9 does not exist; the later MOCK_1 wins
    one = store.load_checkpoint("MOCK_1")
    assert one == Checkpoint("MOCK_1", boot_count=1, seq=11, state=state, saved_at=clock.now)
    assert set(store.load_checkpoints()) == {"MOCK_1", "MOCK_2"}
    assert store.load_checkpoints(["MOCK_2", "MOCK_9"]) == {
        "MOCK_2": Checkpoint("MOCK_2", boot_count=2, seq=20, state=state, saved_at=clock.now)
    }
    clock.advance(60)
    store.save_checkpoints([Checkpoint("MOCK_1", 2, 0, {"drift": 0.5}, saved_at=clock.now)])
    again = store.load_checkpoint("MOCK_1")
    assert again is not None
    assert (again.boot_count, again.seq, again.state, again.saved_at) == (
        2,
        0,
        {"drift": 0.5},
        clock.now,
    )
    with pytest.raises(SpecError):
        store.save_checkpoints([Checkpoint("MOCK_1", -1, 0, {})])
    with pytest.raises(SpecError):
        store.save_checkpoints([Checkpoint("MOCK_1", 1, 0, {"x": object()})])
    assert store.load_checkpoint("MOCK_1") == again


# -- readings and events ---------------------------------------------------------------------


def reading(n: int, device: str = "MOCK_1", sensor: str = "ds18b20") -> dict[str, object]:
    return {
        "device_id": device,
        "gpio": 4,
        "sensor_type": sensor,
        "raw": 344 + n,
        "value": 21.5 + n / 16,
        "unit": "°C",
        "quality": "good",
        "seq": n,
        "device_ts": 1_767_268_800 + n,
        "received_at": T0 + timedelta(seconds=n),
    }


def test_readings_insert_and_query_time_windows(store: Store) -> None:
    rows = [reading(n) for n in range(50)]
    rows += [reading(n, device="MOCK_2") for n in range(10)]
    rows += [reading(n, sensor="sht31_temp") for n in range(5)]
    assert store.insert_readings(rows) == 65
    assert store.count_readings() == 65

    window = store.readings(
        "MOCK_1", "ds18b20", since=T0 + timedelta(seconds=10), until=T0 + timedelta(seconds=20)
    )
    assert [r.seq for r in window] == list(range(10, 20))
    first = window[0]
    assert (first.raw, first.value, first.unit, first.quality, first.device_ts) == (
        354.0,
        21.5 + 10 / 16,
        "°C",
        "good",
        1_767_268_810,
    )
    assert first.received_at == T0 + timedelta(seconds=10)
    assert first.received_at.tzinfo is not None

    newest = store.readings("MOCK_1", "ds18b20", last=3)
    assert [r.seq for r in newest] == [47, 48, 49]
    assert len(store.readings("MOCK_2")) == 10
    assert len(store.readings(sensor_type="sht31_temp")) == 5
    assert len(store.readings(since=T0 + timedelta(seconds=45))) == 5

    frame = store.readings_frame("MOCK_1", "ds18b20", last=5)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame["seq"]) == [45, 46, 47, 48, 49]
    assert str(frame["received_at"].dt.tz) == "UTC"
    assert frame["received_at"].iloc[-1] == pd.Timestamp(T0 + timedelta(seconds=49))

    assert store.delete_readings_before(T0 + timedelta(seconds=40)) == 40 + 10 + 5
    assert store.count_readings() == 10


def test_bad_reading_rows_write_nothing(store: Store) -> None:
    with pytest.raises(SpecError) as caught:
        store.insert_readings([reading(1), {"device_id": "MOCK_1", "sensor_type": "ph"}])
    assert caught.value.field == "readings[1].gpio"
    with pytest.raises(SpecError):
        store.insert_readings([{**reading(1), "received_at": datetime(2026, 1, 1)}])  # noqa: DTZ001
    assert store.count_readings() == 0


def test_events_round_trip(store: Store) -> None:
    payload = {"esp_id": "MOCK_1", "seq": 7, "nested": {"list": [1, 2.5, None, "x"]}}
    rows = [
        {
            "device_id": "MOCK_1",
            "kind": "heartbeat",
            "topic": "kaiser/god/esp/MOCK_1/system/heartbeat",
            "payload": payload,
            "seq": 7,
            "device_ts": 1_767_268_800,
            "received_at": T0,
        },
        {
            "device_id": "MOCK_1",
            "kind": "actuator_status",
            "topic": "t",
            "payload": [1, 2],
            "received_at": T0 + timedelta(seconds=1),
        },
    ]
    assert store.insert_events(rows) == 2
    events = store.events("MOCK_1")
    assert [e.kind for e in events] == ["heartbeat", "actuator_status"]
    assert events[0].payload == payload
    assert events[1].payload == [1, 2]
    assert events[0].received_at == T0
    assert [e.kind for e in store.events(kind="heartbeat")] == ["heartbeat"]
    assert store.delete_events_before(T0 + timedelta(seconds=1)) == 1
    assert len(store.events(last=5)) == 1


# -- leases ----------------------------------------------------------------------------------


def test_second_owner_is_refused_while_the_lease_is_fresh_and_wins_after_expiry(
    store: Store, clock: FakeClock
) -> None:
    store.create_devices([make_spec(1), make_spec(2)])
    assert store.claim_leases("a", ttl_s=30) == ["MOCK_1", "MOCK_2"]
    assert store.claim_leases("b", ttl_s=30) == []
    assert store.lease_owner("MOCK_1") == "a"
    with pytest.raises(LeaseError, match="leased by 'a'"):
        store.claim_lease("b", "MOCK_1")

    clock.advance(29)
    assert store.claim_leases("b", ["MOCK_1"]) == []
    clock.advance(1)  # now exactly at expiry
    assert store.lease_owner("MOCK_1") is None
    assert store.claim_leases("b", ["MOCK_1"], ttl_s=30) == ["MOCK_1"]
    assert store.lease_owner("MOCK_1") == "b"
    # The old owner learns it lost the lease when it renews.
    assert store.renew_leases("a", ["MOCK_1", "MOCK_2"], ttl_s=30) == ["MOCK_2"]
    assert store.leases() == {"MOCK_1": "b", "MOCK_2": "a"}


def test_renewed_lease_stays_and_released_lease_is_free(store: Store, clock: FakeClock) -> None:
    store.create_devices([make_spec(i) for i in range(5)])
    assert store.claim_leases("a", ttl_s=10, limit=3) == ["MOCK_0", "MOCK_1", "MOCK_2"]
    assert store.claim_leases("b", ttl_s=10) == ["MOCK_3", "MOCK_4"]
    clock.advance(8)
    assert store.renew_leases("a", ["MOCK_0", "MOCK_1", "MOCK_2", "MOCK_3"], ttl_s=10) == [
        "MOCK_0",
        "MOCK_1",
        "MOCK_2",
    ]
    clock.advance(8)  # b's leases expired, a's were renewed
    assert store.claim_leases("c", ttl_s=10) == ["MOCK_3", "MOCK_4"]
    assert store.release_leases("a", ["MOCK_0"]) == 1
    assert store.claim_leases("c", ["MOCK_0", "MOCK_1"]) == ["MOCK_0"]
    assert store.release_leases("a") == 2
    assert store.leases("c") == {"MOCK_0": "c", "MOCK_3": "c", "MOCK_4": "c"}
    assert store.claim_leases("c", ["MOCK_404"]) == []
    with pytest.raises(UnknownDeviceError):
        store.claim_lease("c", "MOCK_404")
    with pytest.raises(SpecError):
        store.claim_leases("", ttl_s=10)
    with pytest.raises(SpecError):
        store.claim_leases("c", ttl_s=0)


CLAIM_CHILD = """
import sys
from mocksim.store import Store
url, owner, ttl = sys.argv[1], sys.argv[2], float(sys.argv[3])
ids = sys.argv[4].split(",") if len(sys.argv) > 4 else None
with Store.open(url, create=False) as store:
    print(",".join(store.claim_leases(owner, ids, ttl_s=ttl)))
"""


def test_lease_is_exclusive_across_processes(
    db_url: str, run_child: Callable[..., subprocess.Popen[str]]
) -> None:
    later = FakeClock(datetime.now(UTC))
    with Store.open(db_url, clock=later) as store:
        store.create_devices([make_spec(1), make_spec(2)])
        # A child process claims MOCK_1; this process is refused while it is fresh.
        assert child_output(run_child(CLAIM_CHILD, db_url, "child", "30", "MOCK_1")) == "MOCK_1"
        assert store.lease_owner("MOCK_1") == "child"
        assert store.claim_leases("parent", ["MOCK_1", "MOCK_2"], ttl_s=30) == ["MOCK_2"]
        # And the other way round: the child is refused what this process holds.
        assert child_output(run_child(CLAIM_CHILD, db_url, "child", "30", "MOCK_2")) == ""
        # After expiry, this process wins.
        later.advance(120)  # the children ran on the real clock, a few seconds on
        assert store.claim_leases("parent", ["MOCK_1"], ttl_s=30) == ["MOCK_1"]
        assert store.lease_owner("MOCK_1") == "parent"


def test_concurrent_claims_from_two_processes_never_overlap(
    db_url: str, run_child: Callable[..., subprocess.Popen[str]]
) -> None:
    with Store.open(db_url) as store:
        store.create_devices([make_spec(i) for i in range(300)])
        ids = set(store.device_ids())
    children = [run_child(CLAIM_CHILD, db_url, f"worker-{k}", "60") for k in range(2)]
    claims = [set(filter(None, child_output(c).split(","))) for c in children]
    assert claims[0] | claims[1] == ids
    assert not claims[0] & claims[1]


# -- schema ----------------------------------------------------------------------------------


def test_empty_database_is_migrated_and_reopened_idempotently(db_url: str) -> None:
    with Store.open(db_url) as store:
        assert store.schema_revision == head_revision()
        store.create_device(make_spec(1))
    with Store.open(db_url) as store, Store.open(db_url, create=False) as second:
        assert store.device_ids() == ["MOCK_1"] == second.device_ids()
        assert store.revision() == 1
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
            assert versions == [(head_revision(),)]
            # The shipped migration builds exactly the tables the models describe.
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        engine.dispose()


def test_concurrent_first_opens_from_three_processes_do_not_crash(
    db_url: str, run_child: Callable[..., subprocess.Popen[str]]
) -> None:
    code = (
        "import sys\nfrom mocksim.store import Store\n"
        "with Store.open(sys.argv[1]) as s: print(s.revision())"
    )
    children = [run_child(code, db_url) for _ in range(3)]
    assert [child_output(c) for c in children] == ["0", "0", "0"]
    with Store.open(db_url) as store:
        assert store.revision() == 0


def test_a_newer_schema_is_refused_with_a_clear_error(db_url: str) -> None:
    with Store.open(db_url) as store:
        store.create_device(make_spec(1))
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '9001_from_future'"))
    finally:
        engine.dispose()
    with pytest.raises(StoreError) as caught:
        Store.open(db_url)
    message = str(caught.value)
    assert "database schema 9001_from_future is newer than this mocksim" in message
    assert f"knows up to {head_revision()}" in message
    assert "upgrade mocksim" in message


def test_empty_database_without_create_is_refused(db_url: str, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="create=True"):
        Store.open(db_url, create=False)
    missing = tmp_path / "nowhere.db"
    with pytest.raises(StoreError, match="no such database file"):
        Store.open(f"sqlite:///{missing}", create=False)
    assert not missing.exists()


def test_closed_store_refuses_work(db_url: str) -> None:
    store = Store.open(db_url)
    store.close()
    store.close()
    assert "closed" in repr(store)
    with pytest.raises(StoreError, match="closed"):
        store.device_ids()


def test_unsupported_url_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="not supported"):
        Store.open("mysql://user:hunter2@localhost/db")
    with pytest.raises(StoreError, match="not a database URL") as caught:
        Store.open("hunter2 is not a url")
    assert "hunter2" not in str(caught.value)


# -- secrets ---------------------------------------------------------------------------------


def spellings(secret: str) -> list[str]:
    return [secret, quote(secret, safe=""), quote_plus(secret)]


def test_password_never_appears_in_logs_repr_or_errors(
    pg_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    password = "Pw_s3cr#t/x9"
    good = sa.make_url(pg_server.create_database()).set(password=password)
    # trust auth ignores the password, so this opens: reprs and logs must still mask it.
    with Store.open(good) as store:
        store.create_device(make_spec(1))
        shown = f"{store!r} {store.url} {store}"
        assert "***" in shown

    failures: list[BaseException] = []
    # The server echoes the database name, and here that name holds the password.
    for url in (
        good.set(database=f"no_such_{password}"),
        good.set(port=1),
    ):
        with pytest.raises(StoreError) as caught:
            Store.open(url)
        failures.append(caught.value)
    assert "does not exist" in str(failures[0])
    text = "\n".join(
        [shown, caplog.text]
        + [f"{e!s} {e!r}" + "".join(traceback.format_exception(e)) for e in failures]
    )
    for spelling in spellings(password):
        assert spelling not in text

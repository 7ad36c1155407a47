"""The Fleet on a real broker and both databases: write-through, scheduling, recovery."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mocksim import Fleet, FleetClosedError, SpecError, TopicKind, UnknownDeviceError
from mocksim.server import Received, ServerClient
from mocksim.store import DesiredState, Store

pytestmark = pytest.mark.mqtt


def sensor(gpio: int = 4, interval_s: float = 1.0, **kw: Any) -> dict[str, Any]:
    return {"gpio": gpio, "sensor_type": "ds18b20", "interval_s": interval_s, **kw}


@pytest.fixture
def fleet(db_url: str, mqtt_url: str, no_thread_leak: None) -> Iterator[Fleet]:
    f = Fleet(db=db_url, mqtt=mqtt_url, seed=11, fast=True, watch_interval_s=0.5)
    try:
        yield f
    finally:
        f.close()


@pytest.fixture
def server(mqtt_url: str) -> Iterator[ServerClient]:
    with ServerClient(mqtt_url) as s:
        yield s


def readings(server: ServerClient, device_id: str, sensor_type: str | None = None) -> list[Any]:
    return [
        r
        for r in server.received(TopicKind.SENSOR_DATA, device_id)
        if sensor_type is None or r.payload["sensor_type"] == sensor_type
    ]


def wait_readings(
    server: ServerClient,
    device_id: str,
    n: int,
    *,
    after: float = 0.0,
    sensor_type: str | None = None,
    timeout_s: float = 10.0,
) -> list[Received]:
    return server.wait_for(
        lambda r: (
            r.topic.kind is TopicKind.SENSOR_DATA
            and r.topic.esp_id == device_id
            and r.at > after
            and (sensor_type is None or r.payload["sensor_type"] == sensor_type)
        ),
        count=n,
        timeout_s=timeout_s,
    )


def next_reading(server: ServerClient, fleet: Fleet, device_id: str) -> Received:
    """The first reading produced after everything the fleet has applied so far."""
    seq = fleet.status(device_id)["seq"]
    return server.wait_for(
        lambda r: (
            r.topic.kind is TopicKind.SENSOR_DATA
            and r.topic.esp_id == device_id
            and r.payload["seq"] > seq
        )
    )[0]


def test_added_device_publishes_contract_messages_through_the_broker(
    fleet: Fleet, server: ServerClient
) -> None:
    dev = fleet.add_device(sensors=[sensor()])
    assert dev.id.startswith("ESP_")
    wait_readings(server, dev.id, 2)
    hb = server.wait_for(lambda r: r.topic.kind is TopicKind.HEARTBEAT and r.topic.esp_id == dev.id)
    assert type(hb[0].payload["ts"]) is int
    row = fleet.devices().set_index("device_id").loc[dev.id]
    assert row["desired_state"] == "running"
    assert row["connected"]


def test_two_fleets_in_one_process_do_not_interfere(
    db_url: str, tmp_path: Any, mqtt_url: str, server: ServerClient, no_thread_leak: None
) -> None:
    with (
        Fleet(db=db_url, mqtt=mqtt_url, seed=1, fast=True) as a,
        Fleet(db=f"sqlite:///{tmp_path}/other.db", mqtt=mqtt_url, seed=2, fast=True) as b,
    ):
        da = a.add_device(sensors=[sensor()])
        db = b.add_device(sensors=[sensor(), sensor(gpio=5)])
        assert da.id != db.id
        assert list(a.devices()["device_id"]) == [da.id]
        assert list(b.devices()["device_id"]) == [db.id]
        a.pause(da.id)
        wait_readings(server, db.id, 3, after=time.time())
        assert b.status(db.id)["runtime_status"] == "running"
        assert set(a.jobs()["device_id"]) == set()
        assert set(b.jobs()["device_id"]) == {db.id}
        assert a.loop is not b.loop


def test_jobs_lists_one_heartbeat_and_one_job_per_sensor(fleet: Fleet) -> None:
    d1 = fleet.add_device(sensors=[sensor(), {"gpio": 21, "sensor_type": "sht31"}])
    d2 = fleet.add_device(sensors=[sensor()], actuators=[{"gpio": 5, "actuator_type": "pump"}])
    stopped = fleet.add_device(sensors=[sensor()], start=False)
    jobs = fleet.jobs()
    counts = jobs.groupby(["device_id", "kind"]).size().to_dict()
    assert counts == {
        (d1.id, "heartbeat"): 1,
        (d1.id, "sensor"): 2,
        (d2.id, "heartbeat"): 1,
        (d2.id, "sensor"): 1,
    }
    assert stopped.id not in set(jobs["device_id"])
    assert set(jobs.loc[jobs["kind"] == "sensor", "interval_s"]) == {1.0, 30.0}


def test_retimed_sensor_changes_the_stream_within_one_tick(
    fleet: Fleet, server: ServerClient
) -> None:
    dev = fleet.add_device(sensors=[sensor(interval_s=30)])  # 3 s in FAST mode
    t0 = time.time()
    fleet.update_sensor(dev.id, "4:ds18b20", interval_s=1)  # 0.1 s in FAST mode
    got = wait_readings(server, dev.id, 5, after=t0, timeout_s=3)
    assert got[-1].at - t0 < 2.0
    assert fleet.spec(dev.id).sensors[0].interval_s == 1


def test_added_and_removed_sensors_change_the_stream(fleet: Fleet, server: ServerClient) -> None:
    dev = fleet.add_device(sensors=[sensor()])
    key = fleet.add_sensor(dev.id, {"gpio": 21, "sensor_type": "sht31", "interval_s": 1})
    assert key == "21:sht31"
    wait_readings(server, dev.id, 2, sensor_type="sht31_humidity")
    fleet.remove_sensor(dev.id, "4:ds18b20")
    cut = time.time() + 0.3  # one FAST tick for the last in-flight message
    wait_readings(server, dev.id, 3, after=cut, sensor_type="sht31_temp")
    late = [r for r in readings(server, dev.id, "ds18b20") if r.at > cut]
    assert late == []
    assert [s.key for s in fleet.spec(dev.id).sensors] == ["21:sht31"]


def test_pattern_change_shows_in_the_next_reading(fleet: Fleet, server: ServerClient) -> None:
    dev = fleet.add_device(sensors=[sensor(pattern={"kind": "constant", "value": 20.0})])
    wait_readings(server, dev.id, 1)
    fleet.set_pattern(dev.id, "4:ds18b20", {"kind": "constant", "value": 30.0})
    assert next_reading(server, fleet, dev.id).payload["raw"] == 480


def test_paused_device_publishes_nothing_and_resume_continues(
    fleet: Fleet, server: ServerClient
) -> None:
    dev = fleet.add_device(sensors=[sensor()])
    wait_readings(server, dev.id, 2)
    fleet.pause(dev.id)
    assert fleet.store.get_device(dev.id).desired_state is DesiredState.PAUSED
    seq_at_pause = fleet.status(dev.id)["seq"]
    time.sleep(0.2)
    t_quiet = time.time()
    time.sleep(0.8)
    assert [r for r in server.received(device_id=dev.id) if r.at > t_quiet] == []
    assert fleet.jobs().empty
    fleet.resume(dev.id)
    got = wait_readings(server, dev.id, 2, after=t_quiet)
    assert got[0].payload["seq"] == seq_at_pause + 1


def test_manual_value_appears_in_the_next_reading(fleet: Fleet, server: ServerClient) -> None:
    dev = fleet.add_device(sensors=[sensor(pattern={"kind": "walk"})])
    wait_readings(server, dev.id, 1)
    fleet.set_value(dev.id, "4:ds18b20", 42.0)
    assert next_reading(server, fleet, dev.id).payload["raw"] == 672
    assert fleet.store.get_device(dev.id).overrides == {"4:ds18b20/ds18b20": 42.0}
    fleet.clear_value(dev.id, "4:ds18b20")
    assert fleet.store.get_device(dev.id).overrides == {}


def test_bad_input_raises_named_error_and_changes_nothing(fleet: Fleet) -> None:
    dev = fleet.add_device(sensors=[sensor()])
    version = fleet.store.get_device(dev.id).config_version
    with pytest.raises(SpecError, match="pattern") as info:
        fleet.set_pattern(dev.id, "4:ds18b20", {"kind": "sinus"})
    assert "drift" in str(info.value)
    with pytest.raises(SpecError, match="interval_s"):
        fleet.update_sensor(dev.id, "4:ds18b20", interval_s=0)
    with pytest.raises(SpecError, match="sensor_key"):
        fleet.update_sensor(dev.id, "9:ds18b20", interval_s=5)
    with pytest.raises(UnknownDeviceError):
        fleet.pause("ESP_000000")
    with pytest.raises(SpecError, match="gpio"):
        fleet.add_device(sensors=[sensor(gpio=40)])
    assert fleet.store.get_device(dev.id).config_version == version
    assert len(fleet.devices()) == 1


def test_facade_refuses_the_loop_thread_and_closed_fleets(fleet: Fleet) -> None:
    errors: list[BaseException] = []

    def on_loop() -> None:
        try:
            fleet.devices()
        except RuntimeError as exc:
            errors.append(exc)

    fleet.loop.call_soon_threadsafe(on_loop)
    deadline = time.time() + 5
    while not errors and time.time() < deadline:
        time.sleep(0.01)
    assert errors
    assert "loop thread" in str(errors[0])
    fleet.close()
    fleet.close()  # idempotent
    with pytest.raises(FleetClosedError):
        fleet.devices()


def test_asynchronous_fleet_returns_awaitables(db_url: str, mqtt_url: str) -> None:
    async def main() -> list[str]:
        f = Fleet(db=db_url, mqtt=mqtt_url, seed=5, fast=True, asynchronous=True)
        try:
            dev = await f.add_device(sensors=[sensor()])  # type: ignore[misc]
            frame = await f.devices()  # type: ignore[misc]
            return [dev.id, *frame["device_id"]]
        finally:
            await f.aclose()

    ids = asyncio.run(main())
    assert ids[0] == ids[1]


def test_close_and_reopen_resumes_running_devices(
    db_url: str, mqtt_url: str, server: ServerClient, no_thread_leak: None
) -> None:
    with Fleet(db=db_url, mqtt=mqtt_url, seed=3, fast=True) as f:
        run = f.add_device(sensors=[sensor()])
        stopped = f.add_device(sensors=[sensor()], start=False)
        paused = f.add_device(sensors=[sensor()])
        f.pause(paused.id)
        wait_readings(server, run.id, 3)
        seq_before = f.status(run.id)["seq"]
    will = server.received(TopicKind.WILL, run.id)
    assert will == []
    t_reopen = time.time()
    with Fleet(db=db_url, mqtt=mqtt_url, seed=3, fast=True) as f:
        st = f.status(run.id)
        assert st["boot_count"] == 2
        got = wait_readings(server, run.id, 1, after=t_reopen)
        assert got[0].payload["seq"] > seq_before
        assert f.status(stopped.id)["local"] is False
        assert f.status(paused.id)["runtime_status"] == "paused"
        ann = server.wait_for(
            lambda r: (
                r.topic.kind is TopicKind.HEARTBEAT and r.topic.esp_id == run.id and r.at > t_reopen
            )
        )
        assert ann[0].payload["boot_sequence_id"].startswith(f"{run.id}-b2-")


_CHILD = textwrap.dedent("""
    import sys, time
    from mocksim import Fleet
    db, mqtt, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    f = Fleet(db=db, mqtt=mqtt, seed=seed, fast=True, lease_ttl_s=1.0, checkpoint_interval_s=0.2)
    specs = [{"sensors": [{"gpio": 4, "sensor_type": "ds18b20", "interval_s": 1}],
              "zone_id": f"z{i}"} for i in range(n)]
    devs = f.add_devices(specs)
    f.stop(devs[-1].id)
    print("READY", flush=True)
    time.sleep(60)
""")


def test_sigkill_then_reopen_resumes_every_running_device(
    db_url: str, mqtt_url: str, server: ServerClient, tmp_path: Any
) -> None:
    # A seed of its own per database: the broker keeps retained wills between the two runs.
    seed = 9 if db_url.startswith("sqlite") else 10
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, db_url, mqtt_url, "6", str(seed)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "READY"
        time.sleep(0.6)  # a few checkpoints
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    with Store.open(db_url) as store:
        before = {r.spec.id: r for r in store.list_devices()}
        cps = store.load_checkpoints()
    running = {i for i, r in before.items() if r.desired_state is DesiredState.RUNNING}
    assert len(running) == 5
    wills = server.wait_for(
        lambda r: r.topic.kind is TopicKind.WILL and r.topic.esp_id in running,
        count=5,
        timeout_s=10,
    )
    assert {w.topic.esp_id for w in wills} == running
    t_reopen = time.time()
    with Fleet(db=db_url, mqtt=mqtt_url, seed=seed, fast=True, watch_interval_s=0.3) as f:
        deadline = time.time() + 15
        while time.time() < deadline:
            if set(f.jobs()["device_id"]) == running:
                break
            time.sleep(0.1)
        assert set(f.jobs()["device_id"]) == running  # 100 % resumed, the stopped one not
        for device_id in running:
            st = f.status(device_id)
            assert st["boot_count"] == cps[device_id].boot_count + 1
            assert f.spec(device_id) == before[device_id].spec  # configuration intact
        for device_id in running:
            wait_readings(server, device_id, 1, after=t_reopen)


def test_change_written_by_another_process_is_picked_up(
    fleet: Fleet, db_url: str, server: ServerClient
) -> None:
    dev = fleet.add_device(sensors=[sensor(pattern={"kind": "constant", "value": 10.0})])
    wait_readings(server, dev.id, 1)
    with Store.open(db_url) as other:
        spec = other.get_device(dev.id).spec
        other.upsert_sensor(
            dev.id, spec.sensors[0].replace(pattern={"kind": "constant", "value": 50.0})
        )
    t0 = time.time()
    got = server.wait_for(
        lambda r: (
            r.topic.kind is TopicKind.SENSOR_DATA
            and r.topic.esp_id == dev.id
            and r.payload["raw"] == 800
        ),
        timeout_s=5,
    )
    assert got[0].at - t0 < 5


def test_inbound_garbage_is_counted_and_never_crashes(fleet: Fleet, server: ServerClient) -> None:
    dev = fleet.add_device(sensors=[sensor()], actuators=[{"gpio": 5, "actuator_type": "pump"}])
    fleet.wait_connected(5)
    topic = f"kaiser/god/esp/{dev.id}/actuator/5/command"
    for payload in (b"", b"{not json", b"\xff\xfe", b"[1,2]", b'{"command": 7}'):
        server.publish(topic, payload)
    resp = server.actuator_command(dev.id, 5, "ON")
    assert resp is not None
    assert resp["success"] is True
    stats = fleet.stats()
    assert stats.malformed >= 3  # empty, not JSON, not UTF-8
    assert stats.rejected >= 1  # a JSON array is no command
    assert stats.inbound >= 6
    assert stats.callback_errors == 0


def test_readings_are_what_the_broker_delivered(fleet: Fleet, server: ServerClient) -> None:
    dev = fleet.add_device(
        sensors=[sensor(), {"gpio": 21, "sensor_type": "sht31", "interval_s": 1}]
    )
    wait_readings(server, dev.id, 12)
    fleet.stop(dev.id)
    time.sleep(0.3)
    frame = fleet.readings(dev.id)
    seen = {(r.payload["seq"], r.payload["raw"]) for r in readings(server, dev.id)}
    assert {(int(s), int(r)) for s, r in zip(frame["seq"], frame["raw"], strict=True)} == seen
    assert str(frame["received_at"].dt.tz) == "UTC"
    assert set(frame["quality"].cat.categories) >= {"good", "suspect"}
    report = fleet.delivery(dev.id).set_index("device_id").loc[dev.id]
    assert (report["lost"], report["duplicated"]) == (0, 0)
    assert report["received"] >= len(seen)
    assert len(fleet.readings(dev.id, "sht31_humidity", last=2)) == 2
    events = fleet.events(dev.id)
    assert "heartbeat" in set(events["kind"].astype(str))

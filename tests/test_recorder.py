"""The recorder against the real mosquitto and both databases.

Ground truth is an independent paho subscriber on the same topics (what the broker delivered),
and the devices' own counters; nothing here is faked.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson
import paho.mqtt.client as mqtt
import pandas as pd
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from mocksim.catalog import VALUE_TYPES
from mocksim.errors import SpecError, TransportError
from mocksim.fleet import Fleet
from mocksim.protocol.topics import Direction, TopicBuilder, TopicKind
from mocksim.recorder import (
    DELIVERY_COLUMNS,
    EVENT_COLUMNS,
    QUALITY_CATEGORIES,
    READING_COLUMNS,
    Recorder,
    delivery,
    events_frame,
    readings_frame,
    wide,
)
from mocksim.store import Store
from mocksim.transport import BackoffConfig, BreakerConfig, MqttTransport
from tests.services import Mosquitto, free_port

# -- helpers ---------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


def wait_quiet(count: Callable[[], int], quiet_s: float = 0.4, timeout_s: float = 10.0) -> int:
    """Wait until ``count()`` stops changing for ``quiet_s``; return it."""
    deadline = time.monotonic() + timeout_s
    last, since = count(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        if time.monotonic() > deadline:
            pytest.fail("the message count never settled")
        time.sleep(0.05)
        now = count()
        if now != last:
            last, since = now, time.monotonic()
    return last


class Peer:
    """An independent paho client: subscribes (ground truth) and publishes (garbage, commands)."""

    def __init__(self, url: str, topic: str | None = None) -> None:
        parts = urlsplit(url)
        self._lock = threading.Lock()
        self._messages: list[tuple[str, bytes, bool]] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"peer-{secrets.token_hex(4)}"
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self.client.loop_start()
        if topic is not None:
            self.client.subscribe(topic, qos=1)
            assert self._subscribed.wait(5), "no SUBACK for the ground-truth subscriber"

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self._messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def messages(self) -> list[tuple[str, bytes, bool]]:
        with self._lock:
            return list(self._messages)

    def count(self) -> int:
        with self._lock:
            return len(self._messages)

    def publish(self, topic: str, payload: bytes | dict[str, Any], *, retain: bool = False) -> None:
        data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        info = self.client.publish(topic, data, qos=1, retain=retain)
        info.wait_for_publish(5)
        assert info.is_published(), f"publish to {topic} was not acknowledged"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def kaiser() -> str:
    """A kaiser id of the test's own, so the shared broker's other traffic never mixes in."""
    return f"rec{secrets.token_hex(4)}"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url) as opened:
        yield opened


def mixed_fleet(kaiser: str) -> list[dict[str, Any]]:
    """Three boards: a DS18B20, an SHT31 (two values per reading), moisture + pH + a pump."""
    return [
        {"kaiser_id": kaiser, "sensors": [{"gpio": 4, "sensor_type": "ds18b20", "interval_s": 2}]},
        {"kaiser_id": kaiser, "sensors": [{"gpio": 21, "sensor_type": "sht31", "interval_s": 2}]},
        {
            "kaiser_id": kaiser,
            "sensors": [
                {"gpio": 34, "sensor_type": "moisture", "interval_s": 3},
                {"gpio": 35, "sensor_type": "ph", "interval_s": 3},
            ],
            "actuators": [{"gpio": 26, "actuator_type": "pump"}],
        },
    ]


def sensor_reading(device_id: str, seq: int, raw: int = 344, ts: int | None = None) -> bytes:
    return orjson.dumps(
        {
            "esp_id": device_id,
            "seq": seq,
            "zone_id": "",
            "subzone_id": "",
            "gpio": 4,
            "sensor_type": "ds18b20",
            "raw": raw,
            "value": VALUE_TYPES["ds18b20"].preview(raw),
            "unit": "°C",
            "quality": "good",
            "ts": int(time.time()) if ts is None else ts,
            "time_valid": True,
            "raw_mode": True,
        }
    )


# -- 1: what the devices published is what the recorder stored --------------------------------


def test_recorded_readings_equal_the_published_ones_with_physical_values(
    db_url: str, mosquitto: Mosquitto, kaiser: str
) -> None:
    topics = TopicBuilder(kaiser)
    fleet = Fleet(db=db_url, mqtt=mosquitto.url, seed=1, fast=True, record=False)
    truth = Peer(mosquitto.url, topics.device_wildcard())
    recorder = Recorder(fleet.store, mosquitto.url, kaiser_ids=(kaiser,))
    try:
        recorder.start()
        handles = fleet.add_devices(mixed_fleet(kaiser))
        ids = [h.id for h in handles]
        assert fleet.wait_connected(10)
        time.sleep(1.0)
        pump = ids[2]
        truth.publish(
            topics.actuator_command(pump, 26),
            {"command": "ON", "value": 1.0, "duration": 0, "correlation_id": "c-1"},
        )
        time.sleep(2.0)
        fleet.stop()
        delivered = wait_quiet(truth.count)
        wait_until(lambda: recorder.stats().received == delivered, 5, "the recorder to catch up")
        assert recorder.flush(10)

        stats = recorder.stats()
        assert (stats.malformed, stats.foreign_topic, stats.empty) == (0, 0, 0)
        assert (stats.dropped_queue_full, stats.write_errors, stats.queue_depth) == (0, 0, 0)
        assert stats.ignored == 1  # our command matched the wildcard and was not recorded

        expected = []
        other: list[tuple[str, dict[str, Any]]] = []
        seq_counts: dict[str, int] = dict.fromkeys(ids, 0)
        for topic, payload, _retain in truth.messages():
            parsed = topics.parse(topic)
            if TopicBuilder.direction(parsed.kind) is Direction.SERVER_TO_DEVICE:
                continue
            data = orjson.loads(payload)
            assert parsed.esp_id is not None
            if "seq" in data:
                seq_counts[parsed.esp_id] += 1
            if parsed.kind is TopicKind.SENSOR_DATA:
                expected.append(
                    (
                        parsed.esp_id,
                        data["gpio"],
                        data["sensor_type"],
                        data["raw"],
                        data["value"],
                        data["unit"],
                        data["quality"],
                        data["seq"],
                        data["ts"],
                    )
                )
            else:
                other.append((parsed.kind.value, data))

        frame = readings_frame(fleet.store)
        assert list(frame.columns) == list(READING_COLUMNS)
        got = [
            (
                r.device_id,
                r.gpio,
                r.sensor_type,
                int(r.raw),
                r.value,
                r.unit,
                r.quality,
                int(r.seq),
                int(r.device_time.timestamp()),
            )
            for r in frame.itertuples()
        ]
        assert sorted(got) == sorted(expected)
        assert len(got) > 30, "the fleet should have produced a few dozen readings"
        assert {r[2] for r in got} == {"ds18b20", "sht31_temp", "sht31_humidity", "moisture", "ph"}
        for row in frame.itertuples():  # value is the device's physical preview of raw
            assert row.value == VALUE_TYPES[row.sensor_type].preview(int(row.raw))

        events = events_frame(fleet.store)
        assert sorted(events["kind"].astype(str)) == sorted(kind for kind, _ in other)
        kinds = set(events["kind"].astype(str))
        assert {"session_announce", "heartbeat", "actuator_status", "actuator_response"} <= kinds
        response = events[events["kind"] == "actuator_response"].iloc[0]
        assert response["payload"]["correlation_id"] == "c-1"
        assert response["device_id"] == pump

        report = delivery(fleet.store).set_index("device_id")
        assert list(report.reset_index().columns) == list(DELIVERY_COLUMNS)
        assert sorted(report.index) == sorted(ids)
        for device_id in ids:
            row = report.loc[device_id]
            assert row["received"] == row["sent"] == seq_counts[device_id]
            assert (row["lost"], row["duplicated"], row["out_of_order"]) == (0, 0, 0)
            assert row["latency_samples"] > 0
            assert 0 <= row["latency_p50_ms"] < 1500  # whole-second ts: < 1 s + transit
            assert row["fine_latency_samples"] >= 1
            assert 0 <= row["fine_latency_p50_ms"] < 500
        with_counts = delivery(fleet.store, published=seq_counts).set_index("device_id")
        assert (with_counts["lost"] == 0).all()
    finally:
        recorder.stop()
        truth.close()
        fleet.close()


# -- 2: a broker outage shows up as lost messages ---------------------------------------------


def test_delivery_shows_the_gap_of_a_broker_outage_and_it_matches_the_fleets_drops(
    db_url: str, fresh_mosquitto: Mosquitto, kaiser: str
) -> None:
    broker = fresh_mosquitto
    # Devices retry 8 s after the loss, the recorder after 1, 3, 7 s (paho doubling from 1):
    # the recorder is back first, so every message it misses is one the devices dropped.
    transport = MqttTransport(
        broker.url,
        backoff=BackoffConfig(initial_s=8.0, jitter=0.0),
        breaker=BreakerConfig(failures=1000),
    )
    fleet = Fleet(db=db_url, transport=transport, seed=1, fast=True, record=False)
    recorder = Recorder(fleet.store, broker.url, kaiser_ids=(kaiser,))
    try:
        recorder.start()
        # The fleet's "dropped" counts every message, delivery() only seq-carrying ones: with
        # the heartbeat an hour away, only sensor data (all with seq) falls into the outage.
        specs = [
            {
                "kaiser_id": kaiser,
                "heartbeat_interval_s": 3600,
                "sensors": [{"gpio": 4, "sensor_type": "ds18b20", "interval_s": 1}],
            },
            {
                "kaiser_id": kaiser,
                "heartbeat_interval_s": 3600,
                "sensors": [{"gpio": 21, "sensor_type": "sht31", "interval_s": 2}],
            },
        ]
        ids = [h.id for h in fleet.add_devices(specs)]
        assert fleet.wait_connected(10)
        time.sleep(1.5)

        broker.stop()
        stopped = time.monotonic()
        wait_until(lambda: not recorder.stats().connected, 5, "the recorder to see the outage")
        time.sleep(max(0.0, 3.0 - (time.monotonic() - stopped)))
        broker.start()
        wait_until(lambda: recorder.stats().connected, 10, "the recorder to reconnect")
        assert fleet.stats().connected == 0, "the devices came back before the recorder"
        assert fleet.wait_connected(15)
        time.sleep(1.5)

        status = {i: fleet.status(i) for i in ids}

        async def transport_lost() -> dict[str, int]:
            return {i: transport.device_stats(i).lost for i in ids}

        in_flight_lost = asyncio.run_coroutine_threadsafe(transport_lost(), fleet.loop).result(5)
        fleet.stop()
        wait_quiet(lambda: recorder.stats().received)
        assert recorder.flush(10)

        stats = recorder.stats()
        assert stats.disconnects == 1
        assert stats.write_errors == 0
        report = delivery(fleet.store).set_index("device_id")
        for device_id in ids:
            dropped = status[device_id]["dropped"]
            lost = int(report.loc[device_id, "lost"])
            assert dropped > 0, f"{device_id} should have dropped readings while offline"
            # Each drop is a seq gap; a QoS 1 message in flight when the broker died may or
            # may not have reached the recorder first.
            assert dropped <= lost <= dropped + in_flight_lost[device_id], (
                device_id,
                lost,
                dropped,
                in_flight_lost[device_id],
            )
            assert report.loc[device_id, "duplicated"] == 0
            assert report.loc[device_id, "out_of_order"] == 0
        frame = readings_frame(fleet.store)
        gap = frame.groupby("device_id")["received_at"].apply(lambda s: s.diff().max())
        assert (gap > pd.Timedelta(seconds=5)).all()  # the outage as seen in arrival times
    finally:
        recorder.stop()
        fleet.close()


# -- 3: garbage is counted and never stops the recorder ---------------------------------------


def test_garbage_on_device_topics_is_counted_and_recording_goes_on(
    store: Store, mosquitto: Mosquitto, kaiser: str
) -> None:
    device = "ESP_ABC123"
    base = f"kaiser/{kaiser}/esp/{device}"
    peer = Peer(mosquitto.url)
    with Recorder(store, mosquitto.url, kaiser_ids=[kaiser]) as recorder:
        garbage: list[tuple[str, bytes, bool]] = [
            (f"{base}/sensor/4/data", b"not json", False),  # malformed
            (f"{base}/sensor/4/data", b"[1, 2]", False),  # malformed: not an object
            (f"{base}/sensor/4/data", b'{"raw": 1, "seq": 9}', False),  # malformed: no type
            (f"{base}/system/will", b"", True),  # empty (the server clearing a will)
            (f"{base}/system/heartbeat", b"", False),  # empty
            (f"{base}/no/such/topic", b"{}", False),  # foreign
            (f"kaiser/{kaiser}/esp/esp_lower/system/heartbeat", b"{}", False),  # foreign id
            (f"{base}/sensor/99/data", b"{}", False),  # foreign: no such pin
            (f"{base}/config", b"{}", False),  # a server → device command: ignored
        ]
        for topic, payload, retain in garbage:
            peer.publish(topic, payload, retain=retain)
        # Wrong types in optional fields keep the reading, with those fields empty.
        odd = {"sensor_type": "ds18b20", "raw": "abc", "seq": "x", "quality": 5, "ts": 1.5e9}
        peer.publish(f"{base}/sensor/4/data", odd)
        peer.publish(f"{base}/sensor/4/data", sensor_reading(device, seq=1, raw=352))
        peer.publish(f"{base}/system/heartbeat", {"esp_id": device, "ts": 1_700_000_000})
        wait_until(lambda: recorder.stats().received == len(garbage) + 3, 5, "all messages")
        assert recorder.flush(5)
        stats = recorder.stats()
        assert (stats.malformed, stats.empty, stats.foreign_topic, stats.ignored) == (3, 2, 3, 1)
        assert (stats.readings_written, stats.events_written, stats.write_errors) == (2, 1, 0)
        assert stats.connected

        frame = readings_frame(store, device=device)
        assert frame["raw"].isna().tolist() == [True, False]
        assert frame["seq"].isna().tolist() == [True, False]
        assert frame["quality"].isna().tolist() == [True, False]
        assert frame["device_time"].iloc[0] == pd.Timestamp(1_500_000_000, unit="s", tz="UTC")
        assert frame["value"].iloc[1] == 22.0
        heartbeat = events_frame(store, device=device, kind=TopicKind.HEARTBEAT)
        assert heartbeat["device_time"].tolist() == [
            pd.Timestamp(1_700_000_000, unit="s", tz="UTC")
        ]
    peer.close()


# -- 4: a full queue drops and counts ----------------------------------------------------------


def _lock_readings(db_url: str) -> Callable[[], None]:
    """Hold the database's write lock on readings (a stuck database); returns the release."""
    if db_url.startswith("sqlite"):
        sqlite_conn = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
        sqlite_conn.execute("BEGIN IMMEDIATE")

        def release_sqlite() -> None:
            sqlite_conn.execute("ROLLBACK")
            sqlite_conn.close()

        return release_sqlite
    pg_conn = psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://"))
    pg_conn.execute("LOCK TABLE readings IN EXCLUSIVE MODE")

    def release_pg() -> None:
        pg_conn.rollback()
        pg_conn.close()

    return release_pg


def test_a_full_queue_drops_and_counts_while_the_database_is_stuck(
    db_url: str, store: Store, mosquitto: Mosquitto, kaiser: str
) -> None:
    device = "ESP_0F0F0F"
    topic = TopicBuilder(kaiser).sensor_data(device, 4)
    peer = Peer(mosquitto.url)
    recorder = Recorder(
        store, mosquitto.url, kaiser_ids=[kaiser], queue_size=5, flush_interval_s=0.05
    )
    recorder.start()
    release = _lock_readings(db_url)
    try:
        total = 100
        peer.publish(topic, sensor_reading(device, 1))
        wait_until(lambda: recorder.stats().received == 1, 5, "the first message")
        time.sleep(0.3)  # > flush_interval_s: the writer now waits for the lock with seq 1
        for seq in range(2, total + 1):
            peer.publish(topic, sensor_reading(device, seq))
        wait_until(lambda: recorder.stats().received == total, 10, "every message")
        stats = recorder.stats()
        assert stats.queue_depth == 5  # seqs 2..6 wait; 7..100 had no room
        assert stats.dropped_queue_full == total - 6
        assert stats.readings_written == 0  # the writer is stuck behind the lock
    finally:
        release()
    assert recorder.flush(20)
    stats = recorder.stats()
    assert stats.readings_written == 6
    assert stats.write_errors == 0
    assert readings_frame(store)["seq"].tolist() == [1, 2, 3, 4, 5, 6]
    # The drops came after the last stored seq, so only a published count can reveal them.
    assert delivery(store).set_index("device_id").loc[device, "lost"] == 0
    counted = delivery(store, published={device: total}).set_index("device_id")
    assert counted.loc[device, "lost"] == stats.dropped_queue_full
    recorder.stop()
    peer.close()


# -- 5: retention ------------------------------------------------------------------------------


def test_retention_deletes_rows_older_than_the_window_at_start(
    store: Store, mosquitto: Mosquitto, kaiser: str
) -> None:
    now = datetime.now(UTC)
    old = now - timedelta(hours=2)
    store.insert_readings(
        [
            {"device_id": "ESP_111111", "gpio": 4, "sensor_type": "ds18b20", "received_at": t}
            for t in (old, old, now)
        ]
    )
    store.insert_events(
        [
            {"device_id": "ESP_111111", "kind": "heartbeat", "topic": "t", "received_at": t}
            for t in (old, now)
        ]
    )
    with Recorder(store, mosquitto.url, kaiser_ids=[kaiser], retention_s=3600) as recorder:
        wait_until(lambda: recorder.stats().retention_deleted == 3, 5, "the retention pass")
        assert store.count_readings() == 1
        assert len(store.events()) == 1
        assert recorder.apply_retention() == 0


def test_retention_keeps_a_long_session_bounded(
    store: Store, mosquitto: Mosquitto, kaiser: str
) -> None:
    device = "ESP_222222"
    peer = Peer(mosquitto.url)
    with Recorder(store, mosquitto.url, kaiser_ids=[kaiser], retention_s=1.0) as recorder:
        peer.publish(TopicBuilder(kaiser).sensor_data(device, 4), sensor_reading(device, 1))
        wait_until(lambda: recorder.stats().received == 1, 5, "the reading")
        assert recorder.flush(5)
        assert recorder.stats().readings_written == 1
        wait_until(lambda: store.count_readings() == 0, 5, "the periodic retention pass")
        assert recorder.stats().retention_deleted == 1
    peer.close()


# -- 6: lifecycle and connection errors -------------------------------------------------------


@pytest.mark.usefixtures("no_thread_leak")
def test_start_against_no_broker_is_a_transport_error(tmp_path: Any) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'r.db'}") as store:
        recorder = Recorder(store, f"mqtt://127.0.0.1:{free_port()}", connect_timeout_s=2)
        started = time.monotonic()
        with pytest.raises(TransportError, match="cannot connect"):
            recorder.start()
        assert time.monotonic() - started < 5
        with pytest.raises(RuntimeError, match="create a new Recorder"):
            recorder.start()
        recorder.stop()


@pytest.mark.usefixtures("no_thread_leak")
def test_refused_login_is_a_transport_error_and_the_right_one_records(
    tmp_path: Any, mosquitto_factory: Callable[..., Mosquitto]
) -> None:
    broker = mosquitto_factory(users={"rec": "s3cret"})
    host_port = f"127.0.0.1:{broker.port}"
    with Store.open(f"sqlite:///{tmp_path / 'r.db'}") as store:
        with pytest.raises(TransportError, match="refused") as info:
            Recorder(store, f"mqtt://rec:wrong@{host_port}", connect_timeout_s=5).start()
        assert "wrong" not in str(info.value)
        recorder = Recorder(store, f"mqtt://rec:s3cret@{host_port}")
        recorder.start()
        assert recorder.stats().connected
        recorder.stop()
        recorder.stop()  # idempotent
        assert not recorder.running
        assert recorder.flush(1)


def test_bad_settings_are_spec_errors(store: Store) -> None:
    url = "mqtt://127.0.0.1:1883"
    with pytest.raises(SpecError, match="queue_size"):
        Recorder(store, url, queue_size=0)
    with pytest.raises(SpecError, match="retention_s"):
        Recorder(store, url, retention_s=-1)
    with pytest.raises(SpecError, match="kaiser_id"):
        Recorder(store, url, kaiser_ids=["a/b"])
    with pytest.raises(SpecError, match="mqtt_url"):
        Recorder(store, "http://127.0.0.1")


# -- 7: the query helpers on known rows ------------------------------------------------------


def _insert_known(store: Store, base: datetime) -> None:
    """Device A: seqs arrive 1 2 4 3 3 6 (5 lost, 3 late, 3 twice); B: 1, 3 + event 2."""
    rows = []
    for i, seq in enumerate([1, 2, 4, 3, 3, 6]):
        rows.append(
            {
                "device_id": "ESP_AAAAAA",
                "gpio": 4,
                "sensor_type": "ds18b20",
                "raw": 320 + i,
                "value": (320 + i) / 16,
                "unit": "°C",
                "quality": "good" if i else "weird",
                "seq": seq,
                "device_ts": int(base.timestamp()) + i,
                "received_at": base + timedelta(seconds=i, milliseconds=250),
            }
        )
    for i, seq in enumerate([1, 3]):
        rows.append(
            {
                "device_id": "ESP_BBBBBB",
                "gpio": 21,
                "sensor_type": "sht31_temp",
                "raw": 25000,
                "value": 21.76,
                "unit": "°C",
                "quality": "good",
                "seq": seq,
                "device_ts": int(base.timestamp()) + 2 * i,
                "received_at": base + timedelta(seconds=2 * i, milliseconds=100),
            }
        )
    store.insert_readings(rows)
    store.insert_events(
        [
            {
                "device_id": "ESP_BBBBBB",
                "kind": "actuator_status",
                "topic": "x/status",
                "payload": {"seq": 2, "ts": int(base.timestamp()) + 1},
                "seq": 2,
                "device_ts": int(base.timestamp()) + 1,
                "received_at": base + timedelta(seconds=1, milliseconds=100),
            },
            {
                "device_id": "ESP_BBBBBB",
                "kind": "session_announce",
                "topic": "x/announce",
                "payload": {"ts_ms": int(base.timestamp() * 1000) + 40},
                "seq": None,
                "device_ts": int(base.timestamp()),
                "received_at": base + timedelta(milliseconds=52),
            },
            {
                "device_id": "ESP_BBBBBB",
                "kind": "will",
                "topic": "x/will",
                "payload": {"timestamp": 1},
                "device_ts": 1,
                "received_at": base,
            },
        ]
    )


def test_frames_have_typed_columns_even_when_empty(store: Store) -> None:
    empty = readings_frame(store)
    assert list(empty.columns) == list(READING_COLUMNS)
    assert empty.empty
    _insert_known(store, datetime(2026, 1, 1, 12, tzinfo=UTC))
    full = readings_frame(store)
    assert (empty.dtypes == full.dtypes).all()
    assert str(full["received_at"].dtype) == "datetime64[us, UTC]"
    assert str(full["device_time"].dtype) == "datetime64[us, UTC]"
    assert str(full["raw"].dtype) == "Int64"
    assert str(full["seq"].dtype) == "Int64"
    assert full["value"].dtype == "float64"
    assert full["gpio"].dtype == "int64"
    assert list(full["quality"].cat.categories) == list(QUALITY_CATEGORIES)
    assert full["quality"].isna().sum() == 1  # "weird" is not a quality the server accepts

    empty_events = events_frame(store, kind="zone_ack")
    events = events_frame(store)
    assert list(events.columns) == list(EVENT_COLUMNS)
    assert (empty_events.dtypes == events.dtypes).all()
    assert events["kind"].astype(str).tolist() == ["will", "session_announce", "actuator_status"]
    with pytest.raises(SpecError, match="kind"):
        events_frame(store, kind="nonsense")


def test_time_windows_accept_datetimes_strings_and_timedeltas(store: Store) -> None:
    base = datetime(2026, 1, 1, 12, tzinfo=UTC)
    _insert_known(store, base)
    naive = datetime(2026, 1, 1, 12, 0, 3)  # noqa: DTZ001 - a naive time is taken as UTC
    assert len(readings_frame(store, device="ESP_AAAAAA", since=naive)) == 3
    assert len(readings_frame(store, since="2026-01-01T12:00:03Z")) == 3
    assert len(readings_frame(store, until=pd.Timestamp("2026-01-01 12:00:01"))) == 2
    assert len(readings_frame(store, sensor_type="sht31_temp")) == 2
    assert readings_frame(store, last=2)["seq"].tolist() == [3, 6]
    assert readings_frame(store, since=timedelta(minutes=5)).empty  # all rows are older
    far = datetime.now(UTC) - base + timedelta(days=1)
    assert len(readings_frame(store, since=pd.Timedelta(far))) == 8
    with pytest.raises(SpecError, match="since"):
        readings_frame(store, since="not a time")
    with pytest.raises(SpecError, match="until"):
        readings_frame(store, until=12)


def test_wide_pivots_one_column_per_series(store: Store) -> None:
    _insert_known(store, datetime(2026, 1, 1, 12, tzinfo=UTC))
    frame = readings_frame(store)
    table = wide(frame)
    assert list(table.columns) == ["ESP_AAAAAA/ds18b20", "ESP_BBBBBB/sht31_temp"]
    assert table.index.name == "received_at"
    assert table["ESP_AAAAAA/ds18b20"].count() == 6
    binned = wide(frame, freq="2s", time="device_time")
    assert binned.index.freq == pd.Timedelta(seconds=2)
    assert binned["ESP_BBBBBB/sht31_temp"].iloc[0] == pytest.approx(21.76)
    one = wide(readings_frame(store, device="ESP_AAAAAA"), value="raw")
    assert list(one.columns) == ["ds18b20"]
    assert one["ds18b20"].tolist() == [320.0, 321.0, 322.0, 323.0, 324.0, 325.0]
    assert wide(readings_frame(store, device="ESP_CCCCCC")).empty
    with pytest.raises(SpecError, match="value"):
        wide(frame, value="quality")


def test_delivery_counts_gaps_duplicates_and_late_messages(store: Store) -> None:
    base = datetime(2026, 1, 1, 12, tzinfo=UTC)
    _insert_known(store, base)
    report = delivery(store).set_index("device_id")
    a = report.loc["ESP_AAAAAA"]
    assert (a["sent"], a["received"], a["lost"], a["duplicated"], a["out_of_order"]) == (
        6,
        6,
        1,
        1,
        1,
    )
    assert a["latency_p50_ms"] == pytest.approx(250.0)
    assert a["fine_latency_samples"] == 0
    assert pd.isna(a["fine_latency_p50_ms"])
    b = report.loc["ESP_BBBBBB"]  # readings 1, 3 and an event with seq 2: nothing lost
    assert (b["sent"], b["received"], b["lost"], b["duplicated"], b["out_of_order"]) == (
        3,
        3,
        0,
        0,
        0,
    )
    assert b["latency_samples"] == 4  # 2 readings, the status, the announce; not the will
    assert b["fine_latency_samples"] == 1
    assert b["fine_latency_p50_ms"] == pytest.approx(12.0)
    counted = delivery(store, published={"ESP_AAAAAA": 8, "ESP_DDDDDD": 2}).set_index("device_id")
    assert counted.loc["ESP_AAAAAA", "lost"] == 3
    assert counted.loc["ESP_DDDDDD", "lost"] == 2
    assert counted.loc["ESP_DDDDDD", "received"] == 0
    only_b = delivery(store, device="ESP_BBBBBB", since=base + timedelta(seconds=1))
    assert only_b["device_id"].tolist() == ["ESP_BBBBBB"]
    assert only_b["received"].tolist() == [2]
    assert list(delivery(store, device="ESP_EEEEEE").columns) == list(DELIVERY_COLUMNS)

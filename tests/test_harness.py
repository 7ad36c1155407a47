"""The harness itself: real brokers and databases start, work, stop and come back."""

from __future__ import annotations

import json
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert, select, text

from mocksim.protocol.message import Message
from tests import services
from tests.services import Mosquitto, PostgresServer, service_missing, threads_left_over

WAIT_S = 10.0


@dataclass
class _Session:
    """A connected paho client plus what its callbacks saw."""

    client: mqtt.Client
    connack: ReasonCode
    inbox: queue.Queue[mqtt.MQTTMessage]
    subscribed: threading.Event


@contextmanager
def _mqtt_session(
    broker: Mosquitto, *, username: str | None = None, password: str | None = None
) -> Iterator[_Session]:
    """Connect a paho 2 client (v2 callbacks) and always stop its thread and socket."""
    connacks: queue.Queue[ReasonCode] = queue.Queue()
    inbox: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    # paho waits whole seconds between reconnects otherwise; floats work, its hints say int
    client.reconnect_delay_set(0.05, 0.2)  # type: ignore[arg-type]
    if username is not None:
        client.username_pw_set(username, password)
    client.on_connect = lambda _c, _u, _f, rc, _p: connacks.put(rc)
    client.on_message = lambda _c, _u, msg: inbox.put(msg)
    client.on_subscribe = lambda _c, _u, _mid, _rcs, _p: subscribed.set()
    client.connect(broker.host, broker.port, keepalive=10)
    client.loop_start()
    try:
        connack = connacks.get(timeout=WAIT_S)
        yield _Session(client, connack, inbox, subscribed)
    finally:
        client.disconnect()
        client.loop_stop()


def _round_trip(broker: Mosquitto, topic: str, message: Message) -> mqtt.MQTTMessage:
    """Publish ``message`` with one client and return what a subscribed second client got."""
    with _mqtt_session(broker) as sub, _mqtt_session(broker) as pub:
        assert not sub.connack.is_failure, sub.connack
        assert not pub.connack.is_failure, pub.connack
        sub.client.subscribe(topic, qos=1)
        assert sub.subscribed.wait(WAIT_S), "no SUBACK"
        info = pub.client.publish(message.topic, message.data, qos=message.qos)
        info.wait_for_publish(timeout=WAIT_S)
        assert info.is_published()
        return sub.inbox.get(timeout=WAIT_S)


def test_message_published_through_mosquitto_arrives_at_subscriber(
    no_thread_leak: None, mosquitto: Mosquitto, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}kaiser/god/esp/ESP_12AB34/sensor/4/data"
    sent = Message(topic, {"esp_id": "ESP_12AB34", "gpio": 4, "raw": 344, "ts": 1764780000}, 1)

    got = _round_trip(mosquitto, topic, sent)

    assert got.topic == topic
    assert json.loads(got.payload) == {
        "esp_id": "ESP_12AB34",
        "gpio": 4,
        "raw": 344,
        "ts": 1764780000,
    }
    assert isinstance(json.loads(got.payload)["ts"], int)


def test_mqtt_url_points_at_session_broker(mqtt_url: str, mosquitto: Mosquitto) -> None:
    assert mqtt_url == f"mqtt://127.0.0.1:{mosquitto.port}"
    with socket.create_connection(("127.0.0.1", mosquitto.port), timeout=WAIT_S):
        pass


def test_stopped_broker_comes_back_on_same_port(
    no_thread_leak: None, fresh_mosquitto: Mosquitto, topic_prefix: str
) -> None:
    port = fresh_mosquitto.port
    fresh_mosquitto.stop()
    assert not fresh_mosquitto.running
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
        pass
    with socket.socket() as other, pytest.raises(OSError, match="in use"):
        other.bind(("127.0.0.1", port))  # still reserved: nobody else can take it meanwhile

    fresh_mosquitto.start()

    assert fresh_mosquitto.port == port
    assert fresh_mosquitto.url == f"mqtt://127.0.0.1:{port}"
    got = _round_trip(
        fresh_mosquitto, f"{topic_prefix}again", Message(f"{topic_prefix}again", {"n": 2}, 1)
    )
    assert json.loads(got.payload) == {"n": 2}


def test_killed_broker_restarts_with_clients_connected(
    no_thread_leak: None, fresh_mosquitto: Mosquitto, topic_prefix: str
) -> None:
    with _mqtt_session(fresh_mosquitto) as session:
        assert not session.connack.is_failure
        fresh_mosquitto.kill()
        assert not fresh_mosquitto.running
        fresh_mosquitto.start()  # the port is free again although a client socket just died
    got = _round_trip(fresh_mosquitto, f"{topic_prefix}k", Message(f"{topic_prefix}k", {}, 1))
    assert json.loads(got.payload) == {}


def test_started_broker_refuses_second_start(fresh_mosquitto: Mosquitto) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        fresh_mosquitto.start()


def test_password_broker_accepts_right_and_refuses_wrong_credentials(
    no_thread_leak: None, mosquitto_factory: Callable[..., Mosquitto]
) -> None:
    broker = mosquitto_factory(users={"mocksim": "s3cret", "other": "pw2"})

    with _mqtt_session(broker, username="mocksim", password="s3cret") as ok:
        assert not ok.connack.is_failure
        assert ok.connack == "Success"
    with _mqtt_session(broker, username="other", password="pw2") as ok2:
        assert not ok2.connack.is_failure
    with _mqtt_session(broker, username="mocksim", password="wrong") as bad:
        assert bad.connack.is_failure
        assert bad.connack.value in {134, 135}  # bad user name or password / not authorized
    with _mqtt_session(broker) as anonymous:
        assert anonymous.connack.is_failure


def test_broker_child_gets_raised_file_limit(fresh_mosquitto: Mosquitto) -> None:
    pid = fresh_mosquitto.pid
    assert pid is not None
    limits = Path(f"/proc/{pid}/limits").read_text()
    line = next(row for row in limits.splitlines() if row.startswith("Max open files"))
    assert int(line.split()[3]) >= 4096, line


def test_closed_broker_leaves_no_process_or_files() -> None:
    broker = Mosquitto()
    pid, tmpdir = broker.pid, broker.tmpdir
    assert pid is not None
    assert tmpdir.is_dir()

    broker.close()
    broker.close()

    assert not tmpdir.exists()
    assert not broker.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_database_url_supports_tables(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        rows = Table(
            "rows", MetaData(), Column("id", Integer, primary_key=True), Column("name", String(20))
        )
        with engine.begin() as conn:
            assert conn.execute(select(1)).scalar_one() == 1
            rows.metadata.create_all(conn)
            conn.execute(insert(rows), [{"id": 1, "name": "ESP_12AB34"}, {"id": 2, "name": "b"}])
        with engine.connect() as conn:
            got = conn.execute(select(rows.c.name).order_by(rows.c.id)).scalars().all()
            assert got == ["ESP_12AB34", "b"]
            assert conn.dialect.name == db_url.partition(":")[0].partition("+")[0]
    finally:
        engine.dispose()


def test_postgres_databases_are_fresh_and_private(pg_server: PostgresServer) -> None:
    first = pg_server.create_database()
    second = pg_server.create_database()
    assert first != second
    engines = [create_engine(first), create_engine(second)]
    try:
        with engines[0].begin() as conn:
            conn.execute(text("create table only_here (x int)"))
        with engines[1].connect() as conn:
            found = conn.execute(text("select to_regclass('only_here')")).scalar_one()
            assert found is None
    finally:
        for engine in engines:
            engine.dispose()
        pg_server.drop_database(first.rsplit("/", 1)[1])
        pg_server.drop_database(second.rsplit("/", 1)[1])


def test_bad_database_name_is_refused(pg_server: PostgresServer) -> None:
    with pytest.raises(ValueError, match="name: 'Bad-Name'"):
        pg_server.create_database("Bad-Name")


def test_harness_postgres_is_not_the_system_server(pg_server: PostgresServer) -> None:
    if pg_server.mode == "throwaway":
        assert pg_server.port != 5432
    else:
        assert pg_server.port == 5432


def test_thread_check_reports_a_running_thread_until_it_ends() -> None:
    before = threading.enumerate()
    release = threading.Event()
    worker = threading.Thread(target=release.wait, name="left-running")
    worker.start()
    try:
        assert [t.name for t in threads_left_over(before, grace_s=0.05)] == ["left-running"]
    finally:
        release.set()
        worker.join()
    started = time.monotonic()
    assert threads_left_over(before, grace_s=1.0) == []
    assert time.monotonic() - started < 0.5


def test_mocksim_env_is_cleared_for_each_test() -> None:
    assert not [name for name in os.environ if name.startswith("MOCKSIM_")]


def test_postgres_param_gets_postgres_marker(request: pytest.FixtureRequest, db_url: str) -> None:
    marked = request.node.get_closest_marker("postgres") is not None
    assert marked == db_url.startswith("postgresql")


def test_missing_service_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y mosquitto"):
        service_missing("mosquitto is not installed: run `apt-get install -y mosquitto`")


def test_missing_service_is_a_visible_skip_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y mosquitto"):
        service_missing("mosquitto is not installed: run `apt-get install -y mosquitto`")


def test_missing_mosquitto_binary_fails_in_ci_with_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(services, "find_mosquitto", lambda: None)
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y mosquitto"):
        Mosquitto()


def test_missing_initdb_fails_in_ci_with_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(services, "find_pg_bindir", lambda: None)
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y postgresql"):
        PostgresServer(mode="throwaway")


def test_unknown_postgres_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="mode: 'docker' is not one of throwaway, server"):
        PostgresServer(mode="docker")  # type: ignore[arg-type]


def test_broker_moves_to_another_port_when_its_port_was_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        real_free_port = services.free_port
        monkeypatch.setattr(services, "free_port", lambda: next(ports, None) or real_free_port())

        with Mosquitto() as broker:
            assert broker.port != taken
            assert broker.running


def test_broker_on_a_taken_fixed_port_reports_the_log() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        broker = Mosquitto(port=squatter.getsockname()[1], start=False)
        try:
            with pytest.raises(RuntimeError, match="Address already in use"):
                broker.start(timeout_s=0.3)
            assert not broker.running
        finally:
            broker.close()

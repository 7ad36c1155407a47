"""The transport layer: MQTT sessions against a real mosquitto, the embedded broker, memory bus.

Test-side MQTT peers are plain paho clients on their own thread (what a server would be); the
transport under test runs on the test's event loop. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from mocksim.errors import SpecError, TransportError, UnknownDeviceError
from mocksim.protocol.message import Message
from mocksim.protocol.topics import TopicBuilder
from mocksim.transport import (
    BackoffConfig,
    BreakerConfig,
    BreakerState,
    BrokerEndpoint,
    CircuitBreaker,
    DeviceSession,
    MemoryTransport,
    MqttTransport,
    OfflinePolicy,
    PublishOutcome,
    SessionMode,
    transport_from_url,
)
from mocksim.transport.resilience import ConnectPacer
from mocksim.transport.routing import device_id_of, shared_filter
from tests.services import free_port

TOPICS = TopicBuilder()


# -- helpers ---------------------------------------------------------------------------------


def new_id() -> str:
    return f"MOCK_{secrets.token_hex(4).upper()}"


def session_for(device_id: str) -> DeviceSession:
    will = Message(
        TOPICS.will(device_id),
        {
            "status": "offline",
            "esp_id": device_id,
            "reason": "unexpected_disconnect",
            "timestamp": 1,
        },
        qos=1,
        retain=True,
    )
    return DeviceSession(device_id, will, tuple(TOPICS.subscriptions(device_id)))


def heartbeat(device_id: str, n: int = 0) -> Message:
    return Message(TOPICS.heartbeat(device_id), {"esp_id": device_id, "n": n}, qos=0)


def reading(device_id: str, n: int = 0) -> Message:
    return Message(TOPICS.sensor_data(device_id, 4), {"esp_id": device_id, "n": n}, qos=1)


@dataclass
class Recorder:
    """A TransportListener that records everything (optionally raising on non-JSON)."""

    raise_on_garbage: bool = False
    connected: list[tuple[str, bool]] = field(default_factory=list)
    disconnected: list[tuple[str, str]] = field(default_factory=list)
    messages: list[tuple[str | None, str, bytes]] = field(default_factory=list)

    def on_connected(self, device_id: str, reconnect: bool) -> None:
        self.connected.append((device_id, reconnect))

    def on_disconnected(self, device_id: str, reason: str) -> None:
        self.disconnected.append((device_id, reason))

    def on_message(self, device_id: str | None, topic: str, payload: bytes) -> None:
        self.messages.append((device_id, topic, payload))
        if self.raise_on_garbage:
            orjson.loads(payload)  # raises on anything but JSON


async def until(predicate: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Wait (polling, bounded) until ``predicate()``; returns the seconds it took."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout_s:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


class Peer:
    """A test-side MQTT client on its own paho thread: plays the server."""

    def __init__(self, port: int, *, username: str | None = None, password: str | None = None):
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"peer-{new_id()}")
        if username:
            self.client.username_pw_set(username, password)
        self.lock = threading.Lock()
        self.received: list[mqtt.MQTTMessage] = []
        self.subacks = threading.Semaphore(0)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self.subacks.release()
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.received.append(msg)

    def subscribe(self, topic_filter: str, qos: int = 2) -> None:
        self.client.subscribe(topic_filter, qos)
        assert self.subacks.acquire(timeout=10), "no SUBACK"

    def messages(self, topic_prefix: str = "") -> list[mqtt.MQTTMessage]:
        with self.lock:
            return [m for m in self.received if m.topic.startswith(topic_prefix)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def peers():
    made: list[Peer] = []

    def make(port: int, **kwargs) -> Peer:
        peer = Peer(port, **kwargs)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.close()


# -- pure rules: breaker, backoff, pacing, routing -------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_consecutive_failures_and_success_resets_the_count():
    breaker = CircuitBreaker(BreakerConfig(failures=3, open_s=30), clock=FakeClock())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    assert not breaker.record_failure()
    assert not breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow_attempt()
    assert breaker.opened == 1


def test_breaker_half_opens_after_open_period_and_closes_after_successes():
    clock = FakeClock()
    config = BreakerConfig(failures=1, open_s=30, successes_to_close=3)
    breaker = CircuitBreaker(config, clock=clock)
    breaker.record_failure()
    clock.now += 29.9
    assert breaker.state is BreakerState.OPEN
    clock.now += 0.2
    assert breaker.state is BreakerState.HALF_OPEN
    assert [breaker.allow_attempt() for _ in range(4)] == [True, True, True, False]
    breaker.attempt_done()
    assert not breaker.record_success()
    assert not breaker.record_success()
    assert breaker.record_success()
    assert breaker.state is BreakerState.CLOSED


def test_breaker_reopens_when_a_probe_fails():
    clock = FakeClock()
    breaker = CircuitBreaker(BreakerConfig(failures=2, open_s=5), clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow_attempt()
    assert breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.opened == 2


def test_backoff_doubles_from_one_second_to_sixty_with_bounded_jitter():
    config = BackoffConfig()
    rng = random.Random(1)
    delays = [config.delay(attempt, rng) for attempt in range(1, 10)]
    bases = [1, 2, 4, 8, 16, 32, 60, 60, 60]
    for delay, base in zip(delays, bases, strict=True):
        assert base * 0.8 <= delay <= base * 1.2


def test_bad_breaker_setting_names_the_field():
    with pytest.raises(SpecError, match=r"breaker\.failures"):
        BreakerConfig(failures=0)


def test_pacer_spaces_attempts_by_the_rate():
    clock = FakeClock()
    pacer = ConnectPacer(100, random.Random(2), clock=clock)
    waits = [pacer.reserve() for _ in range(50)]
    assert waits[0] < 0.01
    assert 0.49 <= waits[-1] <= 0.51  # the 50th of 100/s waits ~0.49-0.5 s


def test_routing_reads_the_device_level_only():
    assert device_id_of("kaiser/god/esp/ESP_12AB34/actuator/5/command") == "ESP_12AB34"
    assert device_id_of("kaiser/broadcast/emergency") is None
    assert device_id_of("kaiser/god/server/status") is None
    assert device_id_of("something/else") is None
    assert shared_filter("kaiser/god/esp/ESP_1/config", "ESP_1") == "kaiser/god/esp/+/config"
    assert shared_filter("kaiser/broadcast/emergency", "ESP_1") == "kaiser/broadcast/emergency"


def test_url_parsing_keeps_the_password_out_of_repr_and_errors():
    endpoint = BrokerEndpoint.parse("mqtts://bob:top%40secret@broker.local")
    assert (endpoint.host, endpoint.port, endpoint.tls) == ("broker.local", 8883, True)
    assert endpoint.password == "top@secret"
    assert "secret" not in repr(endpoint)
    with pytest.raises(SpecError) as info:
        BrokerEndpoint.parse("http://bob:hunter2@host")
    assert "hunter2" not in str(info.value)


# -- MemoryTransport ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_memory_transport_records_publishes_and_routes_injected_commands():
    bus, listener = MemoryTransport(), Recorder()
    await bus.start(listener)
    dev = new_id()
    await bus.add_device(session_for(dev))
    assert listener.connected == [(dev, False)]
    assert bus.publish(dev, reading(dev)) is PublishOutcome.SENT
    assert bus.published == [(dev, reading(dev))]
    assert bus.inject(TOPICS.actuator_command(dev, 5), b'{"command":"ON"}')
    assert bus.inject(TOPICS.broadcast_emergency(), b"{}")
    assert not bus.inject(TOPICS.actuator_command("MOCK_NOBODY", 5), b"{}")
    assert [(d, t) for d, t, _ in listener.messages] == [
        (dev, TOPICS.actuator_command(dev, 5)),
        (None, TOPICS.broadcast_emergency()),
    ]
    stats = bus.stats()
    assert (stats.published, stats.acked, stats.inbound, stats.inbound_unrouted) == (1, 1, 2, 1)


@pytest.mark.asyncio
async def test_memory_transport_offline_drop_policy_counts_and_crash_records_the_will():
    bus, listener = MemoryTransport(), Recorder()
    await bus.start(listener)
    dev = new_id()
    await bus.add_device(session_for(dev))
    bus.set_online(dev, False)
    assert [bus.publish(dev, heartbeat(dev, n)) for n in range(3)] == [PublishOutcome.DROPPED] * 3
    bus.set_online(dev, True)
    bus.crash(dev, reconnect_after_s=0)
    assert bus.wills == [(dev, session_for(dev).will)]
    assert listener.connected == [(dev, False), (dev, True), (dev, True)]
    stats = bus.device_stats(dev)
    assert (stats.dropped, stats.reconnects, stats.connected) == (3, 2, True)
    await bus.close()
    assert bus.wills == [(dev, session_for(dev).will)]  # close() sends no will


@pytest.mark.asyncio
async def test_memory_transport_buffer_policy_keeps_the_newest_and_replays_them():
    bus = MemoryTransport(offline_policy=OfflinePolicy.BUFFER, buffer_size=3)
    await bus.start(Recorder())
    dev = new_id()
    await bus.add_device(session_for(dev))
    bus.set_online(dev, False)
    outcomes = [bus.publish(dev, heartbeat(dev, n)) for n in range(5)]
    assert outcomes == [PublishOutcome.BUFFERED] * 5
    assert (bus.stats().buffered, bus.stats().dropped) == (3, 2)
    bus.set_online(dev, True)
    assert [msg.payload["n"] for _, msg in bus.published] == [2, 3, 4]
    assert (bus.stats().replayed, bus.stats().buffered) == (3, 0)


@pytest.mark.asyncio
async def test_memory_transport_survives_a_raising_listener():
    class Broken(Recorder):
        def on_message(self, device_id, topic, payload):
            raise RuntimeError("listener bug")

    bus = MemoryTransport()
    await bus.start(Broken())
    dev = new_id()
    await bus.add_device(session_for(dev))
    assert bus.inject(TOPICS.actuator_command(dev, 1), b"\xff\xfe")
    assert bus.stats().listener_errors == 1
    with pytest.raises(UnknownDeviceError):
        bus.crash("MOCK_NOBODY")


# -- MQTT against a real mosquitto --------------------------------------------------------------


async def started(url: str, listener: Recorder, **options) -> MqttTransport:
    transport = MqttTransport(url, seed=7, **options)
    await transport.start(listener)
    return transport


@pytest.mark.asyncio
async def test_device_session_publishes_with_contract_qos_and_retain_and_gets_commands(
    mosquitto, peers
):
    listener = Recorder()
    transport = await started(mosquitto.url, listener)
    dev = new_id()
    peer = peers(mosquitto.port)
    peer.subscribe(f"kaiser/god/esp/{dev}/#", qos=2)
    try:
        await transport.add_device(session_for(dev))
        await until(lambda: transport.is_connected(dev), 10, "the session")
        assert listener.connected == [(dev, False)]
        status = Message(f"kaiser/god/esp/{dev}/system/status_test", {"on": True}, 1, retain=True)
        for msg in (heartbeat(dev), reading(dev), status):
            assert transport.publish(dev, msg) is PublishOutcome.SENT
        await until(lambda: len(peer.messages()) == 3, 10, "three messages at the peer")
        got = {m.topic: (m.qos, orjson.loads(m.payload)) for m in peer.messages()}
        assert got[TOPICS.heartbeat(dev)] == (0, {"esp_id": dev, "n": 0})
        assert got[TOPICS.sensor_data(dev, 4)] == (1, {"esp_id": dev, "n": 0})
        await until(lambda: transport.stats().acked == 2, 10, "two PUBACKs")
        late = peers(mosquitto.port)
        late.subscribe(status.topic)
        await until(lambda: len(late.messages()) == 1, 10, "the retained message")
        assert late.messages()[0].retain
        # Commands the server sends arrive at the device, in the order sent.
        commands = [
            TOPICS.actuator_command(dev, 5),
            TOPICS.zone_assign(dev),
            TOPICS.broadcast_emergency(),
        ]
        for topic in commands:
            peer.client.publish(topic, b'{"correlation_id":"c1"}', qos=1).wait_for_publish(5)
        await until(lambda: len(listener.messages) >= 3, 10, "three commands")
        assert [(d, t) for d, t, _ in listener.messages] == [(dev, t) for t in commands]
        assert transport.device_stats(dev).published == 3
    finally:
        await transport.close()


@pytest.mark.asyncio
async def test_crash_makes_the_broker_publish_the_retained_will_then_reconnects(mosquitto, peers):
    listener = Recorder()
    transport = await started(mosquitto.url, listener)
    dev = new_id()
    peer = peers(mosquitto.port)
    peer.subscribe(TOPICS.will(dev))
    try:
        await transport.add_device(session_for(dev))
        await until(lambda: transport.is_connected(dev), 10, "the session")
        transport.crash(dev, reconnect_after_s=0.3)
        assert not transport.is_connected(dev)
        assert transport.publish(dev, heartbeat(dev)) is PublishOutcome.DROPPED
        await until(lambda: len(peer.messages()) == 1, 10, "the will")
        will = orjson.loads(peer.messages()[0].payload)
        assert will["status"] == "offline"
        assert will["esp_id"] == dev
        late = peers(mosquitto.port)
        late.subscribe(TOPICS.will(dev))
        await until(lambda: len(late.messages()) == 1, 10, "the retained will")
        assert late.messages()[0].retain
        assert late.messages()[0].qos == 1
        await until(lambda: transport.is_connected(dev), 10, "the reconnect")
        assert listener.connected == [(dev, False), (dev, True)]
        assert listener.disconnected == [(dev, "crash")]
        assert transport.stats().breaker_state is BreakerState.CLOSED
    finally:
        await transport.close()
    peer.client.publish(TOPICS.will(dev), b"", qos=1, retain=True).wait_for_publish(5)


@pytest.mark.asyncio
async def test_close_and_graceful_removal_publish_no_will(mosquitto, peers):
    transport = await started(mosquitto.url, Recorder())
    devs = [new_id() for _ in range(3)]
    peer = peers(mosquitto.port)
    for dev in devs:
        peer.subscribe(TOPICS.will(dev))
    for dev in devs:
        await transport.add_device(session_for(dev))
    await until(lambda: all(map(transport.is_connected, devs)), 10, "the sessions")
    await transport.remove_device(devs[0])
    await transport.close()
    await transport.close()  # idempotent
    await asyncio.sleep(1.5)  # a will would arrive within milliseconds
    assert peer.messages() == []
    assert transport.stats().sessions == 2


@pytest.mark.asyncio
async def test_inflight_cap_applies_the_offline_policy_beyond_it(mosquitto):
    transport = await started(mosquitto.url, Recorder(), max_inflight_qos1=10)
    dev = new_id()
    try:
        await transport.add_device(session_for(dev))
        await until(lambda: transport.is_connected(dev), 10, "the session")
        # No await in between: no PUBACK can come back, so exactly 10 fit.
        outcomes = [transport.publish(dev, reading(dev, n)) for n in range(25)]
        assert outcomes.count(PublishOutcome.SENT) == 10
        assert outcomes.count(PublishOutcome.DROPPED) == 15
        assert transport.stats().in_flight == 10
        await until(lambda: transport.stats().acked == 10, 10, "ten PUBACKs")
        assert transport.stats().in_flight == 0
    finally:
        await transport.close()


@pytest.mark.asyncio
async def test_buffer_policy_replays_the_newest_messages_after_the_broker_returns(fresh_mosquitto):
    broker = fresh_mosquitto
    listener = Recorder()
    transport = await started(
        broker.url,
        listener,
        offline_policy=OfflinePolicy.BUFFER,
        buffer_size=5,
        breaker=BreakerConfig(open_s=0.5),
        backoff=BackoffConfig(initial_s=0.2, max_s=1),
    )
    devs = [new_id() for _ in range(3)]
    try:
        for dev in devs:
            await transport.add_device(session_for(dev))
        await until(lambda: all(map(transport.is_connected, devs)), 10, "the sessions")
        await asyncio.to_thread(broker.stop)
        await until(lambda: not any(map(transport.is_connected, devs)), 10, "the loss")
        for dev in devs:
            outcomes = [transport.publish(dev, reading(dev, n)) for n in range(8)]
            assert outcomes == [PublishOutcome.BUFFERED] * 8
        assert (transport.stats().buffered, transport.stats().dropped) == (15, 9)
        await asyncio.to_thread(broker.start)
        peer = Peer(broker.port)  # blocks the loop: subscribed before the sessions return
        try:
            peer.subscribe("kaiser/god/esp/+/sensor/#", qos=1)
            await until(lambda: len(peer.messages()) == 15, 20, "the replayed messages")
            for dev in devs:
                ns = [orjson.loads(m.payload)["n"] for m in peer.messages(f"kaiser/god/esp/{dev}/")]
                assert ns == [3, 4, 5, 6, 7]
        finally:
            peer.close()
        stats = transport.stats()
        assert (stats.replayed, stats.buffered, stats.dropped, stats.reconnects) == (15, 0, 9, 3)
    finally:
        await transport.close()


@pytest.mark.slow
@pytest.mark.asyncio
async def test_broker_outage_opens_then_closes_the_breaker_and_drops_count_the_gap(
    fresh_mosquitto,
):
    broker = fresh_mosquitto
    listener = Recorder()
    transport = await started(broker.url, listener, breaker=BreakerConfig(open_s=2))
    devs = [new_id() for _ in range(20)]
    offline_attempts = 0
    states: set[BreakerState] = set()
    running = True

    async def publish_every_100ms() -> None:
        nonlocal offline_attempts
        n = 0
        while running:
            for dev in devs:
                online = transport.is_connected(dev)
                outcome = transport.publish(dev, heartbeat(dev, n))
                assert (outcome is PublishOutcome.SENT) == online
                offline_attempts += not online
            states.add(transport.stats().breaker_state)
            n += 1
            await asyncio.sleep(0.1)

    try:
        for dev in devs:
            await transport.add_device(session_for(dev))
        await until(lambda: all(map(transport.is_connected, devs)), 10, "the sessions")
        publisher = asyncio.create_task(publish_every_100ms())
        await asyncio.sleep(1)
        assert offline_attempts == 0
        await asyncio.to_thread(broker.stop)
        stopped_at = time.monotonic()
        await asyncio.sleep(max(0.0, 10 - (time.monotonic() - stopped_at)))
        assert transport.stats().breaker_state is not BreakerState.CLOSED
        await asyncio.to_thread(broker.start)
        peer = Peer(broker.port)
        try:
            peer.subscribe("kaiser/god/esp/+/system/heartbeat", qos=0)
            took = await until(lambda: len(peer.messages()) >= len(devs), 5, "publishing again")
            await until(lambda: all(map(transport.is_connected, devs)), 5, "every session")
        finally:
            peer.close()
        running = False
        await publisher
        stats = transport.stats()
        assert BreakerState.OPEN in states
        assert stats.breaker_state is BreakerState.CLOSED
        assert stats.breaker_opened >= 1
        assert stats.dropped == offline_attempts
        # ~10 s of 20 devices at 10/s offline, plus the time to come back
        assert 10 * 20 * 9 <= offline_attempts <= (10 + 5) * 20 * 11
        assert took < 5
        assert stats.reconnects == len(devs)
        assert sorted(d for d, reconnect in listener.connected if reconnect) == sorted(devs)
    finally:
        running = False
        await transport.close()


@pytest.mark.slow
@pytest.mark.asyncio
async def test_500_device_sessions_connect_and_each_publishes(mosquitto, peers):
    peer = peers(mosquitto.port)
    peer.subscribe("kaiser/god/esp/+/sensor/#", qos=1)
    transport = await started(mosquitto.url, Recorder(), connect_rate_per_s=1000)
    devs = [new_id() for _ in range(500)]
    try:
        for dev in devs:
            await transport.add_device(session_for(dev))
        await until(lambda: transport.stats().connected == 500, 30, "500 sessions")
        for dev in devs:
            assert transport.publish(dev, reading(dev)) is PublishOutcome.SENT
        await until(lambda: transport.stats().acked == 500, 20, "500 PUBACKs")
        await until(lambda: len(peer.messages()) == 500, 20, "500 messages at the peer")
        assert {m.topic for m in peer.messages()} == {TOPICS.sensor_data(d, 4) for d in devs}
        assert transport.stats().connections == 500
    finally:
        await transport.close()
    assert transport.stats().connected == 0


@pytest.mark.asyncio
async def test_password_broker_accepts_right_credentials_and_names_wrong_ones(mosquitto_factory):
    broker = mosquitto_factory(users={"alice": "right-pw-123"})
    url = f"mqtt://alice:right-pw-123@127.0.0.1:{broker.port}"
    transport = await started(url, Recorder())
    dev = new_id()
    try:
        await transport.add_device(session_for(dev))
        await until(lambda: transport.is_connected(dev), 10, "the session")
    finally:
        await transport.close()

    bad = MqttTransport(f"mqtt://alice:wrong-pw-456@127.0.0.1:{broker.port}")
    with pytest.raises(TransportError) as info:
        await bad.start(Recorder())
    message = str(info.value)
    assert message == (
        f"broker 127.0.0.1:{broker.port} refused the credentials for user 'alice' (not authorized)"
    )
    assert "wrong-pw" not in message
    assert "wrong-pw" not in repr(bad)

    # Without the start probe, add_device does not raise; the error shows per device.
    unprobed = await started(
        f"mqtt://alice:wrong-pw-456@127.0.0.1:{broker.port}", Recorder(), probe_on_start=False
    )
    try:
        await unprobed.add_device(session_for(dev))
        await until(lambda: unprobed.device_stats(dev).last_error is not None, 10, "the error")
        error = str(unprobed.device_stats(dev).last_error)
        assert "refused the credentials for user 'alice'" in error
        assert not unprobed.is_connected(dev)
    finally:
        await unprobed.close()


@pytest.mark.asyncio
async def test_unreachable_broker_fails_start_with_a_clear_error():
    port = free_port()
    with pytest.raises(TransportError, match=f"cannot connect to broker 127.0.0.1:{port}"):
        await MqttTransport(f"mqtt://127.0.0.1:{port}").start(Recorder())


@pytest.mark.slow
@pytest.mark.asyncio
async def test_fuzz_10000_garbage_commands_are_all_counted_and_the_loop_survives(mosquitto, peers):
    rng = random.Random(1234)
    listener = Recorder(raise_on_garbage=True)
    transport = await started(mosquitto.url, listener)
    devs = [new_id() for _ in range(20)]
    peer = peers(mosquitto.port)

    def garbage() -> bytes:
        kind = rng.randrange(6)
        if kind == 0:
            return b""
        if kind == 1:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        if kind == 2:
            return b"\xff\xfe\xfd" + rng.randbytes(rng.randrange(10))  # never valid UTF-8
        if kind == 3:
            return orjson.dumps({"command": "ON", "n": rng.random()})
        if kind == 4:
            return b'{"command": "ON", "value": ' * rng.randrange(1, 50)
        return rng.randbytes(rng.choice((1000, 65_536, 300_000)))  # large

    try:
        for dev in devs:
            await transport.add_device(session_for(dev))
        await until(lambda: all(map(transport.is_connected, devs)), 10, "the sessions")
        sent = 0
        valid = 0
        for _batch in range(10):
            infos = []
            for _ in range(1000):
                dev = rng.choice(devs)
                topic = rng.choice(
                    (
                        TOPICS.actuator_command(dev, rng.randrange(40)),
                        TOPICS.config(dev),
                        TOPICS.system_command(dev),
                        TOPICS.zone_assign(dev),
                        TOPICS.sensor_command(dev, 3),
                    )
                )
                payload = garbage()
                try:
                    orjson.loads(payload)
                    valid += 1
                except orjson.JSONDecodeError:
                    pass
                infos.append(peer.client.publish(topic, payload, qos=rng.randrange(3)))
                sent += 1
            await asyncio.to_thread(lambda infos=infos: [i.wait_for_publish(10) for i in infos])
            await until(lambda sent=sent: len(listener.messages) >= sent, 30, f"{sent} messages")
        await asyncio.sleep(0.2)
        stats = transport.stats()
        assert len(listener.messages) == 10_000
        assert stats.inbound == 10_000
        assert stats.listener_errors == 10_000 - valid
        assert all(map(transport.is_connected, devs))
        assert transport.publish(devs[0], heartbeat(devs[0])) is PublishOutcome.SENT
        assert {d for d, _, _ in listener.messages} <= set(devs)
    finally:
        await transport.close()


@pytest.mark.asyncio
async def test_shared_mode_routes_inbound_by_device_id_and_publishes_for_all(mosquitto, peers):
    listener = Recorder()
    transport = await started(
        mosquitto.url, listener, mode=SessionMode.SHARED, shared_connections=2
    )
    devs = [new_id() for _ in range(6)]
    peer = peers(mosquitto.port)
    peer.subscribe("kaiser/god/esp/+/system/heartbeat", qos=0)
    try:
        for dev in devs:
            await transport.add_device(session_for(dev))
        await until(lambda: all(map(transport.is_connected, devs)), 10, "the shared links")
        assert transport.stats().connections == 2
        assert sorted(listener.connected) == sorted((d, False) for d in devs)
        for dev in devs:
            assert transport.publish(dev, heartbeat(dev)) is PublishOutcome.SENT
        await until(lambda: len(peer.messages()) == 6, 10, "six heartbeats")
        for dev in devs:
            peer.client.publish(TOPICS.actuator_command(dev, 2), dev.encode(), qos=1)
        peer.client.publish(TOPICS.broadcast_emergency(), b"{}", qos=1)
        peer.client.publish(TOPICS.actuator_command("MOCK_FOREIGN1", 2), b"{}", qos=1)
        await until(lambda: len(listener.messages) == 7, 10, "seven commands")
        await until(lambda: transport.stats().inbound_unrouted == 1, 10, "the foreign one")
        routed = {(d, p) for d, t, p in listener.messages if "actuator" in t}
        assert routed == {(d, d.encode()) for d in devs}
        assert [d for d, t, _ in listener.messages if t.startswith("kaiser/broadcast")] == [None]
        transport.crash(devs[0], reconnect_after_s=0.2)  # shared: offline for a while, no will
        assert listener.disconnected == [(devs[0], "crash")]
        await until(lambda: transport.is_connected(devs[0]), 5, "the end of the crash")
        assert (devs[0], True) in listener.connected
    finally:
        await transport.close()


@pytest.mark.asyncio
async def test_embedded_broker_carries_a_session_and_its_will():
    listener = Recorder()
    transport = transport_from_url(None, seed=1)
    await transport.start(listener)
    dev = new_id()
    port = transport.endpoint.port
    peer = await asyncio.to_thread(Peer, port)
    try:
        await asyncio.to_thread(peer.subscribe, f"kaiser/god/esp/{dev}/#", 1)
        await transport.add_device(session_for(dev))
        await until(lambda: transport.is_connected(dev), 10, "the session")
        assert transport.publish(dev, reading(dev)) is PublishOutcome.SENT
        await until(lambda: transport.stats().acked == 1, 10, "the PUBACK")
        await asyncio.to_thread(
            lambda: peer.client.publish(TOPICS.zone_assign(dev), b"{}", qos=1).wait_for_publish(5)
        )
        await until(lambda: len(listener.messages) == 1, 10, "the command")
        transport.crash(dev, reconnect_after_s=60)
        await until(lambda: any(m.topic == TOPICS.will(dev) for m in peer.messages()), 10, "will")
    finally:
        await asyncio.to_thread(peer.close)
        await transport.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)  # the broker closed with the transport

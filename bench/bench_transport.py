"""Transport benchmark: MqttTransport against raw paho in the same run, and 1,000 sessions.

Covers: publish rate of one MqttTransport session vs one raw paho client (QoS 0 and QoS 1),
memory and connect time per session at 1,000 per-device sessions.
Scenario: a private mosquitto on a free loopback port; each figure is the median of ``--runs``
runs; raw and transport runs alternate so both see the same machine state. Bounded: at most a
few hundred thousand messages and 1,000 sessions, about a minute in all.

Run: ``python bench/bench_transport.py [--messages 50000] [--sessions 1000] [--runs 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mocksim.protocol.message import Message
from mocksim.protocol.topics import TopicBuilder
from mocksim.transport import (
    DeviceSession,
    MqttTransport,
    OfflinePolicy,
    PublishOutcome,
)
from tests.services import Mosquitto

HOST = "127.0.0.1"
TOPICS = TopicBuilder()


def message(device_id: str, n: int, qos: int) -> Message:
    topic = TOPICS.sensor_data(device_id, 4) if qos else TOPICS.heartbeat(device_id)
    return Message(topic, {"esp_id": device_id, "ts": 1_700_000_000, "raw": n}, qos=qos)


def session(device_id: str) -> DeviceSession:
    will = Message(TOPICS.will(device_id), {"status": "offline", "esp_id": device_id}, 1, True)
    return DeviceSession(device_id, will, tuple(TOPICS.subscriptions(device_id)))


# -- raw paho: one client, its own thread loop (the simplest way) -----------------------------


def raw_paho_rate(port: int, count: int, qos: int) -> float:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-{qos}-{time.time_ns()}")
    client.max_inflight_messages_set(1000)
    client.connect(HOST, port)
    client.loop_start()
    try:
        payloads = [message("MOCK_RAW", n, qos) for n in range(count)]
        start = time.perf_counter()
        for msg in payloads:
            client.publish(msg.topic, msg.data, qos)
        # A QoS 1 marker: its PUBACK means the broker has taken everything before it.
        client.publish("bench/marker", b"x", 1).wait_for_publish(60)
        return count / (time.perf_counter() - start)
    finally:
        client.disconnect()
        client.loop_stop()


# -- MqttTransport: one per-device session on this loop -------------------------------------------


class Quiet:
    def on_connected(self, device_id: str, reconnect: bool) -> None: ...
    def on_disconnected(self, device_id: str, reason: str) -> None: ...
    def on_message(self, device_id: str | None, topic: str, payload: bytes) -> None: ...


async def transport_rate(url: str, count: int, qos: int) -> float:
    transport = MqttTransport(url, offline_policy=OfflinePolicy.BUFFER, buffer_size=count + 1)
    await transport.start(Quiet())
    dev = f"MOCK_T{qos}{time.time_ns() % 100000}"
    await transport.add_device(session(dev))
    while not transport.is_connected(dev):
        await asyncio.sleep(0.01)
    payloads = [message(dev, n, qos) for n in range(count)]
    start = time.perf_counter()
    for index, msg in enumerate(payloads):
        if transport.publish(dev, msg) is PublishOutcome.DROPPED:
            raise RuntimeError("dropped")
        if index % 500 == 499:
            await asyncio.sleep(0)  # the scheduler hands over batches, then the loop writes
    marker = Message(TOPICS.sensor_data(dev, 39), {"marker": True}, qos=1)
    transport.publish(dev, marker)
    expected = (count if qos else 0) + 1
    deadline = time.monotonic() + 120
    while transport.stats().acked < expected:
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        await asyncio.sleep(0.001)
    rate = count / (time.perf_counter() - start)
    await transport.close()
    return rate


async def sessions_figures(url: str, sessions: int) -> dict[str, float]:
    process = psutil.Process()
    transport = MqttTransport(url, connect_rate_per_s=1000)
    await transport.start(Quiet())
    rss_before = process.memory_info().rss
    cpu_before = process.cpu_times()
    start = time.perf_counter()
    devs = [f"MOCK_S{n:05d}" for n in range(sessions)]
    for dev in devs:
        await transport.add_device(session(dev))
    while transport.stats().connected < sessions:
        if time.perf_counter() - start > 120:
            raise RuntimeError("sessions did not connect")
        await asyncio.sleep(0.01)
    wall = time.perf_counter() - start
    cpu_after = process.cpu_times()
    rss_after = process.memory_info().rss
    cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    for dev in devs:
        transport.publish(dev, message(dev, 0, 1))
    while transport.stats().acked < sessions:
        await asyncio.sleep(0.01)
    close_start = time.perf_counter()
    await transport.close()
    return {
        "wall_s": wall,
        "per_session_ms": wall / sessions * 1000,
        "cpu_per_session_ms": cpu / sessions * 1000,
        "rss_per_session_kb": (rss_after - rss_before) / sessions / 1024,
        "close_s": time.perf_counter() - close_start,
    }


async def main(args: argparse.Namespace) -> None:
    broker = Mosquitto()  # the test harness's broker starter
    try:
        # Sessions first, in a fresh process heap: later runs free memory RSS would reuse.
        figures = await sessions_figures(broker.url, args.sessions)
        results: dict[str, list[float]] = {}
        for _ in range(args.runs):
            for qos in (0, 1):
                count = args.messages if qos == 0 else args.messages // 2
                raw = await asyncio.to_thread(raw_paho_rate, broker.port, count, qos)
                ours = await transport_rate(broker.url, count, qos)
                results.setdefault(f"raw_qos{qos}", []).append(raw)
                results.setdefault(f"transport_qos{qos}", []).append(ours)
                results.setdefault(f"ratio_qos{qos}", []).append(ours / raw)
        print(
            f"publish rates, median of {args.runs} runs ({args.messages} msgs QoS 0, "
            f"{args.messages // 2} QoS 1):"
        )
        for key, values in results.items():
            fmt = "{:.0%}" if key.startswith("ratio") else "{:,.0f} msg/s"
            spread = ", ".join(fmt.format(v) for v in values)
            print(f"  {key:15s} {fmt.format(statistics.median(values)):>14s}   ({spread})")
        print(f"{args.sessions} per-device sessions (connect_rate_per_s=1000):")
        for key, value in figures.items():
            print(f"  {key:20s} {value:10.2f}")
    finally:
        broker.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--sessions", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(main(parser.parse_args()))

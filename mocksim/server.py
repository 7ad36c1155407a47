"""ServerClient: talk to the simulated boards the way the AutomationOne server does.

It publishes what the real server publishes — actuator commands, emergency stop and clear,
zone assignments, config pushes, system commands, heartbeat ACKs — on the contract's topics,
through the broker, and waits for the device's answer matched by ``correlation_id``. Use it in
notebooks to drive actuators, and in tests to check round trips end to end.

One paho client with its own network thread (``loop_start``) is right here: it is a single
connection, far below the ~330-client limit of paho's select() loop.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from mocksim.errors import SpecError, TopicError, TransportError
from mocksim.protocol.topics import Direction, ParsedTopic, TopicBuilder, TopicKind
from mocksim.transport.endpoint import BrokerEndpoint

__all__ = ["Received", "ServerClient"]

_ACTUATOR_COMMANDS = ("ON", "OFF", "PWM", "TOGGLE")


@dataclass(frozen=True, slots=True)
class Received:
    """A device → server message the client saw."""

    at: float  # time.time() on arrival
    topic: ParsedTopic
    payload: Any


class ServerClient:
    """Publish server → device messages and collect the devices' answers.

    Args:
        mqtt_url: the broker (``mqtt://host:port``, credentials in the URL).
        kaiser_id: the kaiser id of the devices to talk to.
        timeout_s: how long the waiting calls wait for an answer.
        keep: how many received messages to keep for :meth:`received`.

    Raises:
        TransportError: the broker cannot be reached or refuses the credentials.
    """

    def __init__(
        self,
        mqtt_url: str,
        *,
        kaiser_id: str = "god",
        timeout_s: float = 5.0,
        keep: int = 10_000,
    ) -> None:
        self._endpoint = BrokerEndpoint.parse(mqtt_url)
        self._topics = TopicBuilder(kaiser_id)
        self.timeout_s = timeout_s
        self._cond = threading.Condition()
        self._received: deque[Received] = deque(maxlen=keep)
        self._ids = itertools.count(1)
        self._prefix = uuid.uuid4().hex[:8]
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"mocksim-server-{self._prefix}",
            clean_session=True,
        )
        if self._endpoint.username is not None:
            self._client.username_pw_set(self._endpoint.username, self._endpoint.password)
        if self._endpoint.tls:
            self._client.tls_set_context(None)
        self._client.on_message = self._on_message
        self._subscribed = threading.Event()
        self._client.on_subscribe = lambda *_a: self._subscribed.set()
        rc_holder: list[Any] = []
        connected = threading.Event()

        def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
            rc_holder.append(rc)
            connected.set()

        self._client.on_connect = on_connect
        try:
            self._client.connect(self._endpoint.host, self._endpoint.port, keepalive=30)
        except OSError as exc:
            raise TransportError(f"cannot reach broker {self._endpoint}: {exc}") from exc
        self._client.loop_start()
        if not connected.wait(timeout_s) or rc_holder[0].is_failure:
            why = "no CONNACK" if not rc_holder else str(rc_holder[0])
            self.close()
            raise TransportError(f"broker {self._endpoint} refused the server client: {why}")
        self._client.subscribe(f"kaiser/{kaiser_id}/esp/+/#", qos=1)
        if not self._subscribed.wait(timeout_s):
            self.close()
            raise TransportError(f"broker {self._endpoint} did not confirm the subscription")

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Disconnect; calling it again does nothing."""
        # DISCONNECT first: loop_stop() alone would wait out paho's select() timeout (~1 s).
        if self._client.is_connected():
            self._client.disconnect()
        self._client.loop_stop()

    # ------------------------------------------------------------------ receiving

    def _on_message(self, _client: Any, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            parsed = self._topics.parse(msg.topic)
        except TopicError:
            return
        if self._topics.direction(parsed.kind) is not Direction.DEVICE_TO_SERVER:
            return
        try:
            payload = orjson.loads(msg.payload) if msg.payload else None
        except orjson.JSONDecodeError:
            payload = msg.payload
        with self._cond:
            self._received.append(Received(time.time(), parsed, payload))
            self._cond.notify_all()

    def received(
        self, kind: TopicKind | None = None, device_id: str | None = None
    ) -> list[Received]:
        """Messages seen so far (optionally of one kind and/or one device), oldest first."""
        with self._cond:
            return [
                r
                for r in self._received
                if (kind is None or r.topic.kind is kind)
                and (device_id is None or r.topic.esp_id == device_id)
            ]

    def clear(self) -> None:
        """Forget the messages seen so far."""
        with self._cond:
            self._received.clear()

    def wait_for(
        self,
        match: Callable[[Received], bool],
        *,
        count: int = 1,
        timeout_s: float | None = None,
    ) -> list[Received]:
        """Wait until ``count`` received messages satisfy ``match``; return them.

        Raises:
            TimeoutError: fewer arrived in time (the message says how many).
        """
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        with self._cond:
            while True:
                found = [r for r in self._received if match(r)]
                if len(found) >= count:
                    return found[:count]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"waited for {count} message(s), {len(found)} arrived")
                self._cond.wait(left)

    def _correlated(
        self, kind: TopicKind, device_id: str | None, cid: str, count: int = 1
    ) -> list[dict[str, Any]]:
        found = self.wait_for(
            lambda r: (
                r.topic.kind is kind
                and (device_id is None or r.topic.esp_id == device_id)
                and isinstance(r.payload, dict)
                and r.payload.get("correlation_id") == cid
            ),
            count=count,
        )
        return [dict(r.payload) for r in found]

    # ------------------------------------------------------------------ sending

    def _cid(self, what: str) -> str:
        return f"{what}-{self._prefix}-{next(self._ids)}"

    def publish(
        self, topic: str, payload: Mapping[str, Any] | bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Publish raw (for fault injection: garbage, foreign fields); bytes go as they are."""
        data = payload if isinstance(payload, bytes) else orjson.dumps(dict(payload))
        info = self._client.publish(topic, data, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise TransportError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")

    def actuator_command(
        self,
        device_id: str,
        gpio: int,
        command: str,
        *,
        value: float | None = None,
        duration_s: float = 0,
        issued_by: str = "mocksim-server",
        wait: bool = True,
    ) -> dict[str, Any] | None:
        """Send ON / OFF / PWM / TOGGLE as the server would; return the device's response.

        Raises:
            SpecError: an unknown command or a value outside 0.0–1.0.
            TimeoutError: no response echoing the correlation id arrived in time.
        """
        if command.upper() not in _ACTUATOR_COMMANDS:
            raise SpecError("command", command, _ACTUATOR_COMMANDS)
        if value is not None and not 0.0 <= value <= 1.0:
            raise SpecError("value", value, "a number 0.0-1.0")
        cid = self._cid("cmd")
        payload: dict[str, Any] = {
            "command": command.upper(),
            "value": 1.0 if value is None and command.upper() == "ON" else (value or 0.0),
            "duration": duration_s,
            "timestamp": int(time.time()),
            "issued_by": issued_by,
            "correlation_id": cid,
        }
        self.publish(self._topics.actuator_command(device_id, gpio), payload, qos=2)
        if not wait:
            return None
        return self._correlated(TopicKind.ACTUATOR_RESPONSE, device_id, cid)[0]

    def emergency_stop(
        self, device_id: str | None = None, *, reason: str = "manual", wait_for: Iterable[str] = ()
    ) -> list[dict[str, Any]]:
        """Stop every actuator of one device, or (None) of every device (broadcast).

        Waits for the emergency acks of ``device_id``, or of the ids in ``wait_for``.
        """
        return self._emergency(
            "emergency_stop", device_id, reason, wait_for, TopicKind.EMERGENCY_ACK
        )

    def clear_emergency(
        self, device_id: str | None = None, *, reason: str = "manual", wait_for: Iterable[str] = ()
    ) -> list[dict[str, Any]]:
        """Accept commands again (actuators stay off); waits for the recovery confirms."""
        return self._emergency(
            "clear_emergency", device_id, reason, wait_for, TopicKind.RECOVERY_CONFIRM
        )

    def _emergency(
        self,
        command: str,
        device_id: str | None,
        reason: str,
        wait_for: Iterable[str],
        kind: TopicKind,
    ) -> list[dict[str, Any]]:
        cid = self._cid("em")
        payload = {
            "command": command,
            "reason": reason,
            "correlation_id": cid,
            "timestamp": int(time.time()),
        }
        if device_id is None:
            self.publish(self._topics.broadcast_emergency(), payload, qos=2)
        else:
            self.publish(self._topics.actuator_emergency(device_id), payload, qos=1)
        ids = [device_id] if device_id is not None else list(wait_for)
        return [self._correlated(kind, i, cid)[0] for i in ids]

    def zone_assign(
        self, device_id: str, zone_id: str, *, master_zone_id: str = "", zone_name: str = ""
    ) -> dict[str, Any]:
        """Assign (or with ``""`` remove) a zone; returns the zone ack."""
        cid = self._cid("zone")
        self.publish(
            self._topics.zone_assign(device_id),
            {
                "zone_id": zone_id,
                "master_zone_id": master_zone_id,
                "zone_name": zone_name,
                "kaiser_id": self._topics.kaiser_id,
                "timestamp": int(time.time()),
                "correlation_id": cid,
            },
        )
        return self._correlated(TopicKind.ZONE_ACK, device_id, cid)[0]

    def config_push(
        self,
        device_id: str,
        *,
        sensors: list[Mapping[str, Any]] | None = None,
        actuators: list[Mapping[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        """Push a full-state config; returns one config_response per type sent."""
        cid = self._cid("cfg")
        payload: dict[str, Any] = {"correlation_id": cid}
        if sensors is not None:
            payload["sensors"] = [dict(s) for s in sensors]
        if actuators is not None:
            payload["actuators"] = [dict(a) for a in actuators]
        self.publish(self._topics.config(device_id), payload, qos=2)
        n = (sensors is not None) + (actuators is not None) or 1
        return self._correlated(TopicKind.CONFIG_RESPONSE, device_id, cid, count=n)

    def system_command(
        self, device_id: str, command: str, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Send a system command (the server upper-cases names); returns the response."""
        before = len(self.received(TopicKind.SYSTEM_COMMAND_RESPONSE, device_id))
        self.publish(
            self._topics.system_command(device_id),
            {
                "command": command.upper(),
                "params": dict(params or {}),
                "timestamp": int(time.time()),
            },
            qos=2,
        )
        found = self.wait_for(
            lambda r: (
                r.topic.kind is TopicKind.SYSTEM_COMMAND_RESPONSE and r.topic.esp_id == device_id
            ),
            count=before + 1,
        )
        return dict(found[-1].payload)

    def heartbeat_ack(
        self, device_id: str, *, status: str = "online", handover_epoch: int = 1
    ) -> None:
        """Answer heartbeats as the server does (opens a gated device's registration gate)."""
        self.publish(
            self._topics.heartbeat_ack(device_id),
            {
                "status": status,
                "config_available": False,
                "server_time": int(time.time()),
                "handover_epoch": handover_epoch,
                "ack_type": "heartbeat",
                "contract_version": 2,
                "session_id": self._prefix,
            },
        )

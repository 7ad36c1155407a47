"""One simulated ESP32 board as a pure state machine: time + input → messages + timer changes.

A :class:`Device` never sleeps, publishes or touches the database. The fleet (or a test, or the
virtual-time runner) tells it the time and what happened — a timer fired, the session
connected, a message arrived — and it answers with a :class:`Step`: the MQTT messages to send,
the timers to (re)schedule or cancel, and whether its own configuration changed. The same code
therefore runs in real time over MQTT and in virtual time without a broker.

Times are Unix seconds (floats). ``seq`` counts the messages that carry it (sensor, actuator and
ack payloads), so a gap in ``seq`` at the receiver is exactly a lost message.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mocksim.catalog import ACTUATOR_TYPES, SENSOR_TYPES, VALUE_TYPES, Bus, firmware_quality
from mocksim.errors import SpecError
from mocksim.patterns import ValueGenerator, derive_seed
from mocksim.protocol import payloads
from mocksim.protocol.message import Message
from mocksim.protocol.topics import SYSTEM_GPIO, ParsedTopic, TopicBuilder, TopicKind
from mocksim.spec import ActuatorSpec, DeviceSpec, SensorSpec

__all__ = ["Device", "Emergency", "Step", "Timer", "TimerKind"]

logger = logging.getLogger(__name__)

#: Firmware: with no heartbeat ACK for this long, every actuator goes to its safe state.
SERVER_WATCHDOG_S = 120.0
#: Firmware: heartbeat period while the registration gate is closed.
GATED_HEARTBEAT_S = 5.0
HEAP_TOTAL = 327_680
RESET_CODES: Mapping[str, int] = {
    "POWERON": 1,
    "SW": 3,
    "PANIC": 4,
    "INT_WDT": 5,
    "TASK_WDT": 6,
    "BROWNOUT": 9,
}


class TimerKind(StrEnum):
    """What a device timer drives."""

    HEARTBEAT = "heartbeat"
    SENSOR = "sensor"
    AUTO_OFF = "auto_off"
    RUNTIME = "runtime"
    TRAVEL = "travel"
    WATCHDOG = "watchdog"


class Emergency(StrEnum):
    """An actuator's emergency state as the status message reports it."""

    NORMAL = "normal"
    ACTIVE = "active"
    CLEARING = "clearing"
    RESUMING = "resuming"


@dataclass(frozen=True, slots=True)
class Timer:
    """A timer the device wants: periodic when ``interval_s`` is set, else one-shot at ``due``.

    ``due`` None lets the scheduler choose the first firing (spread over one interval).
    """

    name: str
    kind: TimerKind
    interval_s: float | None
    due: float | None


@dataclass(slots=True)
class Step:
    """What the device wants done after one input."""

    messages: list[Message] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)
    #: The device changed its own configuration (zone assign, config push): persist it.
    spec: DeviceSpec | None = None
    #: The board restarts (reboot command): drop the MQTT session and open a new one.
    restart_session: bool = False
    #: The inbound message was ignored, and why (the fleet counts and logs it).
    rejected: str | None = None

    def extend(self, other: Step) -> None:
        """Append another step's effects to this one."""
        self.messages.extend(other.messages)
        self.timers.extend(other.timers)
        self.cancel.extend(other.cancel)
        if other.spec is not None:
            self.spec = other.spec
        self.restart_session = self.restart_session or other.restart_session
        self.rejected = self.rejected or other.rejected


def sensor_timer_name(key: str) -> str:
    """Timer name of a sensor's reading job."""
    return f"sensor:{key}"


@dataclass(slots=True)
class _Actuator:
    spec: ActuatorSpec
    state: bool = False
    pwm: int = 0
    runtime_ms: int = 0
    on_since: float | None = None
    emergency: Emergency = Emergency.NORMAL
    moving_to: tuple[bool, int] | None = None  # valve travel target

    def runtime_at(self, now: float) -> int:
        extra = 0 if self.on_since is None else max(0, round((now - self.on_since) * 1000))
        return self.runtime_ms + extra

    def set(self, now: float, state: bool, pwm: int) -> bool:
        """Switch; return whether anything visible changed."""
        changed = (state, pwm) != (self.state, self.pwm)
        if self.state and not state and self.on_since is not None:
            self.runtime_ms = self.runtime_at(now)
            self.on_since = None
        elif state and not self.state:
            self.on_since = now
        self.state, self.pwm = state, pwm
        return changed


def _onewire_address(device_id: str, gpio: int) -> str:
    """A DS18B20 ROM code: family 0x28, six serial bytes from the id, Dallas CRC-8 last."""
    serial = hashlib.blake2b(f"{device_id}:{gpio}".encode(), digest_size=6).digest()
    rom = bytes([0x28]) + serial
    crc = 0
    for byte in rom:
        b = byte
        for _ in range(8):
            mix = (crc ^ b) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            b >>= 1
    return (rom + bytes([crc])).hex().upper()


class Device:
    """One board: counters, sensors, actuators and the firmware's reactions to the server.

    Args:
        spec: the validated configuration.
        seed: the fleet seed; every random draw derives from it and the device id.
        builder: topic builder for the device's kaiser id (made from the spec if omitted).
        checkpoint: state saved by :meth:`checkpoint` in an earlier run; restores boot count,
            seq, actuator on-time and pattern positions (the next :meth:`boot` counts +1).
    """

    def __init__(
        self,
        spec: DeviceSpec,
        *,
        seed: int = 0,
        builder: TopicBuilder | None = None,
        checkpoint: Mapping[str, Any] | None = None,
    ) -> None:
        self._spec = spec
        self._seed = seed
        self.id = spec.id
        self._topics = builder if builder is not None else TopicBuilder(spec.kaiser_id)
        self._rng = random.Random(derive_seed(seed, spec.id, "device", "board"))
        self._topic_cache: dict[tuple[TopicKind, int | None], str] = {}
        self.boot_count = 0
        self.seq = 0
        self.reset_reason = "POWERON"
        self.boot_time = 0.0
        self.connects = 0
        self.approved = not spec.wait_for_ack
        self.last_ack: float | None = None
        self.safe_mode = False
        self.zone_id = spec.zone_id
        self.master_zone_id = spec.master_zone_id
        self.ip = "192.168.{}.{}".format(*hashlib.blake2b(spec.id.encode(), digest_size=2).digest())
        self._generators: dict[tuple[str, str], ValueGenerator] = {}
        self._actuators: dict[int, _Actuator] = {}
        self._build_sensors(spec.sensors)
        for a in spec.actuators:
            self._actuators[a.gpio] = _Actuator(a)
        if checkpoint:
            self._restore(checkpoint)

    # ------------------------------------------------------------------ identity & state

    @property
    def spec(self) -> DeviceSpec:
        """The configuration the device runs with now."""
        return self._spec

    @property
    def gated(self) -> bool:
        """True while the registration gate holds back sensor and actuator data."""
        return self._spec.wait_for_ack and not self.approved

    @property
    def boot_sequence_id(self) -> str:
        """``{id}-b{boot_count}-r{reset_reason_code}`` as the firmware builds it."""
        return f"{self.id}-b{self.boot_count}-r{RESET_CODES.get(self.reset_reason, 0)}"

    def uptime(self, now: float) -> int:
        """Seconds since the last boot."""
        return max(0, int(now - self.boot_time))

    def actuator_state(self, gpio: int, now: float) -> dict[str, Any]:
        """One actuator's state (state, pwm, runtime_ms, emergency) for status views."""
        a = self._actuators[gpio]
        return {
            "gpio": gpio,
            "type": a.spec.actuator_type,
            "state": a.state,
            "pwm": a.pwm,
            "runtime_ms": a.runtime_at(now),
            "emergency": a.emergency.value,
        }

    def checkpoint(self, now: float) -> dict[str, Any]:
        """What must survive a restart: counters, actuator on-time, pattern positions."""
        return {
            "boot_count": self.boot_count,
            "seq": self.seq,
            "connects": self.connects,
            "runtime_ms": {str(g): a.runtime_at(now) for g, a in self._actuators.items()},
            "patterns": {f"{k}/{vt}": g.state() for (k, vt), g in self._generators.items()},
        }

    def _restore(self, cp: Mapping[str, Any]) -> None:
        self.boot_count = int(cp.get("boot_count", 0))
        self.seq = int(cp.get("seq", 0))
        self.connects = int(cp.get("connects", 0))
        for g, ms in dict(cp.get("runtime_ms", {})).items():
            if int(g) in self._actuators:
                self._actuators[int(g)].runtime_ms = int(ms)
        states = dict(cp.get("patterns", {}))
        for (key, vt), gen in self._generators.items():
            st = states.get(f"{key}/{vt}")
            if st:
                gen.restore(st)

    # ------------------------------------------------------------------ helpers

    def _topic(self, kind: TopicKind, gpio: int | None = None) -> str:
        k = (kind, gpio)
        t = self._topic_cache.get(k)
        if t is None:
            t = self._topics.build(kind, self.id, gpio)
            self._topic_cache[k] = t
        return t

    def _msg(self, kind: TopicKind, payload: dict[str, Any], gpio: int | None = None) -> Message:
        return Message(
            self._topic(kind, gpio),
            payload,
            self._topics.qos(kind),
            self._topics.retain(kind),
        )

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _build_sensors(self, sensors: list[SensorSpec]) -> None:
        old = self._generators
        self._generators = {}
        for s in sensors:
            for vt in s.value_types:
                key = (s.key, vt)
                gen = old.get(key)
                if gen is None:
                    gen = ValueGenerator(
                        s.pattern_for(vt),
                        VALUE_TYPES[vt],
                        seed=derive_seed(self._seed, self.id, s.key, vt),
                        lo=s.min,
                        hi=s.max,
                    )
                else:
                    gen.retune(s.pattern_for(vt), lo=s.min, hi=s.max)
                self._generators[key] = gen

    def _sensor_timers(self, now: float) -> list[Timer]:
        return [
            Timer(sensor_timer_name(s.key), TimerKind.SENSOR, s.interval_s, None)
            for s in self._spec.sensors
            if s.active
        ]

    def _heartbeat_timer(self, now: float) -> Timer:
        interval = GATED_HEARTBEAT_S if self.gated else self._spec.heartbeat_interval_s
        return Timer("heartbeat", TimerKind.HEARTBEAT, interval, now + interval)

    def timers(self, now: float) -> list[Timer]:
        """Every periodic timer the device wants while it runs (used on start and resume)."""
        out = [self._heartbeat_timer(now)]
        if not self.gated:
            out.extend(self._sensor_timers(now))
        if self._spec.wait_for_ack:
            base = self.last_ack if self.last_ack is not None else now
            out.append(Timer("watchdog", TimerKind.WATCHDOG, None, base + SERVER_WATCHDOG_S))
        return out

    # ------------------------------------------------------------------ lifecycle

    def boot(self, now: float, reason: str = "POWERON") -> Step:
        """Power on (or resume after a restart): boot count +1, uptime 0, actuators to default."""
        self.boot_count += 1
        self.reset_reason = reason
        self.boot_time = now
        self.approved = not self._spec.wait_for_ack
        self.last_ack = None
        self.safe_mode = False
        for a in self._actuators.values():
            a.set(now, a.spec.default_state, self._default_pwm(a.spec))
            a.emergency = Emergency.NORMAL
            a.moving_to = None
        return Step(timers=self.timers(now))

    def will(self, now: float) -> Message:
        """The last will to register at connect (QoS 1, retained)."""
        return self._msg(TopicKind.WILL, payloads.will(esp_id=self.id, ts=int(now)))

    def subscriptions(self) -> list[tuple[str, int]]:
        """The command topics to subscribe to, in the contract's order."""
        return self._topics.subscriptions(self.id)

    def on_connected(self, now: float, *, reconnect: bool = False) -> Step:
        """Session up: announce, first heartbeat at once, republish every actuator status."""
        self.connects += 1
        step = Step()
        step.messages.append(
            self._msg(
                TopicKind.SESSION_ANNOUNCE,
                payloads.session_announce(
                    handover_epoch=self.connects, reconnect=reconnect, ts_ms=int(now * 1000)
                ),
            )
        )
        step.messages.append(self._heartbeat(now))
        step.timers.append(self._heartbeat_timer(now))
        if not self.gated:
            for gpio in sorted(self._actuators):
                step.messages.append(self._status(now, gpio))
        return step

    # ------------------------------------------------------------------ timers

    def on_timer(self, now: float, name: str) -> Step:
        """A timer fired: publish a heartbeat or readings, or run an actuator deadline."""
        if name == "heartbeat":
            return Step(messages=[self._heartbeat(now)])
        kind, _, arg = name.partition(":")
        if kind == TimerKind.SENSOR:
            return Step(messages=self.read_sensor(now, arg))
        if kind == TimerKind.AUTO_OFF:
            return self._auto_off(now, int(arg))
        if kind == TimerKind.RUNTIME:
            return self._runtime_protection(now, int(arg))
        if kind == TimerKind.TRAVEL:
            return self._travel_done(now, int(arg))
        if kind == TimerKind.WATCHDOG:
            return self._server_lost(now, "no heartbeat ACK for 120 s")
        return Step(rejected=f"unknown timer {name!r}")

    def actuator_statuses(self, now: float) -> Step:
        """Every actuator's status (after a resume the server learns what changed meanwhile)."""
        if self.gated:
            return Step()
        return Step(messages=[self._status(now, gpio) for gpio in sorted(self._actuators)])

    def heartbeat_now(self, now: float) -> Step:
        """Publish a heartbeat out of schedule."""
        return Step(messages=[self._heartbeat(now)])

    def _heartbeat(self, now: float) -> Message:
        heap = HEAP_TOTAL - 120_000 - self._rng.randrange(0, 8_000)
        rssi = -55 - self._rng.randrange(0, 15)
        return self._msg(
            TopicKind.HEARTBEAT,
            payloads.heartbeat(
                esp_id=self.id,
                zone_id=self.zone_id,
                master_zone_id=self.master_zone_id,
                ts=int(now),
                time_valid=True,
                uptime=self.uptime(now),
                heap_free=heap,
                wifi_rssi=rssi,
                sensor_count=sum(len(s.value_types) for s in self._spec.sensors),
                actuator_count=len(self._actuators),
                wifi_ip=self.ip,
                boot_sequence_id=self.boot_sequence_id,
                reset_reason=self.reset_reason,
                segment_start_ts=int(self.boot_time),
            ),
        )

    def read_sensor(self, now: float, key: str) -> list[Message]:
        """Read one sensor now: one message per value (SHT31 → temp and humidity)."""
        if self.gated:
            return []
        try:
            s = self._spec.sensor(key)
        except KeyError:
            return []
        model = SENSOR_TYPES[s.sensor_type]
        onewire = i2c = None
        if model.bus is Bus.ONEWIRE:
            onewire = s.onewire_address or _onewire_address(self.id, s.gpio)
        elif model.bus is Bus.I2C:
            i2c = s.i2c_address if s.i2c_address is not None else model.default_i2c_address
        subzone = s.subzone_id or self._spec.subzone_id
        out = []
        for vm in model.values:
            # The generator returns a manual override unclamped, so a user can force 'suspect'.
            physical = self._generators[(s.key, vm.sensor_type)].next(now)
            raw = vm.raw(physical)
            preview = vm.preview(raw)
            quality = s.quality or firmware_quality(vm, physical, raw)
            payload = payloads.sensor_data(
                esp_id=self.id,
                seq=self._next_seq(),
                zone_id=self.zone_id,
                subzone_id=subzone,
                gpio=s.gpio,
                sensor_type=vm.sensor_type,
                raw=raw,
                value=preview,
                unit=vm.unit,
                quality=quality,
                ts=int(now),
                time_valid=True,
                onewire_address=onewire,
                i2c_address=i2c,
            )
            out.append(self._msg(TopicKind.SENSOR_DATA, payload, s.gpio))
        return out

    # ------------------------------------------------------------------ configuration

    def set_override(self, sensor_key: str, value_type: str | None, value: float | None) -> None:
        """Pin a sensor value (None clears); it appears in the next reading.

        Raises:
            SpecError: unknown sensor key or value type.
        """
        try:
            s = self._spec.sensor(sensor_key)
        except KeyError:
            raise SpecError("sensor", sensor_key, [x.key for x in self._spec.sensors]) from None
        vt = value_type or s.value_types[0]
        if vt not in s.value_types:
            raise SpecError("value_type", vt, s.value_types)
        self._generators[(sensor_key, vt)].set_override(value)

    def overrides(self) -> dict[str, float]:
        """Active manual values as ``{"sensor_key/value_type": value}``."""
        return {
            f"{k}/{vt}": g.override
            for (k, vt), g in self._generators.items()
            if g.override is not None
        }

    def apply_spec(self, now: float, spec: DeviceSpec) -> Step:
        """Run with a new configuration from now on; returns the timer changes it needs.

        Sensors keep their pattern positions; a changed interval takes effect at once
        (next reading one new interval from now).
        """
        if spec.id != self.id:
            raise SpecError("id", spec.id, [self.id], f"id: cannot change {self.id} to {spec.id}")
        old = self._spec
        was_gated = self.gated
        self._spec = spec
        step = Step()
        if spec.kaiser_id != old.kaiser_id:
            self._topics = TopicBuilder(spec.kaiser_id)
            self._topic_cache.clear()
            step.restart_session = True
        self.zone_id, self.master_zone_id = spec.zone_id, spec.master_zone_id
        if spec.wait_for_ack != old.wait_for_ack:
            self.approved = not spec.wait_for_ack
            if spec.wait_for_ack:
                base = self.last_ack if self.last_ack is not None else now
                step.timers.append(
                    Timer("watchdog", TimerKind.WATCHDOG, None, base + SERVER_WATCHDOG_S)
                )
            else:
                step.cancel.append("watchdog")
        self._build_sensors(spec.sensors)
        old_sensors = {s.key: s for s in old.sensors}
        new_sensors = {s.key: s for s in spec.sensors if s.active}
        for key, s in old_sensors.items():
            if key not in new_sensors and s.active:
                step.cancel.append(sensor_timer_name(key))
        if self.gated and not was_gated:
            step.cancel.extend(sensor_timer_name(k) for k in new_sensors)
        elif not self.gated:
            for key, s in new_sensors.items():
                before = old_sensors.get(key)
                if (
                    was_gated
                    or before is None
                    or not before.active
                    or before.interval_s != s.interval_s
                ):
                    step.timers.append(
                        Timer(
                            sensor_timer_name(key),
                            TimerKind.SENSOR,
                            s.interval_s,
                            now + s.interval_s if before is not None else None,
                        )
                    )
        if spec.heartbeat_interval_s != old.heartbeat_interval_s or (
            spec.wait_for_ack != old.wait_for_ack
        ):
            step.timers.append(self._heartbeat_timer(now))
        new_act = {a.gpio: a for a in spec.actuators}
        for gpio in list(self._actuators):
            if gpio not in new_act:
                step.cancel.extend(f"{k}:{gpio}" for k in ("auto_off", "runtime", "travel"))
                del self._actuators[gpio]
        for gpio, a in new_act.items():
            if gpio in self._actuators:
                self._actuators[gpio].spec = a
            else:
                act = _Actuator(a)
                act.set(now, a.default_state, self._default_pwm(a))
                self._actuators[gpio] = act
                step.messages.append(self._status(now, gpio))
        return step

    # ------------------------------------------------------------------ inbound

    def on_message(self, now: float, topic: ParsedTopic, payload: Any) -> Step:
        """Handle one parsed inbound message (the payload is decoded JSON)."""
        kind = topic.kind
        if kind is TopicKind.SERVER_STATUS:
            return self._server_status(now, payload)
        if not isinstance(payload, dict):
            return Step(rejected=f"{kind.value}: payload is not a JSON object")
        handler = {
            TopicKind.HEARTBEAT_ACK: self._heartbeat_ack,
            TopicKind.ACTUATOR_EMERGENCY: self._emergency,
            TopicKind.BROADCAST_EMERGENCY: self._emergency,
            TopicKind.ZONE_ASSIGN: self._zone_assign,
            TopicKind.SUBZONE_ASSIGN: self._subzone_assign,
            TopicKind.SUBZONE_REMOVE: self._subzone_remove,
            TopicKind.SUBZONE_SAFE: self._subzone_safe,
            TopicKind.CONFIG: self._config,
            TopicKind.SYSTEM_COMMAND: self._system_command,
        }.get(kind)
        if handler is not None:
            return handler(now, payload)
        if kind is TopicKind.ACTUATOR_COMMAND and topic.gpio is not None:
            return self._actuator_command(now, topic.gpio, payload)
        if kind is TopicKind.SENSOR_COMMAND and topic.gpio is not None:
            return self._sensor_command(now, topic.gpio, payload)
        return Step(rejected=f"{kind.value}: not a server → device topic")

    def _heartbeat_ack(self, now: float, p: dict[str, Any]) -> Step:
        epoch = p.get("handover_epoch")
        if isinstance(epoch, bool) or not isinstance(epoch, int | float) or epoch == 0:
            return Step(rejected="heartbeat ack without a numeric non-zero handover_epoch")
        self.last_ack = now
        step = Step()
        if self._spec.wait_for_ack:
            step.timers.append(Timer("watchdog", TimerKind.WATCHDOG, None, now + SERVER_WATCHDOG_S))
        was_gated = self.gated
        self.approved = p.get("status") in ("online", "approved")
        if self._spec.wait_for_ack and was_gated != self.gated:
            step.timers.append(self._heartbeat_timer(now))
            if self.gated:
                step.cancel.extend(sensor_timer_name(s.key) for s in self._spec.sensors)
            else:
                step.timers.extend(self._sensor_timers(now))
                for gpio in sorted(self._actuators):
                    step.messages.append(self._status(now, gpio))
        return step

    def _server_status(self, now: float, p: Any) -> Step:
        status = p.get("status") if isinstance(p, dict) else None
        if status == "offline":
            return self._server_lost(now, "server reported offline")
        return Step()

    def _server_lost(self, now: float, why: str) -> Step:
        """Server watchdog: every actuator to its safe/default state."""
        step = Step()
        changed = False
        for gpio, a in sorted(self._actuators.items()):
            step.cancel.extend((f"auto_off:{gpio}", f"runtime:{gpio}", f"travel:{gpio}"))
            if a.set(now, a.spec.default_state, self._default_pwm(a.spec)):
                changed = True
                step.messages.append(self._status(now, gpio))
        if changed:
            step.messages.append(self._alert(now, SYSTEM_GPIO, "safety_forced_off", why))
        return step

    # actuators ----------------------------------------------------------

    @staticmethod
    def _default_pwm(spec: ActuatorSpec) -> int:
        if spec.actuator_type == "pwm":
            return spec.default_pwm if spec.default_state else 0
        return 255 if spec.default_state else 0

    def _status(self, now: float, gpio: int) -> Message:
        a = self._actuators[gpio]
        return self._msg(
            TopicKind.ACTUATOR_STATUS,
            payloads.actuator_status(
                esp_id=self.id,
                seq=self._next_seq(),
                zone_id=self.zone_id,
                subzone_id=a.spec.subzone_id or self._spec.subzone_id,
                ts=int(now),
                gpio=gpio,
                actuator_type=a.spec.actuator_type,
                state=a.state,
                pwm=a.pwm,
                runtime_ms=a.runtime_at(now),
                emergency=a.emergency.value,
            ),
            gpio,
        )

    def _alert(self, now: float, gpio: int, alert_type: str, message: str) -> Message:
        return self._msg(
            TopicKind.ACTUATOR_ALERT,
            payloads.actuator_alert(
                esp_id=self.id,
                seq=self._next_seq(),
                zone_id=self.zone_id,
                ts=int(now),
                gpio=gpio,
                alert_type=alert_type,
                message=message,
            ),
            gpio,
        )

    def _response(
        self,
        now: float,
        gpio: int,
        p: Mapping[str, Any],
        command: str,
        *,
        success: bool,
        message: str,
    ) -> Message:
        value = p.get("value", 1.0 if command == "ON" else 0.0)
        duration = p.get("duration", 0)
        cid = p.get("correlation_id")
        issued = p.get("issued_by")
        return self._msg(
            TopicKind.ACTUATOR_RESPONSE,
            payloads.actuator_response(
                esp_id=self.id,
                seq=self._next_seq(),
                zone_id=self.zone_id,
                ts=int(now),
                gpio=gpio,
                command=command,
                value=float(value) if isinstance(value, int | float) else 0.0,
                duration=duration if isinstance(duration, int | float) else 0,
                success=success,
                message=message,
                correlation_id=None if cid is None else str(cid),
                issued_by=None if issued is None else str(issued),
            ),
            gpio,
        )

    def _actuator_command(self, now: float, gpio: int, p: dict[str, Any]) -> Step:
        raw_cmd = p.get("command")
        command = raw_cmd.upper() if isinstance(raw_cmd, str) else ""
        step = Step()
        if self.gated:
            return Step(rejected="actuator command while the registration gate is closed")

        def refuse(message: str) -> Step:
            step.messages.append(
                self._response(now, gpio, p, command, success=False, message=message)
            )
            return step

        a = self._actuators.get(gpio)
        if a is None:
            return refuse(f"Actuator not configured on GPIO {gpio}")
        if command not in ("ON", "OFF", "PWM", "TOGGLE"):
            return refuse(f"Unknown command {raw_cmd!r} (ON, OFF, PWM, TOGGLE)")
        if a.emergency is not Emergency.NORMAL:
            # The firmware answers an emergency-stopped actuator with alert, status, failure.
            step.messages.append(
                self._alert(now, gpio, "emergency_stop", f"GPIO {gpio} is emergency-stopped")
            )
            step.messages.append(self._status(now, gpio))
            return refuse("Actuator is emergency-stopped; clear the emergency first")
        if self.safe_mode:
            return refuse("Device is in safe mode")
        value = p.get("value", 1.0 if command == "ON" else 0.0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            return refuse(f"value {value!r} out of range 0.0-1.0")
        duration = p.get("duration", 0)
        if isinstance(duration, bool) or not isinstance(duration, int | float) or duration < 0:
            duration = 0
        binary = ACTUATOR_TYPES[a.spec.actuator_type].binary
        target_state, target_pwm = self._target(a, command, float(value), binary)
        travelling = ACTUATOR_TYPES[a.spec.actuator_type].travel_s > 0 and target_state != a.state
        message = f"{command} accepted, valve travelling" if travelling else f"{command} executed"
        step.messages.append(self._response(now, gpio, p, command, success=True, message=message))
        # Any new command cancels a pending auto-off.
        step.cancel.append(f"auto_off:{gpio}")
        step.extend(self._drive(now, gpio, target_state, target_pwm))
        if command == "ON" and duration > 0:
            step.timers.append(
                Timer(f"auto_off:{gpio}", TimerKind.AUTO_OFF, None, now + float(duration))
            )
        return step

    @staticmethod
    def _target(a: _Actuator, command: str, value: float, binary: bool) -> tuple[bool, int]:
        if command == "OFF":
            return False, 0
        if command == "TOGGLE":
            current = a.moving_to[0] if a.moving_to is not None else a.state
            if current:
                return False, 0
            on_pwm = a.spec.default_pwm or 255 if not binary else 255
            return True, on_pwm
        if command == "PWM":
            if binary:  # a binary output treats a duty as a digital level
                return (value >= 0.5, 255 if value >= 0.5 else 0)
            pwm = round(value * 255)
            return pwm > 0, pwm
        # ON
        if binary:
            return True, 255
        pwm = round(value * 255) if value > 0 else 255
        return True, pwm

    def _drive(self, now: float, gpio: int, state: bool, pwm: int) -> Step:
        """Move an actuator to a target; valves take their travel time, others switch at once."""
        a = self._actuators[gpio]
        step = Step()
        travel = ACTUATOR_TYPES[a.spec.actuator_type].travel_s
        if travel > 0 and state != a.state:
            a.moving_to = (state, pwm)
            step.timers.append(Timer(f"travel:{gpio}", TimerKind.TRAVEL, None, now + travel))
            return step
        a.moving_to = None
        step.cancel.append(f"travel:{gpio}")
        step.extend(self._switch(now, gpio, state, pwm))
        return step

    def _switch(self, now: float, gpio: int, state: bool, pwm: int) -> Step:
        a = self._actuators[gpio]
        step = Step()
        was_on = a.state
        if a.set(now, state, pwm):
            step.messages.append(self._status(now, gpio))
        if state and not was_on and a.spec.max_runtime_ms:
            step.timers.append(
                Timer(
                    f"runtime:{gpio}", TimerKind.RUNTIME, None, now + a.spec.max_runtime_ms / 1000.0
                )
            )
        elif not state:
            step.cancel.append(f"runtime:{gpio}")
        return step

    def _travel_done(self, now: float, gpio: int) -> Step:
        a = self._actuators.get(gpio)
        if a is None or a.moving_to is None:
            return Step()
        state, pwm = a.moving_to
        a.moving_to = None
        return self._switch(now, gpio, state, pwm)

    def _auto_off(self, now: float, gpio: int) -> Step:
        if gpio not in self._actuators:
            return Step()
        return self._drive(now, gpio, False, 0)

    def _runtime_protection(self, now: float, gpio: int) -> Step:
        a = self._actuators.get(gpio)
        if a is None or not a.state:
            return Step()
        step = Step(cancel=[f"auto_off:{gpio}"])
        a.emergency = Emergency.ACTIVE
        a.set(now, False, 0)
        step.messages.append(
            self._alert(
                now,
                gpio,
                "runtime_protection",
                f"GPIO {gpio} exceeded max runtime {a.spec.max_runtime_ms} ms",
            )
        )
        step.messages.append(self._status(now, gpio))
        return step

    def _emergency(self, now: float, p: dict[str, Any]) -> Step:
        command = str(p.get("command", "")).lower()
        cid = p.get("correlation_id")
        step = Step()
        if command == "clear_emergency":
            for gpio, a in sorted(self._actuators.items()):
                if a.emergency is not Emergency.NORMAL:
                    a.emergency = Emergency.NORMAL
                    step.messages.append(self._status(now, gpio))
            step.messages.append(
                self._msg(
                    TopicKind.RECOVERY_CONFIRM,
                    payloads.recovery_confirm(
                        esp_id=self.id,
                        seq=self._next_seq(),
                        ts=int(now),
                        correlation_id=str(cid) if cid is not None else f"{self.id}-clear",
                    ),
                )
            )
            return step
        # emergency_stop, or a missing/unknown command: the firmware stops (fail safe).
        for gpio, a in sorted(self._actuators.items()):
            step.cancel.extend((f"auto_off:{gpio}", f"runtime:{gpio}", f"travel:{gpio}"))
            a.moving_to = None
            a.emergency = Emergency.ACTIVE
            a.set(now, False, 0)
            step.messages.append(self._status(now, gpio))
        if self._actuators:
            step.messages.append(
                self._alert(
                    now, SYSTEM_GPIO, "emergency_stop", str(p.get("reason", "emergency stop"))
                )
            )
        step.messages.append(
            self._msg(
                TopicKind.EMERGENCY_ACK,
                payloads.emergency_ack(
                    esp_id=self.id,
                    seq=self._next_seq(),
                    ts=int(now),
                    correlation_id=str(cid) if cid is not None else f"{self.id}-estop",
                    gpio_count=len(self._actuators),
                ),
            )
        )
        return step

    # zones, config, system ------------------------------------------------

    def _zone_assign(self, now: float, p: dict[str, Any]) -> Step:
        zone = p.get("zone_id", "")
        master = p.get("master_zone_id", "") or ""
        cid = p.get("correlation_id")
        cid_s = None if cid is None else str(cid)
        step = Step()
        if not isinstance(zone, str) or not isinstance(master, str):
            status = "error"
        else:
            try:
                new = self._spec.replace(
                    zone_id=zone,
                    master_zone_id=master if zone else "",
                    zone_name=str(p.get("zone_name", "") or "") if zone else "",
                )
            except SpecError as exc:
                logger.warning("%s: zone assign rejected: %s", self.id, exc)
                status = "error"
            else:
                status = "zone_assigned" if zone else "zone_removed"
                self._spec = new
                self.zone_id, self.master_zone_id = new.zone_id, new.master_zone_id
                step.spec = new
        step.messages.append(
            self._msg(
                TopicKind.ZONE_ACK,
                payloads.zone_ack(
                    esp_id=self.id,
                    seq=self._next_seq(),
                    ts=int(now),
                    status=status,
                    zone_id=self.zone_id,
                    master_zone_id=self.master_zone_id,
                    correlation_id=cid_s,
                ),
            )
        )
        return step

    def _set_subzone(self, gpios: set[int] | None, subzone: str, match: str | None) -> DeviceSpec:
        def pick(gpio: int, current: str | None) -> bool:
            if gpios is not None:
                return gpio in gpios
            return current == match

        sensors = [
            s.replace(subzone_id=subzone or None) if pick(s.gpio, s.subzone_id) else s
            for s in self._spec.sensors
        ]
        actuators = [
            a.replace(subzone_id=subzone or None) if pick(a.gpio, a.subzone_id) else a
            for a in self._spec.actuators
        ]
        return self._spec.replace(
            sensors=[s.model_dump() for s in sensors],
            actuators=[a.model_dump() for a in actuators],
        )

    def _subzone_ack(self, now: float, status: str, subzone: str, cid: Any) -> Message:
        return self._msg(
            TopicKind.SUBZONE_ACK,
            payloads.subzone_ack(
                esp_id=self.id,
                status=status,
                subzone_id=subzone,
                ts=int(now),
                correlation_id=None if cid is None else str(cid),
            ),
        )

    def _subzone_assign(self, now: float, p: dict[str, Any]) -> Step:
        subzone = p.get("subzone_id")
        gpios = p.get("assigned_gpios", [])
        step = Step()
        ok = (
            isinstance(subzone, str)
            and bool(subzone)
            and isinstance(gpios, list)
            and all(isinstance(g, int) and not isinstance(g, bool) for g in gpios)
        )
        status = "error"
        if ok:
            try:
                new = self._set_subzone(set(gpios), str(subzone), None)
            except SpecError as exc:
                logger.warning("%s: subzone assign rejected: %s", self.id, exc)
            else:
                self._spec = new
                step.spec = new
                status = "subzone_assigned"
        step.messages.append(
            self._subzone_ack(now, status, str(subzone or ""), p.get("correlation_id"))
        )
        if status == "subzone_assigned" and p.get("safe_mode_active"):
            step.extend(self._safe_gpios(now, set(gpios)))
        return step

    def _subzone_remove(self, now: float, p: dict[str, Any]) -> Step:
        subzone = p.get("subzone_id")
        step = Step()
        status = "error"
        if isinstance(subzone, str) and subzone:
            new = self._set_subzone(None, "", subzone)
            self._spec = new
            step.spec = new
            status = "subzone_removed"
        step.messages.append(
            self._subzone_ack(now, status, str(subzone or ""), p.get("correlation_id"))
        )
        return step

    def _subzone_safe(self, now: float, p: dict[str, Any]) -> Step:
        subzone = p.get("subzone_id")
        gpios = {a.gpio for a in self._spec.actuators if a.subzone_id == subzone}
        return self._safe_gpios(now, gpios)

    def _safe_gpios(self, now: float, gpios: set[int]) -> Step:
        step = Step()
        for gpio in sorted(gpios & set(self._actuators)):
            a = self._actuators[gpio]
            step.cancel.extend((f"auto_off:{gpio}", f"runtime:{gpio}", f"travel:{gpio}"))
            a.moving_to = None
            if a.set(now, a.spec.default_state, self._default_pwm(a.spec)):
                step.messages.append(self._status(now, gpio))
        return step

    def _config(self, now: float, p: dict[str, Any]) -> Step:
        """Full-state replace of sensors and/or actuators; one config_response per type."""
        cid = p.get("correlation_id")
        cid_s = None if cid is None else str(cid)
        step = Step()
        # (type, count, failures) per type sent; messages are built once at the end so a
        # rejected push does not burn seq numbers.
        results: list[tuple[str, int, list[dict[str, Any]]]] = []
        sensors = self._spec.sensors
        actuators = self._spec.actuators
        if "sensors" in p:
            sensors, fails = self._config_sensors(p.get("sensors"))
            results.append(("sensor", len(sensors), fails))
        if "actuators" in p:
            actuators, fails = self._config_actuators(p.get("actuators"))
            results.append(("actuator", len(actuators), fails))
        if not results:
            results.append(("sensor", 0, [{"error": "config has neither sensors nor actuators"}]))
        else:
            try:
                new = self._spec.replace(
                    sensors=[s.model_dump() for s in sensors],
                    actuators=[a.model_dump() for a in actuators],
                )
            except SpecError as exc:
                results = [(kind, 0, [{"error": str(exc)}]) for kind, _, _ in results]
            else:
                step.extend(self.apply_spec(now, new))
                step.spec = new
        step.messages.extend(
            self._config_response(kind, count, fails, cid_s) for kind, count, fails in results
        )
        return step

    def _config_response(
        self, config_type: str, count: int, fails: list[dict[str, Any]], cid: str | None
    ) -> Message:
        msg = "applied" if not fails else f"{len(fails)} item(s) rejected"
        return self._msg(
            TopicKind.CONFIG_RESPONSE,
            payloads.config_response(
                seq=self._next_seq(),
                config_type=config_type,
                count=count,
                failures=fails,
                message=msg,
                correlation_id=cid,
            ),
        )

    def _config_sensors(self, items: Any) -> tuple[list[SensorSpec], list[dict[str, Any]]]:
        if not isinstance(items, list):
            return list(self._spec.sensors), [{"error": "sensors must be a list"}]
        existing = {(s.gpio, s.sensor_type): s for s in self._spec.sensors}
        merged: dict[tuple[int, str], SensorSpec] = {}
        fails: list[dict[str, Any]] = []
        for item in items:
            if not isinstance(item, dict):
                fails.append({"error": "sensor entry is not an object"})
                continue
            gpio = item.get("gpio")
            stype = str(item.get("sensor_type", "")).lower()
            # The server may name a part (sht31) or one of its split values (sht31_temp).
            part = (
                stype
                if stype in SENSOR_TYPES
                else next((n for n, m in SENSOR_TYPES.items() if stype in m.value_types), None)
            )
            if part is None:
                fails.append(
                    {
                        "gpio": gpio,
                        "sensor_type": stype,
                        "error": f"unknown sensor_type; one of {sorted(VALUE_TYPES)}",
                    }
                )
                continue
            if item.get("active") is False:
                continue
            interval = item.get("measurement_interval_seconds")
            ms = item.get("sample_interval_ms")
            if interval is None and ms is not None:
                if isinstance(ms, bool) or not isinstance(ms, int | float):
                    fails.append(
                        {
                            "gpio": gpio,
                            "sensor_type": stype,
                            "error": f"sample_interval_ms {ms!r} is not a number",
                        }
                    )
                    continue
                interval = float(ms) / 1000.0
            base = existing.get((gpio, part)) if isinstance(gpio, int) else None
            data: dict[str, Any] = base.model_dump() if base is not None else {}
            data.update({"gpio": gpio, "sensor_type": part})
            if interval is not None:
                data["interval_s"] = interval
            for src, dst in (
                ("sensor_name", "name"),
                ("subzone_id", "subzone_id"),
                ("onewire_address", "onewire_address"),
                ("i2c_address", "i2c_address"),
            ):
                if item.get(src) not in (None, ""):
                    data[dst] = item[src]
            try:
                spec = SensorSpec.model_validate(data)
            except SpecError as exc:
                fails.append({"gpio": gpio, "sensor_type": stype, "error": str(exc)})
                continue
            merged.setdefault((spec.gpio, spec.sensor_type), spec)
        return list(merged.values()), fails

    def _config_actuators(self, items: Any) -> tuple[list[ActuatorSpec], list[dict[str, Any]]]:
        if not isinstance(items, list):
            return list(self._spec.actuators), [{"error": "actuators must be a list"}]
        out: dict[int, ActuatorSpec] = {}
        fails: list[dict[str, Any]] = []
        for item in items:
            if not isinstance(item, dict):
                fails.append({"error": "actuator entry is not an object"})
                continue
            if item.get("active") is False:
                continue
            data = {
                k: item[k]
                for k in (
                    "gpio",
                    "actuator_type",
                    "inverted_logic",
                    "default_state",
                    "default_pwm",
                    "max_runtime_ms",
                    "aux_gpio",
                    "critical",
                    "subzone_id",
                )
                if item.get(k) is not None
            }
            if item.get("actuator_name"):
                data["name"] = item["actuator_name"]
            if data.get("max_runtime_ms") == 0:
                data.pop("max_runtime_ms")
            if data.get("aux_gpio") == 255:
                data.pop("aux_gpio")
            try:
                spec = ActuatorSpec.model_validate(data)
            except SpecError as exc:
                fails.append({"gpio": item.get("gpio"), "error": str(exc)})
                continue
            if spec.gpio in out:
                fails.append({"gpio": spec.gpio, "error": "duplicate gpio"})
                continue
            out[spec.gpio] = spec
        return list(out.values()), fails

    def _system_command(self, now: float, p: dict[str, Any]) -> Step:
        raw = p.get("command")
        command = raw.lower() if isinstance(raw, str) else ""
        step = Step()

        def respond(
            success: bool,
            message: str = "",
            error: str | None = None,
            data: Mapping[str, Any] | None = None,
        ) -> None:
            step.messages.append(
                self._msg(
                    TopicKind.SYSTEM_COMMAND_RESPONSE,
                    payloads.system_command_response(
                        esp_id=self.id,
                        seq=self._next_seq(),
                        ts=int(now),
                        command=command or str(raw),
                        success=success,
                        message=message,
                        error=error,
                        data=data,
                    ),
                )
            )

        if command == "reboot":
            respond(True, "rebooting")
            step.cancel.extend(self._all_timer_names())
            step.extend(self.boot(now, "SW"))
            step.restart_session = True
        elif command == "safe_mode":
            self.safe_mode = True
            step.extend(self._safe_gpios(now, set(self._actuators)))
            respond(True, "safe mode entered")
        elif command == "exit_safe_mode":
            self.safe_mode = False
            respond(True, "safe mode left")
        elif command == "status":
            respond(
                True,
                "ok",
                data={
                    "uptime": self.uptime(now),
                    "boot_count": self.boot_count,
                    "safe_mode": self.safe_mode,
                    "zone_id": self.zone_id,
                    "actuators": [self.actuator_state(g, now) for g in sorted(self._actuators)],
                },
            )
        elif command == "diagnostics":
            respond(True, "ok")
            step.messages.append(
                self._msg(
                    TopicKind.SYSTEM_DIAGNOSTICS,
                    payloads.diagnostics(
                        esp_id=self.id,
                        seq=self._next_seq(),
                        ts=int(now),
                        heap_free=HEAP_TOTAL - 120_000 - self._rng.randrange(0, 8_000),
                        wifi_rssi=-55 - self._rng.randrange(0, 15),
                        uptime=self.uptime(now),
                        boot_count=self.boot_count,
                    ),
                )
            )
        else:
            respond(False, error="Unknown command")
        return step

    def _all_timer_names(self) -> list[str]:
        names = ["heartbeat", "watchdog"]
        names.extend(sensor_timer_name(s.key) for s in self._spec.sensors)
        for gpio in self._actuators:
            names.extend((f"auto_off:{gpio}", f"runtime:{gpio}", f"travel:{gpio}"))
        return names

    def _sensor_command(self, now: float, gpio: int, p: dict[str, Any]) -> Step:
        command = str(p.get("command", "")).lower()
        if command not in ("measure", "read", "measure_now"):
            return Step(rejected=f"sensor command {command!r} not supported (measure)")
        step = Step()
        for s in self._spec.sensors:
            if s.gpio == gpio and s.active:
                step.messages.extend(self.read_sensor(now, s.key))
        if not step.messages:
            return Step(rejected=f"no active sensor on gpio {gpio}")
        return step

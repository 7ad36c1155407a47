"""Payload builders: the one place that shapes every device → server JSON object.

Each builder takes plain values and returns a dict whose field names, JSON types and units
follow ../shared/contract/firmware-mqtt.md: ``ts`` is int Unix seconds, ``raw_mode`` and
actuator ``state`` are JSON bools, ``pwm`` is an int 0–255, correlation ids are echoed.
Optional echo fields are left out when the inbound message did not carry them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "actuator_alert",
    "actuator_response",
    "actuator_status",
    "config_response",
    "diagnostics",
    "emergency_ack",
    "heartbeat",
    "recovery_confirm",
    "sensor_data",
    "session_announce",
    "subzone_ack",
    "system_command_response",
    "will",
    "zone_ack",
]

#: Heartbeats carry the v2 metrics fields (boot_sequence_id, reset_reason, segment_start_ts).
METRICS_SCHEMA_VERSION = 2


def _echo(out: dict[str, Any], correlation_id: str | None, issued_by: str | None = None) -> None:
    if correlation_id is not None:
        out["correlation_id"] = correlation_id
    if issued_by is not None:
        out["issued_by"] = issued_by


def heartbeat(
    *,
    esp_id: str,
    zone_id: str,
    master_zone_id: str,
    ts: int,
    time_valid: bool,
    uptime: int,
    heap_free: int,
    wifi_rssi: int,
    sensor_count: int,
    actuator_count: int,
    wifi_ip: str,
    boot_sequence_id: str,
    reset_reason: str,
    segment_start_ts: int,
) -> dict[str, Any]:
    """``…/system/heartbeat``: every numeric the server checks is a JSON int."""
    return {
        "esp_id": esp_id,
        "zone_id": zone_id,
        "master_zone_id": master_zone_id,
        "zone_assigned": bool(zone_id),
        "ts": int(ts),
        "time_valid": time_valid,
        "uptime": int(uptime),
        "heap_free": int(heap_free),
        "wifi_rssi": int(wifi_rssi),
        "sensor_count": int(sensor_count),
        "actuator_count": int(actuator_count),
        "wifi_ip": wifi_ip,
        "boot_sequence_id": boot_sequence_id,
        "reset_reason": reset_reason,
        "segment_start_ts": int(segment_start_ts),
        "metrics_schema_version": METRICS_SCHEMA_VERSION,
    }


def will(*, esp_id: str, ts: int) -> dict[str, Any]:
    """``…/system/will``: set at connect, published by the broker on an abrupt loss."""
    return {
        "status": "offline",
        "esp_id": esp_id,
        "reason": "unexpected_disconnect",
        "timestamp": int(ts),
    }


def session_announce(*, handover_epoch: int, reconnect: bool, ts_ms: int) -> dict[str, Any]:
    """``…/session/announce``: the only message with milliseconds (``ts_ms``)."""
    return {
        "handover_epoch": int(handover_epoch),
        "reason": "reconnect" if reconnect else "boot",
        "ts_ms": int(ts_ms),
    }


def sensor_data(
    *,
    esp_id: str,
    seq: int,
    zone_id: str,
    subzone_id: str,
    gpio: int,
    sensor_type: str,
    raw: int,
    value: float,
    unit: str,
    quality: str,
    ts: int,
    time_valid: bool,
    onewire_address: str | None = None,
    i2c_address: int | None = None,
) -> dict[str, Any]:
    """``…/sensor/{gpio}/data``: raw sensor units plus the device's local preview value."""
    out: dict[str, Any] = {
        "esp_id": esp_id,
        "seq": seq,
        "zone_id": zone_id,
        "subzone_id": subzone_id,
        "gpio": int(gpio),
        "sensor_type": sensor_type,
        "raw": int(raw),
        "value": float(value),
        "unit": unit,
        "quality": quality,
        "ts": int(ts),
        "time_valid": time_valid,
        "raw_mode": True,
    }
    if onewire_address is not None:
        out["onewire_address"] = onewire_address
    if i2c_address is not None:
        out["i2c_address"] = int(i2c_address)
    return out


def actuator_status(
    *,
    esp_id: str,
    seq: int,
    zone_id: str,
    subzone_id: str,
    ts: int,
    gpio: int,
    actuator_type: str,
    state: bool,
    pwm: int,
    runtime_ms: int,
    emergency: str,
) -> dict[str, Any]:
    """``…/actuator/{gpio}/status``: ``state`` a JSON bool, ``pwm`` an int 0–255."""
    return {
        "esp_id": esp_id,
        "seq": seq,
        "zone_id": zone_id,
        "subzone_id": subzone_id,
        "ts": int(ts),
        "gpio": int(gpio),
        "type": actuator_type,
        "state": bool(state),
        "pwm": max(0, min(255, int(pwm))),
        "runtime_ms": int(runtime_ms),
        "emergency": emergency,
    }


def actuator_response(
    *,
    esp_id: str,
    seq: int,
    zone_id: str,
    ts: int,
    gpio: int,
    command: str,
    value: float,
    duration: float,
    success: bool,
    message: str,
    correlation_id: str | None = None,
    issued_by: str | None = None,
) -> dict[str, Any]:
    """``…/actuator/{gpio}/response``: echoes correlation_id and issued_by when given."""
    out: dict[str, Any] = {
        "esp_id": esp_id,
        "seq": seq,
        "zone_id": zone_id,
        "ts": int(ts),
        "gpio": int(gpio),
        "command": command,
        "value": float(value),
        "duration": duration,
        "success": bool(success),
        "message": message,
    }
    _echo(out, correlation_id, issued_by)
    return out


def actuator_alert(
    *, esp_id: str, seq: int, zone_id: str, ts: int, gpio: int, alert_type: str, message: str
) -> dict[str, Any]:
    """``…/actuator/{gpio}/alert``; gpio 255 means system-wide."""
    return {
        "esp_id": esp_id,
        "seq": seq,
        "zone_id": zone_id,
        "ts": int(ts),
        "gpio": int(gpio),
        "alert_type": alert_type,
        "message": message,
    }


def emergency_ack(
    *, esp_id: str, seq: int, ts: int, correlation_id: str, gpio_count: int
) -> dict[str, Any]:
    """``…/actuator/emergency/ack`` after every actuator was switched off."""
    return {
        "ts": int(ts),
        "esp_id": esp_id,
        "correlation_id": correlation_id,
        "command": "emergency_stop",
        "gpio_count": int(gpio_count),
        "outcome": "executed",
        "seq": seq,
    }


def recovery_confirm(*, esp_id: str, seq: int, ts: int, correlation_id: str) -> dict[str, Any]:
    """``…/actuator/recovery_confirm`` after a clear (actuators stay off)."""
    return {
        "ts": int(ts),
        "esp_id": esp_id,
        "correlation_id": correlation_id,
        "command": "clear_emergency",
        "state": "cleared",
        "seq": seq,
    }


def zone_ack(
    *,
    esp_id: str,
    seq: int,
    ts: int,
    status: str,
    zone_id: str,
    master_zone_id: str,
    correlation_id: str | None,
) -> dict[str, Any]:
    """``…/zone/ack``; the server's caller waits for the echoed correlation_id."""
    out: dict[str, Any] = {
        "esp_id": esp_id,
        "status": status,
        "zone_id": zone_id,
        "master_zone_id": master_zone_id,
        "ts": int(ts),
        "seq": seq,
    }
    _echo(out, correlation_id)
    return out


def subzone_ack(
    *, esp_id: str, status: str, subzone_id: str, ts: int, correlation_id: str | None
) -> dict[str, Any]:
    """``…/subzone/ack`` (its time field is ``timestamp``, an int)."""
    out: dict[str, Any] = {
        "esp_id": esp_id,
        "status": status,
        "subzone_id": subzone_id,
        "timestamp": int(ts),
    }
    _echo(out, correlation_id)
    return out


def config_response(
    *,
    seq: int,
    config_type: str,
    count: int,
    failures: Iterable[Mapping[str, Any]],
    message: str,
    correlation_id: str | None,
) -> dict[str, Any]:
    """``…/config_response``, one per type (sensor / actuator) of a config push."""
    fails = [dict(f) for f in failures]
    if not fails:
        status = "success"
    elif count > 0:
        status = "partial_success"
    else:
        status = "error"
    out: dict[str, Any] = {
        "seq": seq,
        "status": status,
        "type": config_type,
        "count": int(count),
        "failed_count": len(fails),
        "failures": fails,
        "message": message,
    }
    _echo(out, correlation_id)
    return out


def system_command_response(
    *,
    esp_id: str,
    seq: int,
    ts: int,
    command: str,
    success: bool,
    message: str = "",
    error: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``…/system/command/response``; an unknown command gets ``error: "Unknown command"``."""
    out: dict[str, Any] = {
        "esp_id": esp_id,
        "seq": seq,
        "ts": int(ts),
        "command": command,
        "success": bool(success),
    }
    if message:
        out["message"] = message
    if error is not None:
        out["error"] = error
    if data:
        out.update(data)
    return out


def diagnostics(
    *, esp_id: str, seq: int, ts: int, heap_free: int, wifi_rssi: int, uptime: int, **extra: Any
) -> dict[str, Any]:
    """``…/system/diagnostics``: ``heap_free`` and ``wifi_rssi`` are required ints."""
    return {
        "esp_id": esp_id,
        "seq": seq,
        "ts": int(ts),
        "heap_free": int(heap_free),
        "wifi_rssi": int(wifi_rssi),
        "uptime": int(uptime),
        **extra,
    }

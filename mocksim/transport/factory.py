"""Choosing a transport from a URL: a real broker, or the embedded one when there is none."""

from __future__ import annotations

from typing import Any

from mocksim.transport.base import SessionMode
from mocksim.transport.broker import EmbeddedBroker
from mocksim.transport.mqtt import MqttTransport

__all__ = ["transport_from_url"]


def transport_from_url(
    url: str | None, *, mode: SessionMode = SessionMode.PER_DEVICE, **options: Any
) -> MqttTransport:
    """An MQTT transport for ``url``; with ``None`` one that owns an embedded amqtt broker.

    The embedded broker starts with the transport's ``start()`` and stops with its ``close()``.

    Args:
        url: ``mqtt://…`` / ``mqtts://…``, or None for the embedded broker.
        mode: per-device sessions (default) or shared connections.
        **options: further ``MqttTransport`` keywords (``offline_policy=``, ``breaker=``, …).

    Raises:
        SpecError: the URL or an option is invalid.
    """
    if url is None:
        broker = EmbeddedBroker()
        return MqttTransport(broker.url, mode=mode, embedded=broker, **options)
    return MqttTransport(url, mode=mode, **options)

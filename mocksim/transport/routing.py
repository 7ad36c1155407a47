"""Routing inbound topics to devices, for transports that carry many devices on one link.

Only the device level is read here (``kaiser/{K}/esp/{id}/…``); full parsing and validation is
the protocol layer's job (``mocksim.protocol.topics``), done by the fleet on what we hand over.
"""

from __future__ import annotations

__all__ = ["device_id_of", "shared_filter"]

_DEVICE_LEVEL = 3


def device_id_of(topic: str) -> str | None:
    """The device id of a device topic, or None for broadcast, kaiser-wide or foreign topics."""
    parts = topic.split("/", 4)
    if len(parts) > _DEVICE_LEVEL and parts[0] == "kaiser" and parts[2] == "esp" and parts[3]:
        return parts[3]
    return None


def shared_filter(topic_filter: str, device_id: str) -> str:
    """The device's subscription filter with its device level replaced by ``+``.

    ``kaiser/god/esp/ESP_1/config`` → ``kaiser/god/esp/+/config``; filters without the
    device's level (``kaiser/broadcast/emergency``) come back unchanged.
    """
    parts = topic_filter.split("/")
    if len(parts) > _DEVICE_LEVEL and parts[0] == "kaiser" and parts[2] == "esp":
        if parts[_DEVICE_LEVEL] == device_id:
            parts[_DEVICE_LEVEL] = "+"
        return "/".join(parts)
    return topic_filter

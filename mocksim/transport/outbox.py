"""Per-device publish bookkeeping: the counters and the offline policy's bounded buffer.

Both transports use it, so DROP/BUFFER behave and count the same over MQTT and in memory.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable

from mocksim.protocol.message import Message
from mocksim.transport.base import OfflinePolicy, PublishOutcome

__all__ = ["Counters", "DeviceOutbox"]

logger = logging.getLogger(__name__)


class Counters:
    """Monotonic publish counters; a removed device's counters are added to a retired total."""

    __slots__ = ("acked", "dropped", "lost", "published", "reconnects", "replayed")

    def __init__(self) -> None:
        self.published = 0
        self.acked = 0
        self.dropped = 0
        self.replayed = 0
        self.lost = 0
        self.reconnects = 0

    def absorb(self, other: Counters) -> None:
        """Add ``other``'s counts to these (used when a device leaves)."""
        self.published += other.published
        self.acked += other.acked
        self.dropped += other.dropped
        self.replayed += other.replayed
        self.lost += other.lost
        self.reconnects += other.reconnects

    @classmethod
    def total(cls, parts: Iterable[Counters]) -> Counters:
        """The sum of ``parts``."""
        result = cls()
        for part in parts:
            result.absorb(part)
        return result


class DeviceOutbox(Counters):
    """One device's counters plus its offline buffer (used only by the BUFFER policy)."""

    __slots__ = ("_overflow_logged", "buffer", "buffer_size", "device_id", "policy")

    def __init__(self, device_id: str, policy: OfflinePolicy, buffer_size: int) -> None:
        super().__init__()
        self.device_id = device_id
        self.policy = policy
        self.buffer_size = buffer_size
        self.buffer: deque[Message] = deque()
        self._overflow_logged = False

    def hold(self, msg: Message) -> PublishOutcome:
        """Apply the offline policy to a message that cannot go out now."""
        if self.policy is OfflinePolicy.DROP or self.buffer_size <= 0:
            self.dropped += 1
            return PublishOutcome.DROPPED
        if len(self.buffer) >= self.buffer_size:
            self.buffer.popleft()
            self.dropped += 1
            if not self._overflow_logged:  # once per overflow episode, not per message
                self._overflow_logged = True
                logger.warning(
                    "offline buffer of %s is full (%d): dropping the oldest messages",
                    self.device_id,
                    self.buffer_size,
                )
        self.buffer.append(msg)
        return PublishOutcome.BUFFERED

    def drop(self, count: int = 1) -> PublishOutcome:
        """Count ``count`` refused messages."""
        self.dropped += count
        return PublishOutcome.DROPPED

    def discard_buffer(self) -> None:
        """Drop (and count) everything still buffered, e.g. when the device is removed."""
        self.dropped += len(self.buffer)
        self.buffer.clear()
        self._overflow_logged = False

    def take(self) -> Message | None:
        """The oldest buffered message, or None when the buffer is empty."""
        if not self.buffer:
            self._overflow_logged = False
            return None
        return self.buffer.popleft()

    def put_back(self, msg: Message) -> None:
        """Return a message ``take`` gave out but that could not be sent after all."""
        self.buffer.appendleft(msg)

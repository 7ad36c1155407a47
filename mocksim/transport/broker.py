"""The embedded broker: amqtt started in-process on a free loopback port, for the default path.

A newcomer needs no server: with no broker URL the fleet runs amqtt on its own loop. amqtt is
pure Python (about 4k msg/s QoS 0 on one core), which suits notebooks, not load tests.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from mocksim.errors import TransportError

__all__ = ["EmbeddedBroker"]

logger = logging.getLogger(__name__)

_LOOPBACK = "127.0.0.1"
_START_ATTEMPTS = 5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((_LOOPBACK, 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    """An amqtt broker on ``127.0.0.1`` that lives on the caller's event loop.

    Anonymous access only; retained messages and last wills work as in mosquitto.
    """

    def __init__(self) -> None:
        self._port = _free_port()
        self._broker: Any = None  # amqtt.broker.Broker (untyped)

    @property
    def port(self) -> int:
        """The listener port (may change once if ``start()`` found it taken)."""
        return self._port

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:PORT``."""
        return f"mqtt://{_LOOPBACK}:{self._port}"

    @property
    def running(self) -> bool:
        """Whether the broker is serving."""
        return self._broker is not None

    async def start(self) -> None:
        """Start serving on the running loop; a no-op if already running.

        Raises:
            TransportError: amqtt could not start (the cause is chained).
        """
        if self._broker is not None:
            return
        from amqtt.broker import Broker  # noqa: PLC0415 - only the embedded path pays for it
        from amqtt.errors import BrokerError  # noqa: PLC0415

        error: Exception | None = None
        for _ in range(_START_ATTEMPTS):
            broker = Broker(self._config())
            try:
                await broker.start()
            except (BrokerError, OSError) as exc:  # port taken between choosing and binding
                error = exc
                self._port = _free_port()
                continue
            self._broker = broker
            logger.info("embedded amqtt broker listening on %s", self.url)
            return
        raise TransportError(f"the embedded amqtt broker did not start: {error}") from error

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{_LOOPBACK}:{self._port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }

    async def close(self) -> None:
        """Stop serving; safe to call twice."""
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<EmbeddedBroker {self.url} {state}>"

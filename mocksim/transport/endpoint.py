"""Broker endpoints: ``mqtt://`` / ``mqtts://`` URLs and TLS options as plain values."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from mocksim.errors import SpecError

__all__ = ["BrokerEndpoint", "TlsOptions"]

_SCHEMES = ("mqtt", "mqtts")
_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """TLS settings for ``mqtts://`` (or any URL when given explicitly).

    Attributes:
        ca_certs: CA bundle to verify the broker with (None: the system's CAs).
        certfile: client certificate (PEM) for brokers that require one.
        keyfile: its private key (PEM); None if it is inside ``certfile``.
        insecure: skip certificate and host name checks (self-signed test brokers only).
    """

    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    insecure: bool = False

    def context(self) -> ssl.SSLContext:
        """An SSL context for a client connection with these settings."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_certs)
        if self.certfile is not None:
            context.load_cert_chain(self.certfile, self.keyfile)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


@dataclass(frozen=True, slots=True)
class BrokerEndpoint:
    """Where the broker is and how to log in; ``str()`` shows ``host:port``, never the password."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False

    @classmethod
    def parse(
        cls, url: str, *, username: str | None = None, password: str | None = None
    ) -> BrokerEndpoint:
        """Parse ``mqtt[s]://[user[:password]@]host[:port]``; keywords override the URL's login.

        Raises:
            SpecError: not an mqtt/mqtts URL, no host, or a bad port.
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            raise SpecError("mqtt_url", _redact(url), "an mqtt:// or mqtts:// URL")
        try:
            port = parts.port or _DEFAULT_PORTS[scheme]
        except ValueError as exc:
            raise SpecError("mqtt_url", _redact(url), "a port in 1..65535") from exc
        if not parts.hostname:
            raise SpecError("mqtt_url", _redact(url), "a URL with a host")
        user = username if username is not None else _unquote(parts.username)
        secret = password if password is not None else _unquote(parts.password)
        return cls(parts.hostname, port, user, secret, scheme == "mqtts")

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def _unquote(value: str | None) -> str | None:
    return None if value is None else unquote(value)


def _redact(url: str) -> str:
    """The URL with any password replaced by ``***`` (for error messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()

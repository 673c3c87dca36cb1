"""Clients for the systems mailadmin talks to: clamd, spamd, the GeoIP data.

Each client owns its wire format, its timeout and the mapping of failures to
``ServiceUnavailable`` / ``ServiceProtocolError`` (errors.py); nothing above
this package sees a socket error.  This module holds what the socket clients
share: the one address syntax of ``conf/mailadmin.toml`` (an absolute unix
socket path, ``host:port`` or ``[v6]:port``) and opening a stream to it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from mailadmin.errors import ConfigError, ServiceUnavailable


@dataclass(frozen=True, slots=True)
class UnixAddress:
    path: str

    def __str__(self) -> str:
        return self.path


@dataclass(frozen=True, slots=True)
class TcpAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


ServiceAddress = UnixAddress | TcpAddress


def parse_service_address(service: str, address: str) -> ServiceAddress:
    """Split a configured address; ``ConfigError(service, "address", ...)`` when malformed."""

    def bad(reason: str) -> ConfigError:
        return ConfigError(service, "address", f"{address!r}: {reason}")

    if address.startswith("/"):
        return UnixAddress(address)
    if address.startswith("["):
        host, sep, port_text = address[1:].partition("]:")
        if not sep or not host:
            raise bad("write [v6-address]:port")
    else:
        host, sep, port_text = address.rpartition(":")
        if not sep or not host:
            raise bad("write an absolute socket path or host:port")
        if ":" in host:
            raise bad("an IPv6 address needs brackets: [v6-address]:port")
    if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise bad("the port must be a number from 1 to 65535")
    return TcpAddress(host, int(port_text))


async def open_stream(
    service: str, address: ServiceAddress, *, limit: int = 2**16
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect, mapping every failure to reach the service to ``ServiceUnavailable``.

    The caller bounds the time (the whole exchange shares one deadline).
    """
    try:
        if isinstance(address, UnixAddress):
            return await asyncio.open_unix_connection(address.path, limit=limit)
        return await asyncio.open_connection(address.host, address.port, limit=limit)
    except OSError as exc:
        # Refused, no such socket file, no permission, unknown host name: all
        # mean "not reachable now", which the policy's fail mode handles.
        raise ServiceUnavailable(service, f"cannot connect to {address}: {exc}") from exc


async def close_stream(writer: asyncio.StreamWriter, *, completed: bool) -> None:
    """Close after an exchange; ``completed`` false (error, timeout) drops the connection.

    A graceful close waits for unsent data to drain, which never happens when
    the peer stopped reading: after a failure the connection is aborted instead,
    so a hung service can't hold the caller past its deadline.
    """
    if not completed:
        writer.transport.abort()
        return
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        # The peer may already have reset the connection; the reply was read.
        pass


__all__ = [
    "ServiceAddress",
    "TcpAddress",
    "UnixAddress",
    "close_stream",
    "open_stream",
    "parse_service_address",
]

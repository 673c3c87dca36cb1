"""Listening sockets for every role: ``unix:/abs/path`` or ``inet:host:port``.

One place sets the socket details the MTA depends on: unix sockets are
created with mode 0666 inside their directory (Postfix's smtpd runs as
another user; restrict access with the directory's permissions), stale
socket files are replaced, and TCP sockets get TCP_NODELAY, because milter
and policy replies are small writes that Nagle's algorithm would hold back
for a delayed ACK (a 40 ms stall per reply over loopback, COMPONENTS.md §3).
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from mailadmin.errors import ConfigError

ClientCallback = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Listen:
    kind: str  # "unix" | "inet"
    path: str = ""
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        return f"unix:{self.path}" if self.kind == "unix" else f"inet:{self.host}:{self.port}"


def parse_listen(value: str) -> Listen:
    if value.startswith("unix:"):
        path = value[5:]
        if not path.startswith("/"):
            raise ConfigError("listen", value, "a unix socket path must be absolute")
        return Listen("unix", path=path)
    if value.startswith("inet:"):
        host, sep, port = value[5:].rpartition(":")
        if not sep or not port.isdigit():
            raise ConfigError("listen", value, "expected inet:host:port")
        return Listen("inet", host=host.strip("[]"), port=int(port))
    raise ConfigError("listen", value, "expected unix:/path or inet:host:port")


def _prepare_unix_path(path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


def _nodelay(server: asyncio.base_events.Server) -> None:
    for sock in server.sockets:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def start_stream_server(listen: str, callback: ClientCallback) -> asyncio.base_events.Server:
    """An asyncio stream server on ``listen``; accepted TCP sockets inherit TCP_NODELAY."""
    where = parse_listen(listen)
    server: asyncio.base_events.Server
    if where.kind == "unix":
        _prepare_unix_path(where.path)
        server = await asyncio.start_unix_server(callback, path=where.path)
        os.chmod(where.path, 0o666)
    else:
        server = await asyncio.start_server(callback, where.host, where.port)
        _nodelay(server)
    return server


async def create_protocol_server(
    listen: str, factory: Callable[[], asyncio.BaseProtocol]
) -> asyncio.base_events.Server:
    """The same for protocol-based servers (aiosmtpd's SMTP)."""
    loop = asyncio.get_running_loop()
    where = parse_listen(listen)
    server: asyncio.base_events.Server
    if where.kind == "unix":
        _prepare_unix_path(where.path)
        server = await loop.create_unix_server(factory, path=where.path)
        os.chmod(where.path, 0o666)
    else:
        server = await loop.create_server(factory, where.host, where.port)
        _nodelay(server)
    return server


def bound_address(server: asyncio.base_events.Server) -> str:
    """The listen string a server really got (the port when 0 was asked for)."""
    sock = server.sockets[0]
    if sock.family == socket.AF_UNIX:
        return f"unix:{sock.getsockname()}"
    host, port = sock.getsockname()[:2]
    return f"inet:{host}:{port}"

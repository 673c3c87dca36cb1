"""Listening sockets for every role: ``unix:/abs/path`` or ``inet:host:port``.

One place sets the socket details the MTA depends on: unix sockets are
created with mode 0666 inside their directory (Postfix's smtpd runs as
another user; restrict access with the directory's permissions), stale
socket files are replaced, and TCP sockets get TCP_NODELAY, because milter
and policy replies are small writes that Nagle's algorithm would hold back
for a delayed ACK (a 40 ms stall per reply over loopback, COMPONENTS.md §3).

:class:`ConnectionTracker` knows the connections the listeners accepted, for
a graceful stop: each adapter registers the task that serves a connection,
saying whether the connection sits idle between short requests (policy
delegation) or carries a message (milter, content filter, SRS bounces).
Python 3.11's ``Server.wait_closed`` does not wait for accepted connections;
``mailadmin serve`` drains them through the tracker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailadmin.errors import ConfigError

log = logging.getLogger(__name__)

# Connections idle between short request/answer exchanges get this long after
# the stop begins (a request takes milliseconds; see ConnectionTracker.drain).
IDLE_DRAIN_SECONDS = 1.0
DRAIN_POLL_SECONDS = 0.05
# How soon a closed server is noticed (ConnectionTracker.stop_when_closed).
CLOSE_POLL_SECONDS = 0.2

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


@dataclass(frozen=True, slots=True)
class _Tracked:
    idle: bool
    on_stop: Callable[[], None] | None


class ConnectionTracker:
    """The open connections of a process's listeners, for a graceful stop.

    A connection is the task that serves it, registered with
    :meth:`register` and forgotten when the task ends.  ``idle``: the
    connection sits idle between short request/answer exchanges (policy
    delegation: Postfix keeps one open per smtpd process for minutes, a
    request takes milliseconds, and closing it costs nothing because Postfix
    reconnects), so a stop gives it only :data:`IDLE_DRAIN_SECONDS`; a
    message connection gets the whole grace period.  ``on_stop`` is called
    once when the stop begins (the milter closes its connections that are
    between messages); :attr:`stopping` tells a connection to take no new
    message.
    """

    def __init__(self) -> None:
        self.stopping = False
        self._open: dict[asyncio.Task[Any], _Tracked] = {}
        self._watchers: set[asyncio.Task[None]] = set()

    def register(self, task: asyncio.Task[Any] | None = None, *, idle: bool,
                 on_stop: Callable[[], None] | None = None) -> None:
        """Track ``task`` (the running one when None) until it ends."""
        if task is None:
            task = asyncio.current_task()
            assert task is not None, "register() outside a task needs the task"
        self._open[task] = _Tracked(idle, on_stop)
        task.add_done_callback(self.unregister)

    def unregister(self, task: asyncio.Task[Any]) -> None:
        self._open.pop(task, None)

    def open_connections(self, *, idle: bool | None = None) -> int:
        """How many are open (only the idle or only the message ones when asked)."""
        return sum(1 for t, c in self._open.items() if not t.done() and (idle is None or c.idle == idle))

    def begin_stop(self) -> None:
        """No new messages: every connection's ``on_stop``, once."""
        if self.stopping:
            return
        self.stopping = True
        for connection in list(self._open.values()):
            if connection.on_stop is not None:
                connection.on_stop()

    def stop_when_closed(self, server: asyncio.base_events.Server) -> None:
        """:meth:`begin_stop` once ``server`` stops serving (``server.close()``)."""
        async def watcher() -> None:
            while server.is_serving():
                await asyncio.sleep(CLOSE_POLL_SECONDS)
            self.begin_stop()

        task = asyncio.create_task(watcher(), name="close-watcher")
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def drain(self, grace_seconds: float, idle_seconds: float = IDLE_DRAIN_SECONDS) -> bool:
        """:meth:`begin_stop`; let open connections finish, idle ones for
        ``idle_seconds``, the others for ``grace_seconds``; cancel the rest
        (the MTA answers a dropped connection with a temporary failure).
        True when none had to be cancelled."""
        self.begin_stop()
        start = time.monotonic()

        def pending_now() -> set[asyncio.Task[Any]]:
            return {t for t in self._open if not t.done()} - cancelled

        cancelled: set[asyncio.Task[Any]] = set()
        pending = pending_now()
        if pending:
            log.info("waiting up to %.0f s for %d open connection(s)", grace_seconds, len(pending))
        while pending:
            elapsed = time.monotonic() - start
            overdue = {t for t in pending
                       if elapsed >= (idle_seconds if self._open[t].idle else grace_seconds)}
            if overdue:
                log.info("dropping %d connection(s) still open after %.1f s", len(overdue), elapsed)
                for task in overdue:
                    task.cancel()
                cancelled |= overdue
            await asyncio.sleep(DRAIN_POLL_SECONDS)
            pending = pending_now()
        if cancelled:
            await asyncio.wait(cancelled, timeout=1.0)
        return not cancelled

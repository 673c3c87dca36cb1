"""aiosmtpd's SMTP server protocol with its connection in a ConnectionTracker.

aiosmtpd serves each connection in a task it starts in ``connection_made``;
that task is registered as a message connection, so a graceful stop waits
for the SMTP exchange (the content filter, the SRS bounce listener) and
cancels it after the grace period (mailadmin/listeners.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiosmtpd.smtp import SMTP

from mailadmin.listeners import ConnectionTracker


class TrackedSMTP(SMTP):
    def __init__(self, handler: Any, *, connections: ConnectionTracker | None = None, **kwargs: Any) -> None:
        self.connections = connections
        super().__init__(handler, **kwargs)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.connections is not None and self._handler_coroutine is not None:
            self.connections.register(self._handler_coroutine, idle=False)

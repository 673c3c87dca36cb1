"""systemd readiness notification (sd_notify(3)): READY=1, RELOADING=1, STOPPING=1.

A datagram to $NOTIFY_SOCKET; a few lines, so no dependency.  Without
NOTIFY_SOCKET (not started by systemd) it does nothing.
"""

from __future__ import annotations

import os
import socket


def notify(state: str) -> bool:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):
        path = "\0" + path[1:]  # abstract namespace
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(path)
        sock.sendall(state.encode("ascii"))
    return True

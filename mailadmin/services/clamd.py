"""Asyncio client for ClamAV's clamd: INSTREAM scans and PING (SPEC §7).

Protocol (clamd(8)): send ``zINSTREAM\\0``, then chunks ``<uint32 big-endian
length><bytes>``, then a zero-length chunk; clamd answers one NUL-terminated
line, ``stream: OK``, ``stream: <signature> FOUND`` or ``<reason> ERROR``
(e.g. ``INSTREAM size limit exceeded. ERROR``), and closes.

Why our own client: none of the published ones is both asyncio and able to use
clamd's unix socket (pyclamd, clamd, clamdpy, clamav-client are synchronous;
aioclamd is TCP-only and reads 1 KiB chunks through a thread, 15x slower on a
2 MB message; COMPONENTS.md §1), and the protocol is three lines.

Failure mapping, which the virus_scan policy turns into its fail mode:
can't connect, connection dropped before a reply, or no reply within
``timeout_seconds`` for the whole exchange -> ``ServiceUnavailable``;
``... ERROR`` or anything that is not a well-formed reply ->
``ServiceProtocolError``.  Data over ``max_size_bytes`` is refused with
``ServiceProtocolError`` before connecting: unscanned mail is never "clean".
"""

from __future__ import annotations

import asyncio
import re
import struct

from mailadmin.errors import ServiceProtocolError, ServiceUnavailable
from mailadmin.services import close_stream, open_stream, parse_service_address

SERVICE = "clamd"
CHUNK_BYTES = 64 * 1024
# Replies are one short line; anything longer is not clamd talking.
REPLY_LIMIT_BYTES = 4096

_STREAM_PREFIX = "stream: "
_SIGNATURE = re.compile(r"[\x21-\x7e]+")


def parse_scan_reply(raw: bytes) -> str | None:
    """The signature name from an INSTREAM reply, or None for ``stream: OK``."""
    text = raw.removesuffix(b"\0").decode("utf-8", "replace").strip()
    if text.endswith("ERROR"):
        raise ServiceProtocolError(SERVICE, f"clamd refused the scan: {text[:200]}")
    if text.startswith(_STREAM_PREFIX):
        verdict = text[len(_STREAM_PREFIX):]
        if verdict == "OK":
            return None
        name = verdict.removesuffix(" FOUND")
        if name != verdict and _SIGNATURE.fullmatch(name):
            return name
    raise ServiceProtocolError(SERVICE, f"unexpected reply {text[:200]!r}")


def instream_frames(data: bytes, chunk_bytes: int = CHUNK_BYTES) -> list[bytes | memoryview]:
    """The INSTREAM request as write-ready pieces: command, length-prefixed chunks, terminator."""
    view = memoryview(data)
    frames: list[bytes | memoryview] = [b"zINSTREAM\0"]
    for start in range(0, len(view), chunk_bytes):
        piece = view[start:start + chunk_bytes]
        frames.append(struct.pack("!L", len(piece)))
        frames.append(piece)
    frames.append(struct.pack("!L", 0))
    return frames


class ClamdClient:
    """One clamd, reached at ``address`` (absolute unix socket path, ``host:port`` or ``[v6]:port``).

    Every call opens its own connection, so one client is shared by all
    concurrent scans.
    """

    def __init__(self, address: str, timeout_seconds: float, max_size_bytes: int) -> None:
        self.address = parse_service_address(SERVICE, address)
        self.timeout_seconds = timeout_seconds
        self.max_size_bytes = max_size_bytes

    async def scan(self, data: bytes) -> str | None:
        """None when clean, else the signature name clamd reports."""
        if len(data) > self.max_size_bytes:
            raise ServiceProtocolError(
                SERVICE,
                f"not scanned: {len(data)} bytes is larger than max_size_bytes={self.max_size_bytes}",
            )
        return parse_scan_reply(await self._exchange(instream_frames(data)))

    async def ping(self) -> None:
        """Return when clamd answers PONG."""
        reply = await self._exchange([b"zPING\0"])
        if reply != b"PONG\0":
            raise ServiceProtocolError(SERVICE, f"unexpected reply to PING {reply[:200]!r}")

    async def _exchange(self, frames: list[bytes | memoryview]) -> bytes:
        try:
            async with asyncio.timeout(self.timeout_seconds):
                return await self._send_and_read(frames)
        except TimeoutError:
            raise ServiceUnavailable(
                SERVICE, f"no reply from {self.address} within {self.timeout_seconds} s"
            ) from None

    async def _send_and_read(self, frames: list[bytes | memoryview]) -> bytes:
        reader, writer = await open_stream(SERVICE, self.address, limit=REPLY_LIMIT_BYTES)
        write_error: OSError | None = None
        completed = False
        try:
            try:
                for frame in frames:
                    writer.write(frame)
                    await writer.drain()
            except OSError as exc:
                # clamd answers "size limit exceeded. ERROR" and closes while we
                # are still sending: its reply is the thing worth reporting.
                write_error = exc
            try:
                reply = await reader.readuntil(b"\0")
                completed = True
                return reply
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    raise ServiceProtocolError(
                        SERVICE, f"unterminated reply {exc.partial[:200]!r}"
                    ) from None
                why = f" ({write_error})" if write_error else ""
                raise ServiceUnavailable(
                    SERVICE, f"{self.address} closed the connection without a reply{why}"
                ) from None
            except asyncio.LimitOverrunError:
                raise ServiceProtocolError(
                    SERVICE, f"reply longer than {REPLY_LIMIT_BYTES} bytes"
                ) from None
            except OSError as exc:
                raise ServiceUnavailable(SERVICE, f"connection to {self.address} lost: {exc}") from exc
        finally:
            await close_stream(writer, completed=completed)

#!/usr/bin/env python3
"""The milter's own CPU per message, without Postfix: a load client that speaks
to a milter exactly as Postfix 3.7's smtpd does (negotiation offering every
action and protocol step, the default macro lists, CONNECT, HELO, MAIL, RCPT,
each header field, one BODY chunk, end of message, QUIT; one milter
connection per SMTP session, i.e. per message) and waits for an answer only
where the negotiated protocol says the milter replies.

It measures the server process's CPU time (``/proc/<pid>/stat`` user +
system) over ``--messages`` messages on ``--sessions`` concurrent
connections, so the figure is the milter's cost alone, steady on a loaded
machine too, and comparable between milters in one run:

    python bench/milter_load.py --target inet:127.0.0.1:21200 --pid PID \\
        --messages 3000 --sessions 4 --recipients-from 0

Recipients are ``<n>bob@rcpt.example`` (n = ``--recipients-from`` onwards),
as Postfix's ``smtp-source -N`` makes them and ``bench/populate.py`` fills
the store.  Prints one JSON line: messages, seconds, msg/s, server CPU ms per
message, and the count of each final answer.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import email.utils
import json
import os
import struct
import sys
import time

# The project's own codec for the MTA side of the protocol.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from mailadmin.adapters import milter_codec as mc  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
OFFER_ACTIONS = mc.Action(0x1FF)
OFFER_PROTOCOL = mc.Proto(0x1FFFFF)
# Postfix 3.7's defaults (milter_*_macros).
CONNECT_MACROS = {"j": "mx.rcpt.example", "{daemon_name}": "smtpd", "{daemon_addr}": "127.0.0.1", "v": "Postfix 3.7.11",
                  "_": "localhost [127.0.0.1]"}
HELO_MACROS: dict[str, str] = {}
_NR = {b"C": mc.Proto.NR_CONN, b"H": mc.Proto.NR_HELO, b"M": mc.Proto.NR_MAIL, b"R": mc.Proto.NR_RCPT,
       b"L": mc.Proto.NR_HDR, b"N": mc.Proto.NR_EOH, b"B": mc.Proto.NR_BODY, b"T": mc.Proto.NR_DATA}
_SKIP = {b"T": mc.Proto.NODATA, b"N": mc.Proto.NOEOH, b"L": mc.Proto.NOHDRS, b"B": mc.Proto.NOBODY}


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def message_fields(rcpt: str, size: int) -> tuple[list[tuple[str, str]], bytes]:
    headers = [
        ("Received", "from localhost (localhost [127.0.0.1])\n\tby mx.rcpt.example (Postfix) with SMTP id 4Xk2Lq0Zz3z9t\n"
                     f"\tfor <{rcpt}>; {email.utils.formatdate()}"),
        ("From", '"Alice Example" <alice@sender.example>'),
        ("To", f'"Bob Example" <{rcpt}>'),
        ("Subject", "Quarterly report draft for review"),
        ("Date", email.utils.formatdate()),
        ("Message-ID", f"<{time.time_ns()}@sender.example>"),
        ("MIME-Version", "1.0"),
        ("Content-Type", 'text/plain; charset="us-ascii"'),
        ("Content-Transfer-Encoding", "7bit"),
    ]
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor\r\n"
    body = b"Hi Bob,\r\n\r\n" + line * max(1, size // len(line))
    return headers, body


class Client:
    def __init__(self, target: str, size: int) -> None:
        self.target = target
        self.size = size
        self.answers: collections.Counter[str] = collections.Counter()

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.target.startswith("unix:"):
            return await asyncio.open_unix_connection(self.target[5:])
        host, _, port = self.target.removeprefix("inet:").rpartition(":")
        return await asyncio.open_connection(host, int(port))

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> mc.Response:
        (length,) = struct.unpack(">I", await reader.readexactly(4))
        packet = await reader.readexactly(length)
        return mc.decode_response(packet[:1], packet[1:])

    async def message(self, rcpt: str) -> None:
        reader, writer = await self._open()
        try:
            writer.write(mc.encode_command(mc.OptNeg(6, OFFER_ACTIONS, OFFER_PROTOCOL)))
            reply = await self._read(reader)
            assert isinstance(reply, mc.OptNegReply), reply
            proto = reply.protocol
            headers, body = message_fields(rcpt, self.size)
            steps: list[tuple[bytes, bytes, dict[str, str] | None]] = [
                (b"C", mc.encode_command(mc.Connect("localhost", "4", 40000, "127.0.0.1")), CONNECT_MACROS),
                (b"H", mc.encode_command(mc.Helo("client.sender.example")), None),
                (b"M", mc.encode_command(mc.Mail(("<alice@sender.example>",))), {"i": "4Xk2Lq0Zz3z9t",
                                                                                  "{mail_addr}": "alice@sender.example"}),
                (b"R", mc.encode_command(mc.Rcpt((f"<{rcpt}>",))), {"{rcpt_addr}": rcpt}),
                (b"T", mc.encode_command(mc.Data()), None),
            ]
            steps += [(b"L", mc.encode_command(mc.Header(n, v)), None) for n, v in headers]
            steps += [(b"N", mc.encode_command(mc.EndOfHeaders()), None),
                      (b"B", mc.encode_command(mc.Body(body)), None)]
            pending = bytearray()
            for code, packet, macros in steps:
                if code in _SKIP and proto & _SKIP[code]:
                    continue
                if macros:
                    pending += mc.encode_command(mc.Macros(code, macros))
                pending += packet
                if not proto & _NR[code]:
                    writer.write(bytes(pending))
                    pending.clear()
                    answer = await self._read(reader)
                    if not isinstance(answer, mc.Continue):
                        self.answers[type(answer).__name__] += 1
                        return
            pending += mc.encode_command(mc.Macros(b"E", {"{msg_size}": str(len(body))}))
            pending += mc.encode_command(mc.EndOfMessage())
            writer.write(bytes(pending))
            while True:
                answer = await self._read(reader)
                if isinstance(answer, (mc.Accept, mc.Discard, mc.Tempfail, mc.Reject, mc.ReplyCode, mc.Continue)):
                    self.answers[type(answer).__name__] += 1
                    break
            writer.write(mc.encode_command(mc.Quit()))
        finally:
            writer.close()


async def run(args: argparse.Namespace) -> dict[str, object]:
    client = Client(args.target, args.size)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(args.recipients_from, args.recipients_from + args.messages):
        queue.put_nowait(n)

    async def session() -> None:
        while not queue.empty():
            await client.message(f"{queue.get_nowait()}bob@rcpt.example")

    cpu0 = cpu_seconds(args.pid) if args.pid else 0.0
    t0 = time.perf_counter()
    await asyncio.gather(*(session() for _ in range(args.sessions)))
    elapsed = time.perf_counter() - t0
    cpu = cpu_seconds(args.pid) - cpu0 if args.pid else float("nan")
    return {"target": args.target, "messages": args.messages, "seconds": round(elapsed, 3),
            "msg_per_s": round(args.messages / elapsed, 1),
            "server_cpu_ms_per_msg": round(1000 * cpu / args.messages, 3), "answers": dict(client.answers)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", required=True, help="inet:HOST:PORT or unix:/path")
    ap.add_argument("--pid", type=int, default=0, help="the milter's pid, for its CPU time")
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--recipients-from", type=int, default=0)
    print(json.dumps(asyncio.run(run(ap.parse_args()))))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""In-process cost of one milter message's decision and effects, without sockets:
``Engine.decide()`` and ``Runtime.apply()`` on bench/populate.py's store, for
``--messages`` messages to ``<n>bob@rcpt.example`` (every rule active), warm
rules cache (a first pass loads it).  With ``--profile`` prints the cProfile
top functions.  Complements bench/milter_cpu.sh, which adds the protocol.

    python bench/decide_apply.py /tmp/mailadmin-bench/store-100000.db --messages 2000 [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import email.utils
import os
import pstats
import time
from pathlib import Path

from mailadmin.config import load_all
from mailadmin.message import Envelope, Message
from mailadmin.wiring import make_runtime

ROOT = Path(__file__).resolve().parent.parent


def message(rcpt: str) -> bytes:
    return (
        "Received: from localhost (localhost [127.0.0.1])\r\n\tby mx.rcpt.example (Postfix) with SMTP id 4Xk2\r\n"
        f"\tfor <{rcpt}>; {email.utils.formatdate()}\r\n"
        'From: "Alice Example" <alice@sender.example>\r\n'
        f'To: "Bob Example" <{rcpt}>\r\n'
        "Subject: Quarterly report draft for review\r\n"
        f"Date: {email.utils.formatdate()}\r\n"
        f"Message-ID: <{time.time_ns()}@sender.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"us-ascii\"\r\n"
        "Content-Transfer-Encoding: 7bit\r\n\r\n"
    ).encode() + b"Lorem ipsum dolor sit amet, consectetur adipiscing elit\r\n" * 70


async def run(args: argparse.Namespace) -> None:
    os.environ.update(MAILADMIN_DATABASE_URL=f"sqlite:///{args.store}",
                      MAILADMIN_GEOIP_DATABASE_PATH=str(ROOT / "var/geoip/dbip-country.mmdb"),
                      MAILADMIN_LOGGING_LEVEL="WARNING")
    config = load_all(ROOT / "conf/mailadmin.toml", os.environ)
    runtime = make_runtime(lambda: config)

    async def one(n: int) -> None:
        rcpt = f"{n}bob@rcpt.example"
        envelope = Envelope("alice@sender.example", (rcpt,), "127.0.0.1", "localhost", "client.example",
                            None, "4Xk2")
        msg = Message(message(rcpt))
        decision = await runtime.engine.decide(envelope, msg)
        if not args.decide_only:
            await runtime.apply(decision, msg)

    async def batch() -> float:
        t0 = time.process_time()
        for start in range(0, args.messages, args.sessions):
            await asyncio.gather(*(one(n) for n in range(start, min(start + args.sessions, args.messages))))
        return time.process_time() - t0

    await batch()  # loads the cache, takes the auto-reply claims
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
    runs = [await batch() for _ in range(1 if args.profile else args.passes)]
    cpu = min(runs)
    if args.profile:
        profile.disable()
        pstats.Stats(profile).sort_stats("cumulative").print_stats(45)
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    print(f"decide+apply: {1000 * cpu / args.messages:.3f} ms CPU per message ({args.messages} messages, "
          f"{args.sessions} at a time; the least of {len(runs)} passes)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("store")
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--decide-only", action="store_true", help="leave the effects out")
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--profile", action="store_true")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()

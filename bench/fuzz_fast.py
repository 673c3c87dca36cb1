"""The long fuzz run at 10**6 inputs per target (issue 10), as a tight
in-process mutation loop over the fuzz tier's own targets.

    .venv/bin/python bench/fuzz_fast.py [--inputs N] [--seconds S] [--only SUBSTRING]
                                        [--rss-mib M] [--report PATH]

The targets are the bodies of the tests in tests/fuzz/ (each test's
``hypothesis.inner_test``: the same assertions, the same allowed outcomes),
fed by seeded ``random.Random`` generators that mirror the tier's
strategies (tests/fuzz/harness.py ``mutated_message`` and the per-test
ones) instead of Hypothesis, whose bookkeeping is most of the cost per input
(15-400 inputs/s a target).  The SMTP dialogue target keeps one loopback
server per process and opens one connection per input, as a real MTA does.

Rules, enforced per input:

- an exception the target does not allow (an assertion of the test, or any
  unhandled exception) is a crash: the input is written to
  ``test-artifacts/fuzz-fast/`` and counted, and the run goes on;
- more than 1 s of CPU time for one input is a hang (``ITIMER_PROF`` raises
  in the target; CPU rather than wall time, because the run is meant for
  ``nice -n 19`` on a shared machine where wall time measures the neighbours);
  the slowest input's wall and CPU time are reported too;
- memory: the process's peak RSS must stay under ``--rss-mib`` (default 512)
  — checked every 1,000 inputs, and the run of that target stops with a
  failure if it does not.

Each target runs in its own process (its peak RSS is its own), until
``--inputs`` (default 10**6) or ``--seconds`` per target, or SIGTERM (the
target stops after the current input and reports); how far each target got
is also written every 5,000 inputs to ``test-artifacts/fuzz-fast/<target>.progress.json``.  The report, per
target: inputs, crashes, hangs, peak RSS, seconds, rate, the slowest input;
as JSON in ``--report`` (default test-artifacts/fuzz-fast.json).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import pickle
import random
import resource
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
ARTIFACTS = REPO / "test-artifacts" / "fuzz-fast"
DEADLINE_SECONDS = 1.0


class Hang(KeyboardInterrupt):
    """One input used more than DEADLINE_SECONDS of CPU.  A KeyboardInterrupt so
    that no ``except Exception`` on the way (asyncio's callback handler, the
    adapters' own last-resort handlers) can swallow it."""


def _on_deadline(signum: int, frame: object) -> None:
    raise Hang(f"more than {DEADLINE_SECONDS} s of CPU for one input")


# ---------------------------------------------------------------- generators


def _binary(rng: random.Random, max_size: int) -> bytes:
    return rng.randbytes(rng.randint(0, max_size))


def _mutated(rng: random.Random) -> bytes:
    """harness.mutated_message, with random.Random instead of Hypothesis."""
    from tests.fuzz.harness import CORPUS, NASTY

    data = bytearray(rng.choice(CORPUS))
    for _ in range(rng.randint(0, 6)):
        kind = rng.choice(("truncate", "flip", "insert", "random", "duplicate", "drop"))
        at = rng.randint(0, max(0, len(data) - 1))
        if kind == "truncate":
            del data[at:]
        elif kind == "flip" and data:
            data[at] ^= 1 << rng.randint(0, 7)
        elif kind == "insert":
            data[at:at] = rng.choice(NASTY)
        elif kind == "random":
            data[at:at] = _binary(rng, 40)
        else:
            lines = bytes(data).split(b"\n")
            index = rng.randint(0, len(lines) - 1)
            if kind == "duplicate":
                lines.insert(index, lines[index])
            else:
                del lines[index]
            data = bytearray(b"\n".join(lines))
    return bytes(data)


def _ints(rng: random.Random, high: int, max_size: int) -> list[int]:
    return [rng.randint(0, high) for _ in range(rng.randint(0, max_size))]


def _text(rng: random.Random, max_size: int) -> str:
    """Arbitrary text as Hypothesis's ``st.text()`` draws it (no lone surrogates: a ``str``
    of that kind only comes from bytes, which _header_text draws surrogate-escaped):
    mostly ASCII, some Japanese, controls, combining marks and astral characters."""
    pools = ("abcdefghijklmnopqrstuvwxyz ABC=?_<>@,;:\"().\t", "あいう漢字カナ\u3000\uff01",
             "\x00\x01\x1b\x7f\r\n\u200b\ufeff\x85\u2028", "\u0301\U0001f600\U00020000\uffff")
    return "".join(rng.choice(pools[min(3, int(rng.random() ** 3 * 4))]) for _ in range(rng.randint(0, max_size)))


def _header_text(rng: random.Random) -> str:
    from tests.fuzz.harness import NASTY

    choice = rng.randrange(3)
    if choice == 0:
        return _text(rng, 400)
    if choice == 1:
        return _binary(rng, 400).decode("ascii", "surrogateescape")
    pieces = [n.decode("latin-1") for n in NASTY] + ["=?ISO-2022-JP?B?GyRCJEgbKEI=?=", " ",
                                                     "=?shift_jis?q?=82=A0?=", "\u3042"]
    return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))


def _recipients(rng: random.Random, high: int) -> list[str]:
    from tests.fuzz.harness import RECIPIENTS

    return [rng.choice(RECIPIENTS) for _ in range(rng.randint(1, high))]


def _xforward(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return _text(rng, 80)
    names = ["NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE", "LOGIN", "X"]
    values = ["[UNAVAILABLE]", "IPV6:::1", "192.0.2.10", "a+2Bb", "+", "+ZZ", "", "taro@example.jp", "4AbC1"]
    return " ".join(f"{rng.choice(names)}={rng.choice(values)}" for _ in range(rng.randint(0, 6)))


def _policy_block(rng: random.Random) -> bytes:
    from tests.fuzz.test_fuzz_policy import ATTRIBUTES

    fixed = ["smtpd_access_policy", "RCPT", "MAIL", "taro@example.jp", "192.0.2.10", "203.0.113.9", "::1", "",
             "abc.123", "x" * 300]
    pairs = [(rng.choice(ATTRIBUTES), rng.choice(fixed) if rng.random() < 0.6
              else _text(rng, 30).replace("\n", "")) for _ in range(rng.randint(0, 14))]
    lines = [f"{k}={v}".encode("utf-8", "surrogateescape") for k, v in pairs]
    if rng.random() < 0.5:
        lines.insert(rng.randint(0, len(lines)), _binary(rng, 60).replace(b"\n", b""))
    return b"\n".join(lines) + b"\n\n"


def _command_line(rng: random.Random) -> bytes:
    fixed = [b"EHLO mx.example.jp", b"HELO x", b"MAIL FROM:<alice@example.org>", b"MAIL FROM:<>",
             b"RCPT TO:<taro@example.jp>", b"RCPT TO:<jiro@example.jp> NOTIFY=NEVER", b"DATA", b"RSET",
             b"NOOP", b"XFORWARD ADDR=192.0.2.10 NAME=mx IDENT=Q1", b"XFORWARD BAD", b"VRFY x",
             b"MAIL FROM:<a@b> SMTPUTF8 BODY=8BITMIME", b"STARTTLS", b"AUTH PLAIN AAAA", b"."]
    return rng.choice(fixed) if rng.random() < 0.6 else _binary(rng, 100).replace(b"\n", b"")


def _damage(rng: random.Random) -> list[tuple[str, int, bytes]]:
    return [(rng.choice(("flip", "insert", "cut", "length")), rng.randint(0, 10**6), rng.randbytes(rng.randint(1, 8)))
            for _ in range(rng.randint(0, 3))]


# ---------------------------------------------------------------- targets


Target = tuple[Callable[..., Any], Callable[[random.Random], tuple[Any, ...]]]


def _inner(module: str, name: str) -> Callable[..., Any]:
    test = getattr(__import__(module, fromlist=[name]), name)
    inner: Callable[..., Any] = test.hypothesis.inner_test
    return inner


def _smtp_dialogue_target() -> Target:
    """One loopback content filter for the whole run; one connection per input."""
    from mailadmin.adapters.content_filter import start_content_filter
    from mailadmin.listeners import bound_address
    from tests.fuzz.harness import PureRuntime

    loop = asyncio.get_event_loop()  # run_one's one loop
    server = loop.run_until_complete(start_content_filter("inet:127.0.0.1:0", PureRuntime()))  # type: ignore[arg-type]
    port = int(bound_address(server).rsplit(":", 1)[1])

    async def dialogue(lines: list[bytes], message: bytes) -> list[bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        payload = b"".join(line + b"\r\n" for line in lines)
        payload += (b"EHLO mx\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<taro@example.jp>\r\nDATA\r\n"
                    + message.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\nQUIT\r\n")
        writer.write(payload)
        await writer.drain()
        received = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
        return received.split(b"\r\n")

    def check(lines: list[bytes], message: bytes) -> None:
        replies = [r for r in loop.run_until_complete(dialogue(lines, message)) if r]
        assert replies and replies[0].startswith(b"220 ")
        for reply in replies:
            assert reply[:3].isdigit() and reply[3:4] in (b" ", b"-"), reply
            assert b"Error: (" not in reply, f"an unhandled exception answered: {reply!r}"
        if any(r.startswith((b"421 ", b"502 5.5.1 Too many unrecognized")) for r in replies):
            return  # aiosmtpd hung up on the client: a closed connection
        assert [r for r in replies if r.startswith((b"250 2.0.0 Ok: filtered", b"451 "))], replies

    return check, lambda rng: ([_command_line(rng) for _ in range(rng.randint(0, 8))], _mutated(rng))


def targets() -> dict[str, Callable[[], Target]]:
    milter, policy, cf = "tests.fuzz.test_fuzz_milter", "tests.fuzz.test_fuzz_policy", "tests.fuzz.test_fuzz_content_filter"
    mailtext, engine = "tests.fuzz.test_fuzz_mailtext", "tests.fuzz.test_fuzz_engine"
    return {
        "milter.decoder": lambda: (_inner(milter, "test_decoder_on_arbitrary_bytes_in_arbitrary_chunks"),
                                   lambda r: (_binary(r, 2000), _ints(r, 4000, 12))),
        "policy.parser": lambda: (_inner(policy, "test_parser_on_arbitrary_bytes"), lambda r: (_binary(r, 3000),)),
        "mailtext.decode_header": lambda: (_inner(mailtext, "test_header_decoding_never_raises_and_gives_printable_text"),
                                           lambda r: (_header_text(r),)),
        "mailtext.addresses": lambda: (_inner(mailtext, "test_address_extraction_never_raises"),
                                       lambda r: (_header_text(r),)),
        "mailtext.mime": lambda: (_inner(mailtext, "test_mime_walk_and_removal_on_mutated_messages"),
                                  lambda r: (_mutated(r),)),
        "mailtext.compose": lambda: (_inner(mailtext, "test_header_rewrites_on_mutated_messages"),
                                     lambda r: (_mutated(r), _text(r, 20))),
        "engine.decide": lambda: (_inner(engine, "test_decide_on_mutated_messages"),
                                  lambda r: (_mutated(r), r.choice(["alice@example.org", "", "MAILER-DAEMON@example.org",
                                                                    "x@example.net", "bob@example.com",
                                                                    "\udcff@example.org", "no-at-sign"]),
                                             _recipients(r, 4), r.choice([None, "taro@example.jp"]))),
        "milter.connection": lambda: (_inner(milter, "test_milter_connection_on_corrupted_command_streams"),
                                      lambda r: (_mutated(r), _recipients(r, 3), r.random() < 0.5, _damage(r),
                                                 _ints(r, 10**6, 8))),
        "policy.connection": lambda: (_inner(policy, "test_policy_connection_on_request_streams"),
                                      lambda r: ([_policy_block(r) for _ in range(r.randint(1, 5))],
                                                 r.choice([b"", b"x" * 70_000, b"\n", b"a=b"]), _ints(r, 10**6, 8))),
        "content_filter.data": lambda: (_inner(cf, "test_end_of_data_on_mutated_messages"),
                                        lambda r: (_mutated(r), r.choice(["alice@example.org", "<>", "", "x@example.net"]),
                                                   _recipients(r, 4), _xforward(r))),
        "content_filter.smtp": _smtp_dialogue_target,
    }


# ---------------------------------------------------------------- one target


class _OneLoop:
    """``asyncio`` as the test modules see it, but ``run`` reuses one event loop:
    a new loop per input (and the thread pool the rules lookup starts in it)
    is most of the cost of an input.  Tasks an input leaves behind are
    cancelled after it, as ``asyncio.run`` would."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)

    def run(self, coro: Any) -> Any:
        try:
            return self.loop.run_until_complete(coro)
        finally:
            left = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for task in left:
                task.cancel()
            if left:
                self.loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)


TEST_MODULES = ("tests.fuzz.test_fuzz_milter", "tests.fuzz.test_fuzz_policy", "tests.fuzz.test_fuzz_content_filter",
                "tests.fuzz.test_fuzz_engine")


def run_one(name: str, inputs: int, seconds: float, rss_mib: int, seed: int) -> dict[str, Any]:
    import logging

    logging.disable(logging.CRITICAL)  # a million inputs' log lines are not the point
    shim = _OneLoop()
    for module in TEST_MODULES:
        importlib.import_module(module).asyncio = shim  # type: ignore[attr-defined]
    check, generate = targets()[name]()
    rng = random.Random(seed)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGPROF, _on_deadline)
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))  # stop, and report
    progress = ARTIFACTS / f"{name}.progress.json"
    crashes = hangs = done = 0
    slowest = (0.0, 0.0)  # (cpu, wall) of the slowest input
    failures: list[str] = []
    rss_exceeded = False
    started = time.monotonic()

    def result() -> dict[str, Any]:
        elapsed = time.monotonic() - started
        return {"target": name, "inputs": done, "crashes": crashes, "hangs": hangs, "seconds": round(elapsed, 1),
                "rate_per_s": round(done / elapsed, 1) if elapsed else 0.0,
                "cpu_seconds": round(time.process_time(), 1),
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "rss_bound_mib": rss_mib, "rss_exceeded": rss_exceeded,
                "slowest_cpu_s": round(slowest[0], 3), "slowest_wall_s": round(slowest[1], 3),
                "seed": seed, "failures": failures[:10]}

    while done < inputs and time.monotonic() - started < seconds and not stopping:
        args = generate(rng)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        signal.setitimer(signal.ITIMER_PROF, DEADLINE_SECONDS)
        try:
            check(*args)
        except Hang:
            hangs += 1
            failures.append(_save(name, "hang", done, args, "more than 1 s of CPU"))
        except Exception:
            crashes += 1
            failures.append(_save(name, "crash", done, args, traceback.format_exc()))
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        if cpu > slowest[0]:
            slowest = (cpu, wall)
        done += 1
        if done % 1000 == 0 and resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > rss_mib * 1024:
            rss_exceeded = True
            break
        if crashes + hangs >= 50:
            break
        if done % 5000 == 0:  # how far it got, should the run be cut short
            progress.write_text(json.dumps(result()))
    final = result()
    progress.write_text(json.dumps(final))
    return final


def _save(name: str, kind: str, index: int, args: tuple[Any, ...], detail: str) -> str:
    path = ARTIFACTS / f"{name}-{kind}-{index}.pickle"
    path.write_bytes(pickle.dumps(args))
    path.with_suffix(".txt").write_text(detail)
    return f"{path.name}: {detail.strip().splitlines()[-1][:300]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=10**6)
    parser.add_argument("--seconds", type=float, default=float("inf"), help="at most this long per target")
    parser.add_argument("--only", default="", help="comma-separated substrings of target names")
    parser.add_argument("--rss-mib", type=int, default=512)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--report", type=Path, default=REPO / "test-artifacts" / "fuzz-fast.json")
    parser.add_argument("--target", help=argparse.SUPPRESS)  # one target, in a child process
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    if args.target:
        print(json.dumps(run_one(args.target, args.inputs, args.seconds, args.rss_mib, seed)))
        return 0
    results: list[dict[str, Any]] = []
    for name in targets():
        if not any(part in name for part in args.only.split(",")):
            continue
        child = subprocess.run([sys.executable, __file__, "--target", name, "--inputs", str(args.inputs),
                                "--seconds", str(args.seconds), "--rss-mib", str(args.rss_mib),
                                "--seed", str(seed)], capture_output=True, text=True, cwd=REPO, check=False)
        try:
            result = json.loads(child.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            result = {"target": name, "error": (child.stdout + child.stderr)[-4000:]}
        results.append(result)
        print(f"{name:24} inputs={result.get('inputs', 0):>8} crashes={result.get('crashes', '?')} "
              f"hangs={result.get('hangs', '?')} peak_rss={result.get('peak_rss_mib', '?')} MiB "
              f"{result.get('seconds', '?')} s ({result.get('rate_per_s', '?')}/s) "
              f"slowest cpu={result.get('slowest_cpu_s', '?')} s", flush=True)
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(results, indent=2))
    ok = all(r.get("crashes") == 0 and r.get("hangs") == 0 and not r.get("rss_exceeded") and "error" not in r
             for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""One mailbox with 10,000 From and 10,000 Subject reject entries: how long
does ``Engine.decide()`` take per message?  (Issue 9 goal: ≤ 1 ms.)

The store is a real SQLite file migrated with ``db.upgrade``; the engine is
built as every daemon role builds it (``config.load_all`` of conf/mailadmin.toml
with the environment overrides, ``wiring.open_store`` with its rules cache,
``wiring.make_engine``), and decision log lines are formatted as in the daemon
(INFO, to /dev/null).  Each message is parsed afresh, as the daemon parses
each message it gets.  Scanners are off for this mailbox.

Per message shape it reports the median and p95 of ``decide()`` with

- ``compiled``: the current code, the snapshot's compiled lists (mailtext/matchers.py);
- ``linear``: the reference functions over the entry tuples, which is what
  the checks ran before the lists were compiled (same run, same store);

and the cost of the first message after the rules generation changed (the
snapshot read from the store again and its lists compiled again).

    .venv/bin/python bench/decide_entries.py [--entries 10000] [--rounds 400]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import email.utils
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailadmin.checks.reject_lists import matching_subject_entry  # noqa: E402
from mailadmin.config import load_all  # noqa: E402
from mailadmin.message import Envelope, Message  # noqa: E402
from mailadmin.mailtext.addresses import first_matching_entry  # noqa: E402
from mailadmin.mailtext.entries import sender_entry_key, subject_entry_key  # noqa: E402
from mailadmin.config.model import Policy  # noqa: E402
from mailadmin.store import db, mailboxes, rules  # noqa: E402
from mailadmin.store.models import Mailbox, RuleEntry  # noqa: E402
from mailadmin.store.snapshots import MailboxRules  # noqa: E402
from mailadmin import wiring  # noqa: E402

DOMAIN = "example.jp"
BOX = f"taro@{DOMAIN}"


def sender_entries(n: int) -> list[str]:
    """A realistic mix: whole domains, exact domains, single addresses."""
    out = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            out.append(f"spam{i:05d}.example")
        elif kind == 1:
            out.append(f"@junk{i:05d}.example")
        else:
            out.append(f"sales{i:05d}@bulk.example")
    return out


def subject_entries(n: int) -> list[str]:
    out = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            out.append(f"未承諾広告{i:05d}")
        elif kind == 1:
            out.append(f"limited offer {i:05d}")
        else:
            out.append(f"ＳＡＬＥ情報{i:05d}")  # full-width, matches half-width mail
    return out


def populate(url: str, n: int) -> tuple[list[str], list[str]]:
    db.upgrade(url)
    factory = db.make_session_factory(db.make_engine(url))
    now = dt.datetime.now(dt.timezone.utc)
    senders, subjects = sender_entries(n), subject_entries(n)
    with factory.begin() as s:
        mailboxes.add_domain(s, DOMAIN, smtp_server="smtp.example.jp", pop_server="pop.example.jp")
    with factory.begin() as s:
        mailboxes.add_mailbox(s, BOX, Policy())
        rules.set_virus_scan(s, BOX, False)
        rules.set_spam_settings(s, BOX, scan=False, quarantine=False, notice=False)
        box_id = s.scalar(select(Mailbox.id).where(Mailbox.address == BOX))
        rows: list[dict[str, Any]] = []
        rows += [{"mailbox_id": box_id, "kind": "reject_sender", "value": v,
                  "normalized": sender_entry_key(v), "created_at": now} for v in senders]
        rows += [{"mailbox_id": box_id, "kind": "reject_subject", "value": v,
                  "normalized": subject_entry_key(v), "created_at": now} for v in subjects]
        rows += [{"mailbox_id": box_id, "kind": "allow_list", "value": v,
                  "normalized": sender_entry_key(v), "created_at": now}
                 for v in ("friend@partner.example", "partner.example")]
        s.execute(insert(RuleEntry), rows)
    return senders, subjects


def iso2022jp_word(text_: str) -> str:
    return "=?ISO-2022-JP?B?" + base64.b64encode(text_.encode("iso-2022-jp")).decode("ascii") + "?="


def utf8_words(text_: str, chunk: int = 15) -> str:
    words = ["=?UTF-8?B?" + base64.b64encode(text_[i:i + chunk].encode()).decode("ascii") + "?="
             for i in range(0, len(text_), chunk)]
    return "\r\n ".join(words)


def raw_message(sender: str, subject_header: str) -> bytes:
    lines = [
        f"From: {sender}",
        f"To: {BOX}",
        f"Subject: {subject_header}",
        f"Date: {email.utils.formatdate(localtime=True)}",
        f"Message-ID: {email.utils.make_msgid(domain='bench.example')}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=UTF-8",
        "",
        "Lunch on Friday at noon?",
        "",
    ]
    return "\r\n".join(lines).encode("utf-8")


def shapes(senders: list[str], subjects: list[str]) -> list[tuple[str, str, bytes, str]]:
    """(name, envelope sender, raw message, expected reason)."""
    clean = "alice@clean.example"
    last_s, last_j = senders[-1], subjects[-1]
    from_last = (f"x@mx.{last_s}" if "@" not in last_s
                 else (f"x{last_s}" if last_s.startswith("@") else last_s))
    long_subject = " ".join(f"word{i}" for i in range(600))  # ~5,800 characters, folded
    long_folded = "\r\n ".join(long_subject[i:i + 70] for i in range(0, len(long_subject), 70))
    last_sale = next(e for e in reversed(subjects) if e.startswith("ＳＡＬＥ"))
    jp = "お打ち合わせの件、来週の火曜日でいかがでしょうか"
    return [
        ("no match", clean, raw_message(f"Alice <{clean}>", "Meeting notes for Tuesday"), "no_rule_matched"),
        ("From: first entry", clean, raw_message(f"<a@mx.{senders[0]}>", "Hello"),
         f"reject_sender:{senders[0]}"),
        ("From: last entry", clean, raw_message(f"<{from_last}>", "Hello"), f"reject_sender:{last_s}"),
        ("Subject: first entry", clean, raw_message(f"<{clean}>", utf8_words(f"【{subjects[0]}】のお知らせ")),
         f"reject_subject:{subjects[0]}"),
        ("Subject: last entry (Japanese, UTF-8)", clean, raw_message(f"<{clean}>", utf8_words(f"【{last_j}】")),
         f"reject_subject:{last_j}"),
        ("Subject: last full-width entry, half-width mail", clean,
         raw_message(f"<{clean}>", utf8_words(f"Big {last_sale.replace('ＳＡＬＥ', 'sale')}!")),
         f"reject_subject:{last_sale}"),
        ("long subject (5.8k chars), no match", clean, raw_message(f"<{clean}>", long_folded), "no_rule_matched"),
        ("Japanese subject (ISO-2022-JP), no match", clean, raw_message(f"<{clean}>", iso2022jp_word(jp)),
         "no_rule_matched"),
    ]


class _LinearSender:
    def __init__(self, entries: tuple[str, ...]) -> None:
        self.entries = entries

    def first_match(self, addresses: Iterable[str]) -> str | None:
        return first_matching_entry(self.entries, addresses)


class _LinearSubject:
    def __init__(self, entries: tuple[str, ...]) -> None:
        self.entries = entries

    def first_match(self, subject: str | None) -> str | None:
        return matching_subject_entry(self.entries, subject)


COMPILED = {name: getattr(MailboxRules, name) for name in
            ("reject_sender_matcher", "allow_list_matcher", "reject_subject_matcher")}
LINEAR = {
    "reject_sender_matcher": property(lambda self: _LinearSender(self.reject_sender)),
    "allow_list_matcher": property(lambda self: _LinearSender(self.allow_list)),
    "reject_subject_matcher": property(lambda self: _LinearSubject(self.reject_subject)),
}


def use(matchers: dict[str, Any]) -> None:
    for name, prop in matchers.items():
        setattr(MailboxRules, name, prop)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def time_decide(engine: Any, mail_from: str, raw: bytes, rounds: int, expected: str) -> list[float]:
    envelope = Envelope(mail_from, (BOX,), "192.0.2.10", "mx.clean.example", "mx.clean.example")
    out = []
    for _ in range(rounds):
        message = Message(raw)
        started = time.perf_counter()
        decision = await engine.decide(envelope, message)
        out.append((time.perf_counter() - started) * 1000)
        reason = decision.outcome(BOX).reason
        assert reason == expected, (reason, expected)
    return out


async def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="mailadmin-bench-entries-"))
    url = f"sqlite:///{work}/bench.db"
    started = time.perf_counter()
    senders, subjects = populate(url, args.entries)
    print(f"store: {url}, {args.entries} From + {args.entries} Subject entries "
          f"(populated in {time.perf_counter() - started:.1f} s)")
    environ = {**os.environ, "MAILADMIN_DATABASE_URL": url,
               "MAILADMIN_GEOIP_DATABASE_PATH": str(ROOT / "var/geoip/dbip-country.mmdb")}
    config = load_all(ROOT / "conf/mailadmin.toml", environ)
    store = wiring.open_store(config)
    engine = wiring.make_engine(lambda: config, store)
    logging.basicConfig(level=logging.INFO, stream=open(os.devnull, "w"))  # noqa: SIM115

    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cpu, Python {platform.python_version()}; "
          f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    cases = shapes(senders, subjects)
    rows = []
    for name, mail_from, raw, expected in cases:
        use(COMPILED)
        await time_decide(engine, mail_from, raw, 20, expected)  # warm: snapshot cached and compiled
        compiled = await time_decide(engine, mail_from, raw, args.rounds, expected)
        use(LINEAR)
        linear = await time_decide(engine, mail_from, raw, max(5, args.rounds // 20), expected)
        use(COMPILED)
        rows.append((name, compiled, linear))

    # The first message after any change to the rules (generation bumped): the
    # snapshot is read again and its lists compiled on first use.
    sql_engine = db.make_engine(url)
    cold: list[float] = []
    load_only: list[float] = []
    name, mail_from, raw, expected = cases[0]
    for _ in range(args.cold):
        with sql_engine.begin() as conn:
            conn.execute(text("UPDATE rules_generation SET value = value + 1 WHERE id = 1"))
        cold += await time_decide(engine, mail_from, raw, 1, expected)
        with sql_engine.begin() as conn:
            conn.execute(text("UPDATE rules_generation SET value = value + 1 WHERE id = 1"))
        started = time.perf_counter()
        store.load_rules([BOX])
        load_only.append((time.perf_counter() - started) * 1000)
    snapshot = store.load_rules([BOX])[BOX]
    compile_ms = []
    for _ in range(args.cold):
        fresh = MailboxRules(address=snapshot.address, domain=snapshot.domain,
                             reject_sender=snapshot.reject_sender, reject_subject=snapshot.reject_subject)
        started = time.perf_counter()
        fresh.reject_sender_matcher  # noqa: B018
        fresh.reject_subject_matcher  # noqa: B018
        compile_ms.append((time.perf_counter() - started) * 1000)

    print()
    print(f"| message | compiled median ms | compiled p95 ms | linear median ms | linear p95 ms | speed-up |")
    print("|---|---|---|---|---|---|")
    for name, compiled, linear in rows:
        cm, lm = statistics.median(compiled), statistics.median(linear)
        print(f"| {name} | {cm:.3f} | {pct(compiled, 0.95):.3f} | {lm:.2f} | {pct(linear, 0.95):.2f} | {lm / cm:.0f}× |")
    worst = max(pct(c, 0.95) for _, c, _ in rows)
    print()
    print(f"worst p95 compiled: {worst:.3f} ms (goal ≤ 1 ms: {'met' if worst <= 1.0 else 'NOT met'})")
    print(f"first message after a rules change: median {statistics.median(cold):.1f} ms "
          f"(store read of the snapshot {statistics.median(load_only):.1f} ms, "
          f"compiling both lists {statistics.median(compile_ms):.1f} ms; {args.cold} runs)")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=400, help="decisions per shape (compiled); linear does 1/20")
    ap.add_argument("--cold", type=int, default=7, help="first-message-after-a-change runs")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()

"""Load with faults, and the accounting of every message (issue 10; SPEC §7,
§8, §10; DESIGN "Nothing lost, nothing let in").

One *phase* sends a few dozen messages through a real Postfix to fresh
mailboxes with varied rules — quarantine (reject list), forward (keeping a
copy), auto-reply, spam tag, spam quarantine with notices, virus scan, and
one message to three mailboxes that disagree — and injects one fault while
the mail flows: the first third goes before it, the second third while it
lasts (until the stack shows it was hit), the last third after recovery.
Then Postfix's queue is flushed and the outbox drained, and every
(message, recipient) is accounted for: delivered, quarantined or dropped as
infected — each exactly once and as its mailbox's rules say — with every
generated mail (auto-reply, forward, virus report, quarantine notice) sent
exactly once.  Each message carries ``X-Fault-Seq`` so it is recognised
wherever it ends up.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import func, select, update

from mailadmin.engine.effects import NOT_SCANNED_HEADER
from mailadmin.jobs import OUTBOX_LEASE_SECONDS
from mailadmin.store.models import OutboxMessage
from tests.e2e.stack import REPO_ROOT, Delivered, Stack, send, tail, wait_for
from tests.fixtures.scanners import Attachment, eicar_text, gtube_text, make_message

SEQ_HEADER = "X-Fault-Seq"
ARTIFACT = REPO_ROOT / "test-artifacts" / "faults-accounting.jsonl"
DRAIN_TIMEOUT_SECONDS = 240.0
SENDERS_PER_PHASE = 3  # auto-replies: several messages per sender, one reply each

# What each recipient's rules make of each kind of message.
DELIVERED, QUARANTINED, DROPPED = "delivered", "quarantined", "dropped_infected"


@dataclass
class Mailboxes:
    autoreply: str
    forward: str
    forward_to: str
    reject: str
    tag: str
    spamq: str
    virus: str
    plain: str


@dataclass
class Sent:
    seq: str
    sender: str
    kind: str
    expected: dict[str, str]  # recipient -> DELIVERED / QUARANTINED / DROPPED


@dataclass
class Accounting:
    path: str
    fault: str
    sent: int = 0
    delivered: int = 0
    quarantined: int = 0
    dropped_infected: int = 0
    lost: int = 0
    duplicates: int = 0
    wrong_outcome: int = 0
    unscanned_delivered: int = 0
    auto_replies: int = 0
    auto_replies_expected: int = 0
    forwards: int = 0
    forwards_expected: int = 0
    virus_reports: int = 0
    virus_reports_expected: int = 0
    notices: int = 0
    notices_expected: int = 0
    deferred_seen: int = 0  # Postfix deferrals and temporary refusals the client retried
    # Copies the relay got twice from ONE outbox row: a sender killed between the relay's
    # 250 and recording it (bench/README.md, the at-least-once window).  Not counted in
    # ``duplicates``, which are copies the daemon *decided or enqueued* twice.
    relay_resends: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    resends: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"[{self.path:14} {self.fault:12}] sent={self.sent} = delivered {self.delivered} + quarantined "
                f"{self.quarantined} + dropped_infected {self.dropped_infected}; lost={self.lost} "
                f"duplicates={self.duplicates} wrong={self.wrong_outcome} unscanned_delivered="
                f"{self.unscanned_delivered}; generated: auto-replies {self.auto_replies}/"
                f"{self.auto_replies_expected}, forwards {self.forwards}/{self.forwards_expected}, "
                f"virus reports {self.virus_reports}/{self.virus_reports_expected}, notices "
                f"{self.notices}/{self.notices_expected}; deferrals seen {self.deferred_seen}; "
                f"relay re-sends of one outbox row {self.relay_resends}; {self.seconds:.0f} s")


def make_mailboxes(stack: Stack, prefix: str) -> Mailboxes:
    store = stack.store
    forward_to = f"{prefix}-fwd@elsewhere.example"
    return Mailboxes(
        autoreply=store.mailbox(f"{prefix}ar", spam_scan=False, auto_reply={
            "enabled": True, "subject": "不在のお知らせ", "body": "ただいま不在です。"}),
        forward=store.mailbox(f"{prefix}fw", spam_scan=False,
                              forwarding=[{"address": forward_to, "keep_copy": True}]),
        forward_to=forward_to,
        reject=store.mailbox(f"{prefix}rj", spam_scan=False, reject_sender=["blocked.example"]),
        tag=store.mailbox(f"{prefix}tg", spam_scan=True, spam_quarantine=False),
        spamq=store.mailbox(f"{prefix}sq", spam_scan=True, spam_quarantine=True, quarantine_notice=True),
        virus=store.mailbox(f"{prefix}vr", virus_scan=True, spam_scan=False),
        plain=store.mailbox(f"{prefix}pl", spam_scan=False),
    )


def plan(boxes: Mailboxes, prefix: str, count: int) -> list[tuple[Sent, list[str], bytes]]:
    """``count`` messages cycling through the kinds; senders repeat (auto-reply once each)."""
    return [plan_one(boxes, prefix, n) for n in range(count)]


def plan_one(boxes: Mailboxes, prefix: str, n: int) -> tuple[Sent, list[str], bytes]:
    """The ``n``-th message of a plan."""
    seq = f"{prefix}-{n}"
    kind = ("autoreply", "forward", "reject", "tag", "spamq", "virus", "split")[n % 7]
    sender = f"{prefix}-s{n % SENDERS_PER_PHASE}@sender.example"
    headers = {SEQ_HEADER: seq}
    body = f"Message {seq}.\n"
    attachments: list[Attachment] = []
    if kind == "autoreply":
        expected = {boxes.autoreply: DELIVERED}
    elif kind == "forward":
        expected = {boxes.forward: DELIVERED}
    elif kind == "reject":
        sender = f"{prefix}-b{n}@blocked.example"
        expected = {boxes.reject: QUARANTINED}
    elif kind == "tag":
        body += gtube_text() + "\n"
        expected = {boxes.tag: DELIVERED}
    elif kind == "spamq":
        body += gtube_text() + "\n"
        expected = {boxes.spamq: QUARANTINED}
    elif kind == "virus":
        attachments = [Attachment("invoice.com", eicar_text().encode("ascii"))]
        expected = {boxes.virus: DROPPED}
    else:  # one message, three mailboxes that disagree
        body += gtube_text() + "\n"
        expected = {boxes.tag: DELIVERED, boxes.spamq: QUARANTINED, boxes.plain: DELIVERED}
    rcpts = list(expected)
    data = make_message(body, subject=f"Fault load {seq}", sender=sender, to=", ".join(rcpts),
                        attachments=attachments, headers=headers)
    return Sent(seq, sender, kind, expected), rcpts, data


def _seq_of(item: Delivered) -> str | None:
    value = item.header(SEQ_HEADER)
    return value.strip() if value else None


def outbox_unsent(stack: Stack) -> int:
    with stack.store.sessions() as session:
        n: int = session.scalar(select(func.count()).select_from(OutboxMessage)
                                .where(OutboxMessage.sent_at.is_(None))) or 0
        return n


def make_retries_due(stack: Stack) -> int:
    """What the passing of the retry delay would do, without breaking a lease.

    stack.store.make_outbox_due() makes every unsent item due, including one
    a sender has leased and is sending right now, which would then go out
    twice (a duplicate of the test's making).  Leases and retry delays both
    live in ``next_attempt_at``: an item that failed before and is due within
    the lease's first 540 s is in its backoff (1, 2, 4, 8 minutes), not leased.
    """
    now = dt.datetime.now(dt.timezone.utc)
    horizon = now + dt.timedelta(seconds=OUTBOX_LEASE_SECONDS - 60)
    with stack.store.sessions.begin() as session:
        result = session.execute(update(OutboxMessage).where(
            OutboxMessage.sent_at.is_(None), OutboxMessage.last_error.is_not(None),
            OutboxMessage.next_attempt_at > now, OutboxMessage.next_attempt_at < horizon,
        ).values(next_attempt_at=now - dt.timedelta(seconds=1)))
        return int(result.rowcount)  # type: ignore[attr-defined]


def run_jobs_once(stack: Stack) -> None:
    """``mailadmin serve --once``: every job once, as cron would (sends due quarantine notices)."""
    env = {**os.environ, **stack.daemon.environ}
    run = subprocess.run([sys.executable, "-m", "mailadmin", "--config", str(REPO_ROOT / "conf" / "mailadmin.toml"),
                          "serve", "--once"], env=env, capture_output=True, timeout=120, check=False,
                         cwd=stack.daemon.base)
    assert run.returncode == 0, run.stdout.decode(errors="replace") + run.stderr.decode(errors="replace")


def drain(stack: Stack) -> None:
    """Flush Postfix's queue and make the outbox due until nothing is left anywhere."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    quiet_since: float | None = None
    while True:
        stack.postfix.flush()
        make_retries_due(stack)
        idle = (stack.postfix.busy() == 0 and stack.postfix.deferred() == 0 and outbox_unsent(stack) == 0
                and stack.postfix.busy() == 0)
        now = time.monotonic()
        if idle:
            quiet_since = quiet_since or now
            if now - quiet_since >= 2.0:  # idle twice over a flush: nothing between hops
                return
        else:
            quiet_since = None
        if now > deadline:
            raise AssertionError(f"the stack did not drain: busy={stack.postfix.busy()} deferred="
                                 f"{stack.postfix.deferred()} outbox={outbox_unsent(stack)}\n{stack.diagnostics()}")
        time.sleep(0.5)  # between flushes: each one restarts delivery of the whole deferred queue


SEQ_PATTERN = re.compile(rb"^" + SEQ_HEADER.encode() + rb": (\S+)\r?$", re.MULTILINE | re.IGNORECASE)


def enqueued_rows(stack: Stack) -> tuple[collections.Counter[tuple[str, str]], collections.Counter[tuple[str, str]]]:
    """How many outbox rows carry each (seq, recipient), and each (purpose, recipient)
    for generated mail that has no seq of its own (auto-replies, notices)."""
    by_seq: collections.Counter[tuple[str, str]] = collections.Counter()
    by_purpose: collections.Counter[tuple[str, str]] = collections.Counter()
    with stack.store.sessions() as session:
        for row in session.scalars(select(OutboxMessage)):
            seqs = {m.decode() for m in SEQ_PATTERN.findall(bytes(row.message))}
            for rcpt in row.rcpt_tos:
                by_purpose[(row.purpose, rcpt.lower())] += 1
                for seq in seqs:
                    by_seq[(seq, rcpt.lower())] += 1
    return by_seq, by_purpose


def split_resends(acc: Accounting, what: str, copies: int, rows: int) -> int:
    """Of ``copies`` that arrived, those beyond the outbox ``rows`` that carry them
    are one row relayed again (counted apart); returns the copies left to account."""
    if rows >= 1 and copies > rows:
        acc.relay_resends += copies - rows
        acc.resends.append(f"{what}: {copies} copies from {rows} outbox row(s)")
        return rows
    return copies


def account(stack: Stack, path: str, fault: str, sent: list[Sent], boxes: Mailboxes) -> Accounting:
    acc = Accounting(path, fault)
    rows_by_seq, rows_by_purpose = enqueued_rows(stack)
    delivered: collections.Counter[tuple[str, str]] = collections.Counter()
    reports: collections.Counter[tuple[str, str]] = collections.Counter()
    forwards: collections.Counter[str] = collections.Counter()
    replies: collections.Counter[str] = collections.Counter()
    notices = 0
    seqs = {s.seq for s in sent}
    ours = set(boxes.__dict__.values())
    for item in stack.sink.all():
        seq = _seq_of(item)
        rcpts = {r.lower() for r in item.rcpt_tos}
        if seq in seqs:
            if boxes.forward_to in rcpts:
                forwards[seq] += 1
            for r in rcpts & ours:
                delivered[(seq, r)] += 1
                if item.header(NOT_SCANNED_HEADER) is not None or eicar_text().encode() in item.data:
                    acc.unscanned_delivered += 1
                    acc.problems.append(f"unscanned delivery of {seq} to {r}")
                if gtube_text().encode() in item.data and r != boxes.plain and not item.subject.startswith("[spam]"):
                    acc.unscanned_delivered += 1
                    acc.problems.append(f"untagged spam {seq} delivered to {r}")
            continue
        if item.mail_from == "" and rcpts & ours:
            for s in sent:
                if f"{SEQ_HEADER}: {s.seq}\r".encode() in item.data or f"{SEQ_HEADER}: {s.seq}\n".encode() in item.data:
                    for r in rcpts:
                        reports[(s.seq, r)] += 1
            if boxes.spamq in rcpts:
                notices += 1
        elif item.mail_from == "" and item.header("Auto-Submitted") == "auto-replied":
            for r in rcpts:
                replies[r] += 1
    quarantined: collections.Counter[tuple[str, str]] = collections.Counter()
    for box in (boxes.reject, boxes.spamq, boxes.tag, boxes.plain, boxes.virus, boxes.forward, boxes.autoreply):
        for row in stack.store.quarantine(box):
            raw = bytes(row.message) if hasattr(row, "message") else b""
            for s in sent:
                if f"{SEQ_HEADER}: {s.seq}\r".encode() in raw or f"{SEQ_HEADER}: {s.seq}\n".encode() in raw:
                    quarantined[(s.seq, box)] += 1
    for s in sent:
        for rcpt, want in s.expected.items():
            acc.sent += 1
            rows = rows_by_seq[(s.seq, rcpt)]
            got = {DELIVERED: split_resends(acc, f"{s.seq} to {rcpt}", delivered[(s.seq, rcpt)], rows),
                   QUARANTINED: quarantined[(s.seq, rcpt)],
                   DROPPED: split_resends(acc, f"virus report of {s.seq} to {rcpt}", reports[(s.seq, rcpt)], rows)}
            total = sum(got.values())
            if total == 0:
                acc.lost += 1
                acc.problems.append(f"lost: {s.seq} ({s.kind}) to {rcpt}")
                continue
            if total > 1:
                acc.duplicates += total - 1
                acc.problems.append(f"duplicate: {s.seq} ({s.kind}) to {rcpt}: {got}")
            if got[want] == 0:
                acc.wrong_outcome += 1
                acc.problems.append(f"wrong outcome: {s.seq} ({s.kind}) to {rcpt}: wanted {want}, got {got}")
            acc.delivered += min(1, got[DELIVERED])
            acc.quarantined += min(1, got[QUARANTINED])
            acc.dropped_infected += min(1, got[DROPPED])
    ar_senders = {s.sender.lower() for s in sent if s.kind == "autoreply"}
    acc.auto_replies_expected = len(ar_senders)
    for sender in ar_senders:
        replies[sender] = split_resends(acc, f"auto-reply to {sender}", replies[sender],
                                        rows_by_purpose[("auto_reply", sender)])
    acc.auto_replies = sum(replies[s] for s in ar_senders)
    for sender in ar_senders:
        if replies[sender] != 1:
            acc.problems.append(f"{replies[sender]} auto-replies to {sender}")
    fwd = [s.seq for s in sent if s.kind == "forward"]
    for q in fwd:
        forwards[q] = split_resends(acc, f"forward of {q}", forwards[q], rows_by_seq[(q, boxes.forward_to)])
    acc.forwards_expected, acc.forwards = len(fwd), sum(forwards.values())
    acc.problems += [f"{forwards[q]} forwarded copies of {q}" for q in fwd if forwards[q] != 1]
    infected = [s.seq for s in sent if s.kind == "virus"]
    acc.virus_reports_expected = len(infected)
    acc.virus_reports = sum(min(reports[(q, boxes.virus)], max(1, rows_by_seq[(q, boxes.virus)])) for q in infected)
    acc.notices_expected = 1 if any(QUARANTINED in s.expected.values() and boxes.spamq in s.expected
                                    for s in sent) else 0
    acc.notices = split_resends(acc, f"quarantine notice to {boxes.spamq}", notices,
                                rows_by_purpose[("quarantine_notice", boxes.spamq)])
    if acc.notices != acc.notices_expected:
        acc.problems.append(f"{notices} quarantine notices to {boxes.spamq} (one wanted)")
    return acc


def report(acc: Accounting) -> None:
    print("\n" + acc.line())
    for problem in acc.problems[:20]:
        print("    " + problem)
    for resend in acc.resends:
        print("    relayed again: " + resend)
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    with open(ARTIFACT, "a") as out:
        out.write(json.dumps(asdict(acc)) + "\n")


Fault = Callable[[Stack], AbstractContextManager[Callable[[], bool]]]


def run_phase(stack: Stack, *, path: str, entry_port: int, fault_name: str, fault: Fault,
              count: int = 28) -> Accounting:
    """Send ``count`` messages through ``entry_port`` with ``fault`` injected in the middle."""
    started = time.monotonic()
    prefix = f"{path[:2]}{fault_name[:4]}{int(time.time() * 1000) % 100000}"
    boxes = make_mailboxes(stack, prefix)
    messages = plan(boxes, prefix, count)
    thirds = [messages[i::3] for i in range(3)]
    log_offset = stack.postfix.log_size()

    retry: list[tuple[Sent, list[str], bytes]] = []

    def send_all(batch: list[tuple[Sent, list[str], bytes]]) -> None:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda m: send(entry_port, m[0].sender, m[1], m[2]), batch))
        for message, result in zip(batch, results):
            if result.accepted:
                continue
            # Only a temporary refusal is allowed (e.g. policy delegation down:
            # DEFER_IF_PERMIT); the client keeps the message and tries again later.
            assert 400 <= result.code < 500, f"{message[0].seq} refused: {result}"
            retry.append(message)

    send_all(thirds[0])
    with fault(stack) as was_hit:
        send_all(thirds[1])
        wait_for(was_hit, f"the fault {fault_name} to show", timeout=90, details=stack.diagnostics)
    send_all(thirds[2])
    client_retries = len(retry)
    for _attempt in range(5):
        batch, retry[:] = list(retry), []
        if not batch:
            break
        send_all(batch)
    assert not retry, f"still refused after recovery: {[m[0].seq for m in retry]}"
    drain(stack)
    run_jobs_once(stack)  # quarantine notices, as cron would
    drain(stack)
    acc = account(stack, path, fault_name, [m[0] for m in messages], boxes)
    acc.deferred_seen = stack.postfix.log_since(log_offset).count("status=deferred") + client_retries
    acc.seconds = time.monotonic() - started
    report(acc)
    return acc


def deferrals_since(stack: Stack, offset: int) -> Callable[[], bool]:
    """Postfix deferred a message, or refused one for now at RCPT (policy delegation down)."""
    return lambda: any(s in stack.postfix.log_since(offset) for s in ("status=deferred", "Service unavailable"))


def log_lines(stack: Stack, *levels: str) -> Iterator[str]:
    for run in range(1, stack.daemon.runs + 1):
        path = stack.daemon.base / f"mailadmin-{run}.log"
        for line in tail(path, 100000).splitlines():
            if any(f" {level} " in line or line.startswith(level) for level in levels):
                yield line

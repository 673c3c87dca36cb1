"""The adapter contract through a real Postfix (SPEC §4–§10): mailadmin hooked in
as a milter (the ``main`` smtpd) and as an after-queue SMTP content filter (the
``filter`` smtpd) does the same to the same mail.

Each row of CONTRACT is mailbox rules and messages → the reply the sender sees,
what reaches the sink, what lands in the quarantine and which mails mailadmin
generates (forwards, auto-replies, virus reports, all through the relay); every
row runs through both adapters.  Where the two legitimately differ, that is a
column, not a second copy of the scenario:

- ``Adapter``: where a sender with a queue of its own connects (the milter
  tempfails in the SMTP session, so a queueing hop stands in front of it; the
  content filter is after Postfix's queue already), what that queue logs when
  it defers, and which copies leave through the outbox (the filter re-injects
  every copy; the milter keeps one copy in the transaction, edited by header
  actions, and re-injects only copies that differ from it);
- ``Send.sees``: the reply where it is not 250 (a milter answers at end of
  data; the content filter has accepted before it scans);
- ``Copy.only``: a copy only one adapter delivers (what the filter accepted
  into the queue arrives, what the milter refused the sender keeps);
- ``Copy.kept``: a copy the milter re-injects because another recipient's copy
  is the one it keeps in the transaction.

Every address is fresh for each run (``Box``, ``Out``, ``Sender``), so the
runs share the session stack without seeing each other's mail.  Nothing is
ever bounced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.e2e import mail
from tests.e2e.stack import Delivered, Stack, StoreAccess, send, wait_for
from tests.fixtures.scanners import eicar_text

# ------------------------------------------------------------------ addresses


@dataclass(frozen=True)
class Box:
    """A mailbox of ours, created for each run with the row's rules for ``role``."""

    role: str


@dataclass(frozen=True)
class Out:
    """An address outside our domains (a forwarding destination)."""

    name: str


@dataclass(frozen=True)
class Sender:
    """A sender address no other run uses: ``<name><n>@<domain>``."""

    name: str = "alice"
    domain: str = "sender.example"


# A plain string is that address as it is ("" is the null sender).
Addr = Box | Out | Sender | str


class Book:
    """The addresses of one run: a row's boxes are created up front, the others on first use."""

    def __init__(self, store: StoreAccess, boxes: Mapping[str, Mapping[str, Any]]) -> None:
        self._made: dict[Addr, str] = {}
        for role, rules in boxes.items():
            self._made[Box(role)] = store.mailbox(role, **self.resolve(rules))

    def __getitem__(self, addr: Addr) -> str:
        if isinstance(addr, str):
            return addr
        if addr not in self._made:
            if isinstance(addr, Out):
                self._made[addr] = mail.outside(addr.name)
            elif isinstance(addr, Sender):
                self._made[addr] = mail.sender(addr.name, addr.domain)
            else:
                raise KeyError(f"{addr} is not a mailbox of this row")
        return self._made[addr]

    def resolve(self, value: Any) -> Any:
        """``value`` (rules, a header value) with every address in it made real."""
        if isinstance(value, Mapping):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.resolve(v) for v in value]
        if isinstance(value, Box | Out | Sender):
            return self[value]
        return value


# ------------------------------------------------------------------ the columns


@dataclass(frozen=True)
class Reply:
    """How the sender's SMTP transaction ended (``stack.SmtpResult``'s stage and code)."""

    stage: str
    code: int


ACCEPTED = Reply("done", 250)


@dataclass(frozen=True)
class Msg:
    kind: str = "clean"  # clean, spam (GTUBE), infected (EICAR attached), no_subject
    subject: str | None = None  # None: the kind's default subject
    headers: Mapping[str, str] = field(default_factory=dict)

    def build(self, to: str, frm: str) -> bytes:
        subject = {} if self.subject is None else {"subject": self.subject}
        if self.kind == "clean":
            return mail.clean(to, frm, **subject, **self.headers)
        assert not self.headers, "only clean messages take extra headers"
        if self.kind == "spam":
            return mail.spam(to, frm, **subject)
        if self.kind == "infected":
            return mail.infected(to, frm, **subject)
        assert self.kind == "no_subject" and self.subject is None
        return mail.raw([("From", frm), ("To", to)])


@dataclass(frozen=True)
class Send:
    """One SMTP transaction of the row, in order; the stack settles after each."""

    to: tuple[Addr, ...]
    message: Msg = Msg()
    frm: Addr = Sender()  # the header From, and the envelope sender unless null_sender
    null_sender: bool = False
    # through a hop with a queue of its own (the remote MTA's part), which retries a tempfail
    queued: bool = False
    # the reply per adapter, where it is not ACCEPTED
    sees: Mapping[str, Reply] = field(default_factory=dict)


@dataclass(frozen=True)
class Copy:
    """One message at the sink for an address; unset fields are not checked."""

    subject: str | None = None
    subject_has: str | None = None
    not_subject: str | None = None
    mail_from: Addr | None = None
    headers: Mapping[str, Addr | None] = field(default_factory=dict)  # None: the header is absent
    has_headers: tuple[str, ...] = ()
    body_has: str | None = None  # in the text/plain part
    body_starts: str | None = None  # the text/plain part begins so (white space stripped)
    data_has: bytes | None = None
    data_lacks: bytes | None = None
    # made by mailadmin: the outbox purpose it leaves with (forward, auto_reply, virus_report)
    generated: str | None = None
    # a recipient's copy of the message: False if the milter re-injects it because
    # another recipient's copy (the unchanged one) stays in the transaction
    kept: bool = True
    only: str | None = None  # delivered through this adapter only

    def problems(self, got: Delivered, book: Book) -> list[str]:
        found: list[str] = []

        def expect(ok: bool, what: str) -> None:
            if not ok:
                found.append(what)

        if self.subject is not None:
            expect(got.subject == self.subject, f"Subject {got.subject!r} != {self.subject!r}")
        if self.subject_has is not None:
            expect(self.subject_has in got.subject, f"{self.subject_has!r} not in Subject {got.subject!r}")
        if self.not_subject is not None:
            expect(got.subject != self.not_subject, f"Subject is {self.not_subject!r}")
        if self.mail_from is not None:
            expect(got.mail_from == book[self.mail_from], f"MAIL FROM {got.mail_from!r} != {book[self.mail_from]!r}")
        for name, value in self.headers.items():
            want = None if value is None else book[value]
            expect(got.header(name) == want, f"{name}: {got.header(name)!r} != {want!r}")
        for name in self.has_headers:
            expect(got.header(name) is not None, f"no {name} header")
        if self.body_has is not None or self.body_starts is not None:
            part = got.message.get_body(("plain",))
            body = "" if part is None else part.get_content()
            if self.body_has is not None:
                expect(self.body_has in body, f"{self.body_has!r} not in the body {body[:200]!r}")
            if self.body_starts is not None:
                expect(body.strip().startswith(self.body_starts),
                       f"the body {body[:200]!r} does not begin with {self.body_starts!r}")
        if self.data_has is not None:
            expect(self.data_has in got.data, f"{self.data_has!r} not in the message")
        if self.data_lacks is not None:
            expect(self.data_lacks not in got.data, f"{self.data_lacks!r} is in the message")
        return found


@dataclass(frozen=True)
class Held:
    """One quarantine row of a box."""

    reason_has: str
    sender: Addr | None = None


@dataclass(frozen=True)
class Row:
    id: str
    boxes: Mapping[str, Mapping[str, Any]]  # role -> rules (rules export format; addresses may be Box/Out/Sender)
    sends: tuple[Send, ...]
    # exactly these copies per address; a box of the row that is not listed gets none
    sink: Mapping[Addr, tuple[Copy, ...]]
    # exactly these quarantine rows per box role; a box not listed has none
    held: Mapping[str, tuple[Held, ...]] = field(default_factory=dict)
    # clamd stopped during the sends: nothing may arrive; then started, the queue flushed
    clamd_down: bool = False


@dataclass(frozen=True)
class Adapter:
    name: str
    port: str  # the smtpd hooked to this adapter
    queued_port: str  # where a sender with a queue of its own connects
    deferral_logged: tuple[str, ...]  # one of these is in the maillog when that queue defers
    reinjects_every_copy: bool  # else only the copies that differ from the one kept in the transaction


ADAPTERS = (
    Adapter("milter", port="main", queued_port="upstream", deferral_logged=("451 4.7.1",),
            reinjects_every_copy=False),
    Adapter("content_filter", port="filter", queued_port="filter", deferral_logged=(" 451 ", "4.3.0"),
            reinjects_every_copy=True),
)


# ------------------------------------------------------------------ the table

RCPT = Box("rcpt")
ALICE = Sender()
SPAMMER = Sender("x", "spam.example")
SPAM_QUARANTINE_OFF = {"spam_scan": True, "spam_quarantine": False}
AWAY = {"enabled": True, "subject": "不在のお知らせ", "body": "8月20日まで休暇をいただいております。"}
AUTO_REPLY = Copy(subject_has="不在のお知らせ", mail_from="", headers={"Auto-Submitted": "auto-replied"},
                  body_starts="8月20日", generated="auto_reply")
PERSON, LISTED, ROBOT, LATER = Sender("person"), Sender("list"), Sender("robot"), Sender("later")
PROMO = Sender("promo", "deals.example")
BOSS = Sender("boss", "partner.example")
OFFER_FROM = Sender("alice", "example.org")
FOUR = (Box("blocked"), Box("tagged"), Box("unscanned"), Box("forwarded"))
FOUR_HELD_ALLOWED = (Box("tagged"), Box("quarantined"), Box("forwarder"), Box("allowing"))


def reject_row(id_: str, rules: Mapping[str, list[str]], message: Msg, frm: Sender) -> Row:
    """A reject list hit: quarantined, nothing delivered, nothing back to the sender."""
    return Row(id_, {"rcpt": rules}, (Send((RCPT,), message, frm),),
               sink={RCPT: (), frm: ()}, held={"rcpt": (Held(next(iter(rules)), sender=frm),)})


CONTRACT = (
    Row("clean_mail_is_delivered_unchanged", {"rcpt": {}},
        (Send((RCPT,), Msg(subject="Minutes")),),
        sink={RCPT: (Copy("Minutes", mail_from=ALICE, headers={"X-Spam-Flag": None}),)}),
    reject_row("reject_sender", {"reject_sender": ["spam.example"]}, Msg(), SPAMMER),
    reject_row("reject_sender_subdomain", {"reject_sender": ["spam.example"]}, Msg(),
               Sender("x", "mx.spam.example")),
    reject_row("reject_subject", {"reject_subject": ["SALE"]}, Msg(subject="Ｂｉｇ ＳＡＬＥ today"), ALICE),
    reject_row("header_conditions", {"header_conditions": ["subject_missing"]}, Msg("no_subject"), ALICE),
    Row("allow_list_beats_reject_list_and_spam_scan",
        {"rcpt": {"reject_sender": ["partner.example"], "allow_list": [BOSS]}},
        (Send((RCPT,), Msg("spam", "Q3 plan"), BOSS),),
        sink={RCPT: (Copy("Q3 plan", headers={"X-Spam-Flag": None}),)}),
    Row("spam_is_tagged_when_quarantine_is_off", {"rcpt": SPAM_QUARANTINE_OFF},
        (Send((RCPT,), Msg("spam", "Offer")),),
        sink={RCPT: (Copy("[spam] Offer", headers={"X-Spam-Flag": "YES"}, has_headers=("X-Spam-Status",)),)}),
    Row("spam_tag_is_never_doubled", {"rcpt": SPAM_QUARANTINE_OFF},
        (Send((RCPT,), Msg("spam", "[spam] Cheap watches")),),
        sink={RCPT: (Copy("[spam] Cheap watches", headers={"X-Spam-Flag": "YES"},
                          has_headers=("X-Spam-Status",)),)}),
    Row("spam_is_quarantined_when_quarantine_is_on", {"rcpt": {"spam_scan": True, "spam_quarantine": True}},
        (Send((RCPT,), Msg("spam")),),
        sink={RCPT: ()}, held={"rcpt": (Held("spam"),)}),
    Row("infected_mail_is_dropped_and_the_owner_gets_a_report", {"rcpt": {"virus_scan": True}},
        (Send((RCPT,), Msg("infected", "Invoice 42")),),
        # the original is never delivered, and the report never holds the infected content
        sink={RCPT: (Copy(not_subject="Invoice 42", mail_from="", body_has="Invoice 42",
                          data_has=b"Eicar-Test-Signature", data_lacks=eicar_text().encode(),
                          generated="virus_report"),),
              ALICE: ()}),
    Row("forwarding_with_and_without_a_copy",
        {"keeper": {"forwarding": [{"address": Out("keep"), "keep_copy": True}]},
         "mover": {"forwarding": [{"address": Out("away"), "keep_copy": False}]}},
        (Send((Box("keeper"),), Msg(subject="for keeper")), Send((Box("mover"),), Msg(subject="for mover"))),
        sink={Box("keeper"): (Copy("for keeper"),),
              Out("keep"): (Copy("for keeper", headers={"X-Mailadmin-Loop": Box("keeper")}, generated="forward"),),
              Out("away"): (Copy("for mover", headers={"X-Mailadmin-Loop": Box("mover")}, generated="forward"),),
              Box("mover"): ()}),  # without a copy the mailbox keeps nothing
    Row("auto_reply_once_per_sender_and_never_to_lists_auto_mail_or_null_sender", {"rcpt": {"auto_reply": AWAY}},
        (Send((RCPT,), Msg(subject="first"), PERSON),
         Send((RCPT,), Msg(subject="second"), PERSON),
         Send((RCPT,), Msg(headers={"List-Id": "<news.sender.example>"}), LISTED),
         Send((RCPT,), Msg(headers={"Auto-Submitted": "auto-generated"}), ROBOT),
         Send((RCPT,), Msg(), "mailer-daemon@sender.example", null_sender=True),
         Send((RCPT,), Msg(subject="third"), LATER)),
        # every message still reaches the mailbox; auto-replies use the null sender
        sink={RCPT: (Copy("first"), Copy("second"), Copy("Lunch"), Copy("Lunch"), Copy("Lunch"), Copy("third")),
              PERSON: (AUTO_REPLY,), LATER: (AUTO_REPLY,), LISTED: (), ROBOT: (),
              "mailer-daemon@sender.example": ()}),
    Row("four_recipients_four_outcomes",
        {"blocked": {"reject_sender": ["deals.example"]}, "tagged": SPAM_QUARANTINE_OFF,
         "unscanned": {"spam_scan": False},
         "forwarded": {"spam_scan": False, "forwarding": [{"address": Out("fw4"), "keep_copy": False}]}},
        (Send(FOUR, Msg("spam", "Deals"), PROMO),),
        # each recipient gets its own copy exactly once
        sink={Box("blocked"): (), Box("tagged"): (Copy("[spam] Deals", kept=False),),
              Box("unscanned"): (Copy("Deals", headers={"X-Spam-Flag": None}),), Box("forwarded"): (),
              Out("fw4"): (Copy("Deals", generated="forward"),)},
        held={"blocked": (Held("reject_sender"),)}),
    Row("four_recipients_tagged_held_forwarded_allowed",
        {"tagged": SPAM_QUARANTINE_OFF, "quarantined": {"spam_scan": True, "spam_quarantine": True},
         "forwarder": {"spam_scan": False, "forwarding": [{"address": Out("away"), "keep_copy": False}]},
         "allowing": {"spam_scan": True, "allow_list": [OFFER_FROM]}},
        (Send(FOUR_HELD_ALLOWED, Msg("spam", "Great offer"), OFFER_FROM),),
        # the forward is the copy the forwarder would have got (not scanned: unchanged), marked against loops
        sink={Box("tagged"): (Copy("[spam] Great offer", headers={"X-Spam-Flag": "YES"}, kept=False),),
              Box("quarantined"): (), Box("forwarder"): (),
              Box("allowing"): (Copy("Great offer", headers={"X-Spam-Flag": None}),),
              Out("away"): (Copy("Great offer", headers={"X-Mailadmin-Loop": Box("forwarder")},
                                 generated="forward"),)},
        held={"quarantined": (Held("spam"),)}),
    Row("clamd_down_tempfails_then_the_queued_message_is_delivered", {"rcpt": {"virus_scan": True}},
        (Send((RCPT,), Msg(subject="direct"), sees={"milter": Reply("data", 451)}),
         Send((RCPT,), Msg(subject="queued"), queued=True)),
        sink={RCPT: (Copy("direct", only="content_filter"), Copy("queued"))},
        clamd_down=True),
)


# ------------------------------------------------------------------ the runner


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.name)
@pytest.mark.parametrize("row", CONTRACT, ids=lambda r: r.id)
def test_adapter_contract(mailstack: Stack, row: Row, adapter: Adapter) -> None:
    book = Book(mailstack.store, row.boxes)
    offset = mailstack.postfix.log_size()
    if row.clamd_down:
        mailstack.clamd.stop()
    for item in row.sends:
        rcpts = [book[a] for a in item.to]
        frm = book[item.frm]
        port = mailstack.postfix.ports[adapter.queued_port if item.queued else adapter.port]
        result = send(port, "" if item.null_sender else frm, rcpts, item.message.build(", ".join(rcpts), frm))
        want = item.sees.get(adapter.name, ACCEPTED)
        assert Reply(result.stage, result.code) == want, f"{result}\n{mailstack.diagnostics()}"
        if not row.clamd_down:
            mailstack.settle()

    expected = {addr: tuple(c for c in copies if c.only in (None, adapter.name)) for addr, copies in row.sink.items()}
    for role in row.boxes:
        expected.setdefault(Box(role), ())
    if row.clamd_down:
        recover_clamd(mailstack, row, adapter, book, expected, offset)
    for addr, copies in expected.items():
        if copies:
            mailstack.sink.wait_to(book[addr], len(copies), details=mailstack.diagnostics)
    mailstack.settle()

    for addr, copies in expected.items():
        check_copies(mailstack.sink.to(book[addr]), copies, book, f"{addr} = {book[addr]}")
    boxes = {book[Box(role)].lower() for role in row.boxes}
    assert sum(1 for m in mailstack.sink.all() for r in m.rcpt_tos if r.lower() in boxes) == sum(
        len(expected[Box(role)]) for role in row.boxes), "each box gets its own copies exactly once"
    for role in row.boxes:
        check_held(mailstack.store, book, role, row.held.get(role, ()))
    for addr, copies in expected.items():
        check_outbox(mailstack.store, book[addr], copies, adapter)
    assert mailstack.sink.bounces() == []


def recover_clamd(stack: Stack, row: Row, adapter: Adapter, book: Book,
                  expected: Mapping[Addr, tuple[Copy, ...]], offset: int) -> None:
    """Nothing was delivered unscanned; what was accepted waits in a queue until
    clamd is back and the queue is flushed."""
    queued = sum(1 for s in row.sends if s.sees.get(adapter.name, ACCEPTED) == ACCEPTED)
    wait_for(lambda: stack.postfix.deferred() >= queued and "status=deferred" in stack.postfix.log_since(offset),
             "the accepted messages to be deferred", details=stack.diagnostics)
    logged = stack.postfix.log_since(offset)
    assert any(text in logged for text in adapter.deferral_logged), logged
    for addr in expected:
        assert stack.sink.to(book[addr]) == [], f"{addr} got mail while clamd was down"
    stack.clamd.start()
    stack.postfix.flush()
    for addr, copies in expected.items():
        if copies:
            stack.sink.wait_to(book[addr], len(copies), details=stack.diagnostics)
    wait_for(lambda: stack.postfix.deferred() == 0, "the deferred queue to empty")


def check_copies(got: list[Delivered], copies: tuple[Copy, ...], book: Book, where: str) -> None:
    assert len(got) == len(copies), (f"{where}: {len(got)} message(s), expected {len(copies)}: "
                                     f"{[m.subject for m in got]}")
    left = list(got)
    for copy in copies:
        tried = {i: copy.problems(m, book) for i, m in enumerate(left)}
        match = next((i for i, problems in tried.items() if not problems), None)
        assert match is not None, f"{where}: no message is {copy}: {list(tried.values())}"
        left.pop(match)


def check_held(store: StoreAccess, book: Book, role: str, held: tuple[Held, ...]) -> None:
    items = store.quarantine(book[Box(role)])
    assert len(items) == len(held), f"{role}: {[i.reason for i in items]}"
    for want, item in zip(held, items):
        assert want.reason_has in item.reason, (role, item.reason)
        if want.sender is not None:
            assert item.sender == book[want.sender], (role, item.sender)


def check_outbox(store: StoreAccess, address: str, copies: tuple[Copy, ...], adapter: Adapter) -> None:
    """Generated mail leaves through the outbox with its purpose; a recipient's
    copy does so ("reinject") when the adapter re-injects it."""
    purposes: dict[str, int] = {"reinject": 0}
    for copy in copies:
        if copy.generated is not None:
            purposes[copy.generated] = purposes.get(copy.generated, 0) + 1
        elif adapter.reinjects_every_copy or not copy.kept:
            purposes["reinject"] += 1
    for purpose, count in purposes.items():
        rows = store.outbox_to(address, purpose)
        assert len(rows) == count, f"{address}: {len(rows)} outbox row(s) for {purpose}, expected {count}"

"""What every fuzz target shares: a corpus of real-looking messages, the
mutations applied to them, and the engine + effects pipeline an adapter runs
(limits, decide, then every copy and generated mail composed), without a
database or sockets.

The only outcomes a target allows (issue "Nothing lost, nothing crashes"): a
decision, a documented error (:class:`~mailadmin.errors.MessageLimitExceeded`,
:class:`~mailadmin.errors.ProtocolViolation`), a tempfail, or a closed
connection.  ``COUNTS`` records how many inputs each target ran, for
bench/fuzz_long.py's report.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import datetime as dt
import email.utils
from collections.abc import Sequence
from dataclasses import dataclass, field

from hypothesis import strategies as st

from mailadmin.config.model import Config, LimitsConf
from mailadmin.engine.decide import ContentGroup, Decision, Engine
from mailadmin.engine.replies import SmtpReply
from mailadmin.engine.effects import LOOP_HEADER, AutoReplyTo, ForwardTo, VirusReportTo
from mailadmin.message import Envelope, Message
from mailadmin.engine.limits import check_message
from mailadmin.engine.scans import infected_parts
from mailadmin.errors import MessageLimitExceeded
from mailadmin.mailtext.compose import compose_auto_reply, compose_virus_report
from mailadmin.mailtext.rewrite import add_header, render_copy
from mailadmin.store.snapshots import AutoReply, Forward, MailboxRules
from tests.fixtures.config import make_config
from tests.unit.engine.conftest import ScriptedClamd, ScriptedSpamd, rules_for

COUNTS: collections.Counter[str] = collections.Counter()
LIMITS = LimitsConf()
VIRUS = ScriptedClamd.virus_marker

MAILBOXES = (
    rules_for("taro@example.jp", auto_reply=AutoReply(enabled=True, subject="不在", body="留守です。")),
    rules_for("hanako@example.jp", spam_quarantine=True, reject_subject=("未承諾広告",)),
    rules_for("jiro@example.jp", forwarding=(Forward("jiro@elsewhere.example", keep_copy=True),)),
    rules_for("saburo@example.jp", reject_sender=("example.org",), virus_scan=True),
    rules_for("shiro@example.jp", allow_list=("example.net",), spam_scan=False),
)
RECIPIENTS = tuple(m.address for m in MAILBOXES) + ("friend@elsewhere.example",)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def make_engine(spam_score: float = 6.0) -> Engine:
    table = {m.address: m for m in MAILBOXES}
    cfg = make_config()
    return Engine(
        config=lambda: cfg,
        load_rules=lambda addrs: {a: table[a] for a in addrs if a in table},
        clamd=ScriptedClamd(virus="Eicar-Test-Signature"),
        spamd=ScriptedSpamd(score=spam_score),
        country_of=lambda ip: {"192.0.2.10": "JP", "203.0.113.9": "US"}.get(ip),
        clock=now,
    )


# ---------------------------------------------------------------- corpus


def _date() -> str:
    return email.utils.formatdate(localtime=True)


def _b64(text: str, charset: str) -> str:
    return base64.b64encode(text.encode(charset)).decode("ascii")


def corpus() -> list[bytes]:
    """Messages as Japanese and other mailers write them; every Date is now."""
    date = _date()
    iso = "=?ISO-2022-JP?B?" + _b64("会議の件について", "iso2022_jp") + "?="
    plain = (f"From: Alice <alice@example.org>\r\nTo: taro@example.jp, hanako@example.jp\r\n"
             f"Subject: Lunch\r\nDate: {date}\r\nMessage-ID: <p1@example.org>\r\n\r\n"
             "Lunch on Friday?\r\n").encode()
    japanese = (f"From: =?ISO-2022-JP?B?{_b64('山田太郎', 'iso2022_jp')}?= <yamada@example.net>\r\n"
                f"To: jiro@example.jp\r\nSubject: {iso}\r\nDate: {date}\r\nMIME-Version: 1.0\r\n"
                "Content-Type: text/plain; charset=ISO-2022-JP\r\nContent-Transfer-Encoding: 7bit\r\n"
                "Message-ID: <j1@example.net>\r\n\r\n").encode() + "お世話になっております。\r\n".encode("iso2022_jp")
    sjis = (b"From: sales@example.com\r\nTo: hanako@example.jp\r\nSubject: "
            + "【未承諾広告】激安".encode("cp932") + b"\r\nDate: " + date.encode()
            + b"\r\nContent-Type: text/plain; charset=Shift_JIS\r\n\r\n" + "本文".encode("cp932") + b"\r\n")
    multipart = (f"From: Bob <bob@example.com>\r\nTo: saburo@example.jp, shiro@example.jp\r\n"
                 f"Subject: =?UTF-8?Q?=E8=AB=8B=E6=B1=82=E6=9B=B8?=\r\nDate: {date}\r\nMIME-Version: 1.0\r\n"
                 'Content-Type: multipart/mixed; boundary="XYZ"\r\n\r\npreamble\r\n--XYZ\r\n'
                 "Content-Type: text/plain; charset=utf-8\r\n\r\nSee attached.\r\n--XYZ\r\n"
                 'Content-Type: application/octet-stream; name="=?ISO-2022-JP?B?GyRCJUUlISUkJWsbKEI=?="\r\n'
                 "Content-Transfer-Encoding: base64\r\n"
                 'Content-Disposition: attachment; filename*=UTF-8\'\'%E8%AB%8B.bin\r\n\r\n'
                 f"{base64.b64encode(b'MZ' + VIRUS + b' payload').decode()}\r\n--XYZ\r\n"
                 "Content-Type: message/rfc822\r\n\r\n"
                 f"From: c@example.org\r\nSubject: inner\r\nDate: {date}\r\n\r\ninner body\r\n"
                 "--XYZ--\r\nepilogue\r\n").encode()
    bulk = (f"From: list@lists.example.org\r\nTo: taro@example.jp\r\nSubject: [list] digest\r\n"
            f"Date: {date}\r\nList-Id: <l.example.org>\r\nPrecedence: list\r\n"
            "Auto-Submitted: no\r\nX-Spam-Flag: NO\r\n\r\ndigest\n").encode()
    folded = (f"From: \"Quoted, Name\" <q@example.org>,\r\n (comment) other@example.net\r\n"
              f"To: undisclosed-recipients:;\r\nCc: taro@example.jp\r\nSubject: =?utf-8?b?5pel5pys?=\r\n"
              f" =?utf-8?b?6Kqe?= tail\r\nDate: {date}\r\nIn-Reply-To: <x@y>\r\nReferences: <a@b>\r\n <c@d>\r\n"
              "\r\nbody\r\n").encode()
    return [plain, japanese, sjis, multipart, bulk, folded]


CORPUS = corpus()

# Pieces that break decoders: invalid UTF-8, cut and unknown ISO-2022-JP
# escapes, a half encoded word, NUL, lone CR, an 8-bit header byte.
NASTY = (b"\xff\xfe\xc3", b"\x1b$B", b"\x1b(", b"\x1b$(", b"\x1b$BF|", b"=?ISO-2022-JP?B?GyRC", b"\x00",
         b"\r", b"\n\n", b"=?x?q?=ZZ?=", b"=?utf-8?b?====?=", b"\x8e", b"--XYZ\r\n", b"\r\n\tcont",
         b"Content-Type: multipart/mixed; boundary=XYZ\r\n", b": ", b"<>", b"@", b"\xe3\x81")


@st.composite
def mutated_message(draw: st.DrawFn) -> bytes:
    """A corpus message with a few mutations: truncation, byte flips,
    inserted nasty pieces, random bytes, duplicated or dropped lines."""
    data = bytearray(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(("truncate", "flip", "insert", "random", "duplicate", "drop")))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "truncate":
            del data[at:]
        elif kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data[at:at] = draw(st.sampled_from(NASTY))
        elif kind == "random":
            data[at:at] = draw(st.binary(max_size=40))
        else:
            lines = bytes(data).split(b"\n")
            index = draw(st.integers(0, len(lines) - 1))
            if kind == "duplicate":
                lines.insert(index, lines[index])
            else:
                del lines[index]
            data = bytearray(b"\n".join(lines))
    return bytes(data)


# ---------------------------------------------------------------- huge inputs


def huge_header_line(size: int = 10 * 1024 * 1024) -> bytes:
    return (b"From: a@example.org\r\nTo: taro@example.jp\r\nSubject: " + b"=?utf-8?q?x?= " * (size // 14)
            + b"\r\nDate: " + _date().encode() + b"\r\n\r\nbody\r\n")


def many_header_fields(count: int = 100_000) -> bytes:
    return (b"From: a@example.org\r\nTo: taro@example.jp\r\nDate: " + _date().encode() + b"\r\n"
            + b"".join(b"X-F%d: v\r\n" % i for i in range(count)) + b"\r\nbody\r\n")


def deep_mime(depth: int = 1000) -> bytes:
    head = b"".join(b'--b%d\r\nContent-Type: multipart/mixed; boundary="b%d"\r\n\r\n' % (i, i + 1)
                    for i in range(depth))
    tail = b"".join(b"\r\n--b%d--\r\n" % i for i in range(depth, -1, -1))
    return (b"From: a@example.org\r\nTo: saburo@example.jp\r\nDate: " + _date().encode()
            + b'\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b0"\r\n\r\n'
            + head + b"--b%d\r\nContent-Type: text/plain\r\n\r\n" % depth + VIRUS + tail)


HUGE = {"10 MB header line": huge_header_line, "100,000 header fields": many_header_fields,
        "MIME nested 1,000 deep": deep_mime}


# ---------------------------------------------------------------- the pipeline


@dataclass
class Outcome:
    refused: MessageLimitExceeded | None = None
    decision: Decision | None = None
    composed: list[bytes] = field(default_factory=list)


async def compose_effects(engine: Engine, decision: Decision, message: Message,
                          reinject: Sequence[ContentGroup]) -> list[bytes]:
    """Every message the effects of ``decision`` would enqueue (execute(), minus the database)."""
    out: list[bytes] = []
    reports = [e for o in decision.outcomes for e in o.effects if isinstance(e, VirusReportTo)]
    reports += [e for e in decision.message_effects if isinstance(e, VirusReportTo)]
    if reports:
        assert engine.clamd is not None
        removed = await infected_parts(engine.clamd, message.raw)
        for report in reports:
            out.append(compose_virus_report(message.raw, to=report.to, virus=report.virus, direction="inbound",
                                            removed_parts=removed or (), postmaster="postmaster"))
    for o in decision.outcomes:
        for effect in o.effects:
            if isinstance(effect, ForwardTo):
                out.append(add_header(render_copy(message.raw, o.content_changes), LOOP_HEADER, o.recipient))
            elif isinstance(effect, AutoReplyTo):
                out.append(compose_auto_reply(message, effect.to, o.recipient, effect.subject, effect.body,
                                              now=now()))
    out.extend(render_copy(message.raw, g.changes) for g in reinject)
    return out


async def process(engine: Engine, envelope: Envelope, raw: bytes,
                  limits: LimitsConf = LIMITS) -> Outcome:
    """What an adapter does with one message: the limits, decide, then the effects."""
    try:
        check_message(raw, limits)
    except MessageLimitExceeded as exc:
        return Outcome(refused=exc)
    message = Message(raw)
    decision = await engine.decide(envelope, message)
    composed: list[bytes] = []
    if decision.tempfail is None and decision.rejected is None:
        composed = await compose_effects(engine, decision, message, decision.content_groups())
    return Outcome(decision=decision, composed=composed)


def run(coro: "asyncio.Future[object] | collections.abc.Coroutine[object, object, object]") -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


@dataclass
class PureRuntime:
    """A Runtime for the adapters without a store: ``apply`` composes what
    execute() would enqueue and records it."""

    engine: Engine = field(default_factory=make_engine)
    limits: LimitsConf = LIMITS
    applied: int = 0

    def config(self) -> Config:
        import dataclasses

        cfg = make_config()
        return dataclasses.replace(cfg, conf=dataclasses.replace(cfg.conf, limits=self.limits))

    async def check_submission(self, envelope: Envelope) -> SmtpReply | None:
        return await self.engine.check_submission(envelope)

    async def decide(self, envelope: Envelope, message: Message) -> Decision:
        return await self.engine.decide(envelope, message)

    async def apply(self, decision: Decision, message: Message, reinject: Sequence[ContentGroup] = (),
                    taken: tuple[str, Sequence[str]] | None = None) -> None:
        await compose_effects(self.engine, decision, message, reinject)
        self.applied += 1

    async def already_taken(self, queue_id: str, raw: bytes, rcpt_tos: Sequence[str]) -> tuple[str, set[str]]:
        return queue_id, set()

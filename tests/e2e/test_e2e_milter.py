"""The milter path through a real Postfix (SPEC §4–§8, §10): what reaches the
sink, what lands in the quarantine, what mailadmin sends through the relay."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.e2e import mail
from tests.e2e.stack import Stack, send


def deliver(stack: Stack, rcpts: list[str], data: bytes, frm: str) -> None:
    result = send(stack.main_port, frm, rcpts, data)
    assert result.accepted, f"{result}\n{stack.diagnostics()}"
    stack.settle()


@pytest.mark.parametrize(
    ("doc", "frm_name", "message"),
    [
        pytest.param({"reject_sender": ["spam.example"]}, "x@mx.spam.example",
                     lambda to, frm: mail.clean(to, frm), id="reject_sender"),
        pytest.param({"reject_subject": ["SALE"]}, None,
                     lambda to, frm: mail.clean(to, frm, subject="Ｂｉｇ ＳＡＬＥ today"), id="reject_subject"),
        pytest.param({"header_conditions": ["subject_missing"]}, None,
                     lambda to, frm: mail.raw([("From", frm), ("To", to)]), id="header_conditions"),
    ],
)
def test_reject_lists_quarantine_without_delivery_or_bounce(mailstack: Stack, doc: dict[str, list[str]],
                                                            frm_name: str | None,
                                                            message: Callable[[str, str], bytes]) -> None:
    rcpt = mailstack.store.mailbox("rej", **doc)
    frm = frm_name or mail.sender()
    deliver(mailstack, [rcpt], message(rcpt, frm), frm)

    assert mailstack.sink.to(rcpt) == []
    items = mailstack.store.quarantine(rcpt)
    assert len(items) == 1, mailstack.diagnostics()
    assert next(iter(doc)) in items[0].reason
    assert items[0].sender == frm
    assert mailstack.sink.to(frm) == [], "nothing may go back to the sender"


def test_allow_list_beats_reject_list_and_spam_scan(mailstack: Stack) -> None:
    rcpt = mailstack.store.mailbox("allow", reject_sender=["partner.example"],
                                   allow_list=["boss@partner.example"])
    deliver(mailstack, [rcpt], mail.spam(rcpt, "boss@partner.example", subject="Q3 plan"),
            "boss@partner.example")

    [delivered] = mailstack.sink.to(rcpt)
    assert delivered.subject == "Q3 plan"
    assert delivered.header("X-Spam-Flag") is None
    assert mailstack.store.quarantine(rcpt) == []


def test_spam_is_tagged_once_when_quarantine_is_off(mailstack: Stack) -> None:
    rcpt = mailstack.store.mailbox("tag", spam_scan=True, spam_quarantine=False)
    frm = mail.sender()
    deliver(mailstack, [rcpt], mail.spam(rcpt, frm, subject="[spam] Cheap watches"), frm)

    [delivered] = mailstack.sink.to(rcpt)
    assert delivered.subject == "[spam] Cheap watches", "the tag is never doubled"
    assert delivered.header("X-Spam-Flag") == "YES"
    assert delivered.header("X-Spam-Status") is not None
    assert mailstack.store.quarantine(rcpt) == []


def test_spam_is_quarantined_when_quarantine_is_on(mailstack: Stack) -> None:
    rcpt = mailstack.store.mailbox("spq", spam_scan=True, spam_quarantine=True)
    frm = mail.sender()
    deliver(mailstack, [rcpt], mail.spam(rcpt, frm), frm)

    assert mailstack.sink.to(rcpt) == []
    [item] = mailstack.store.quarantine(rcpt)
    assert "spam" in item.reason
    assert mailstack.sink.bounces() == []


def test_infected_mail_is_dropped_and_the_owner_gets_a_report(mailstack: Stack, eicar: str) -> None:
    rcpt = mailstack.store.mailbox("vir", virus_scan=True)
    frm = mail.sender()
    deliver(mailstack, [rcpt], mail.infected(rcpt, frm, subject="Invoice 42"), frm)

    [report] = mailstack.sink.wait_to(rcpt, details=mailstack.diagnostics)
    assert report.subject != "Invoice 42", "the original must not be delivered"
    assert b"Eicar-Test-Signature" in report.data
    assert "Invoice 42" in report.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert eicar.encode() not in report.data, "never the infected content itself"
    assert mailstack.sink.to(frm) == []
    assert mailstack.store.quarantine(rcpt) == []


def test_forwarding_with_and_without_a_copy(mailstack: Stack) -> None:
    keep_to, away_to = mail.outside("keep"), mail.outside("away")
    keeper = mailstack.store.mailbox("fwk", forwarding=[{"address": keep_to, "keep_copy": True}])
    mover = mailstack.store.mailbox("fwm", forwarding=[{"address": away_to, "keep_copy": False}])
    frm = mail.sender()
    deliver(mailstack, [keeper], mail.clean(keeper, frm, subject="for keeper"), frm)
    deliver(mailstack, [mover], mail.clean(mover, frm, subject="for mover"), frm)

    assert [m.subject for m in mailstack.sink.to(keeper)] == ["for keeper"]
    assert [m.subject for m in mailstack.sink.to(keep_to)] == ["for keeper"]
    assert [m.subject for m in mailstack.sink.to(away_to)] == ["for mover"]
    assert mailstack.sink.to(mover) == [], "without a copy the mailbox keeps nothing"


def test_auto_reply_once_per_sender_and_never_to_lists_auto_mail_or_null_sender(mailstack: Stack) -> None:
    rcpt = mailstack.store.mailbox("away", auto_reply={"enabled": True, "subject": "不在のお知らせ",
                                                       "body": "8月20日まで休暇をいただいております。"})
    person, listed, robot, later = (mail.sender(n) for n in ("person", "list", "robot", "later"))
    deliver(mailstack, [rcpt], mail.clean(rcpt, person, subject="first"), person)
    deliver(mailstack, [rcpt], mail.clean(rcpt, person, subject="second"), person)
    deliver(mailstack, [rcpt], mail.clean(rcpt, listed, **{"List-Id": "<news.sender.example>"}), listed)
    deliver(mailstack, [rcpt], mail.clean(rcpt, robot, **{"Auto-Submitted": "auto-generated"}), robot)
    deliver(mailstack, [rcpt], mail.clean(rcpt, "mailer-daemon@sender.example"), "")
    deliver(mailstack, [rcpt], mail.clean(rcpt, later, subject="third"), later)

    assert len(mailstack.sink.to(rcpt)) == 6, "every message still reaches the mailbox"
    [reply] = mailstack.sink.to(person)
    assert reply.mail_from == "", "auto-replies use the null sender"
    assert reply.header("Auto-Submitted") == "auto-replied"
    assert reply.subject.startswith("不在のお知らせ") or "不在のお知らせ" in reply.subject
    assert reply.message.get_body(("plain",)).get_content().strip().startswith("8月20日")  # type: ignore[union-attr]
    assert len(mailstack.sink.to(later)) == 1
    assert mailstack.sink.to(listed) == []
    assert mailstack.sink.to(robot) == []
    assert len(mailstack.store.outbox_to(person, "auto_reply")) == 1


def test_four_recipients_four_outcomes(mailstack: Stack) -> None:
    frm = "promo@deals.example"
    forward_to = mail.outside("fw4")
    blocked = mailstack.store.mailbox("four", reject_sender=["deals.example"])
    tagged = mailstack.store.mailbox("four", spam_scan=True, spam_quarantine=False)
    unscanned = mailstack.store.mailbox("four", spam_scan=False)
    forwarded = mailstack.store.mailbox("four", spam_scan=False,
                                        forwarding=[{"address": forward_to, "keep_copy": False}])
    rcpts = [blocked, tagged, unscanned, forwarded]
    deliver(mailstack, rcpts, mail.spam(", ".join(rcpts), frm, subject="Deals"), frm)

    assert mailstack.sink.to(blocked) == []
    assert "reject_sender" in mailstack.store.quarantine(blocked)[0].reason
    [t] = mailstack.sink.to(tagged)
    assert t.subject == "[spam] Deals"
    [u] = mailstack.sink.to(unscanned)
    assert u.subject == "Deals" and u.header("X-Spam-Flag") is None
    assert mailstack.sink.to(forwarded) == []
    [f] = mailstack.sink.to(forward_to)
    assert f.subject == "Deals"
    for r in (tagged, unscanned, forwarded):
        assert mailstack.store.quarantine(r) == []
    # Each recipient got its own copy exactly once.
    assert sum(1 for m in mailstack.sink.all() for r in m.rcpt_tos if r in rcpts) == 2

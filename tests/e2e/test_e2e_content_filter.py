"""The after-queue content filter path through a real Postfix (SPEC §10):
Postfix queues, hands each message to mailadmin over SMTP, and every copy
comes back through the relay; nothing is ever bounced."""

from __future__ import annotations

from tests.e2e import mail
from tests.e2e.stack import Stack, send, wait_for


def through_filter(stack: Stack, rcpts: list[str], data: bytes, frm: str) -> None:
    result = send(stack.postfix.ports["filter"], frm, rcpts, data)
    assert result.accepted, f"{result}\n{stack.diagnostics()}"
    stack.settle()


def test_clean_mail_is_delivered_unchanged(mailstack: Stack) -> None:
    rcpt = mailstack.store.mailbox("cfok")
    frm = mail.sender()
    through_filter(mailstack, [rcpt], mail.clean(rcpt, frm, subject="Minutes"), frm)

    [delivered] = mailstack.sink.to(rcpt)
    assert delivered.subject == "Minutes"
    assert delivered.mail_from == frm
    assert delivered.header("X-Spam-Flag") is None


def test_reject_list_quarantines(mailstack: Stack) -> None:
    rcpt = mailstack.store.mailbox("cfq", reject_sender=["spam.example"])
    through_filter(mailstack, [rcpt], mail.clean(rcpt, "x@spam.example"), "x@spam.example")

    assert mailstack.sink.to(rcpt) == []
    [item] = mailstack.store.quarantine(rcpt)
    assert "reject_sender" in item.reason
    assert mailstack.sink.to("x@spam.example") == []


def test_spam_is_tagged(mailstack: Stack) -> None:
    rcpt = mailstack.store.mailbox("cft", spam_scan=True, spam_quarantine=False)
    frm = mail.sender()
    through_filter(mailstack, [rcpt], mail.spam(rcpt, frm, subject="Offer"), frm)

    [delivered] = mailstack.sink.to(rcpt)
    assert delivered.subject == "[spam] Offer"
    assert delivered.header("X-Spam-Flag") == "YES"


def test_infected_mail_is_dropped_with_a_report(mailstack: Stack, eicar: str) -> None:
    rcpt = mailstack.store.mailbox("cfv", virus_scan=True)
    frm = mail.sender()
    through_filter(mailstack, [rcpt], mail.infected(rcpt, frm, subject="Invoice 7"), frm)

    [report] = mailstack.sink.to(rcpt)
    assert report.subject != "Invoice 7"
    assert b"Eicar-Test-Signature" in report.data
    assert eicar.encode() not in report.data
    assert mailstack.sink.to(frm) == []


def test_four_recipients_four_outcomes(mailstack: Stack) -> None:
    frm = "promo@deals.example"
    forward_to = mail.outside("cf4")
    blocked = mailstack.store.mailbox("cf4", reject_sender=["deals.example"])
    tagged = mailstack.store.mailbox("cf4", spam_scan=True, spam_quarantine=False)
    unscanned = mailstack.store.mailbox("cf4", spam_scan=False)
    forwarded = mailstack.store.mailbox("cf4", spam_scan=False,
                                        forwarding=[{"address": forward_to, "keep_copy": False}])
    rcpts = [blocked, tagged, unscanned, forwarded]
    through_filter(mailstack, rcpts, mail.spam(", ".join(rcpts), frm, subject="Deals"), frm)

    assert mailstack.sink.to(blocked) == []
    assert len(mailstack.store.quarantine(blocked)) == 1
    assert [m.subject for m in mailstack.sink.to(tagged)] == ["[spam] Deals"]
    assert [m.subject for m in mailstack.sink.to(unscanned)] == ["Deals"]
    assert mailstack.sink.to(forwarded) == []
    assert [m.subject for m in mailstack.sink.to(forward_to)] == ["Deals"]
    assert mailstack.sink.bounces() == []


def test_clamd_down_defers_in_the_queue_then_delivers(mailstack: Stack) -> None:
    rcpt = mailstack.store.mailbox("cfd", virus_scan=True)
    frm = mail.sender()
    mailstack.clamd.stop()
    offset = mailstack.postfix.log_size()
    result = send(mailstack.postfix.ports["filter"], frm, [rcpt], mail.clean(rcpt, frm, subject="Later"))
    assert result.accepted, "Postfix queues first; the filter is after the queue"
    wait_for(lambda: mailstack.postfix.deferred() >= 1 and "status=deferred" in mailstack.postfix.log_since(offset),
             "the message to be deferred", details=mailstack.diagnostics)
    assert " 451 " in mailstack.postfix.log_since(offset) or "4.3.0" in mailstack.postfix.log_since(offset)
    assert mailstack.sink.to(rcpt) == []

    mailstack.clamd.start()
    mailstack.postfix.flush()
    [delivered] = mailstack.sink.wait_to(rcpt, details=mailstack.diagnostics)
    assert delivered.subject == "Later"
    wait_for(lambda: mailstack.postfix.deferred() == 0, "the deferred queue to empty")
    mailstack.settle()
    assert len(mailstack.sink.to(rcpt)) == 1
    assert mailstack.sink.bounces() == []

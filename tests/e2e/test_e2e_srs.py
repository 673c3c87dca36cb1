"""SRS through the real Postfix (SPEC §3): a forwarded copy reaches the sink with
an SRS0 envelope sender in our SRS domain; a bounce to that address, sent to
Postfix, is routed to mailadmin (conf/postfix/main.cf.srs), verified and
returned to the original sender; a forged one is refused."""

from __future__ import annotations

import email.utils
import re
import smtplib

from tests.e2e import mail
from tests.e2e.stack import SRS_DOMAIN, Stack, send, wait_for


def dsn(to: str, about: str) -> bytes:
    return (f"From: MAILER-DAEMON@elsewhere.example\r\nTo: {to}\r\n"
            f"Date: {email.utils.formatdate()}\r\nMessage-ID: {email.utils.make_msgid()}\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\nAuto-Submitted: auto-replied\r\n\r\n"
            f"Your message '{about}' could not be delivered.\r\n").encode()


def test_forward_leaves_with_srs_and_the_bounce_comes_home(mailstack: Stack) -> None:
    away = mail.outside("srs")
    box = mailstack.store.mailbox("srsfw", forwarding=[{"address": away, "keep_copy": False}])
    frm = mail.sender("orig")
    result = send(mailstack.main_port, frm, [box], mail.clean(box, frm, subject="to be forwarded"))
    assert result.accepted, f"{result}\n{mailstack.diagnostics()}"

    [forwarded] = mailstack.sink.wait_to(away, details=mailstack.diagnostics)
    local, domain = frm.split("@")
    assert re.fullmatch(rf"SRS0=[A-Za-z0-9+/]{{4}}=[A-Z2-7]{{2}}={re.escape(domain)}={re.escape(local)}"
                        rf"@{re.escape(SRS_DOMAIN)}", forwarded.mail_from, re.IGNORECASE), forwarded.mail_from
    assert forwarded.subject == "to be forwarded"

    # The destination bounces it: a DSN with a null sender to the SRS address, into Postfix.
    bounce = send(mailstack.main_port, "", [forwarded.mail_from], dsn(forwarded.mail_from, "to be forwarded"))
    assert bounce.accepted, f"{bounce}\n{mailstack.diagnostics()}"
    [returned] = mailstack.sink.wait_to(frm, details=mailstack.diagnostics)
    assert returned.mail_from == "" and returned.subject == "Undelivered Mail Returned to Sender"
    assert "to be forwarded" in returned.data.decode()


def test_forged_srs_bounces_are_refused(mailstack: Stack) -> None:
    victim = mail.sender("victim")
    local, domain = victim.split("@")
    forged = f"SRS0=AAAA=AB={domain}={local}@{SRS_DOMAIN}"
    # Straight at mailadmin's listener: refused at RCPT.
    with smtplib.SMTP("127.0.0.1", mailstack.postfix.srs_port, timeout=30) as smtp:
        smtp.ehlo()
        assert smtp.mail("")[0] == 250
        code, text = smtp.rcpt(forged)
        assert code == 550 and b"not a valid SRS address" in text
    # Through Postfix: it takes the mail, mailadmin refuses it, nothing reaches the victim.
    offset = mailstack.postfix.log_size()
    result = send(mailstack.main_port, "", [forged], dsn(forged, "never sent"))
    assert result.accepted
    wait_for(lambda: "not a valid SRS address" in mailstack.postfix.log_since(offset),
             "Postfix to be refused by the SRS listener", details=mailstack.diagnostics)
    mailstack.settle()
    assert mailstack.sink.to(victim) == []

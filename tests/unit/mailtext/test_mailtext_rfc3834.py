"""SPEC §6: when an auto-reply must not be sent (RFC 3834, RFC 5230 §4.5)."""

from __future__ import annotations

import pytest

from mailadmin.message import Message
from mailadmin.mailtext.rfc3834 import auto_reply_suppression, is_automated_sender

MAILBOX = "taro@example.jp"
SENDER = "hanako@example.com"


def message(*headers: str, to: str = MAILBOX) -> Message:
    lines = [f"From: {SENDER}", f"To: {to}", "Subject: hello", *headers]
    return Message(("\r\n".join(lines) + "\r\n\r\nbody\r\n").encode("utf-8"))


def test_an_ordinary_message_gets_a_reply() -> None:
    assert auto_reply_suppression(message(), SENDER, MAILBOX) is None


@pytest.mark.parametrize("sender", ["", "<>", "  ", " <> "])
def test_null_sender(sender: str) -> None:
    assert auto_reply_suppression(message(), sender, MAILBOX) == "null_sender"


def test_own_address() -> None:
    assert auto_reply_suppression(message(), "Taro@Example.JP", MAILBOX) == "own_address"


@pytest.mark.parametrize(
    "sender",
    [
        "MAILER-DAEMON@mx.example.com",
        "mailer-daemon@example.com",
        "Mailer_Daemon@example.com",
        "postmaster@example.com",
        "LISTSERV@lists.example.com",
        "majordomo@example.com",
        "mailman@example.com",
        "owner-jp-users@example.com",
        "jp-users-owner@example.com",
        "jp-users-request@example.com",
        "jp-users-bounces@example.com",
        "jp-users-bounces+taro=example.jp@example.com",
        "bounce-12345-67@mail.example.com",
        "bounces+abc=def@example.com",
        "noreply@example.com",
        "no-reply@example.com",
        "No_Reply@example.com",
        "noreply+news@example.com",
        "no-reply-notify@example.com",
        "donotreply@example.com",
        "do-not-reply@example.com",
        "do_not_reply@example.com",
        "prvs=1234abcd=mailer-daemon@example.com",
        "msprvs1=17849abc=bounces-123@example.com",
        "<MAILER-DAEMON@example.com>",
        "MAILER-DAEMON",
    ],
)
def test_mailer_daemon_like_senders(sender: str) -> None:
    assert is_automated_sender(sender)
    assert auto_reply_suppression(message(), sender, MAILBOX) == "automated_sender"


@pytest.mark.parametrize(
    "sender",
    [
        "hanako@example.com",
        "postmasterjp@example.com",
        "daemon-fan@example.com",
        "requester@example.com",
        "noreplyguy@example.com",
        "owner@example.com",
        "bouncer@example.com",
        "taro.request@example.com",
        "listservice@example.com",
    ],
)
def test_people_are_not_automated(sender: str) -> None:
    assert not is_automated_sender(sender)
    assert auto_reply_suppression(message(), sender, MAILBOX) is None


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Auto-Submitted: auto-generated", "auto_submitted"),
        ("Auto-Submitted: auto-replied", "auto_submitted"),
        ("Auto-Submitted: auto-notified", "auto_submitted"),
        ("Auto-Submitted: Auto-Generated (vacation)", "auto_submitted"),
        ("Auto-Submitted: yes", "auto_submitted"),
        ("Auto-Submitted:", "auto_submitted"),
        ("Precedence: bulk", "precedence"),
        ("Precedence: junk", "precedence"),
        ("Precedence: list", "precedence"),
        ("Precedence: BULK", "precedence"),
        ("Precedence:  list (mailing list)", "precedence"),
        ("List-Id: JP users <jp-users.example.com>", "list_headers"),
        ("List-Unsubscribe: <mailto:leave@example.com>", "list_headers"),
        ("List-Unsubscribe-Post: List-Unsubscribe=One-Click", "list_headers"),
        ("List-Post: <mailto:jp-users@example.com>", "list_headers"),
        ("List-Help: <mailto:help@example.com>", "list_headers"),
        ("List-Subscribe: <mailto:join@example.com>", "list_headers"),
        ("List-Owner: <mailto:owner@example.com>", "list_headers"),
        ("List-Archive: <https://example.com/archive>", "list_headers"),
        ("Mailing-List: list jp-users@example.com", "list_headers"),
        ("X-Mailing-List: jp-users@example.com", "list_headers"),
        ("X-ML-Name: jp-users", "list_headers"),
        ("X-Auto-Response-Suppress: All", "auto_response_suppress"),
        ("X-Auto-Response-Suppress: OOF", "auto_response_suppress"),
        ("X-Auto-Response-Suppress: DR, RN, NRN, AutoReply", "auto_response_suppress"),
        ("X-Auto-Response-Suppress: oof, dr", "auto_response_suppress"),
        ("X-Autoreply: yes", "autoreply_header"),
        ("X-Autorespond: yes", "autoreply_header"),
    ],
)
def test_rfc3834_headers_suppress(header: str, reason: str) -> None:
    assert auto_reply_suppression(message(header), SENDER, MAILBOX) == reason


@pytest.mark.parametrize(
    "header",
    [
        "Auto-Submitted: no",
        "Auto-Submitted: No",
        "Auto-Submitted: no (a person wrote this)",
        "Precedence: first-class",
        "Precedence: normal",
        "X-Auto-Response-Suppress: DR, RN",
        "X-Auto-Response-Suppress: NRN",
        "X-Priority: 1",
    ],
)
def test_headers_that_allow_a_reply(header: str) -> None:
    assert auto_reply_suppression(message(header), SENDER, MAILBOX) is None


# RFC 5230 §4.5: only mail naming the mailbox in To/Cc/Bcc/Resent-To/Resent-Cc


@pytest.mark.parametrize(
    ("to", "headers"),
    [
        (MAILBOX, ()),
        ("TARO@EXAMPLE.JP", ()),
        (f'"Taro" <{MAILBOX}>', ()),
        ("=?UTF-8?B?5aSq6YOO?= <taro@example.jp>", ()),
        (f"someone@example.com, {MAILBOX}", ()),
        ("someone@example.com", (f"Cc: {MAILBOX}",)),
        ("someone@example.com", (f"Bcc: {MAILBOX}",)),
        ("someone@example.com", (f"Resent-To: {MAILBOX}",)),
        ("someone@example.com", (f"Resent-Cc: other@example.com, <{MAILBOX}>",)),
        ("someone@example.com", ("Cc: x@example.com", f"Cc: {MAILBOX}")),
        ("taro+news@example.jp", ()),
        ("friends: a@example.com, taro@example.jp;", ()),
        ('"Some One" <someone@example.com>,\r\n "Taro" <taro@example.jp>', ()),
    ],
)
def test_mailbox_named(to: str, headers: tuple[str, ...]) -> None:
    assert auto_reply_suppression(message(*headers, to=to), SENDER, MAILBOX) is None


@pytest.mark.parametrize(
    ("to", "headers"),
    [
        ("someone@example.com", ()),
        ("undisclosed-recipients:;", ()),
        ("taro@example.com", ()),
        ("xtaro@example.jp", ()),
        ("taro@mx.example.jp", ()),
        ('"taro@example.jp" <someone@example.com>', ()),
        ("someone@example.com", ("Reply-To: taro@example.jp",)),
        ("someone@example.com", ("Delivered-To: taro@example.jp",)),
        ("someone@example.com", ("X-Original-To: taro@example.jp",)),
    ],
)
def test_mailbox_not_named(to: str, headers: tuple[str, ...]) -> None:
    assert auto_reply_suppression(message(*headers, to=to), SENDER, MAILBOX) == "not_addressed"


def test_no_recipient_headers_at_all() -> None:
    raw = f"From: {SENDER}\r\nSubject: hi\r\n\r\nbody\r\n".encode()
    assert auto_reply_suppression(Message(raw), SENDER, MAILBOX) == "not_addressed"


def test_idn_mailbox_named_in_ascii_form() -> None:
    mailbox = "taro@例え.jp"
    ascii_mailbox = "taro@" + "例え.jp".encode("idna").decode("ascii")
    assert auto_reply_suppression(message(to=ascii_mailbox), SENDER, mailbox) is None

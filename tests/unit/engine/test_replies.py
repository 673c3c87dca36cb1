"""SMTP replies (engine/replies.py): one place turns a disposition into what the
MTA hears, and the types keep a deferral from ever reading as a refusal."""

from __future__ import annotations

import pytest

from mailadmin.engine.replies import (
    FILTER_TEMPFAIL,
    SCAN_TEMPFAIL,
    Reject,
    SmtpReply,
    TempFail,
    limit_reply,
    reply_for,
)
from mailadmin.errors import MessageLimitExceeded
from mailadmin.verdicts import Blocked, Disposition, Infected, Refused, ScanFailed, Spam, Verdict


@pytest.mark.parametrize("code, status", [(550, "5.7.1"), (554, "5.7.1"), (250, "2.0.0"), (451, "5.7.1")])
def test_a_tempfail_cannot_hold_anything_but_a_4xx(code: int, status: str) -> None:
    with pytest.raises(ValueError):
        TempFail(code, status, "try again")


@pytest.mark.parametrize("code, status", [(451, "4.7.1"), (450, "4.2.0"), (250, "2.0.0"), (554, "4.7.1")])
def test_a_reject_cannot_hold_anything_but_a_5xx(code: int, status: str) -> None:
    with pytest.raises(ValueError):
        Reject(code, status, "go away")


@pytest.mark.parametrize("code, status", [(250, "2.0.0"), (354, "3.0.0"), (600, "6.0.0"), (451, "5.7.1")])
def test_no_reply_is_a_success_or_has_a_status_of_another_class(code: int, status: str) -> None:
    with pytest.raises(ValueError):
        SmtpReply(code, status, "x")


@pytest.mark.parametrize("disposition, verdict, expected", [
    pytest.param(Disposition.DELIVER, None, None, id="deliver"),
    pytest.param(Disposition.DELIVER_TAGGED, Spam(9.0, 5.0), None, id="tagged"),
    pytest.param(Disposition.QUARANTINE, Blocked("reject_sender", "example.org"), None, id="quarantine"),
    pytest.param(Disposition.DROP_INFECTED, Infected("Eicar"), None, id="infected-accepted-then-dropped"),
    pytest.param(Disposition.TEMPFAIL, ScanFailed("clamd", "refused"), SCAN_TEMPFAIL, id="tempfail"),
    pytest.param(Disposition.REJECT, Refused("overseas", "Unlock sending at https://mail.example.jp/"),
                 Reject(554, "5.7.1", "Unlock sending at https://mail.example.jp/"), id="refused"),
])
def test_reply_for_each_disposition(disposition: Disposition, verdict: Verdict | None,
                                    expected: SmtpReply | None) -> None:
    reply = reply_for(disposition, verdict)
    assert reply == expected
    if disposition is Disposition.TEMPFAIL:
        assert isinstance(reply, TempFail) and str(reply).startswith("451 4.7.1 ")
    if disposition is Disposition.REJECT:
        assert isinstance(reply, Reject) and str(reply).startswith("554 5.7.1 ")


def test_a_rejection_must_come_from_a_refusal() -> None:
    with pytest.raises(TypeError):
        reply_for(Disposition.REJECT, Blocked("reject_sender", "example.org"))


def test_a_message_past_a_limit_is_refused_before_queue_and_kept_after_queue() -> None:
    exc = MessageLimitExceeded("max_header_fields", 1001, 1000)
    before, after = limit_reply(exc, after_queue=False), limit_reply(exc, after_queue=True)
    assert isinstance(before, Reject) and str(before) == (
        "552 5.3.4 Message exceeds a limit of this server (max_header_fields 1000)")
    assert isinstance(after, TempFail) and str(after) == (
        "451 4.3.4 Message exceeds a limit of this server (max_header_fields 1000)")
    assert isinstance(FILTER_TEMPFAIL, TempFail) and FILTER_TEMPFAIL.code == 451

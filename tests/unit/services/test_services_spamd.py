"""SPAMC/1.5 requests and SPAMD replies: verdict, score, threshold and the
per-rule points from one REPORT (SPEC §8); oversize mail passes unscanned."""

from __future__ import annotations

import math

import pytest

from mailadmin.errors import ConfigError, ServiceProtocolError, ServiceUnavailable
from mailadmin.services.spamd import (
    NOT_SCANNED_REPORT,
    SpamdClient,
    SpamReport,
    parse_report,
    parse_response,
    parse_rules,
    ping_request,
    report_request,
)

GTUBE_REPORT = """Spam detection software, running on the system "mx1.example.jp",
has identified this incoming email as possible spam.  The original
message has been attached to this so you can view it or label
similar future email.  If you have any questions, see
@@CONTACT_ADDRESS@@ for details.

Content preview:  Hi, this is the spam test line: [...]
   [...]

Content analysis details:   (1002.5 points, 5.0 required)

 pts rule name              description
---- ---------------------- --------------------------------------------------
1000 GTUBE                  BODY: Generic Test for Unsolicited Bulk Email
-0.0 NO_RELAYS              Informational: message was not relayed via SMTP
 2.5 URIBL_BLACK            Contains an URL listed in the URIBL blacklist
                            [URIs: spam.example.com]
-1.9 BAYES_00               BODY: Bayes spam probability is 0 to 1%
                            [score: 0.0000]
 0.0 T_SCC_BODY_TEXT_LINE   No description available.
 0.1 DKIM_SIGNED            Message has a DKIM or DK signature, not necessarily valid
 1.8 FSL_HELO_BARE_IP_2      No description available.
 1.0 KAM_lowercase_Rule     Made-up rule with lower case
 0.0 LONG_RULE_NAME_THAT_OVERFLOWS_THE_COLUMN Informational

"""

EXPECTED_RULES = {
    "GTUBE": 1000.0, "NO_RELAYS": -0.0, "URIBL_BLACK": 2.5, "BAYES_00": -1.9,
    "T_SCC_BODY_TEXT_LINE": 0.0, "DKIM_SIGNED": 0.1, "FSL_HELO_BARE_IP_2": 1.8,
    "KAM_lowercase_Rule": 1.0, "LONG_RULE_NAME_THAT_OVERFLOWS_THE_COLUMN": 0.0,
}


def reply(spam_header: str, body: str, code: str = "0 EX_OK") -> bytes:
    data = body.encode()
    return (f"SPAMD/1.1 {code}\r\nContent-length: {len(data)}\r\nSpam: {spam_header}\r\n\r\n").encode() + data


def test_report_reply_gives_verdict_score_threshold_rules_and_text() -> None:
    report = parse_report(reply("True ; 1002.5 / 5.0", GTUBE_REPORT))
    assert report == SpamReport(True, 1002.5, 5.0, EXPECTED_RULES, GTUBE_REPORT)
    assert report.scanned


def test_rules_table_stops_at_the_blank_line() -> None:
    text = GTUBE_REPORT + "1000 NOT_A_RULE   after the table\n"
    assert "NOT_A_RULE" not in parse_rules(text)


@pytest.mark.parametrize(("text", "rules"), [
    ("", {}),
    ("no table at all\n 1.0 LOOKS_LIKE_A_RULE but no header\n", {}),
    ("---- ----\n", {}),
    ("---- ----\n 1.2 ONE  d\n-3 TWO  d\n", {"ONE": 1.2, "TWO": -3.0}),
    ("---- ----\r\n 0.5 CRLF_RULE  d\r\n", {"CRLF_RULE": 0.5}),
    ("---- ----\n                            0.5 WRAPPED_DESCRIPTION text\n", {}),
])
def test_rule_tables(text: str, rules: dict[str, float]) -> None:
    assert parse_rules(text) == rules


@pytest.mark.parametrize(("header", "is_spam", "score", "threshold"), [
    ("True ; 1000.0 / 5.0", True, 1000.0, 5.0),
    ("False ; 0.0 / 5.0", False, 0.0, 5.0),
    ("False ; -0.0 / 5.0", False, -0.0, 5.0),
    ("False ; -2.3 / 5.0", False, -2.3, 5.0),
    ("Yes ; 7 / 5", True, 7.0, 5.0),
    ("No;1.5/6.5", False, 1.5, 6.5),
    ("true ; 12.25 / 8.0", True, 12.25, 8.0),
])
def test_spam_header_variants(header: str, is_spam: bool, score: float, threshold: float) -> None:
    report = parse_report(reply(header, ""))
    assert (report.is_spam, report.score, report.threshold, report.rules) == (is_spam, score, threshold, {})


@pytest.mark.parametrize("header", [
    "", "Maybe ; 1.0 / 5.0", "True ; lots / 5.0", "True ; 1.0", "True 1.0 / 5.0", "True ; 1.0 / 5.0 extra",
])
def test_bad_spam_headers_are_protocol_errors(header: str) -> None:
    with pytest.raises(ServiceProtocolError, match="Spam header"):
        parse_report(reply(header, ""))


def test_missing_spam_header_is_a_protocol_error() -> None:
    with pytest.raises(ServiceProtocolError, match="Spam header"):
        parse_report(b"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n\r\n")


@pytest.mark.parametrize(("raw", "error", "message"), [
    (b"SPAMD/1.0 76 Bad header line: (Content-length mismatch: 5 vs. 2)\r\n", ServiceProtocolError, "76"),
    (b"SPAMD/1.0 65 EX_DATAERR\r\n", ServiceProtocolError, "65"),
    (b"SPAMD/1.0 64 EX_USAGE\r\n", ServiceProtocolError, "64"),
    (b"SPAMD/1.0 75 EX_TEMPFAIL\r\n", ServiceUnavailable, "75"),
    (b"SPAMD/1.0 69 EX_UNAVAILABLE\r\n", ServiceUnavailable, "69"),
    (b"", ServiceProtocolError, "unexpected reply"),
    (b"HTTP/1.0 200 OK\r\n\r\n", ServiceProtocolError, "unexpected reply"),
    (b"SPAMD/1.1 zero EX_OK\r\n\r\n", ServiceProtocolError, "unexpected reply"),
    (b"spamd/1.1 0 EX_OK\r\n\r\n", ServiceProtocolError, "unexpected reply"),
    (b"SPAMD/1.1 0 EX_OK\r\nno colon here\r\n\r\n", ServiceProtocolError, "malformed header"),
    (b"SPAMD/1.1 0 EX_OK\r\nContent-length: 10\r\n\r\nshort", ServiceProtocolError, "Content-length"),
    (b"SPAMD/1.1 0 EX_OK\r\nContent-length: 1\r\n\r\nlonger", ServiceProtocolError, "Content-length"),
    (b"SPAMD/1.1 0 EX_OK\r\nContent-length: -1\r\n\r\n", ServiceProtocolError, "Content-length"),
])
def test_error_and_malformed_replies(raw: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message) as caught:
        parse_response(raw)
    assert caught.value.service == "spamd"  # type: ignore[attr-defined]


def test_pong() -> None:
    response = parse_response(b"SPAMD/1.5 0 PONG\r\n")
    assert (response.code, response.message, response.headers, response.body) == (0, "PONG", {}, b"")


def test_headers_are_case_insensitive() -> None:
    response = parse_response(b"SPAMD/1.1 0 EX_OK\r\nCONTENT-LENGTH: 2\r\nspam: True ; 9 / 5\r\n\r\nhi")
    assert response.headers == {"content-length": "2", "spam": "True ; 9 / 5"}


def test_requests() -> None:
    assert report_request(b"Subject: x\r\n\r\nbody\r\n") == (
        b"REPORT SPAMC/1.5\r\nContent-length: 20\r\n\r\nSubject: x\r\n\r\nbody\r\n")
    assert report_request(b"x", user="taro") == (
        b"REPORT SPAMC/1.5\r\nContent-length: 1\r\nUser: taro\r\n\r\nx")
    assert ping_request() == b"PING SPAMC/1.5\r\n\r\n"


@pytest.mark.parametrize("user", ["", "two words", "line\r\nX-Injected: 1", "x" * 129, "日本"])
def test_a_user_that_would_break_the_header_is_refused(user: str) -> None:
    with pytest.raises(ConfigError, match="user"):
        SpamdClient("127.0.0.1:783", 5.0, 1000, user=user)


async def test_oversize_mail_is_passed_unscanned_without_connecting() -> None:
    # Connecting would raise ServiceUnavailable: this socket does not exist.
    spamd = SpamdClient("/nonexistent/mailadmin-test/spamd.sock", 5.0, max_size_bytes=10)
    report = await spamd.report(b"x" * 11)
    assert (report.is_spam, report.score, report.rules, report.report) == (False, 0.0, {}, NOT_SCANNED_REPORT)
    assert not report.scanned and report.score < report.threshold and math.isinf(report.threshold)

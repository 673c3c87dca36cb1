"""reject_sender and reject_subject, the subscriber's 受信拒否 lists (SPEC §4):
a match is ``Blocked`` (the effects quarantine it, never bounce it), anything
else passes.  One table per check; the matchers' own corner cases are in
tests/unit/mailtext/test_mailtext_matchers.py."""

from __future__ import annotations

import pytest

from mailadmin.checks import reject_lists
from mailadmin.message import Message
from mailadmin.verdicts import Blocked, CheckResult, Pass

from .conftest import FROM, SENDER, SUBJECT, TO, context, encoded_word, message, rules

PROMO = "From: Promo <promo@spam.example>"
TEASER = "【未承諾広告】お得な情報"


@pytest.mark.parametrize(
    ("entries", "mail_from", "msg", "expected"),
    [
        # "example.com matches a@example.com and a@mx.example.com but not a@badexample.com"
        pytest.param(("example.com",), "a@example.com", message(TO, SUBJECT),
                     Blocked("reject_sender", "example.com"), id="domain-matches-the-domain"),
        pytest.param(("example.com",), "a@mx.example.com", message(TO, SUBJECT),
                     Blocked("reject_sender", "example.com"), id="domain-matches-a-subdomain"),
        pytest.param(("example.com",), "a@badexample.com", message(TO, SUBJECT),
                     Pass(), id="domain-only-at-a-label-boundary"),
        pytest.param(("example.com",), "a@example.com.evil.org", message(TO, SUBJECT),
                     Pass(), id="domain-only-as-a-suffix"),
        # "@example.com matches that domain only"
        pytest.param(("@example.com",), "a@example.com", message(TO, SUBJECT),
                     Blocked("reject_sender", "@example.com"), id="at-domain-matches-the-domain"),
        pytest.param(("@example.com",), "a@mx.example.com", message(TO, SUBJECT),
                     Pass(), id="at-domain-not-a-subdomain"),
        # "user@example.com that address only"
        pytest.param(("user@example.com",), "user@example.com", message(TO, SUBJECT),
                     Blocked("reject_sender", "user@example.com"), id="address-matches-the-address"),
        pytest.param(("user@example.com",), "other@example.com", message(TO, SUBJECT),
                     Pass(), id="address-not-another-local-part"),
        pytest.param(("user@example.com",), "user@mx.example.com", message(TO, SUBJECT),
                     Pass(), id="address-not-a-subdomain"),
        # "A bare local part can't match reliably": refused at entry; one that got in never matches
        pytest.param(("user",), "user@example.com", message(TO, SUBJECT),
                     Pass(), id="bare-local-part-never-matches"),
        # "case-insensitively"; the verdict names the entry as the subscriber wrote it
        pytest.param(("Example.COM",), "A@EXAMPLE.com", message(TO, SUBJECT),
                     Blocked("reject_sender", "Example.COM"), id="case-insensitive"),
        pytest.param(("例え.jp",), "a@xn--r8jz45g.jp", message(TO, SUBJECT),
                     Blocked("reject_sender", "例え.jp"), id="idn-entry-matches-its-ascii-form"),
        # "the envelope sender *and* every header From address"
        pytest.param(("@spam.example",), "bounce@mailer.example", message(PROMO, TO, SUBJECT),
                     Blocked("reject_sender", "@spam.example"), id="header-from-when-envelope-differs"),
        pytest.param(("@spam.example",), "bounce@mailer.example", message("FROM: PROMO@SPAM.EXAMPLE", TO),
                     Blocked("reject_sender", "@spam.example"), id="header-from-case-insensitive"),
        pytest.param(("spam.example",), "", message(PROMO, TO, SUBJECT),
                     Blocked("reject_sender", "spam.example"), id="header-from-of-a-null-sender"),
        pytest.param(("spam.example",), SENDER, message("From: a@ok.example, b@spam.example", TO),
                     Blocked("reject_sender", "spam.example"), id="every-address-of-one-from"),
        pytest.param(("spam.example",), SENDER, message(FROM, "From: b@spam.example", TO),
                     Blocked("reject_sender", "spam.example"), id="every-from-header"),
        pytest.param(("spam.example",), SENDER,
                     message(f"From: {encoded_word('宣伝部', 'iso-2022-jp')} <promo@spam.example>", TO),
                     Blocked("reject_sender", "spam.example"), id="from-with-encoded-display-name"),
        pytest.param(("example.org",), SENDER, message(PROMO, TO, SUBJECT),
                     Blocked("reject_sender", "example.org"), id="envelope-when-header-from-differs"),
        # only From counts as a header sender
        pytest.param(("spam.example",), SENDER, message(FROM, "Reply-To: promo@spam.example", TO),
                     Pass(), id="reply-to-is-not-a-sender"),
        pytest.param(("spam.example",), SENDER, message(FROM, "Sender: promo@spam.example", TO),
                     Pass(), id="sender-header-is-not-a-sender"),
        pytest.param(("spam.example",), "", message(TO, SUBJECT),
                     Pass(), id="null-sender-without-from"),
        pytest.param(("sale",), SENDER, message(FROM, TO, "Subject: sale@spam.example"),
                     Pass(), id="subject-is-not-a-sender"),
        pytest.param((), SENDER, message(PROMO, TO, SUBJECT), Pass(), id="empty-list"),
        # the first entry in list order is the one reported
        pytest.param(("other.example", "@example.com", "example.com"), "a@example.com", message(TO),
                     Blocked("reject_sender", "@example.com"), id="first-entry-in-list-order"),
    ],
)
async def test_reject_sender(entries: tuple[str, ...], mail_from: str, msg: Message,
                             expected: CheckResult) -> None:
    ctx = context(rules=rules(reject_sender=entries), mail_from=mail_from, message=msg)
    assert await reject_lists.check_sender(ctx) == expected


def subject(value: str | bytes) -> Message:
    field = b"Subject: " + value if isinstance(value, bytes) else f"Subject: {value}"
    return message(FROM, TO, field)


@pytest.mark.parametrize(
    ("entries", "msg", "expected"),
    [
        # "substring match ... compare case-insensitively"
        pytest.param(("sale",), subject("Big SALE today"), Blocked("reject_subject", "sale"), id="substring"),
        pytest.param(("none",), subject("Big SALE today"), Pass(), id="no-match"),
        pytest.param(("Straße",), subject("STRASSE"), Blocked("reject_subject", "Straße"), id="casefold"),
        # "after Unicode NFKC, so full-width and half-width forms match each other"
        pytest.param(("ｓａｌｅ",), subject("Big SALE today"), Blocked("reject_subject", "ｓａｌｅ"),
                     id="full-width-entry-half-width-subject"),
        pytest.param(("SALE",), subject("Ｂｉｇ ｓａｌｅ"), Blocked("reject_subject", "SALE"),
                     id="half-width-entry-full-width-subject"),
        pytest.param(("カタカナ",), subject("ｶﾀｶﾅの件"), Blocked("reject_subject", "カタカナ"),
                     id="half-width-katakana-subject"),
        # "Decode RFC 2047 encoded words in any charset Japanese mail uses"
        pytest.param(("未承諾広告",), subject(encoded_word(TEASER, "iso-2022-jp")),
                     Blocked("reject_subject", "未承諾広告"), id="encoded-iso-2022-jp"),
        pytest.param(("未承諾広告",), subject(encoded_word(TEASER, "shift_jis")),
                     Blocked("reject_subject", "未承諾広告"), id="encoded-shift_jis"),
        pytest.param(("未承諾広告",), subject(encoded_word(TEASER, "euc-jp")),
                     Blocked("reject_subject", "未承諾広告"), id="encoded-euc-jp"),
        pytest.param(("未承諾広告",), subject(encoded_word(TEASER, "utf-8")),
                     Blocked("reject_subject", "未承諾広告"), id="encoded-utf-8-b"),
        pytest.param(("未承諾広告",), subject(encoded_word(TEASER, "utf-8", "Q")),
                     Blocked("reject_subject", "未承諾広告"), id="encoded-utf-8-q"),
        pytest.param(("ｓａｌｅ",), subject(encoded_word("SALE", "iso-2022-jp")),
                     Blocked("reject_subject", "ｓａｌｅ"), id="encoded-then-nfkc"),
        pytest.param(("未承諾広告",),
                     subject(encoded_word("【未承諾", "iso-2022-jp") + "\r\n " + encoded_word("広告】", "iso-2022-jp")),
                     Blocked("reject_subject", "未承諾広告"), id="entry-across-two-encoded-words"),
        # "unfold"
        pytest.param(("big sale",), subject("Big\r\n SALE today"), Blocked("reject_subject", "big sale"),
                     id="folded-subject"),
        # unencoded 8-bit subjects as Japanese mail still sends them
        pytest.param(("未承諾広告",), subject("［未承諾広告］セール".encode("shift_jis")),
                     Blocked("reject_subject", "未承諾広告"), id="raw-shift_jis"),
        pytest.param(("未承諾広告",), subject("［未承諾広告］セール".encode("euc_jp")),
                     Blocked("reject_subject", "未承諾広告"), id="raw-euc_jp"),
        pytest.param(("未承諾広告",), subject("［未承諾広告］セール".encode("utf-8")),
                     Blocked("reject_subject", "未承諾広告"), id="raw-utf-8"),
        pytest.param(("sale",), message(FROM, TO, "subject: Big SALE"), Blocked("reject_subject", "sale"),
                     id="header-name-case-insensitive"),
        pytest.param(("sale",), message(FROM, TO), Pass(), id="no-subject"),
        pytest.param(("sale",), subject(""), Pass(), id="empty-subject"),
        pytest.param((), subject("Big SALE today"), Pass(), id="empty-list"),
        pytest.param(("example",), message("From: sale@example.org", TO, SUBJECT), Pass(),
                     id="only-the-subject-is-searched"),
        # the first entry in list order is the one reported
        pytest.param(("today", "big"), subject("big sale today"), Blocked("reject_subject", "today"),
                     id="first-entry-in-list-order"),
    ],
)
async def test_reject_subject(entries: tuple[str, ...], msg: Message, expected: CheckResult) -> None:
    assert await reject_lists.check_subject(context(rules=rules(reject_subject=entries), message=msg)) == expected

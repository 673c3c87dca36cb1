"""Changes to a received message (mailtext.rewrite): SPEC §8 spam tagging,
added and removed header fields; the body bytes never change."""

from __future__ import annotations

import base64
import email
import email.policy

import pytest

from mailadmin.mailtext.headers import decode_header_value
from mailadmin.mailtext.rewrite import add_header, remove_headers, tag_spam


def iso2022jp_word(text: str) -> str:
    return "=?ISO-2022-JP?B?" + base64.b64encode(text.encode("iso2022_jp")).decode("ascii") + "?="


# ---------------------------------------------------------------- spam tagging (SPEC §8)

BODY = "本文はそのまま。\n".encode("utf-8") + b"\xff\xfe raw bytes\r\n"


def spam(*headers: str, eol: str = "\r\n") -> bytes:
    return (eol.join(headers) + eol + eol).encode("utf-8") + BODY


def subject_of(raw: bytes) -> str | None:
    values = [v for k, v in email.message_from_bytes(raw, policy=email.policy.compat32).raw_items()
              if k.lower() == "subject"]
    return decode_header_value(str(values[0])) if values else None


def tag(raw: bytes, prefix: str = "[spam] ") -> bytes:
    return tag_spam(raw, prefix=prefix, score=7.5, threshold=5.0, rules=["GTUBE", "NO_RECEIVED"])


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Subject: Cheap watches", "[spam] Cheap watches"),
        ("Subject: " + iso2022jp_word("お問い合わせ"), "[spam] お問い合わせ"),
        ("Subject: =?UTF-8?B?5pel5pys6Kqe?=\r\n =?UTF-8?B?44Gu5Lu25ZCN?=", "[spam] 日本語の件名"),
        ("Subject:\r\n =?UTF-8?B?5pel5pys6Kqe?=", "[spam] 日本語"),
        ("Subject: [spam] already", "[spam] already"),
        ("Subject: [SPAM] already", "[SPAM] already"),
        ("Subject:   [spam]already", "[spam]already"),
        ("Subject: =?UTF-8?B?W3NwYW1dIOaXpeacrOiqng==?=", "[spam] 日本語"),
        ("Subject:", "[spam]"),
        ("Subject: ", "[spam]"),
        ("Subject: Re: [spam] x", "[spam] Re: [spam] x"),
    ],
)
def test_subject_prefix(subject: str, expected: str) -> None:
    tagged = tag(spam("From: a@example.com", subject))
    assert subject_of(tagged) == expected


def test_missing_subject_gets_the_bare_tag() -> None:
    tagged = tag(spam("From: a@example.com"))
    assert b"\r\nSubject: [spam]\r\n" in tagged
    assert subject_of(tagged) == "[spam]"


def test_never_doubled() -> None:
    once = tag(spam("From: a@example.com", "Subject: =?UTF-8?B?5pel5pys6Kqe?="))
    twice = tag(once)
    assert subject_of(twice) == "[spam] 日本語"
    assert twice == once


def test_raw_8bit_subject() -> None:
    tagged = tag(b"Subject: " + "件名".encode("cp932") + b"\r\n\r\n" + BODY)
    assert subject_of(tagged) == "[spam] 件名"


def test_japanese_prefix_is_encoded() -> None:
    tagged = tag(spam("Subject: =?UTF-8?B?5pel5pys6Kqe?="), prefix="[迷惑] ")
    header_block = tagged.split(b"\r\n\r\n", 1)[0]
    assert header_block.isascii()
    assert subject_of(tagged) == "[迷惑] 日本語"
    plain = tag(spam("Subject: hello"), prefix="[迷惑] ")
    assert subject_of(plain) == "[迷惑] hello"
    assert tag(plain, prefix="[迷惑] ") == plain


def test_forged_spam_headers_are_replaced() -> None:
    raw = spam(
        "X-Spam-Flag: NO",
        "From: a@example.com",
        "x-spam-status: No, score=-100.0 required=5.0\r\n\ttests=FORGED",
        "Subject: hi",
        "X-Spam-Level: ",
        "X-Spam-Flag: NO",
    )
    tagged = tag(raw)
    message = email.message_from_bytes(tagged, policy=email.policy.compat32)
    assert message.get_all("X-Spam-Flag") == ["YES"]
    (status,) = message.get_all("X-Spam-Status") or []
    assert " ".join(str(status).split()) == "Yes, score=7.5 required=5.0 tests=GTUBE,NO_RECEIVED"
    assert message.get_all("X-Spam-Level") == ["*******"]
    assert b"FORGED" not in tagged


def test_body_bytes_are_untouched() -> None:
    raw = spam("From: a@example.com", "Subject: hi")
    tagged = tag(raw)
    assert tagged.endswith(b"\r\n\r\n" + BODY)
    assert tagged.split(b"\r\n\r\n", 1)[1] == BODY


def test_lf_messages_stay_lf() -> None:
    raw = spam("From: a@example.com", "Subject: hi", eol="\n")
    tagged = tag(raw)
    assert b"\r" not in tagged.split(b"\n\n", 1)[0]
    assert subject_of(tagged) == "[spam] hi"
    assert tagged.split(b"\n\n", 1)[1] == BODY


def test_header_only_message() -> None:
    tagged = tag(b"From: a@example.com\r\nSubject: hi")
    assert tagged.endswith(b"Subject: [spam] hi\r\n\r\n")


def test_many_rules_are_folded_and_sanitised() -> None:
    rules = [f"RULE_NUMBER_{i}" for i in range(30)] + ["BAD\r\nInjected: yes"]
    tagged = tag_spam(spam("Subject: x"), prefix="[spam] ", score=12.0, threshold=5.0, rules=rules)
    header_block = tagged.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in header_block.split(b"\r\n"))
    message = email.message_from_bytes(tagged, policy=email.policy.compat32)
    assert "Injected" not in message
    status = "".join(str(message["X-Spam-Status"]).split())
    assert "tests=RULE_NUMBER_0,RULE_NUMBER_1," in status and ",BADInjectedyes" in status
    assert status.count("RULE_NUMBER_") == 30


def test_no_rules() -> None:
    tagged = tag_spam(spam("Subject: x"), prefix="[spam] ", score=5.0, threshold=5.0, rules=[])
    assert b"X-Spam-Status: Yes, score=5.0 required=5.0 tests=none\r\n" in tagged


# ---------------------------------------------------------------- raw header edits


def test_add_header_prepends() -> None:
    raw = spam("From: a@example.com", "Subject: hi")
    added = add_header(raw, "X-Mailadmin-Loop", "taro@example.jp")
    assert added == b"X-Mailadmin-Loop: taro@example.jp\r\n" + raw
    lf = spam("Subject: hi", eol="\n")
    assert add_header(lf, "X-A", "b") == b"X-A: b\n" + lf


def test_add_header_prevents_injection_and_encodes() -> None:
    added = add_header(spam("Subject: hi"), "X-Note", "a\r\nBcc: victim@example.org")
    message = email.message_from_bytes(added, policy=email.policy.compat32)
    assert "Bcc" not in message
    assert message["X-Note"] == "a Bcc: victim@example.org"
    encoded = add_header(spam("Subject: hi"), "X-Note", "日本語")
    assert encoded.split(b"\r\n\r\n", 1)[0].isascii()
    assert decode_header_value(email.message_from_bytes(encoded, policy=email.policy.compat32)["X-Note"]) == "日本語"


@pytest.mark.parametrize("name", ["", "Bad Name", "Bad:Name", "X-\r\nBcc", "名前"])
def test_add_header_refuses_bad_names(name: str) -> None:
    with pytest.raises(ValueError):
        add_header(b"Subject: x\r\n\r\n", name, "v")


def test_remove_headers() -> None:
    raw = spam("X-Spam-Flag: YES", "From: a@example.com", "x-spam-flag: YES\r\n\tcontinued", "Subject: hi")
    removed = remove_headers(raw, ["X-Spam-Flag"])
    assert removed == spam("From: a@example.com", "Subject: hi")
    assert remove_headers(raw, ["X-Absent"]) is raw


def test_indented_lines_before_the_first_field_do_not_join_our_headers() -> None:
    raw = b"\tBcc: victim@example.org\r\nSubject: hi\r\n\r\nbody\r\n"
    tagged = tag(raw)
    message = email.message_from_bytes(tagged, policy=email.policy.compat32)
    assert "victim" not in str(message["X-Spam-Status"])
    assert tag(tagged) == tagged
    added = add_header(raw, "X-A", "b")
    assert added == b"X-A: b\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n\r\nbody only",
        b"y?\n\r",
        b"a: b\r\n c\r\r",
        b"Subject: x\r\n\r\r\n\r\nbody",
        b"From a@example.com Mon Jan  1 00:00:00 2024\nSubject: mbox\n\nbody\n",
        b"Subject: one\r\nSubject: two\r\n\r\n",
        b"no header line at all",
        b"X-Spam-Flag: YES\r\n\tX-Spam-Flag: continued\r\nSubject: x\r\n\r\n",
    ],
)
def test_tagging_malformed_messages_is_stable(raw: bytes) -> None:
    once = tag(raw)
    assert tag(once) == once
    header, _, _ = once.replace(b"\r\n", b"\n").partition(b"\n\n")
    names = [line.split(b":", 1)[0].lower() for line in header.split(b"\n") if line[:1] not in (b" ", b"\t")]
    assert names.count(b"x-spam-flag") == 1
    assert b"subject" in names

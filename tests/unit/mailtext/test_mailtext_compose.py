"""Mail the daemon writes (mailtext.compose): SPEC §6 auto-replies, §7 virus
reports, §8 quarantine notices."""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.message
import email.policy
import email.utils

import pytest

from mailadmin.mailtext.compose import compose_auto_reply, compose_quarantine_notice, compose_virus_report
from mailadmin.mailtext.headers import decode_header_value
from mailadmin.message import Message, MessageInfo

NOW = dt.datetime(2024, 2, 20, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=9)))
MAILBOX = "taro@example.jp"
SENDER = "hanako@example.com"
POSTMASTER = "postmaster@example.jp"


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


def parse(raw: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    assert not message.defects, message.defects
    return message


def consistent_crlf(raw: bytes) -> bool:
    return b"\n" not in raw.replace(b"\r\n", b"")


def iso2022jp_word(text: str) -> str:
    return "=?ISO-2022-JP?B?" + base64.b64encode(text.encode("iso2022_jp")).decode("ascii") + "?="


def original(*extra: str, subject: str = iso2022jp_word("お問い合わせ")) -> Message:
    headers = [
        f'From: "Hanako" <{SENDER}>',
        f"To: {MAILBOX}",
        f"Subject: {subject}",
        "Date: Mon, 19 Feb 2024 10:00:00 +0900",
        *extra,
    ]
    return Message(crlf("\n".join(headers) + "\n\nこんにちは\n"))


# ---------------------------------------------------------------- auto-reply (SPEC §6)


def test_auto_reply_headers_and_japanese_body() -> None:
    body = "ただいま不在にしております。\n2月25日に戻ります。"
    raw = compose_auto_reply(
        original("Message-ID: <orig@example.com>"), SENDER, MAILBOX, "不在のお知らせ", body, now=NOW,
    )
    assert consistent_crlf(raw)
    assert raw.isascii()  # correct MIME: nothing 8-bit on the wire
    reply = parse(raw)
    assert reply["To"] == SENDER
    assert reply["From"] == MAILBOX
    assert reply["Subject"] == "不在のお知らせ"
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["In-Reply-To"] == "<orig@example.com>"
    assert reply["References"] == "<orig@example.com>"
    assert email.utils.parsedate_to_datetime(str(reply["Date"])) == NOW
    assert reply["Message-ID"].endswith("@example.jp>")
    assert reply.get_content_type() == "text/plain"
    assert reply.get_content_charset() == "utf-8"
    assert reply.get_content().replace("\r\n", "\n") == body + "\n"


def test_auto_reply_without_subject_uses_re_original() -> None:
    raw = compose_auto_reply(original(), SENDER, MAILBOX, "", "x", now=NOW)
    assert parse(raw)["Subject"] == "Re: お問い合わせ"


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: hello", "Re: hello"),
        ("RE: hello", "RE: hello"),
        ("hello", "Re: hello"),
        ("", "Re:"),
    ],
)
def test_reply_subject_is_not_doubled(subject: str, expected: str) -> None:
    raw = compose_auto_reply(original(subject=subject), SENDER, MAILBOX, "  ", "x", now=NOW)
    assert parse(raw)["Subject"] == expected


def test_auto_reply_without_subject_header() -> None:
    message = Message(crlf(f"From: {SENDER}\nTo: {MAILBOX}\n\nbody\n"))
    assert parse(compose_auto_reply(message, SENDER, MAILBOX, "", "x", now=NOW))["Subject"] == "Re:"


def test_references_extend_the_thread() -> None:
    message = original("Message-ID: <3@x.example>", "References: <1@x.example>\n <2@x.example>",
                       "In-Reply-To: <2@x.example>")
    reply = parse(compose_auto_reply(message, SENDER, MAILBOX, "s", "b", now=NOW))
    assert reply["In-Reply-To"] == "<3@x.example>"
    assert str(reply["References"]).split() == ["<1@x.example>", "<2@x.example>", "<3@x.example>"]


def test_references_from_in_reply_to_when_there_are_none() -> None:
    message = original("Message-ID: <3@x.example>", "In-Reply-To: <2@x.example>")
    reply = parse(compose_auto_reply(message, SENDER, MAILBOX, "s", "b", now=NOW))
    assert str(reply["References"]).split() == ["<2@x.example>", "<3@x.example>"]


def test_long_reference_chains_are_trimmed() -> None:
    chain = " ".join(f"<{i}@x.example>" for i in range(100))
    message = original("Message-ID: <last@x.example>", f"References: {chain}")
    reply = parse(compose_auto_reply(message, SENDER, MAILBOX, "s", "b", now=NOW))
    ids = str(reply["References"]).split()
    assert len(ids) == 20
    assert ids[0] == "<0@x.example>" and ids[-1] == "<last@x.example>"


@pytest.mark.parametrize("message_id", [None, "", "garbage without brackets"])
def test_no_threading_headers_without_a_message_id(message_id: str | None) -> None:
    extra = () if message_id is None else (f"Message-ID: {message_id}",)
    reply = parse(compose_auto_reply(original(*extra), SENDER, MAILBOX, "s", "b", now=NOW))
    assert "In-Reply-To" not in reply
    assert "References" not in reply


def test_configured_subject_cannot_inject_headers() -> None:
    raw = compose_auto_reply(original(), SENDER, MAILBOX, "away\r\nBcc: victim@example.org", "b", now=NOW)
    reply = parse(raw)
    assert "Bcc" not in reply
    assert reply["Subject"] == "away Bcc: victim@example.org"


def test_ascii_reply_and_naive_now() -> None:
    raw = compose_auto_reply(original(), SENDER, MAILBOX, "Away", "I am away.",
                             now=dt.datetime(2024, 1, 1, 12, 0))
    reply = parse(raw)
    assert reply.get_content().replace("\r\n", "\n") == "I am away.\n"
    assert email.utils.parsedate_to_datetime(str(reply["Date"])) == dt.datetime(
        2024, 1, 1, 12, 0, tzinfo=dt.timezone.utc
    )


def test_long_japanese_subject_is_valid_rfc2047() -> None:
    subject = "長期休暇のため不在にしております" * 5
    raw = compose_auto_reply(original(), SENDER, MAILBOX, subject, "b", now=NOW)
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in header_block.split(b"\r\n"))
    raw_subject = email.message_from_bytes(raw, policy=email.policy.compat32)["Subject"]
    assert decode_header_value(raw_subject) == subject


# ---------------------------------------------------------------- virus report (SPEC §7)


def infected_message(eicar: bytes) -> bytes:
    return crlf(
        f'From: "Hanako" <{SENDER}>\n'
        f"To: {MAILBOX}\n"
        "Subject: =?UTF-8?B?6KuL5rGC5pu444Gu44GU5qGI5YaF?=\n"
        "Date: Mon, 19 Feb 2024 10:00:00 +0900\n"
        "Message-ID: <infected@example.com>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="b"\n'
        "\n"
        "--b\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit\n"
        "\n"
        "請求書を添付します。\n"
        "--b\n"
        'Content-Type: application/octet-stream; name="invoice.com"\n'
        'Content-Disposition: attachment; filename="invoice.com"\n'
        "Content-Transfer-Encoding: base64\n"
        "\n"
    ) + base64.encodebytes(eicar).replace(b"\n", b"\r\n") + crlf("--b--\n")


def report_text(report: email.message.EmailMessage) -> str:
    body = report.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert isinstance(text, str)
    return text


@pytest.mark.parametrize(
    ("direction", "phrase_ja", "phrase_en"),
    [
        ("inbound", "配信されませんでした", "not delivered"),
        ("outbound", "送信されませんでした", "was not sent"),
    ],
)
def test_virus_report_with_infected_part_removed(
    eicar: bytes, direction: str, phrase_ja: str, phrase_en: str
) -> None:
    raw = compose_virus_report(
        infected_message(eicar), to=MAILBOX if direction == "inbound" else SENDER,
        virus="Eicar-Signature", direction=direction,  # type: ignore[arg-type]
        removed_parts=["2"], postmaster=POSTMASTER, now=NOW,
    )
    assert eicar not in raw
    assert base64.b64encode(eicar)[:32] not in raw
    assert consistent_crlf(raw)
    report = parse(raw)
    assert report["Auto-Submitted"] == "auto-generated"
    assert report["From"] == POSTMASTER
    assert report["To"] == (MAILBOX if direction == "inbound" else SENDER)
    assert "Message-ID" in report and "Date" in report
    text = report_text(report)
    for expected in ("Eicar-Signature", SENDER, "請求書のご案内", "Mon, 19 Feb 2024 10:00:00 +0900",
                     phrase_ja, phrase_en, "ウイルス名", "Virus:", "添付", "attached"):
        assert expected in text
    attachments = list(report.iter_attachments())
    assert [a.get_content_type() for a in attachments] == ["message/rfc822"]
    attached = attachments[0].get_content()
    assert isinstance(attached, email.message.Message)
    assert attached["Message-ID"] == "<infected@example.com>"
    parts = list(attached.walk())
    texts = [p.get_payload(decode=True) for p in parts if not p.is_multipart()]
    assert "請求書を添付します。".encode() in texts[0]
    assert b"invoice.com" in texts[1] and b"removed" in texts[1]
    assert all(eicar not in t for t in texts if isinstance(t, bytes))


def test_virus_report_headers_only_when_parts_unknown(eicar: bytes) -> None:
    raw = compose_virus_report(
        infected_message(eicar), to=MAILBOX, virus="Eicar-Signature", direction="inbound",
        removed_parts=[], postmaster=POSTMASTER, now=NOW,
    )
    assert eicar not in raw
    assert base64.b64encode(eicar)[:32] not in raw
    report = parse(raw)
    decoded = [p.get_payload(decode=True) for p in report.walk() if not p.is_multipart()]
    assert all(isinstance(d, bytes) for d in decoded)
    assert not any(eicar in d or "請求書を添付します".encode() in d for d in decoded)
    attachments = list(report.iter_attachments())
    assert [a.get_content_type() for a in attachments] == ["text/rfc822-headers"]
    headers = attachments[0].get_content()
    assert "Message-ID: <infected@example.com>" in headers
    assert "ヘッダー" in report_text(report) and "headers" in report_text(report)


def test_virus_report_falls_back_when_a_named_part_does_not_exist(eicar: bytes) -> None:
    raw = compose_virus_report(
        infected_message(eicar), to=MAILBOX, virus="Eicar-Signature", direction="inbound",
        removed_parts=["7"], postmaster=POSTMASTER, now=NOW,
    )
    assert eicar not in raw
    report = parse(raw)
    assert [a.get_content_type() for a in report.iter_attachments()] == ["text/rfc822-headers"]


def test_virus_report_on_a_single_part_message(eicar: bytes) -> None:
    raw_original = crlf(f"From: {SENDER}\nTo: {MAILBOX}\n\n") + eicar + b"\r\n"
    raw = compose_virus_report(
        raw_original, to=MAILBOX, virus="Eicar-Signature", direction="inbound",
        removed_parts=["1"], postmaster=POSTMASTER, now=NOW,
    )
    assert eicar not in raw
    report = parse(raw)
    text = report_text(report)
    assert "(なし)" in text and "(none)" in text  # no subject, no date
    (attachment,) = report.iter_attachments()
    assert attachment.get_content_type() == "message/rfc822"


def test_virus_report_with_raw_8bit_original(eicar: bytes) -> None:
    raw_original = (
        b"From: \x8eR\x93c <yamada@example.jp>\r\nSubject: \x90\xbf\x8b\x81\x8f\x91\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain; charset=shift_jis\r\n\r\n\x96{\x95\xb6\r\n"
        b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(eicar) + b"--b--\r\n"
    )
    raw = compose_virus_report(
        raw_original, to=MAILBOX, virus="Eicar-Signature", direction="inbound",
        removed_parts=["2"], postmaster=POSTMASTER, now=NOW,
    )
    assert eicar not in raw
    report = parse(raw)
    text = report_text(report)
    assert "請求書" in text and "山田" in text
    (attachment,) = report.iter_attachments()
    inner = attachment.get_content()
    assert "\u672c\u6587".encode("cp932") in inner.as_bytes()


# ---------------------------------------------------------------- quarantine notice (SPEC §8)


def test_quarantine_notice() -> None:
    items = [
        MessageInfo("spammer@example.net", "【重要】当選のお知らせ", "2024-02-20 08:00"),
        MessageInfo("other@example.org", "Cheap watches", "2024-02-20 09:00"),
    ]
    raw = compose_quarantine_notice(MAILBOX, items, "https://mail.example.jp/quarantine",
                                    postmaster=POSTMASTER, now=NOW)
    assert consistent_crlf(raw) and raw.isascii()
    notice = parse(raw)
    assert notice["To"] == MAILBOX
    assert notice["From"] == POSTMASTER
    assert notice["Auto-Submitted"] == "auto-generated"
    assert "2" in notice["Subject"] and "隔離" in notice["Subject"]
    text = notice.get_content()
    for expected in ("spammer@example.net", "【重要】当選のお知らせ", "2024-02-20 08:00",
                     "other@example.org", "Cheap watches", "https://mail.example.jp/quarantine",
                     "迷惑メールフォルダ", "quarantine", "差出人", "From", "件名", "Subject"):
        assert expected in text


def test_quarantine_notice_sanitises_what_the_spammer_wrote() -> None:
    items = [MessageInfo("a@example.net", "hi\r\nClick https://evil.example\x00", "d\nx")]
    text = parse(compose_quarantine_notice(MAILBOX, items, "https://p.example/",
                                           postmaster=POSTMASTER, now=NOW)).get_content()
    assert "hi Click https://evil.example" in text
    assert "\x00" not in text
    assert "\nClick" not in text


def test_quarantine_notice_caps_a_long_list() -> None:
    items = [MessageInfo(f"s{i}@example.net", f"subject {i}", "d") for i in range(250)]
    text = parse(compose_quarantine_notice(MAILBOX, items, "https://p.example/",
                                           postmaster=POSTMASTER, now=NOW)).get_content()
    assert "s199@example.net" in text and "s200@example.net" not in text
    assert "50" in text and "more" in text


def test_quarantine_notice_lists_each_items_links() -> None:
    items = [MessageInfo(f"s{i}@example.net", f"subject {i}", "d") for i in range(2)]
    links = [(f"https://p.example/q/release/{i}/9/{'a' * 64}", f"https://p.example/q/delete/{i}/9/{'b' * 64}")
             for i in range(2)]
    text = parse(compose_quarantine_notice(MAILBOX, items, "https://p.example/", postmaster=POSTMASTER,
                                           now=NOW, links=links)).get_content()
    first, second = text.split("[1]")[1].split("[2]")
    assert links[0][0] in first and links[0][1] in first and links[1][0] in second
    assert "ログインせずに" in text and "without logging in" in text
    plain = parse(compose_quarantine_notice(MAILBOX, items, "https://p.example/", postmaster=POSTMASTER,
                                            now=NOW)).get_content()
    assert "/q/" not in plain and "without logging in" not in plain


# ---------------------------------------------------------------- odd addresses never break composing


@pytest.mark.parametrize(
    ("mailbox", "sender", "expected_to"),
    [
        ("taro@例え.jp", SENDER, SENDER),
        (MAILBOX, "user@例え.jp", "user@" + "例え.jp".encode("idna").decode("ascii")),
        (MAILBOX, '"a b"@example.com', '"a b"@example.com'),
        (MAILBOX, "<hanako@example.com>", SENDER),
        (MAILBOX, "hanako@example.com\r\nBcc: victim@example.org", None),
    ],
)
def test_auto_reply_to_odd_addresses(mailbox: str, sender: str, expected_to: str | None) -> None:
    raw = compose_auto_reply(original(), sender, mailbox, "s", "b", now=NOW)
    assert raw.isascii()
    reply = email.message_from_bytes(raw, policy=email.policy.default)
    assert "Bcc" not in reply
    assert str(reply["From"]).isascii() and str(reply["Message-ID"]).isascii()
    if expected_to is not None:
        assert reply["To"] == expected_to


def test_auto_reply_to_a_utf8_local_part_is_smtputf8_mail() -> None:
    raw = compose_auto_reply(original(), "ユーザー@example.jp", MAILBOX, "不在", "本文", now=NOW)
    reply = email.message_from_bytes(raw, policy=email.policy.SMTPUTF8)
    assert reply["To"] == "ユーザー@example.jp"
    assert reply["Subject"] == "不在"
    assert consistent_crlf(raw)


def test_notice_for_an_idn_mailbox() -> None:
    raw = compose_quarantine_notice("taro@例え.jp", [MessageInfo("a@example.net", "s", "d")],
                                    "https://p.example/", postmaster="postmaster@例え.jp", now=NOW)
    assert raw.isascii()
    notice = parse(raw)
    assert notice["To"] == "taro@" + "例え.jp".encode("idna").decode("ascii")
    assert "taro@例え.jp" in notice.get_content()


def test_report_and_notice_keep_ascii_readable_on_the_wire(eicar: bytes) -> None:
    report = compose_virus_report(
        infected_message(eicar), to=MAILBOX, virus="Eicar-Signature", direction="inbound",
        removed_parts=["2"], postmaster=POSTMASTER, now=NOW,
    )
    assert b"Eicar-Signature" in report
    notice = compose_quarantine_notice(MAILBOX, [MessageInfo("a@example.net", "s", "d")],
                                       "https://mail.example.jp/quarantine", postmaster=POSTMASTER, now=NOW)
    assert b"https://mail.example.jp/quarantine" in notice
    assert b"Content-Transfer-Encoding: quoted-printable" in report
    assert b"Content-Transfer-Encoding: quoted-printable" in notice


@pytest.mark.parametrize(
    "subject",
    [
        "=?x-bogus?q?=FF?= 日本",
        "=?utf-8?b?w6k=?= literal",
        "Re: =?utf-8?b?Content ｶ?= x",
    ],
)
def test_literal_encoded_word_syntax_in_a_subject(subject: str) -> None:
    # an undecodable subject comes back from decode_header_value as literal text
    message = Message(crlf(f"From: {SENDER}\nTo: {MAILBOX}\n\nbody\n"))
    reply = parse(compose_auto_reply(message, SENDER, MAILBOX, subject, "b", now=NOW))
    assert str(reply["Subject"]).replace("\u200b", "") == subject

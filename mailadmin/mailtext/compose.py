"""Mail the daemon writes: auto-replies (SPEC §6, RFC 3834), virus reports
(SPEC §7) and quarantine notices (SPEC §8).  Changes to a received message
(the ``[spam] `` subject tag, added and removed header fields) are in
:mod:`mailadmin.mailtext.rewrite`.

New messages are built with :class:`email.message.EmailMessage` under the
SMTP policy: CRLF line ends, RFC 2047 encoded words for non-ASCII headers,
UTF-8 text bodies in base64 (auto-replies) or quoted-printable (reports and
notices) when they are not plain ASCII.
"""

from __future__ import annotations

import datetime as dt
import email
import email.header
import email.headerregistry
import email.message
import email.policy
import email.utils
import re
import unicodedata
from collections.abc import Sequence
from typing import Literal

from mailadmin.errors import UnrenderableMessage
from mailadmin.mailtext.addresses import canonical_domain, domain_of, is_valid_address
from mailadmin.mailtext.headers import decode_header_value
from mailadmin.mailtext.mime_parts import strip_parts_found
from mailadmin.message import Message, MessageInfo, header_block

_POLICY = email.policy.SMTP
# Written out without refolding: the attached original keeps its header lines.
_OUTPUT_POLICY = email.policy.SMTP.clone(refold_source="none")
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_UTF8_LOCAL_PART = re.compile(r'[^\s"(),:;<>@\[\\\]]+(?:\.[^\s"(),:;<>@\[\\\].]+)*\Z')
_MAX_REFERENCES = 20
_MAX_FIELD_CHARS = 200
_MAX_NOTICE_ITEMS = 200


# ---------------------------------------------------------------- shared pieces


def _aware(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.timezone.utc).astimezone()
    if now.tzinfo is None:
        return now.replace(tzinfo=dt.timezone.utc)
    return now


def _without_surrogates(text: str) -> str:
    """Lone surrogates (raw bytes that were never decoded) can't be written
    in any charset: they become U+FFFD."""
    return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)


def _one_line(text: str, limit: int = _MAX_FIELD_CHARS) -> str:
    """Text from a received message, safe to put on one line of ours."""
    cleaned = "".join(
        " " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c
        for c in _without_surrogates(text)
    )
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= limit else cleaned[:limit] + "…"


def _ascii_address(address: str) -> str:
    """``address`` with its domain in A-label form: an internationalised
    domain can't be RFC 2047-encoded in an address header."""
    address = _one_line(address.strip().strip("<>").strip(), 998)
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii():
        return address
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return address


def _set_address(message: email.message.EmailMessage, name: str, address: str) -> None:
    """An address header that holds exactly one mailbox, whatever the address
    looks like: a malformed envelope sender must not be read as a group or a
    list, nor stop the message from being written."""
    local, at, domain = address.rpartition("@") if "@" in address else (address, "", "")
    utf8_local = (
        bool(at) and not local.isascii() and canonical_domain(domain) is not None
        and _UTF8_LOCAL_PART.match(local) is not None
    )
    if is_valid_address(address) or utf8_local:
        message[name] = address
        return
    # Only characters that need no quoting, and no more than fits on a line:
    # the email package loses the quotes when it folds a long quoted string.
    domain = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9.-]", "", domain)).strip(".")[:253]
    local = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9!#$%&'*+/=^_`{|}~.-]", "", local)).strip(".")
    message[name] = email.headerregistry.Address(
        username=local[:64] or "unknown", domain=domain or "invalid"
    )


def _new_message(*, sender: str, to: str, subject: str, now: dt.datetime | None,
                 auto_submitted: str) -> email.message.EmailMessage:
    sender, to = _ascii_address(sender), _ascii_address(to)
    # A non-ASCII local part can only travel as SMTPUTF8 (RFC 6532) mail.
    policy = _POLICY if (sender + to).isascii() else _POLICY.clone(utf8=True)
    message = email.message.EmailMessage(policy=policy)
    _set_address(message, "From", sender)
    _set_address(message, "To", to)
    # The text is already decoded: a "=?" left in it is literal, and the email
    # package would decode it again (and fail on a bogus charset).  A zero-width
    # space keeps it literal and invisible.
    message["Subject"] = _one_line(subject, 998).replace("=?", "=\u200b?")
    message["Date"] = email.utils.format_datetime(_aware(now))
    message["Message-ID"] = email.utils.make_msgid(
        domain=canonical_domain(domain_of(sender)) or "localhost"
    )
    message["MIME-Version"] = "1.0"
    message["Auto-Submitted"] = auto_submitted
    # Exchange and Outlook honour this and send no out-of-office reply back.
    message["X-Auto-Response-Suppress"] = "All"
    return message


def _set_text(message: email.message.EmailMessage, text: str,
              cte: Literal["base64", "quoted-printable"] = "base64") -> None:
    """A UTF-8 text body, 7-bit on the wire.  Reports and notices use
    quoted-printable so that a postmaster reading the queue sees the virus
    name, addresses and links as they are."""
    text = _without_surrogates(text).replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    if text.isascii():
        message.set_content(text)
    else:
        message.set_content(text, charset="utf-8", cte=cte)


def _to_bytes(message: email.message.Message) -> bytes:
    utf8 = isinstance(message.policy, email.policy.EmailPolicy) and message.policy.utf8
    return message.as_bytes(policy=_OUTPUT_POLICY.clone(utf8=True) if utf8 else _OUTPUT_POLICY)


# ---------------------------------------------------------------- auto-reply (SPEC §6)


def _references(original: Message) -> tuple[str | None, str | None]:
    """(In-Reply-To, References) for a reply to ``original`` (RFC 5322 §3.6.4)."""
    own = _MESSAGE_ID.findall(original.message_id or "")
    if not own:
        return None, None
    parent_id = own[0]
    chain: list[str] = []
    for value in original.header_values("References"):
        chain.extend(_MESSAGE_ID.findall(value))
    if not chain:
        in_reply_to = [i for v in original.header_values("In-Reply-To") for i in _MESSAGE_ID.findall(v)]
        if len(in_reply_to) == 1:
            chain = in_reply_to
    chain = [i for i in dict.fromkeys(chain) if i != parent_id] + [parent_id]
    if len(chain) > _MAX_REFERENCES:
        # keep the thread's root and the most recent ids
        chain = chain[:1] + chain[-(_MAX_REFERENCES - 1):]
    return parent_id, " ".join(chain)


def _reply_subject(original: Message) -> str:
    subject = _one_line(original.subject or "", 900)
    if re.match(r"(?i)re\s*:", subject):
        return subject
    return f"Re: {subject}".rstrip()


def compose_auto_reply(
    original: Message,
    envelope_sender: str,
    mailbox: str,
    subject: str,
    body: str,
    *,
    now: dt.datetime | None = None,
) -> bytes:
    """The auto-reply to ``original`` (SPEC §6, RFC 3834 §3).

    To the envelope sender, from the mailbox, ``Auto-Submitted:
    auto-replied``, threaded with In-Reply-To/References when the original has
    a Message-ID.  An empty ``subject`` gives ``Re: <original subject>``.
    """
    reply = _new_message(
        sender=mailbox,
        to=envelope_sender,
        subject=subject.strip() or _reply_subject(original),
        now=now,
        auto_submitted="auto-replied",
    )
    in_reply_to, references = _references(original)
    if in_reply_to is not None and references is not None:
        reply["In-Reply-To"] = in_reply_to
        reply["References"] = references
    _set_text(reply, body)
    return _to_bytes(reply)


# ---------------------------------------------------------------- virus report (SPEC §7)


def _original_summary(raw: bytes) -> tuple[str, str, str]:
    """(sender, subject, date) of a message, decoded, one line each."""
    original = Message(raw)

    def first(name: str) -> str:
        # the raw values keep raw 8-bit bytes (surrogate-escaped) for the decoder
        values = original.header_values(name)
        return _one_line(decode_header_value(values[0])) if values else ""

    return first("From"), first("Subject"), first("Date")


def compose_virus_report(
    original_raw: bytes,
    *,
    to: str,
    virus: str,
    direction: Literal["inbound", "outbound"],
    removed_parts: Sequence[str],
    postmaster: str,
    now: dt.datetime | None = None,
) -> bytes:
    """The report on an infected message (SPEC §7), in Japanese and English.

    Inbound it goes to the mailbox owner, outbound to the sender.  It names
    the virus and the original's sender, subject and date, and attaches the
    original as message/rfc822 with ``removed_parts`` replaced by a notice.
    When the infection can't be pinned to parts (``removed_parts`` empty, or
    naming parts the message does not have) only the original's headers are
    attached (text/rfc822-headers): the infected content is never sent on.
    """
    sender, subject, date = _original_summary(original_raw)
    virus = _one_line(virus) or "unknown"
    shown_to, shown_postmaster = _one_line(to, 320), _one_line(postmaster, 320)
    none_ja, none_en = "(なし)", "(none)"
    stripped: bytes | None = None
    if removed_parts:
        try:
            candidate, removed = strip_parts_found(original_raw, removed_parts)
        except UnrenderableMessage:
            # Its parts cannot be removed: only its headers go with the report.
            candidate, removed = b"", frozenset()
        if removed == {p.strip() for p in removed_parts}:
            stripped = candidate
    if direction == "outbound":
        lead_ja = (
            "お客さまが送信されたメールからウイルスが検出されたため、このメールは送信されませんでした。\n"
            "お使いのパソコンやスマートフォンのウイルスチェックをお勧めします。"
        )
        lead_en = (
            "A virus was found in a message you sent, so the message was not sent.\n"
            "Please check your computer or phone for viruses."
        )
        subject_line = "【ウイルス検出のお知らせ】Virus found in a message you sent"
    else:
        lead_ja = (
            "お客さま宛てのメールからウイルスが検出されたため、"
            "このメールはお客さまのメールボックスに配信されませんでした。"
        )
        lead_en = (
            "A virus was found in a message addressed to you, so the message was not "
            "delivered to your mailbox."
        )
        subject_line = "【ウイルス検出のお知らせ】Virus found in a message to you"
    if stripped is not None:
        attached_ja = "元のメールを、ウイルスが検出された部分を削除したうえで添付しています。"
        attached_en = "The original message is attached with the infected parts removed."
    else:
        attached_ja = (
            "ウイルスが検出された部分を特定できなかったため、"
            "元のメールのヘッダー部分のみを添付しています。"
        )
        attached_en = (
            "The infected part could not be singled out, so only the headers of the "
            "original message are attached."
        )
    text = (
        f"{shown_to} 様\n\n"
        f"{lead_ja}\n\n"
        f"  ウイルス名: {virus}\n"
        f"  差出人    : {sender or none_ja}\n"
        f"  件名      : {subject or none_ja}\n"
        f"  日付      : {date or none_ja}\n\n"
        f"{attached_ja}\n\n"
        "このメールはシステムから自動送信されています。ご返信いただいてもお答えできません。\n"
        f"ご不明な点は {shown_postmaster} までお問い合わせください。\n\n"
        + "-" * 60 + "\n\n"
        f"{lead_en}\n\n"
        f"  Virus:   {virus}\n"
        f"  From:    {sender or none_en}\n"
        f"  Subject: {subject or none_en}\n"
        f"  Date:    {date or none_en}\n\n"
        f"{attached_en}\n\n"
        "This notice was sent automatically; replies to it are not read.\n"
        f"Questions: {shown_postmaster}\n"
    )
    report = _new_message(
        sender=postmaster, to=to, subject=subject_line, now=now,
        auto_submitted="auto-generated",
    )
    _set_text(report, text, "quoted-printable")
    if stripped is not None:
        inner = email.message_from_bytes(stripped, policy=email.policy.compat32)
        report.add_attachment(
            inner, disposition="attachment", filename="original.eml",
            cte="7bit" if stripped.isascii() else "8bit",
        )
    else:
        headers_text = header_block(original_raw).rstrip(b"\r\n").decode("utf-8", "replace")
        report.add_attachment(
            headers_text, subtype="rfc822-headers", charset="utf-8",
            cte=None if headers_text.isascii() else "base64",
            disposition="attachment", filename="original-headers.txt",
        )
    return _to_bytes(report)


# ---------------------------------------------------------------- quarantine notice (SPEC §8)


def compose_quarantine_notice(
    mailbox: str,
    items: Sequence[MessageInfo],
    page_url: str,
    *,
    postmaster: str,
    now: dt.datetime | None = None,
    links: Sequence[tuple[str, str]] = (),
) -> bytes:
    """The notice listing newly quarantined mail (SPEC §8), Japanese and English,
    with the link to the quarantine page.  ``links`` holds, item by item, the
    signed (release, delete) URLs of ``mailadmin/quarantine_links.py``."""
    count = len(items)
    shown_mailbox = _one_line(mailbox, 320)
    listing: list[str] = []
    for number, item in enumerate(items[:_MAX_NOTICE_ITEMS], start=1):
        entry = (
            f"[{number}]\n"
            f"  日付 / Date      : {_one_line(item.date) or '-'}\n"
            f"  差出人 / From    : {_one_line(item.sender) or '-'}\n"
            f"  件名 / Subject   : {_one_line(item.subject) or '-'}\n"
        )
        if number <= len(links):
            release, delete = links[number - 1]
            entry += (
                f"  受信箱へ戻す / Release : {_one_line(release, 2000)}\n"
                f"  削除 / Delete          : {_one_line(delete, 2000)}\n"
            )
        listing.append(entry)
    if count > _MAX_NOTICE_ITEMS:
        rest = count - _MAX_NOTICE_ITEMS
        listing.append(f"ほか {rest} 通 / and {rest} more\n")
    text = (
        f"{shown_mailbox} 様\n\n"
        f"お客さま宛てのメールのうち、次の {count} 通を迷惑メールフォルダに隔離しました。\n"
        "隔離したメールの確認、受信箱への移動、削除は、メールアカウント管理ページで行えます。\n"
        "隔離したメールは保存期間を過ぎると自動的に削除されます。\n"
        + ("各メールのリンクからも、ログインせずにそのメールだけを受信箱へ戻す・削除することができます"
           "（確認画面が開きます。リンクは保存期間の終わりまで、1 回だけ使えます）。\n" if links else "")
        + "\n"
        f"{count} message(s) addressed to {shown_mailbox} were put in quarantine "
        "(迷惑メールフォルダ).\n"
        "You can view them, release them to your inbox or delete them on the mail "
        "account page.\n"
        "Quarantined mail is deleted automatically after the retention period.\n"
        + ("Each message's links release or delete that one message without logging in "
           "(a confirm page opens first; each link works once, until the retention period ends).\n"
           if links else "")
        + "\n"
        + "\n".join(listing)
        + "\n"
        f"メールアカウント管理ページ / Mail account page:\n{_one_line(page_url, 2000)}\n\n"
        "このメールはシステムから自動送信されています。\n"
        "This notice was sent automatically.\n"
        f"{_one_line(postmaster, 320)}\n"
    )
    notice = _new_message(
        sender=postmaster,
        to=mailbox,
        subject=f"【隔離メール通知】{count}通のメールを隔離しました / {count} message(s) quarantined",
        now=now,
        auto_submitted="auto-generated",
    )
    _set_text(notice, text, "quoted-printable")
    return _to_bytes(notice)

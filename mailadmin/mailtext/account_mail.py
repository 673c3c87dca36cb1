"""Mail about the account itself (seeds 000, 001, SPEC §1): the one-time code
(認証コード) that confirms a contact address or resets a password, and the
change notice that tells the subscriber what was changed on the page.

Both are written like the daemon's other notices (``compose``): Japanese
first, then English, in one UTF-8 text/plain part in quoted-printable, the
subject RFC 2047-encoded, ``Auto-Submitted: auto-generated``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from mailadmin.mailtext.compose import _new_message, _one_line, _set_text, _to_bytes

_RULE = "-" * 60
_MAX_VALUE_CHARS = 300
_MAX_VALUES = 30


@dataclass(frozen=True, slots=True)
class ChangeText:
    """One change as the notice tells it, already worded in one language."""

    title: str
    rows: Sequence[tuple[str, Sequence[str]]]


@dataclass(frozen=True, slots=True)
class NoticeChange:
    """One change of a notice: when (already formatted per language), from where,
    by whom, and what, in both languages."""

    when_ja: str
    when_en: str
    client_ip: str
    login: str
    target: str
    ja: ChangeText
    en: ChangeText
    extra: dict[str, str] = field(default_factory=dict)


def _rows(rows: Sequence[tuple[str, Sequence[str]]]) -> str:
    out: list[str] = []
    for label, values in rows:
        shown = [_one_line(v, _MAX_VALUE_CHARS) for v in list(values)[:_MAX_VALUES]]
        if len(values) > _MAX_VALUES:
            shown.append(f"… (+{len(values) - _MAX_VALUES})")
        if len(shown) <= 1:
            out.append(f"    {_one_line(label)}: {shown[0] if shown else ''}")
        else:
            out.append(f"    {_one_line(label)}:")
            out.extend(f"      - {v}" for v in shown)
    return "\n".join(out)


def compose_change_notice(
    to: str,
    mailbox: str,
    changes: Sequence[NoticeChange],
    *,
    page_url: str,
    reset_url: str,
    postmaster: str,
    now: dt.datetime | None = None,
) -> bytes:
    """The change notice (seed 001) to ``to`` about ``mailbox``: every change of
    the batch with its time (Japan time and UTC), client IP, the login that made
    it and what changed, and what to do if it was not the subscriber."""
    shown_mailbox = _one_line(mailbox, 320)
    ja: list[str] = []
    en: list[str] = []
    for number, change in enumerate(changes, start=1):
        by_ja = _one_line(change.login, 320)
        by_en = by_ja
        if change.login != change.target:
            by_ja += f"（管理者権限で {_one_line(change.target, 320)} を操作）"
            by_en += f" (an admin of the contract, acting on {_one_line(change.target, 320)})"
        ja.append(
            f"[{number}] {_one_line(change.ja.title)}\n"
            f"  日時            : {change.when_ja}\n"
            f"  接続元 IP アドレス: {_one_line(change.client_ip) or '-'}\n"
            f"  操作したアカウント: {by_ja}\n"
            f"  変更内容:\n{_rows(change.ja.rows)}\n"
        )
        en.append(
            f"[{number}] {_one_line(change.en.title)}\n"
            f"  When      : {change.when_en}\n"
            f"  Client IP : {_one_line(change.client_ip) or '-'}\n"
            f"  By        : {by_en}\n"
            f"  Changed   :\n{_rows(change.en.rows)}\n"
        )
    count = len(changes)
    url = _one_line(page_url, 2000)
    reset = _one_line(reset_url, 2000)
    pm = _one_line(postmaster, 320)
    text = (
        f"{shown_mailbox} のご利用者さま\n\n"
        f"メールアカウント管理ページで、{shown_mailbox} の次の {count} 件の変更が保存されました。\n\n"
        + "\n".join(ja) + "\n"
        "お心当たりのない変更の場合は、第三者にパスワードを知られた可能性があります。\n"
        "すぐにメールアカウント管理ページにログインしてパスワードを変更し、\n"
        "転送設定など変更された設定を元に戻してください。\n"
        f"  {url}\n"
        "ログインできない場合は、ログイン画面の「パスワードをお忘れの方」から\n"
        "連絡先メールアドレスに届く認証コードでパスワードを再設定してください。\n"
        f"  {reset}\n"
        f"ご不明な点は {pm} までお問い合わせください。\n\n"
        "このメールは、登録された連絡先メールアドレス（未登録の場合はメールアカウント自身）に\n"
        "システムから自動送信されています。ご返信いただいてもお答えできません。\n\n"
        + _RULE + "\n\n"
        f"{count} change(s) to {shown_mailbox} were saved on the mail account page:\n\n"
        + "\n".join(en) + "\n"
        "If you did not make these changes, someone else may know your password.\n"
        "Log in to the mail account page now, change the password and undo the\n"
        "changes (a forward you did not add, for instance):\n"
        f"  {url}\n"
        "If you can no longer log in, use \"Forgot your password?\" on the login page\n"
        "to set a new password with a code sent to your contact address:\n"
        f"  {reset}\n"
        f"Questions: {pm}\n\n"
        "This notice goes to the mailbox's contact address (or to the mailbox itself\n"
        "when it has none) and was sent automatically; replies to it are not read.\n"
    )
    notice = _new_message(
        sender=postmaster, to=to,
        subject=f"【設定変更のお知らせ】{shown_mailbox} / Changes to your mail account",
        now=now, auto_submitted="auto-generated",
    )
    _set_text(notice, text, "quoted-printable")
    return _to_bytes(notice)


def compose_code_mail(
    to: str,
    mailbox: str,
    code: str,
    *,
    purpose: str,
    expires_ja: str,
    expires_en: str,
    postmaster: str,
    now: dt.datetime | None = None,
) -> bytes:
    """The mail carrying a 認証コード to ``to``: ``purpose`` ``contact`` confirms
    ``to`` as ``mailbox``'s contact address, ``reset`` resets its password."""
    shown_mailbox = _one_line(mailbox, 320)
    pm = _one_line(postmaster, 320)
    if purpose == "reset":
        what_ja = f"メールアカウント {shown_mailbox} のパスワード再設定"
        what_en = f"resetting the password of the mail account {shown_mailbox}"
        subject = "【認証コード】パスワードの再設定 / Your code to reset your password"
        ignore_ja = ("お心当たりのない場合は、このメールを破棄してください。パスワードは変更されません。\n"
                     "何度も届く場合は、第三者がパスワードの再設定を試みている可能性があります。")
        ignore_en = ("If you did not ask for this, ignore this mail: the password is not changed.\n"
                     "If such mail keeps coming, someone may be trying to reset your password.")
    else:
        what_ja = f"メールアカウント {shown_mailbox} の連絡先メールアドレスの登録"
        what_en = f"registering this address as the contact address of the mail account {shown_mailbox}"
        subject = "【認証コード】連絡先メールアドレスの登録 / Your code to confirm your contact address"
        ignore_ja = "お心当たりのない場合は、このメールを破棄してください。このアドレスは登録されません。"
        ignore_en = "If you did not ask for this, ignore this mail: this address is not registered."
    text = (
        f"{what_ja}のための認証コードをお知らせします。\n\n"
        f"  認証コード: {code}\n\n"
        f"メールアカウント管理ページの認証コード入力画面に入力してください。\n"
        f"有効期限: {expires_ja}（1 回のみ使用できます）\n\n"
        f"{ignore_ja}\n"
        f"ご不明な点は {pm} までお問い合わせください。\n"
        "このメールはシステムから自動送信されています。\n\n"
        + _RULE + "\n\n"
        f"Here is your code for {what_en}.\n\n"
        f"  Code: {code}\n\n"
        "Enter it on the code screen of the mail account page.\n"
        f"Valid until: {expires_en} (it can be used once)\n\n"
        f"{ignore_en}\n"
        f"Questions: {pm}\n"
        "This mail was sent automatically.\n"
    )
    message = _new_message(sender=postmaster, to=to, subject=subject, now=now,
                           auto_submitted="auto-generated")
    _set_text(message, text, "quoted-printable")
    return _to_bytes(message)


def format_moment(when: dt.datetime, zone: dt.tzinfo, zone_name: str) -> tuple[str, str]:
    """``when`` as the notices show it, (Japanese, English): local time of the
    policy's zone with the zone named, and UTC."""
    local = when.astimezone(zone)
    utc = when.astimezone(dt.timezone.utc)
    return (f"{local:%Y年%m月%d日 %H時%M分%S秒} ({zone_name}) / {utc:%Y-%m-%d %H:%M:%S} UTC",
            f"{local:%Y-%m-%d %H:%M:%S} ({zone_name}) / {utc:%Y-%m-%d %H:%M:%S} UTC")

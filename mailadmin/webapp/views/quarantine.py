"""The quarantine (迷惑メールフォルダ, SPEC §4, §8): list, safe view, release, delete.

A quarantined message is attacker-controlled: the view shows only its
decoded headers and text, escaped by the templates; HTML is reduced to its
text, nothing remote is loaded (the page's CSP allows no other origin
anyway) and attachments are listed by name and size, never served.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import html.parser
import math
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from mailadmin.errors import EntryError, NotFound, Problem
from mailadmin.mailtext.headers import decode_header_value
from mailadmin.store import quarantine
from mailadmin.store.quarantine import QuarantineInfo
from mailadmin.webapp.app import Page, page_of
from mailadmin.webapp.flow import Flow, Form, Pending, Row, form_text
from mailadmin.webapp.views.account import local_time

# A huge text part is cut: the page is for deciding, not reading a book.
MAX_SHOWN_TEXT_CHARS = 100_000
REASON_RULES = ("reject_sender", "reject_subject", "header_conditions", "site_block", "spam")


def reason_text(page: Page, reason: str) -> str:
    rule, _, detail = reason.partition(":")
    if rule in REASON_RULES:
        label = page.t(f"quarantine_reason.{rule}")
        if rule == "header_conditions" and detail:
            detail = page.t(f"header_conditions.{detail}")
        elif rule == "spam":
            detail = page.t("quarantine.spam_score", score=detail)
        return f"{label}（{detail}）" if page.lang == "ja" and detail else (
            f"{label} ({detail})" if detail else label)
    return reason


def days_left(now: dt.datetime, expires_at: dt.datetime) -> int:
    return max(0, math.ceil((expires_at - now).total_seconds() / 86400))


@dataclass(frozen=True)
class ListRow:
    info: QuarantineInfo
    received: str
    sender: str
    subject: str
    reason: str
    days_left: int


async def _items(page: Page) -> list[QuarantineInfo]:
    address = page.address

    def load(session: Session) -> list[QuarantineInfo]:
        return quarantine.list_items(session, address)

    return await page.state.db(load)


async def render_list(page: Page, form: Form | None, problems: Sequence[str]) -> web.StreamResponse:
    now = page.state.clock()
    rows = [ListRow(i, local_time(page, i.received_at), i.sender, decode_header_value(i.subject),
                    reason_text(page, i.reason), days_left(now, i.expires_at))
            for i in await _items(page)]
    return page.render("quarantine/index.html", rows=rows, problems=list(problems),
                       retention_days=page.policy.quarantine.retention_days,
                       status=400 if problems else 200)


async def show_list(request: web.Request) -> web.StreamResponse:
    return await render_list(page_of(request), None, ())


class _TextOnly(html.parser.HTMLParser):
    """The text of an HTML part: no tag, no script or style content, no URL fetched."""

    SKIP = {"script", "style", "head", "title"}
    BREAKS = {"br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skipping += 1
        elif tag in self.BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self.BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)

    def text(self) -> str:
        lines = [" ".join(line.split()) for line in "".join(self.parts).splitlines()]
        out: list[str] = []
        for line in lines:
            if line or (out and out[-1]):
                out.append(line)
        return "\n".join(out).strip()


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    size_bytes: int


@dataclass(frozen=True)
class SafeMessage:
    headers: list[tuple[str, str]]
    text: str
    from_html: bool
    attachments: list[Attachment]
    truncated: bool


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    for codec in (charset, "utf-8", "iso-2022-jp", "cp932", "euc-jp", "latin-1"):
        try:
            return payload.decode(codec)
        except (LookupError, UnicodeDecodeError):
            continue
    return payload.decode("utf-8", "replace")


def safe_view(raw: bytes) -> SafeMessage:
    """Headers, text and attachment names of a raw message; never its active content."""
    message: Message = email.message_from_bytes(raw, policy=email.policy.compat32)
    headers = [(name, decode_header_value(str(message.get(name, ""))))
               for name in ("From", "To", "Cc", "Date", "Subject") if message.get(name) is not None]
    plain: list[str] = []
    html_texts: list[str] = []
    attachments: list[Attachment] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        filename = part.get_filename()
        disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
        content_type = part.get_content_type()
        if filename or disposition == "attachment" or not content_type.startswith("text/"):
            payload = part.get_payload(decode=True)
            attachments.append(Attachment(decode_header_value(filename or "") or "—", content_type,
                                          len(payload) if isinstance(payload, bytes) else 0))
        elif content_type == "text/html":
            parser = _TextOnly()
            parser.feed(_part_text(part))
            parser.close()
            html_texts.append(parser.text())
        else:
            plain.append(_part_text(part))
    text = "\n\n".join(plain) if plain else "\n\n".join(html_texts)
    truncated = len(text) > MAX_SHOWN_TEXT_CHARS
    return SafeMessage(headers, text[:MAX_SHOWN_TEXT_CHARS], not plain and bool(html_texts),
                       attachments, truncated)


async def show_item(request: web.Request) -> web.StreamResponse:
    page = page_of(request)
    address = page.address
    try:
        item_id = int(request.match_info["item_id"])
    except ValueError:
        raise web.HTTPNotFound() from None

    def load(session: Session) -> tuple[QuarantineInfo, bytes]:
        return (quarantine.get_item(session, item_id, address),
                quarantine.get_message(session, item_id, address))

    try:
        info, raw = await page.state.db(load)
    except NotFound:
        raise web.HTTPNotFound() from None
    now = page.state.clock()
    return page.render("quarantine/item.html", info=info, message=safe_view(raw),
                       received=local_time(page, info.received_at),
                       reason=reason_text(page, info.reason),
                       days_left=days_left(now, info.expires_at))


async def _parse_id(page: Page, form: Form) -> Pending:
    try:
        return {"id": int(form_text(form, "id"))}
    except ValueError:
        raise EntryError(Problem("not_found", "It no longer exists.")) from None


def _describe(page: Page, pending: Pending, result: Any) -> list[Row]:
    info = result if isinstance(result, QuarantineInfo) else None
    if info is None:
        return []
    return [(page.t("quarantine.date"), [local_time(page, info.received_at)]),
            (page.t("quarantine.sender"), [info.sender]),
            (page.t("quarantine.subject"), [decode_header_value(info.subject)])]


def _release(session: Session, page: Page, pending: Pending) -> QuarantineInfo:
    info = quarantine.get_item(session, pending["id"], page.address)
    quarantine.release_item(session, pending["id"], page.address, now=page.state.clock())
    return info


def _delete(session: Session, page: Page, pending: Pending) -> QuarantineInfo:
    info = quarantine.get_item(session, pending["id"], page.address)
    quarantine.delete_item(session, pending["id"], page.address)
    return info


RELEASE = Flow("/quarantine/release", "quarantine.release_title", _release, _describe,
               "/quarantine", render_list, _parse_id, confirm_button="button.ok",
               done_note="quarantine.released_note")
DELETE = Flow("/quarantine/delete", "quarantine.delete_title", _delete, _describe,
              "/quarantine", render_list, _parse_id, confirm_button="button.ok")


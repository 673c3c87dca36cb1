"""The quarantine (迷惑メールフォルダ, SPEC §4, §8): list, safe view, release, delete.

The list is searched by sender or subject and shown a page at a time
(``?q=…&page=N``), so a quarantine of thousands of items stays usable; items
ticked on the list are released or deleted together through one
input → 確認 → 完了 flow, in one transaction (all of them or none).

The signed links of the quarantine notice (``mailadmin/quarantine_links.py``)
open a confirm page without logging in; only its POST releases or deletes,
and only that one item.

A quarantined message is attacker-controlled: the view shows only its
decoded headers and text, escaped by the templates; HTML is reduced to its
text, nothing remote is loaded (the page's CSP allows no other origin
anyway) and attachments are listed by name and size, never served.
"""

from __future__ import annotations

import datetime as dt
import email
import email.message
import email.policy
import html.parser
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from mailadmin import quarantine_links
from mailadmin.quarantine_links import LinkState

from mailadmin.errors import EntryError, NotFound, Problem
from mailadmin.mailtext.headers import decode_header_value
from mailadmin.message import Message
from mailadmin.store import quarantine
from mailadmin.store.quarantine import QuarantineInfo, SearchPage
from mailadmin.webapp.page import Page, new_pre_csrf, page_of
from mailadmin.webapp.flow import Flow, Form, Pending, Row, form_text
from mailadmin.webapp.views.account import local_time

# A huge text part is cut: the page is for deciding, not reading a book.
MAX_SHOWN_TEXT_CHARS = 100_000
REASON_RULES = ("reject_sender", "reject_subject", "header_conditions", "site_block", "spam")
PAGE_SIZE = 50
# Items one release or delete may name: two full pages.
MAX_SELECTED = 2 * PAGE_SIZE
MAX_QUERY_CHARS = 320


def reason_text(page: Page, info: QuarantineInfo) -> str:
    """The rule that held the item, in the page's language, and what matched."""
    rule, detail = info.rule, info.entry
    if rule in REASON_RULES:
        label = page.t(f"quarantine_reason.{rule}")
        if rule == "header_conditions" and detail:
            detail = page.t(f"header_conditions.{detail}")
        elif rule == "spam":
            detail = page.t("quarantine.spam_score", score=detail)
        return f"{label}（{detail}）" if page.lang == "ja" and detail else (
            f"{label} ({detail})" if detail else label)
    return info.reason


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


@dataclass(frozen=True)
class Pager:
    query: str
    number: int    # 1-based
    pages: int
    first: int     # 1-based index of the first row shown
    last: int
    total: int

    def href(self, number: int) -> str:
        params = {"page": str(number)}
        if self.query:
            params["q"] = self.query
        return "?" + urlencode(params)


def _search_args(request: web.Request) -> tuple[str, int]:
    query = request.query.get("q", "")[:MAX_QUERY_CHARS]
    try:
        number = max(1, int(request.query.get("page", "1")))
    except ValueError:
        number = 1
    return query, number


async def _search(page: Page, query: str, number: int) -> SearchPage:
    address = page.address

    def load(session: Session) -> SearchPage:
        return quarantine.search_items(session, address, query,
                                       offset=(number - 1) * PAGE_SIZE, limit=PAGE_SIZE)

    return await page.state.db(load)


async def render_list(page: Page, form: Form | None, problems: Sequence[str]) -> web.StreamResponse:
    now = page.state.clock()
    query, number = _search_args(page.request)
    found = await _search(page, query, number)
    rows = [ListRow(i, local_time(page, i.received_at), i.sender, decode_header_value(i.subject),
                    reason_text(page, i), days_left(now, i.expires_at))
            for i in found.items]
    pager = Pager(query, found.offset // PAGE_SIZE + 1, max(1, math.ceil(found.total / PAGE_SIZE)),
                  found.offset + 1 if rows else 0, found.offset + len(rows), found.total)
    selected = set(form.getall("id", [])) if form is not None else set()
    return page.render("quarantine/index.html", rows=rows, problems=list(problems), pager=pager,
                       query=query, selected=selected,
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


def _part_text(part: email.message.Message) -> str:
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
    # The header fields as the rest of the daemon reads them (raw 8-bit values
    # decoded like the quarantine list's); the whole parse is for the parts.
    fields = Message(raw)
    headers = [(name, decode_header_value(fields.header_values(name)[0]))
               for name in ("From", "To", "Cc", "Date", "Subject") if fields.has_header(name)]
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
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
                       reason=reason_text(page, info),
                       days_left=days_left(now, info.expires_at))


async def _parse_ids(page: Page, form: Form) -> Pending:
    """The ticked items (``id`` once per item; the item page sends one)."""
    ids: list[int] = []
    for value in form.getall("id", []):
        try:
            item_id = int(value) if isinstance(value, str) else -1
        except ValueError:
            item_id = -1
        if item_id < 0:
            raise EntryError(Problem("not_found", "It no longer exists."))
        if item_id not in ids:
            ids.append(item_id)
    if not ids:
        raise EntryError(Problem("quarantine_none_selected", "Select the mail to act on."))
    if len(ids) > MAX_SELECTED:
        raise EntryError(Problem("quarantine_too_many_selected",
                                 f"Select at most {MAX_SELECTED} messages at a time.",
                                 {"max_count": MAX_SELECTED}))
    return {"ids": ids}


def _ids(pending: Pending) -> list[int]:
    raw = pending.get("ids", [pending["id"]] if "id" in pending else [])
    return [int(i) for i in raw]


def describe_items(page: Page, infos: Sequence[QuarantineInfo]) -> list[Row]:
    if len(infos) == 1:
        (info,) = infos
        return [(page.t("quarantine.date"), [local_time(page, info.received_at)]),
                (page.t("quarantine.sender"), [info.sender]),
                (page.t("quarantine.subject"), [decode_header_value(info.subject)])]
    rows: list[Row] = [(page.t("quarantine.selected_count"), [page.t("quarantine.count", count=len(infos))])]
    for info in infos:
        rows.append((local_time(page, info.received_at),
                     [info.sender, decode_header_value(info.subject) or page.t("quarantine.no_subject")]))
    return rows


def _describe(page: Page, pending: Pending, result: Any) -> list[Row]:
    infos = [i for i in result if isinstance(i, QuarantineInfo)] if isinstance(result, list) else []
    return describe_items(page, infos) if infos else []


def _release(session: Session, page: Page, pending: Pending) -> list[QuarantineInfo]:
    infos = [quarantine.get_item(session, i, page.address) for i in _ids(pending)]
    for info in infos:
        quarantine.release_item(session, info.id, page.address, now=page.state.clock())
    return infos


def _delete(session: Session, page: Page, pending: Pending) -> list[QuarantineInfo]:
    infos = [quarantine.get_item(session, i, page.address) for i in _ids(pending)]
    for info in infos:
        quarantine.delete_item(session, info.id, page.address)
    return infos


RELEASE = Flow("/quarantine/release", "quarantine.release_title", _release, _describe,
               "/quarantine", render_list, _parse_ids, confirm_button="button.ok",
               done_note="quarantine.released_note")
DELETE = Flow("/quarantine/delete", "quarantine.delete_title", _delete, _describe,
              "/quarantine", render_list, _parse_ids, confirm_button="button.ok")



# ---------------------------------------------------------------- one-click links of the notice


@dataclass(frozen=True)
class _LinkTarget:
    action: str
    item_id: int
    expiry: int
    sig: str


def _link_target(request: web.Request) -> _LinkTarget:
    try:
        return _LinkTarget(request.match_info["action"], int(request.match_info["item_id"]),
                           int(request.match_info["expiry"]), request.match_info["sig"])
    except ValueError:
        raise web.HTTPNotFound() from None


def _check_link(session: Session, page: Page, target: _LinkTarget) -> tuple[LinkState, QuarantineInfo | None]:
    secret = quarantine_links.load_secret(page.config.conf.quarantine_links.secret_file)
    try:
        info: QuarantineInfo | None = quarantine.get_item(session, target.item_id)
    except NotFound:
        info = None
    state = quarantine_links.verify(
        secret, target.action, target.item_id, target.expiry, target.sig,
        item_mailbox=info.mailbox if info else None, item_expires_at=info.expires_at if info else None,
        now=page.state.clock(),
    )
    return state, info if state is LinkState.VALID else None


def _link_refused(page: Page, state: LinkState) -> web.Response:
    status = {LinkState.ALTERED: 403, LinkState.EXPIRED: 410, LinkState.USED: 410}.get(state, 400)
    return page.render("quarantine/link_refused.html", status=status,
                       message=page.t(f"quarantine_link.{state.value}"))


async def link_confirm(request: web.Request) -> web.StreamResponse:
    """GET: what the link would do, and a button; nothing happens yet."""
    page = page_of(request)
    target = _link_target(request)
    state, info = await page.state.db_dry(lambda s: _check_link(s, page, target))
    if info is None:
        return _link_refused(page, state)
    if target.action == "release" and quarantine.is_infected(info.rule):
        return page.render("quarantine/link_refused.html", status=403,
                           message=page.t("problem.quarantine_infected"))
    new_pre_csrf(page)
    response = page.render("quarantine/link_confirm.html", action=target.action,
                           rows=describe_items(page, [info]), mailbox_address=info.mailbox,
                           reason=reason_text(page, info))
    # A scanner or a proxy must not keep the page: it holds the item's details.
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


async def link_act(request: web.Request) -> web.StreamResponse:
    """POST from the confirm page: release or delete that one item, once."""
    page = page_of(request)
    target = _link_target(request)
    now = page.state.clock()

    def act(session: Session) -> tuple[LinkState, QuarantineInfo | None]:
        state, info = _check_link(session, page, target)
        if info is None:
            return state, None
        if target.action == "release":
            quarantine.release_item(session, info.id, info.mailbox, now=now)
        else:
            quarantine.delete_item(session, info.id, info.mailbox)
        return state, info

    try:
        state, info = await page.state.db(act)
    except EntryError as exc:  # infected: never released
        return page.render("quarantine/link_refused.html", status=403,
                           message=" ".join(page.problems(exc.problems)))
    except (NotFound, StaleDataError):
        # The same link pressed twice at once: the other press did it.
        state, info = LinkState.USED, None
    if info is None:
        return _link_refused(page, state)
    return page.render("quarantine/link_done.html", action=target.action,
                       rows=describe_items(page, [info]), mailbox_address=info.mailbox)

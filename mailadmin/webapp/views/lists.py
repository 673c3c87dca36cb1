"""Forwarding (転送設定, SPEC §3), the reject lists and header conditions
(受信拒否設定, SPEC §4) and the allow list (受信許可設定, SPEC §5).

Each list has a 一覧参照 page (the entries, a checkbox each, 削除 and
全て削除), an add flow (up to 20 entries one per line, every invalid or
duplicate entry named in its own message, nothing saved unless all are
right), a delete-selected flow and a delete-all flow with two confirmations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from mailadmin.errors import EntryError, NotFound, Problem
from mailadmin.mailtext.entries import HEADER_CONDITIONS, parse_forward_destination
from mailadmin.services.dns import check_forward_destination
from mailadmin.store import rules
from mailadmin.store.snapshots import MailboxRules
from mailadmin.webapp.page import Page, page_of
from mailadmin.webapp.flow import Flow, Form, Pending, Row, form_text


async def load_rules(page: Page) -> MailboxRules:
    address = page.address

    def load(session: Session) -> MailboxRules:
        snapshot = rules.load_rules(session, address)
        if snapshot is None:
            raise NotFound(address)
        return snapshot

    return await page.state.db(load)


def _lines(form: Form) -> list[str]:
    return [line for line in form_text(form, "entries").splitlines() if line.strip()]


def _selected(form: Form, name: str) -> list[str]:
    return [v for v in form.getall(name, []) if isinstance(v, str)]


# ---------------------------------------------------------------- entry lists


@dataclass(frozen=True)
class EntryList:
    """One of the three entry lists and its pages."""

    kind: str  # reject_sender | reject_subject | allow_list
    base: str  # its URL: /reject/sender, /reject/subject, /allow
    back: str  # the page above it

    def entries(self, snapshot: MailboxRules) -> tuple[str, ...]:
        values: tuple[str, ...] = getattr(snapshot, self.kind)
        return values

    async def show_list(self, request: web.Request) -> web.StreamResponse:
        return await self.render_list(page_of(request), None, ())

    async def render_list(self, page: Page, form: Form | None,
                          problems: Sequence[str]) -> web.StreamResponse:
        snapshot = await load_rules(page)
        selected = set(_selected(form, "entry")) if form is not None else set()
        return page.render("lists/list.html", lst=self, entries=self.entries(snapshot),
                           selected=selected, problems=list(problems),
                           status=400 if problems else 200)

    async def render_add(self, page: Page, form: Form | None,
                         problems: Sequence[str]) -> web.StreamResponse:
        typed = form_text(form, "entries") if form is not None else ""
        return page.render("lists/add.html", lst=self, typed=typed, problems=list(problems),
                           limits=page.policy.limits, status=400 if problems else 200)

    # -------------------------------------------------------- flows

    def add_flow(self) -> Flow:
        kind = self.kind

        async def parse(page: Page, form: Form) -> Pending:
            return {"entries": _lines(form)}

        def apply(session: Session, page: Page, pending: Pending) -> list[str]:
            return rules.add_entries(session, page.address, kind, pending["entries"],
                                     page.policy.limits)

        def describe(page: Page, pending: Pending, result: Any) -> list[Row]:
            return [(page.t(f"{kind}.entry_label"), result or pending["entries"])]

        return Flow(f"{self.base}/add", f"{kind}.add_title", apply, describe, self.base,
                    self.render_add, parse)

    def delete_flow(self) -> Flow:
        kind = self.kind

        async def parse(page: Page, form: Form) -> Pending:
            chosen = _selected(form, "entry")
            if not chosen:
                raise EntryError(Problem("none_selected", "Select the entries to delete."))
            return {"entries": chosen}

        def apply(session: Session, page: Page, pending: Pending) -> int:
            count = rules.delete_entries(session, page.address, kind, pending["entries"])
            if count == 0:
                raise NotFound("none of the entries exists")
            return count

        def describe(page: Page, pending: Pending, result: Any) -> list[Row]:
            return [(page.t(f"{kind}.entry_label"), pending["entries"])]

        return Flow(f"{self.base}/delete", f"{kind}.delete_title", apply, describe, self.base,
                    self.render_list, parse, confirm_button="button.ok")

    def delete_all_flow(self) -> Flow:
        kind = self.kind

        async def parse(page: Page, form: Form) -> Pending:
            return {}

        def apply(session: Session, page: Page, pending: Pending) -> list[str]:
            snapshot = rules.load_rules(session, page.address)
            values = list(getattr(snapshot, kind)) if snapshot else []
            if not values:
                raise EntryError(Problem("list_empty", "The list has no entries."))
            rules.delete_entries(session, page.address, kind, None)
            return values

        def describe(page: Page, pending: Pending, result: Any) -> list[Row]:
            return [(page.t(f"{kind}.entry_label"), result or [])]

        return Flow(f"{self.base}/delete_all", f"{kind}.delete_all_title", apply, describe,
                    self.base, self.render_list, parse, confirmations=2,
                    confirm_button="button.ok", confirm_note="flow.delete_all_note")


REJECT_SENDER = EntryList("reject_sender", "/reject/sender", "/reject")
REJECT_SUBJECT = EntryList("reject_subject", "/reject/subject", "/reject")
ALLOW_LIST = EntryList("allow_list", "/allow", "/")
ENTRY_LISTS = (REJECT_SENDER, REJECT_SUBJECT, ALLOW_LIST)


async def reject_menu(request: web.Request) -> web.StreamResponse:
    """受信拒否設定選択: From, Subject or header conditions."""
    page = page_of(request)
    snapshot = await load_rules(page)
    return page.render("lists/reject_menu.html", rules=snapshot)


# ---------------------------------------------------------------- header conditions


async def header_state(request: web.Request) -> web.StreamResponse:
    """ヘッダー受信拒否設定一覧参照."""
    page = page_of(request)
    snapshot = await load_rules(page)
    return page.render("header_conditions/index.html", conditions=HEADER_CONDITIONS,
                       chosen=snapshot.header_conditions)


async def _header_input(page: Page, form: Form | None, problems: Sequence[str]) -> web.StreamResponse:
    if form is None:
        chosen = set((await load_rules(page)).header_conditions)
    else:
        chosen = set(_selected(form, "condition"))
    return page.render("header_conditions/input.html", conditions=HEADER_CONDITIONS,
                       chosen=chosen, problems=list(problems), status=400 if problems else 200)


async def _header_parse(page: Page, form: Form) -> Pending:
    return {"conditions": _selected(form, "condition")}


def _header_apply(session: Session, page: Page, pending: Pending) -> None:
    rules.set_header_conditions(session, page.address, pending["conditions"])


def _header_describe(page: Page, pending: Pending, result: Any) -> list[Row]:
    chosen = [page.t(f"header_conditions.{c}") for c in HEADER_CONDITIONS
              if c in pending["conditions"]]
    return [(page.t("header_conditions.label"), chosen or [page.t("header_conditions.none")])]


HEADER_FLOW = Flow("/reject/header/edit", "header_conditions.title", _header_apply,
                   _header_describe, "/reject/header", _header_input, _header_parse)


# ---------------------------------------------------------------- forwarding


async def forwarding_list(request: web.Request) -> web.StreamResponse:
    return await _forwarding_list(page_of(request), None, ())


async def _forwarding_list(page: Page, form: Form | None, problems: Sequence[str]) -> web.StreamResponse:
    snapshot = await load_rules(page)
    return page.render("forwarding/index.html", forwards=snapshot.forwarding,
                       problems=list(problems), limits=page.policy.limits,
                       status=400 if problems else 200)


async def _forward_input(page: Page, form: Form | None, problems: Sequence[str]) -> web.StreamResponse:
    typed = form_text(form, "address") if form is not None else ""
    keep = form_text(form, "keep_copy") != "no" if form is not None else True
    return page.render("forwarding/input.html", typed=typed, keep=keep, problems=list(problems),
                       status=400 if problems else 200)


async def _forward_parse(page: Page, form: Form) -> Pending:
    keep = form_text(form, "keep_copy")
    if keep not in ("yes", "no"):
        raise EntryError(Problem("keep_copy_missing", "Choose whether to keep a copy."))
    address = form_text(form, "address")
    try:
        normalised = parse_forward_destination(address, page.address, (), page.policy.limits)
    except EntryError:
        normalised = None  # the confirm step names every problem of the address itself
    if normalised is not None:
        # Before the confirm page (SPEC §3): the domain must take mail.  The done
        # step trusts the signed pending change, so DNS is asked once per add.
        await check_forward_destination(normalised, page.config.conf.dns)
    return {"address": address, "keep_copy": keep == "yes"}


def _forward_apply(session: Session, page: Page, pending: Pending) -> str:
    return rules.add_forward(session, page.address, pending["address"], bool(pending["keep_copy"]),
                             page.policy.limits)


def _forward_describe(page: Page, pending: Pending, result: Any) -> list[Row]:
    keep = page.t("forwarding.keep") if pending["keep_copy"] else page.t("forwarding.no_keep")
    return [(page.t("forwarding.address_label"), [result or pending["address"]]),
            (page.t("forwarding.keep_label"), [keep])]


async def _forward_delete_parse(page: Page, form: Form) -> Pending:
    address = form_text(form, "address")
    if not address:
        raise EntryError(Problem("none_selected", "Select the entries to delete."))
    return {"address": address}


def _forward_delete_apply(session: Session, page: Page, pending: Pending) -> None:
    rules.delete_forward(session, page.address, pending["address"])


def _forward_delete_describe(page: Page, pending: Pending, result: Any) -> list[Row]:
    return [(page.t("forwarding.address_label"), [pending["address"]])]


FORWARD_ADD = Flow("/forwarding/add", "forwarding.add_title", _forward_apply, _forward_describe,
                   "/forwarding", _forward_input, _forward_parse)
FORWARD_DELETE = Flow("/forwarding/delete", "forwarding.delete_title", _forward_delete_apply,
                      _forward_delete_describe, "/forwarding", _forwarding_list,
                      _forward_delete_parse, confirm_button="button.ok")

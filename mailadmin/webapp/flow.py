"""The input → 確認 (confirm) → 完了 (done) pattern of every change (SPEC §2),
written once.

A :class:`Flow` names a change and how to apply it to the store.  Its view
parses the input form into a *pending change* (plain JSON data) and calls
:meth:`Flow.confirm`, which applies the change in a transaction that is
rolled back: the store's own validators run, and every problem goes back to
the input page, nothing saved.  Otherwise the confirm page shows what will
change and carries the pending change in the form, signed with the
session's secret CSRF token.  The final POST checks the signature and applies
the change for real, so the store validates it once more against the list
as it is then.  The mailbox is never part of the pending change: it is
always the session's.

A flow with ``confirmations=2`` (deleting every entry of a list) shows a
second, final confirm page before it applies.

Every change a flow saves is recorded for its change notice (seed 001) in
the same transaction (``webapp/notices.py``): for the mailbox acted on, for
the login when an admin acts on another mailbox, and for ``notify_also``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy
from sqlalchemy.orm import Session

from mailadmin.errors import EntryError, NotFound, Problem
from mailadmin.webapp.page import Page, page_of
from mailadmin.webapp.notices import record_change

Pending = dict[str, Any]
Form = MultiDictProxy[str | Any]
# One line of a confirm or done page: a label and its values.
Row = tuple[str, Sequence[str]]

InputRenderer = Callable[[Page, Form | None, Sequence[str]], Awaitable[web.StreamResponse]]
Parser = Callable[[Page, Form], Awaitable[Pending]]
Applier = Callable[[Session, Page, Pending], Any]
Describer = Callable[[Page, Pending, Any], list[Row]]


def sign(page: Page, name: str, step: int, pending_json: str) -> str:
    message = f"{name}\n{step}\n{pending_json}".encode("utf-8")
    return hmac.new(page.csrf.encode("utf-8"), message, hashlib.sha256).hexdigest()


def form_text(form: Form, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class Flow:
    """One kind of change: ``name`` (also its URL under the prefix, e.g.
    ``/forwarding/add``), its screen title key, how to apply it and how to
    describe it."""

    name: str
    title: str
    apply: Applier
    describe: Describer
    back: str
    render_input: InputRenderer
    parse: Parser
    confirmations: int = 1
    confirm_button: str = "button.register"
    confirm_note: str = ""
    done_note: str = ""
    # The done page's rows when they differ from the confirm page's (a temporary
    # password exists only once the change is saved).
    describe_done: Describer | None = None
    # Further mailboxes told of the change in their change notice (seed 001),
    # besides the one acted on and the login: a mailbox an admin created or
    # whose password it reset.
    notify_also: Callable[[Page, Pending, Any], Sequence[str]] | None = None
    # The change is the login's own (the contract page), not the mailbox an
    # admin acts on.
    acts_on_login: bool = False

    @property
    def path(self) -> str:
        return self.name

    async def _apply(self, page: Page, pending: Pending, *, dry: bool) -> Any:
        def run(session: Session) -> Any:
            try:
                result = self.apply(session, page, pending)
            except NotFound as exc:
                raise EntryError(Problem("not_found", "It no longer exists.")) from exc
            if not dry:
                # In the change's own transaction: no change without its notice.
                # The confirm rows, never describe_done's (a temporary password
                # must not travel by mail).
                record_change(
                    session, page, title=self.title,
                    target=page.login_address if self.acts_on_login else None,
                    describe=lambda seen: self.describe(seen, pending, result),
                    notify=self.notify_also(page, pending, result) if self.notify_also else (),
                )
            return result
        return await (page.state.db_dry(run) if dry else page.state.db(run))

    def render_confirm(self, page: Page, pending: Pending, result: Any, step: int = 1) -> web.Response:
        data = json.dumps(pending, ensure_ascii=False, sort_keys=True)
        final = step > 1 and step == self.confirmations
        return page.render(
            "flow/confirm.html", flow=self, rows=self.describe(page, pending, result),
            pending=data, signature=sign(page, self.name, step, data), step=step, final=final,
        )

    async def confirm(self, page: Page, pending: Pending) -> web.StreamResponse:
        """Validate ``pending`` without saving; the confirm page, or the input page
        with one message per problem."""
        try:
            result = await self._apply(page, pending, dry=True)
        except EntryError as exc:
            return await self.render_input(page, await page.request.post(), page.problems(exc.problems))
        return self.render_confirm(page, pending, result)

    # ------------------------------------------------------------ handlers

    async def show_input(self, request: web.Request) -> web.StreamResponse:
        return await self.render_input(page_of(request), None, ())

    async def handle_confirm(self, request: web.Request) -> web.StreamResponse:
        page = page_of(request)
        form = await request.post()
        try:
            pending = await self.parse(page, form)
        except EntryError as exc:
            return await self.render_input(page, form, page.problems(exc.problems))
        return await self.confirm(page, pending)

    async def handle_done(self, request: web.Request) -> web.StreamResponse:
        page = page_of(request)
        form = await request.post()
        data = form_text(form, "pending")
        try:
            step = int(form_text(form, "step"))
        except ValueError:
            step = 0
        if step < 1 or not hmac.compare_digest(form_text(form, "signature"),
                                               sign(page, self.name, step, data)):
            return page.render("error.html", status=400, message=page.t("error.stale_form"))
        pending: Pending = json.loads(data)
        if step < self.confirmations:
            result = None
            try:
                result = await self._apply(page, pending, dry=True)
            except EntryError as exc:
                return page.render("flow/failed.html", flow=self, problems=page.problems(exc.problems))
            return self.render_confirm(page, pending, result, step + 1)
        try:
            result = await self._apply(page, pending, dry=False)
        except EntryError as exc:
            # Valid at the confirm step, no longer (changed in another window, say).
            return page.render("flow/failed.html", flow=self, problems=page.problems(exc.problems))
        describe = self.describe_done or self.describe
        return page.render("flow/done.html", flow=self, rows=describe(page, pending, result))

    def routes(self, prefix: str) -> list[web.RouteDef]:
        """GET input page, POST …/confirm, POST …/done."""
        return [
            web.get(prefix + self.path, self.show_input),
            web.post(prefix + self.path + "/confirm", self.handle_confirm),
            web.post(prefix + self.path + "/done", self.handle_done),
        ]

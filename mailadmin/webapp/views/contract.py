"""The contract page of an admin mailbox (seed 002 マイページ 管理者画面編; SPEC §1).

An admin (管理者権限) sees its contract: the contract number (お客様番号), the
mailboxes held against the limit ("1個 / 5個") and each mailbox with its role
(アカウント権限種別) and status.  Each change goes input → 確認 → 完了 (delete
with two confirmations): create a mailbox within the limit (shown its
temporary password once), delete one, reset one's password, change a role.
"設定" makes the session act on that mailbox: every rule screen then shows
and changes that mailbox, with the acting admin named in the header, until
"自分のアカウントに戻る".

These routes act on the contract of the mailbox that logged in; the mailbox
they change comes in the form and is authorised on every step by
``contracts.require_managed`` (same contract, the login still an admin).
A mailbox of another contract is answered as one that does not exist.  A
user mailbox (ユーザー権限) gets 404 on every contract route.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from mailadmin.errors import EntryError, NotFound, Problem
from mailadmin.store import contracts, mailboxes, web_sessions
from mailadmin.store.contracts import ContractInfo
from mailadmin.store.mailboxes import MailboxInfo
from mailadmin.webapp.page import Page, page_of
from mailadmin.webapp.flow import Flow, Form, Pending, Row, form_text

ROLES = ("user", "admin")


def admin_login(page: Page) -> MailboxInfo:
    """The logged-in mailbox when it is an admin; 404 for a user."""
    login = page.login
    if login is None or login.role != "admin":
        raise web.HTTPNotFound()
    return login


@dataclass(frozen=True)
class ContractView:
    contract: ContractInfo
    boxes: list[MailboxInfo]


async def _load(page: Page) -> ContractView:
    login = admin_login(page)
    policies = page.config.policies

    def load(session: Session) -> ContractView:
        # The role as stored now, not as the session loaded it.
        if mailboxes.get_mailbox(session, login.address).role != "admin":
            raise NotFound("contract")
        return ContractView(contracts.get_contract(session, login.contract, policies),
                            contracts.contract_mailboxes(session, login.contract))

    try:
        return await page.state.db(load)
    except NotFound:
        raise web.HTTPNotFound() from None


async def render_contract(page: Page, form: Form | None, problems: Sequence[str]) -> web.StreamResponse:
    view = await _load(page)
    return page.render("contract/index.html", view=view, problems=list(problems),
                       full=view.contract.mailbox_count >= view.contract.max_mailboxes,
                       status=400 if problems else 200)


async def show_contract(request: web.Request) -> web.StreamResponse:
    return await render_contract(page_of(request), None, ())


def role_text(page: Page, role: str) -> str:
    return page.t(f"contract.role_{role}")


def _target(form: Form) -> str:
    address = form_text(form, "address").strip()
    if not address:
        raise EntryError(Problem("none_selected", "Choose a mailbox."))
    return address


# ---------------------------------------------------------------- create


async def render_add(page: Page, form: Form | None, problems: Sequence[str]) -> web.StreamResponse:
    view = await _load(page)
    return page.render("contract/add.html", view=view, problems=list(problems),
                       typed=form_text(form, "local") if form is not None else "",
                       role=form_text(form, "role") if form is not None else "user",
                       status=400 if problems else 200)


async def _parse_add(page: Page, form: Form) -> Pending:
    admin_login(page)
    role = form_text(form, "role")
    return {"local": form_text(form, "local").strip(), "role": role if role in ROLES else "user"}


def _apply_add(session: Session, page: Page, pending: Pending) -> tuple[str, str]:
    return contracts.create_mailbox(session, admin_login(page), str(pending["local"]), str(pending["role"]),
                                    page.policy)


def _describe_add(page: Page, pending: Pending, result: Any) -> list[Row]:
    address = result[0] if result else ""
    return [(page.t("contract.address"), [address]),
            (page.t("contract.role"), [role_text(page, str(pending["role"]))])]


def _describe_added(page: Page, pending: Pending, result: Any) -> list[Row]:
    address, password = result
    return [(page.t("contract.address"), [address]),
            (page.t("contract.role"), [role_text(page, str(pending["role"]))]),
            (page.t("contract.temporary_password"), [password])]


def _new_mailbox(page: Page, pending: Pending, result: Any) -> Sequence[str]:
    return [result[0]] if result else []


def _target_mailbox(page: Page, pending: Pending, result: Any) -> Sequence[str]:
    return [str(pending["address"])]


# Every contract change is the admin's own (its notice goes to the admin) and
# the changed mailbox hears of it too; a deleted mailbox has nobody left to tell.
ADD = Flow("/contract/add", "contract.add_title", _apply_add, _describe_add, "/contract",
           render_add, _parse_add, confirm_button="button.register",
           done_note="contract.add_done_note", describe_done=_describe_added,
           notify_also=_new_mailbox, acts_on_login=True)


# ---------------------------------------------------------------- delete


async def _parse_target(page: Page, form: Form) -> Pending:
    admin_login(page)
    return {"address": _target(form)}


def _apply_delete(session: Session, page: Page, pending: Pending) -> MailboxInfo:
    return contracts.delete_managed_mailbox(session, admin_login(page), str(pending["address"]))


def _describe_target(page: Page, pending: Pending, result: Any) -> list[Row]:
    rows: list[Row] = [(page.t("contract.address"), [str(pending["address"])])]
    if isinstance(result, MailboxInfo):
        rows.append((page.t("contract.role"), [role_text(page, result.role)]))
    return rows


DELETE = Flow("/contract/delete", "contract.delete_title", _apply_delete, _describe_target, "/contract",
              render_contract, _parse_target, confirmations=2, confirm_button="button.delete",
              confirm_note="contract.delete_note", acts_on_login=True)


# ---------------------------------------------------------------- password reset


def _apply_reset(session: Session, page: Page, pending: Pending) -> tuple[MailboxInfo, str]:
    return contracts.reset_managed_password(session, admin_login(page), str(pending["address"]), page.policy)


def _describe_reset(page: Page, pending: Pending, result: Any) -> list[Row]:
    return [(page.t("contract.address"), [str(pending["address"])])]


def _describe_was_reset(page: Page, pending: Pending, result: Any) -> list[Row]:
    _target_box, password = result
    return [(page.t("contract.address"), [str(pending["address"])]),
            (page.t("contract.temporary_password"), [password])]


RESET = Flow("/contract/password", "contract.reset_title", _apply_reset, _describe_reset, "/contract",
             render_contract, _parse_target, confirm_button="button.ok",
             confirm_note="contract.reset_note", done_note="contract.reset_done_note",
             describe_done=_describe_was_reset, notify_also=_target_mailbox, acts_on_login=True)


# ---------------------------------------------------------------- role


async def _parse_role(page: Page, form: Form) -> Pending:
    admin_login(page)
    role = form_text(form, "role")
    if role not in ROLES:
        raise EntryError(Problem("role_invalid", f"'{role}' is not a role (admin or user).", {"role": role}))
    return {"address": _target(form), "role": role}


def _apply_role(session: Session, page: Page, pending: Pending) -> MailboxInfo:
    login = admin_login(page)
    target = contracts.require_managed(session, login, str(pending["address"]))
    if target.role == pending["role"]:
        raise EntryError(Problem("role_unchanged", "The mailbox already has this role.",
                                 {"address": target.address}))
    return contracts.set_managed_role(session, login, target.address, str(pending["role"]))


def _describe_role(page: Page, pending: Pending, result: Any) -> list[Row]:
    return [(page.t("contract.address"), [str(pending["address"])]),
            (page.t("contract.role"), [role_text(page, str(pending["role"]))])]


ROLE = Flow("/contract/role", "contract.role_title", _apply_role, _describe_role, "/contract",
            render_contract, _parse_role, confirm_button="button.change",
            notify_also=_target_mailbox, acts_on_login=True)


# ---------------------------------------------------------------- acting on a mailbox


async def act(request: web.Request) -> web.StreamResponse:
    """Make the session act on a mailbox of the contract (its rule screens)."""
    page = page_of(request)
    login = admin_login(page)
    form = await request.post()
    address = form_text(form, "address").strip()
    token = page.session_token
    assert token is not None  # the session middleware let a logged-in request through

    def choose(session: Session) -> bool:
        target = contracts.managed_mailbox(session, login, address)
        if target is None:
            return False
        web_sessions.set_acting(session, token, None if target.address == login.address else target.address)
        return True

    if not await page.state.db(choose):
        raise web.HTTPNotFound()
    raise page.redirect("/")


async def act_end(request: web.Request) -> web.StreamResponse:
    """Back to the logged-in mailbox's own settings."""
    page = page_of(request)
    token = page.session_token
    assert token is not None

    def end(session: Session) -> None:
        web_sessions.set_acting(session, token, None)

    await page.state.db(end)
    raise page.redirect("/contract" if page.login is not None and page.login.role == "admin" else "/")


def routes(prefix: str) -> list[web.RouteDef]:
    p = prefix
    return [
        web.get(p + "/contract", show_contract),
        *ADD.routes(p),
        *DELETE.routes(p),
        *RESET.routes(p),
        *ROLE.routes(p),
        web.post(p + "/contract/act", act),
        web.post(p + "/contract/act/end", act_end),
    ]

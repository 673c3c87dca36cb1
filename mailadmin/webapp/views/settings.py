"""Auto-reply (自動返信設定, SPEC §6), virus scan (ウィルススキャン設定, §7), spam scan
(迷惑メールスキャン設定, §8) and overseas sending (国外からのメール送信制限設定, §9)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from mailadmin.errors import EntryError, Problem
from mailadmin.store import rules
from mailadmin.store.snapshots import AutoReply, SenderReply
from mailadmin.webapp.page import Page, page_of
from mailadmin.webapp.flow import Flow, Form, Pending, Row, form_text
from mailadmin.webapp.views.account import local_time
from mailadmin.webapp.views.lists import load_rules

# Blank per-sender rows offered below the saved ones (no script adds rows).
SPARE_SENDER_ROWS = 3


def _on_off(page: Page, on: bool) -> str:
    return page.t("state.on") if on else page.t("state.off")


# ---------------------------------------------------------------- auto-reply


async def auto_reply_state(request: web.Request) -> web.StreamResponse:
    """自動返信設定一覧参照."""
    page = page_of(request)
    snapshot = await load_rules(page)
    return page.render("auto_reply/index.html", ar=snapshot.auto_reply)


def _date(text: str, field: str) -> dt.date | None:
    text = text.strip()
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise EntryError(Problem(f"auto_reply_{field}_invalid",
                                 f"'{text}' is not a date (YYYY-MM-DD).", {"value": text})) from None


def _auto_reply_from_form(form: Form) -> dict[str, Any]:
    per_sender = []
    try:
        rows = min(int(form_text(form, "rows") or "0"), 100)
    except ValueError:
        rows = 0
    for index in range(rows):
        pattern = form_text(form, f"pattern_{index}").strip()
        subject = form_text(form, f"subject_{index}")
        body = form_text(form, f"body_{index}")
        if pattern or subject.strip() or body.strip():
            per_sender.append({"pattern": pattern, "subject": subject, "body": body})
    return {
        "enabled": form_text(form, "enabled") == "on",
        "subject": form_text(form, "subject"),
        "body": form_text(form, "body").replace("\r\n", "\n"),
        "per_sender": [{**r, "body": r["body"].replace("\r\n", "\n")} for r in per_sender],
        "start_date": form_text(form, "start_date").strip(),
        "end_date": form_text(form, "end_date").strip(),
    }


async def _auto_reply_input(page: Page, form: Form | None, problems: Sequence[str]) -> web.StreamResponse:
    if form is None:
        ar = (await load_rules(page)).auto_reply
        values: dict[str, Any] = {
            "enabled": ar.enabled, "subject": ar.subject, "body": ar.body,
            "per_sender": [{"pattern": r.pattern, "subject": r.subject, "body": r.body}
                           for r in ar.per_sender],
            "start_date": ar.start_date.isoformat() if ar.start_date else "",
            "end_date": ar.end_date.isoformat() if ar.end_date else "",
        }
    else:
        values = _auto_reply_from_form(form)
    spare = max(0, min(SPARE_SENDER_ROWS,
                       page.policy.limits.max_per_sender_replies - len(values["per_sender"])))
    rows = values["per_sender"] + [{"pattern": "", "subject": "", "body": ""}] * spare
    # The window is the policy's: the page names it, never a number of its own.
    return page.render("auto_reply/input.html", values=values, rows=rows, problems=list(problems),
                       window_hours=page.policy.auto_reply.window_hours,
                       status=400 if problems else 200)


async def _auto_reply_parse(page: Page, form: Form) -> Pending:
    values = _auto_reply_from_form(form)
    problems: list[Problem] = []
    for field in ("start_date", "end_date"):
        try:
            _date(values[field], field)
        except EntryError as exc:
            problems.extend(exc.problems)
    if problems:
        raise EntryError(problems)
    return values


def _auto_reply_apply(session: Session, page: Page, pending: Pending) -> None:
    auto_reply = AutoReply(
        enabled=bool(pending["enabled"]),
        subject=pending["subject"],
        body=pending["body"],
        per_sender=tuple(SenderReply(r["pattern"], r["subject"], r["body"])
                         for r in pending["per_sender"]),
        start_date=_date(pending["start_date"], "start_date"),
        end_date=_date(pending["end_date"], "end_date"),
    )
    rules.set_auto_reply(session, page.address, auto_reply, page.policy.limits)


def _auto_reply_describe(page: Page, pending: Pending, result: Any) -> list[Row]:
    t = page.t
    rows: list[Row] = [
        (t("auto_reply.enabled_label"), [_on_off(page, bool(pending["enabled"]))]),
        (t("auto_reply.subject_label"), [pending["subject"]]),
        (t("auto_reply.body_label"), [pending["body"]]),
    ]
    if pending["start_date"] or pending["end_date"]:
        rows.append((t("auto_reply.period_label"),
                     [t("auto_reply.period", start=pending["start_date"] or "—",
                        end=pending["end_date"] or "—")]))
    for number, reply in enumerate(pending["per_sender"], start=1):
        rows.append((t("auto_reply.sender_row", number=number),
                     [reply["pattern"], reply["subject"], reply["body"]]))
    return rows


AUTO_REPLY = Flow("/auto_reply/edit", "auto_reply.title", _auto_reply_apply, _auto_reply_describe,
                  "/auto_reply", _auto_reply_input, _auto_reply_parse)


# ---------------------------------------------------------------- virus scan


async def _virus_input(page: Page, form: Form | None, problems: Sequence[str]) -> web.StreamResponse:
    # The manual's screen is itself the confirm step: current → new, 了解.
    snapshot = await load_rules(page)
    return VIRUS_SCAN.render_confirm(page, {"on": not snapshot.virus_scan}, snapshot.virus_scan)


async def _virus_parse(page: Page, form: Form) -> Pending:
    return {"on": form_text(form, "on") == "on"}


def _virus_apply(session: Session, page: Page, pending: Pending) -> None:
    rules.set_virus_scan(session, page.address, bool(pending["on"]))


def _virus_describe(page: Page, pending: Pending, result: Any) -> list[Row]:
    new = _on_off(page, bool(pending["on"]))
    if isinstance(result, bool):
        return [(page.t("virus_scan.label"), [page.t("state.change", old=_on_off(page, result), new=new)])]
    return [(page.t("virus_scan.label"), [new])]


VIRUS_SCAN = Flow("/virus_scan", "virus_scan.title", _virus_apply, _virus_describe, "/",
                  _virus_input, _virus_parse, confirm_button="button.ok",
                  confirm_note="virus_scan.note")


# ---------------------------------------------------------------- spam scan


async def spam_state(request: web.Request) -> web.StreamResponse:
    """迷惑メールスキャン設定参照."""
    page = page_of(request)
    snapshot = await load_rules(page)
    return page.render("spam_scan/index.html", rules=snapshot,
                       retention_days=page.policy.quarantine.retention_days)


async def spam_notice(request: web.Request) -> web.StreamResponse:
    """迷惑メールスキャン設定ご利用確認: no filter is 100%."""
    page = page_of(request)
    return page.render("spam_scan/notice.html",
                       retention_days=page.policy.quarantine.retention_days)


async def _spam_input(page: Page, form: Form | None, problems: Sequence[str]) -> web.StreamResponse:
    if form is None:
        snapshot = await load_rules(page)
        values = {"scan": snapshot.spam_scan, "quarantine": snapshot.spam_quarantine,
                  "notice": snapshot.quarantine_notice}
    else:
        values = {k: form_text(form, k) == "on" for k in ("scan", "quarantine", "notice")}
    return page.render("spam_scan/input.html", values=values, problems=list(problems),
                       status=400 if problems else 200)


async def _spam_parse(page: Page, form: Form) -> Pending:
    problems = [Problem("choice_missing", "Choose ON or OFF.", {"field": k})
                for k in ("scan", "quarantine", "notice") if form_text(form, k) not in ("on", "off")]
    if problems:
        raise EntryError(problems)
    return {k: form_text(form, k) == "on" for k in ("scan", "quarantine", "notice")}


def _spam_apply(session: Session, page: Page, pending: Pending) -> None:
    rules.set_spam_settings(session, page.address, scan=bool(pending["scan"]),
                            quarantine=bool(pending["quarantine"]), notice=bool(pending["notice"]))


def _spam_describe(page: Page, pending: Pending, result: Any) -> list[Row]:
    return [(page.t(f"spam_scan.{k}_label"), [_on_off(page, bool(pending[k]))])
            for k in ("scan", "quarantine", "notice")]


SPAM_SCAN = Flow("/spam_scan/edit", "spam_scan.title", _spam_apply, _spam_describe, "/spam_scan",
                 _spam_input, _spam_parse)


# ---------------------------------------------------------------- overseas sending

OVERSEAS_ACTIONS = ("unlock", "extend", "restrict")


async def _overseas_input(page: Page, form: Form | None, problems: Sequence[str]) -> web.StreamResponse:
    snapshot = await load_rules(page)
    now = page.state.clock()
    unlocked = snapshot.is_overseas_unlocked(now)
    until = snapshot.overseas_unlocked_until
    return page.render(
        "overseas/index.html", unlocked=unlocked,
        until=local_time(page, until) if unlocked and until else "",
        max_days=page.policy.overseas.unlock_max_days, problems=list(problems),
        status=400 if problems else 200,
    )


async def _overseas_parse(page: Page, form: Form) -> Pending:
    action = form_text(form, "action")
    if action not in OVERSEAS_ACTIONS:
        raise EntryError(Problem("choice_missing", "Choose what to do.", {"field": "action"}))
    return {"action": action}


def _overseas_apply(session: Session, page: Page, pending: Pending) -> dt.datetime | None:
    now = page.state.clock()
    snapshot = rules.load_rules(session, page.address)
    unlocked = snapshot is not None and snapshot.is_overseas_unlocked(now)
    action = pending["action"]
    if action == "restrict":
        if not unlocked:
            raise EntryError(Problem("overseas_already_restricted", "Sending is restricted already."))
        rules.overseas_restrict(session, page.address)
        return None
    if action == "extend" and not unlocked:
        raise EntryError(Problem("overseas_not_unlocked", "Sending is not unlocked."))
    return rules.overseas_unlock(session, page.address, now, page.policy)


def _overseas_describe(page: Page, pending: Pending, result: Any) -> list[Row]:
    t = page.t
    if pending["action"] == "restrict":
        return [(t("overseas.label"), [t("overseas.to_restricted")])]
    until = local_time(page, result) if isinstance(result, dt.datetime) else ""
    return [(t("overseas.label"), [t("overseas.to_unlocked", until=until)])]


OVERSEAS = Flow("/overseas", "overseas.title", _overseas_apply, _overseas_describe, "/",
                _overseas_input, _overseas_parse, confirm_button="button.ok")

"""Recording changes for the change notices (seed 001): the one place the
page turns a saved change into change events (``store/change_events``).

:func:`record_change` runs inside the transaction of the change.  It words
the change in both languages the way the page showed it (the flow's
``describe`` rows under a Japanese and an English translator), so the
notice says what the subscriber saw, and records it for every mailbox that
must hear of it: the mailbox changed, the login when an admin acted on
another mailbox of its contract, and any the flow names (``Flow.notify_also``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.orm import Session

from mailadmin.store import change_events
from mailadmin.webapp import i18n
from mailadmin.webapp.page import Page, client_ip

Row = tuple[str, Sequence[str]]


def in_language(page: Page, lang: str) -> Page:
    """``page`` as seen in ``lang`` (same request, same mailboxes)."""
    return dataclasses.replace(page, t=i18n.Translator(lang, page.state.catalogs))


def record_change(session: Session, page: Page, *, title: str, describe: Callable[[Page], Sequence[Row]],
                  target: str | None = None, login: str | None = None,
                  notify: Sequence[str] = (), also_notify: Sequence[str] = ()) -> None:
    """Record one change made on ``page``.

    ``title``: the catalogue key of the screen; ``describe``: its rows for a
    page in one language.  ``target`` is the mailbox changed (default: the
    one the page acts on), ``login`` who changed it (default: the login, or
    the target when nobody is logged in, as on the reset page).  The change
    is recorded for the target, for the login when it differs, and for
    ``notify``; ``also_notify`` are further addresses told of it (an old
    contact address)."""
    target = target or page.address
    login = login or (page.login.address if page.login is not None else target)
    worded: dict[str, dict[str, Any]] = {}
    for lang in i18n.LANGUAGES:
        seen = in_language(page, lang)
        worded[lang] = {"title": seen.t(title),
                        "rows": [[label, list(values)] for label, values in describe(seen)]}
    now = page.state.clock()
    ip = client_ip(page.request)
    for mailbox in dict.fromkeys([target, login, *notify]):
        change_events.record(session, mailbox=mailbox, now=now, client_ip=ip, login=login, target=target,
                             change=worded, also_notify=also_notify)

"""A change saved on the page governs the next message (SPEC §10): the engine,
reading the same store through Store.load_rules, quarantines mail matching
an entry just added on the page, and delivers it again once it is deleted."""

from __future__ import annotations

import datetime as dt
import email.utils
from email.message import EmailMessage

from mailadmin.config.model import Config
from mailadmin.engine.decide import Engine
from mailadmin.message import Envelope, Message
from mailadmin.verdicts import Disposition
from mailadmin.wiring import Store

from .conftest import HANAKO, TARO, Web


class CleanClamd:
    """No virus in these messages; clamd itself is exercised in tests/integration/test_clamd.py."""

    async def scan(self, data: bytes) -> str | None:
        return None


class HamSpamd:
    async def report(self, data: bytes) -> object:
        class Report:
            score = 0.0
            rules: dict[str, float] = {}
        return Report()


def engine_for(web: Web, config: Config, store_url: str) -> Engine:
    store = Store(store_url, web.factory)
    return Engine(
        config=lambda: config,
        load_rules=store.load_rules,
        clamd=CleanClamd(),
        spamd=HamSpamd(),  # type: ignore[arg-type]
        country_of=lambda ip: None,
        clock=lambda: web.clock.now,
    )


def message(subject: str, now: dt.datetime) -> Message:
    msg = EmailMessage()
    msg["From"] = "Sale <news@shop.spam.example>"
    msg["To"] = f"{TARO}, {HANAKO}"
    msg["Subject"] = subject
    msg["Date"] = email.utils.format_datetime(now)  # the test's own clock
    msg.set_content("Buy now\n")
    return Message(msg.as_bytes())


async def test_an_entry_added_on_the_page_quarantines_the_next_message(
    taro: Web, config: Config, store_url: str
) -> None:
    engine = engine_for(taro, config, store_url)
    envelope = Envelope(mail_from="bounce@mx.shop.spam.example", rcpt_tos=(TARO, HANAKO))

    before = await engine.decide(envelope, message("Big sale", taro.clock.now))
    assert [o.disposition for o in before.outcomes] == [Disposition.DELIVER, Disposition.DELIVER]

    await taro.get("/reject/sender/add")
    await taro.confirm_and_done("/reject/sender/add", {"entries": "spam.example"})

    after = await engine.decide(envelope, message("Big sale", taro.clock.now))
    by_rcpt = {o.recipient: o for o in after.outcomes}
    assert by_rcpt[TARO].disposition is Disposition.QUARANTINE
    assert by_rcpt[TARO].reason == "reject_sender:spam.example"
    assert by_rcpt[HANAKO].disposition is Disposition.DELIVER  # B's own rules

    await taro.get("/reject/sender")
    await taro.post("/reject/sender/delete/confirm", {"entry": "spam.example"})
    await taro.press_confirm("/reject/sender/delete")
    again = await engine.decide(envelope, message("Big sale", taro.clock.now))
    assert {o.recipient: o.disposition for o in again.outcomes}[TARO] is Disposition.DELIVER


async def test_a_subject_entry_and_a_header_condition_from_the_page(
    taro: Web, config: Config, store_url: str
) -> None:
    engine = engine_for(taro, config, store_url)
    envelope = Envelope(mail_from="someone@example.org", rcpt_tos=(TARO,))
    await taro.get("/reject/subject/add")
    await taro.confirm_and_done("/reject/subject/add", {"entries": "未承諾広告"})
    decision = await engine.decide(envelope, message("【未承諾広告】お得な情報", taro.clock.now))
    assert decision.outcomes[0].disposition is Disposition.QUARANTINE

    await taro.get("/allow/add")
    await taro.confirm_and_done("/allow/add", {"entries": "shop.spam.example"})
    decision = await engine.decide(envelope, message("【未承諾広告】お得な情報", taro.clock.now))
    assert decision.outcomes[0].disposition is Disposition.DELIVER  # the allow list wins

"""Mailbox A can never read or change anything of mailbox B: no route takes a
mailbox, quarantine ids of B are not found, a confirm page signed for one
session is worthless in another."""

from __future__ import annotations

import html as html_lib
import re

from aiohttp import web as aioweb
from aiohttp.test_utils import TestClient, TestServer

from mailadmin.store import quarantine, rules
from mailadmin.webapp.app import PUBLIC_EXACT_PATHS, PUBLIC_LINK_PREFIX

from .conftest import HANAKO, HANAKO_PASSWORD, TARO, Web
from .test_webapp_flows import load, quarantine_item


def app_routes(web: Web) -> list[tuple[str, str]]:
    app = web.client.server.app  # type: ignore[attr-defined]
    assert isinstance(app, aioweb.Application)
    out = []
    for resource in app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter") or ""
        if path.startswith("/static"):
            continue
        for route in resource:
            if route.method in ("GET", "POST"):
                out.append((route.method, str(path)))
    return out


async def test_no_route_takes_a_mailbox(web: Web) -> None:
    for _method, path in app_routes(web):
        assert not re.search(r"mailbox|address|user|account", path), path


async def test_every_page_needs_a_session(web: Web) -> None:
    routes = app_routes(web)
    assert len(routes) > 40
    for method, path in routes:
        concrete = path.replace("{item_id}", "1").replace("{lang}", "en")
        if path in ("/login",) or path.startswith("/lang/"):
            continue
        response = await web.client.request(method, concrete, data={"csrf": "x"}, allow_redirects=False)
        if path.startswith(PUBLIC_LINK_PREFIX):
            # A quarantine notice's signed link works without a login; one that is
            # not signed by us reaches nothing (test_webapp_quarantine_links.py).
            assert response.status in (403, 404, 410), path
        elif method == "GET" and path in PUBLIC_EXACT_PATHS:
            # パスワードをお忘れの方 (seed 000) is for those who can't log in.
            assert path == "/reset" and response.status == 200, path
        elif method == "GET":
            assert response.status == 303 and response.headers["Location"] == "/login", path
        else:
            assert response.status == 403, path


async def test_every_get_page_renders_for_a_logged_in_mailbox(taro: Web) -> None:
    item = quarantine_item(taro)
    for method, path in app_routes(taro):
        if method != "GET" or path.startswith("/lang/") or path == "/login":
            continue
        if path.startswith(PUBLIC_LINK_PREFIX):
            continue  # a signed link of a notice, with its own tests (test_webapp_quarantine_links.py)
        concrete = path.replace("{item_id}", str(item))
        status, html = await taro.get(concrete)
        assert status == 200, (path, html[:300])
        assert TARO in html
        assert HANAKO not in html


async def test_b_quarantine_is_out_of_reach(taro: Web) -> None:
    theirs = quarantine_item(taro, HANAKO, subject="for hanako only")
    status, html = await taro.get(f"/quarantine/item/{theirs}")
    assert status == 404 and "for hanako only" not in html
    status, html = await taro.get("/quarantine")
    assert "for hanako only" not in html
    for flow in ("/quarantine/release", "/quarantine/delete"):
        status, html = await taro.post(flow + "/confirm", {"id": str(theirs)})
        assert status == 400 and "対象が見つかりません" in html
    with taro.session() as s:
        assert [i.id for i in quarantine.list_items(s, HANAKO)] == [theirs]
        assert quarantine.list_items(s, TARO) == []


async def test_fields_naming_another_mailbox_are_ignored(taro: Web) -> None:
    extra = {"address": HANAKO, "mailbox": HANAKO, "user": HANAKO}
    await taro.get("/reject/sender/add")
    await taro.confirm_and_done("/reject/sender/add", {"entries": "spam.example", **extra})
    await taro.get("/virus_scan")
    await taro.press_confirm("/virus_scan")
    await taro.get("/overseas")
    await taro.confirm_and_done("/overseas", {"action": "unlock", **extra})
    await taro.get("/spam_scan/edit")
    await taro.confirm_and_done("/spam_scan/edit", {"scan": "off", "quarantine": "on", "notice": "on", **extra})
    a, b = load(taro, TARO), load(taro, HANAKO)
    assert a.reject_sender == ("spam.example",) and not a.virus_scan and a.overseas_unlocked_until
    assert b.reject_sender == () and b.virus_scan and b.overseas_unlocked_until is None
    assert b.spam_scan and not b.spam_quarantine


async def test_a_confirm_page_of_one_session_is_refused_in_another(taro: Web) -> None:
    await taro.get("/reject/sender/add")
    await taro.post("/reject/sender/add/confirm", {"entries": "replayed.example"})
    fields = dict(re.findall(r'name="(pending|signature|step)" value="([^"]*)"', taro.last_html))
    fields = {k: html_lib.unescape(v) for k, v in fields.items()}

    other = TestClient(TestServer(taro.client.server.app))  # type: ignore[attr-defined]
    await other.start_server()
    try:
        page = await other.get("/login")
        token = re.search(r'name="csrf" value="([^"]*)"', await page.text())
        assert token
        page = await other.post("/login", data={"address": HANAKO, "password": HANAKO_PASSWORD,
                                                "csrf": token.group(1)})
        own = re.search(r'name="csrf" value="([^"]*)"', await page.text())
        assert own
        response = await other.post("/reject/sender/add/done", data={**fields, "csrf": own.group(1)})
        assert response.status == 400
    finally:
        await other.close()
    with taro.session() as s:
        assert rules.load_rules(s, HANAKO).reject_sender == ()  # type: ignore[union-attr]
        assert rules.load_rules(s, TARO).reject_sender == ()  # type: ignore[union-attr]


async def test_deleting_b_entries_by_name_does_nothing(taro: Web) -> None:
    with taro.session() as s, s.begin():
        from mailadmin.config.model import LimitsPolicy
        rules.add_entries(s, HANAKO, "reject_sender", ["keep.example"], LimitsPolicy())
        rules.add_forward(s, HANAKO, "h@example.org", True, LimitsPolicy())
    await taro.get("/reject/sender")
    status, html = await taro.post("/reject/sender/delete/confirm", {"entry": "keep.example"})
    assert status == 400
    status, html = await taro.post("/reject/sender/delete_all/confirm", {})
    assert "設定されている項目はありません" in html or status == 400
    await taro.get("/forwarding")
    status, html = await taro.post("/forwarding/delete/confirm", {"address": "h@example.org"})
    assert status == 400 and "対象が見つかりません" in html
    b = load(taro, HANAKO)
    assert b.reject_sender == ("keep.example",) and len(b.forwarding) == 1

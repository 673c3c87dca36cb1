"""The admin's contract page (seed 002; SPEC §1): the mailbox list with its
count against the limit, and every change through input → 確認 → 完了 —
create (temporary password shown once, changed at the first login), delete
(two confirmations; rules and quarantine go; never issued again), password
reset, role change (never the last admin) — and acting on another mailbox of
the contract on every rule screen, with the acting admin shown."""

from __future__ import annotations

import html as html_lib
import re

import pytest

from mailadmin.config.model import LimitsPolicy, Policy
from mailadmin.errors import NotFound
from mailadmin.store import change_events, contracts, mailboxes, quarantine, rules

from .conftest import HANAKO, JIRO, JIRO_PASSWORD, PASSWORD, TARO, Web
from .test_webapp_flows import h1, load, quarantine_item


def temporary_password(html: str) -> str:
    match = re.search(r"<dt>仮パスワード</dt>\s*<dd><span class=\"value\">([^<]+)</span>", html)
    assert match, html
    return html_lib.unescape(match.group(1))


def box(web: Web, address: str) -> mailboxes.MailboxInfo:
    with web.session() as s:
        return mailboxes.get_mailbox(s, address)


async def test_the_admin_sees_the_contract_and_its_mailboxes(taro: Web) -> None:
    status, html = await taro.get("/")
    assert "管理者権限" in html and 'href="/contract"' in html
    status, html = await taro.get("/contract")
    assert status == 200 and h1(html) == "メールアカウント管理"
    number = box(taro, TARO).contract
    assert f"<td>{number}</td>" in html
    assert "2個 / 5個" in html
    assert html.index(TARO) < html.index(JIRO)  # admins first
    assert "ユーザー権限" in html and HANAKO not in html  # another contract


async def test_create_a_mailbox_which_must_change_its_password(taro: Web, second_browser: Web) -> None:
    await taro.get("/contract/add")
    for local, message in (
        ("ab", "3～15 文字"),
        ("Hanako", "半角英小文字・数字"),
        ("-sato", "先頭・末尾"),
        ("sa..to", "2 つ続けて"),
        ("taro", "taro@example.jp は既に登録されています。"),
    ):
        status, html = await taro.post("/contract/add/confirm", {"local": local, "role": "user"})
        assert status == 400 and message in html, (local, html)
    status, html = await taro.post("/contract/add/confirm", {"local": "sato.k", "role": "user"})
    assert status == 200 and "sato.k@example.jp" in html
    assert "仮パスワード" not in html  # nothing made yet, nothing to show
    with taro.session() as s:
        with pytest.raises(NotFound):
            mailboxes.get_mailbox(s, "sato.k@example.jp")
    done = await taro.press_confirm("/contract/add")
    assert "完了" in h1(done)
    password = temporary_password(done)
    created = box(taro, "sato.k@example.jp")
    assert (created.contract, created.role, created.must_change_password) == (box(taro, TARO).contract, "user",
                                                                              True)
    status, html = await taro.get("/contract")
    assert "3個 / 5個" in html and "仮パスワードのまま" in html

    # Its first login reaches only the password change.
    status, html = await second_browser.login("sato.k@example.jp", password)
    assert status == 200 and h1(html) == "POP アカウントパスワード変更"
    status, html = await second_browser.get("/contract")
    assert h1(html) == "POP アカウントパスワード変更"
    await second_browser.post("/password", {"current_password": password, "new_password": "Sato-pass1",
                                            "new_password_again": "Sato-pass1"})
    status, html = await second_browser.get("/")
    assert status == 200 and "sato.k@example.jp" in html
    status, _ = await second_browser.get("/contract")
    assert status == 404  # a user mailbox has no contract page


async def test_the_limit_is_kept(taro: Web) -> None:
    with taro.session() as s, s.begin():
        contracts.set_limit(s, box(taro, TARO).contract, 2, Policy())
    status, html = await taro.get("/contract")
    assert "2個 / 2個" in html and "2 個まで登録できます" in html and 'href="/contract/add"' not in html
    await taro.get("/contract/add")
    status, html = await taro.post("/contract/add/confirm", {"local": "sato", "role": "user"})
    assert status == 400 and "メールアカウントは 2 個まで登録できます。" in html


async def test_delete_takes_two_confirmations_and_the_address_is_retired(taro: Web) -> None:
    with taro.session() as s, s.begin():
        rules.add_entries(s, JIRO, "reject_sender", ["spam.example"], LimitsPolicy())
    item = quarantine_item(taro, JIRO)
    await taro.get("/contract")
    status, html = await taro.post("/contract/delete/confirm", {"address": JIRO})
    assert status == 200 and JIRO in html and "削除のキャンセルは行えません" in html
    html = await taro.press_confirm("/contract/delete")
    assert "最終確認" in h1(html) or "最終確認" in html
    assert box(taro, JIRO).address == JIRO  # still there after the first confirmation
    done = await taro.press_confirm("/contract/delete")
    assert "完了" in h1(done)
    with taro.session() as s:
        with pytest.raises(NotFound):
            mailboxes.get_mailbox(s, JIRO)
        assert rules.load_rules(s, JIRO) is None
        assert all(i.id != item for i in quarantine.list_items(s, None))
    await taro.get("/contract/add")
    status, html = await taro.post("/contract/add/confirm", {"local": "jiro", "role": "user"})
    assert status == 400 and "再登録できません" in html


async def test_the_own_mailbox_is_not_deleted_or_reset_here(taro: Web) -> None:
    status, html = await taro.get("/contract")
    own_row = html[html.index(TARO):html.index(JIRO)]
    assert "/contract/delete/confirm" not in own_row and "/contract/password/confirm" not in own_row
    for flow, message in (("/contract/delete", "ログイン中のメールアカウントは削除できません。"),
                          ("/contract/password", "POP アカウントパスワード変更")):
        status, html = await taro.post(flow + "/confirm", {"address": TARO})
        assert status == 400 and message in html
    assert box(taro, TARO).address == TARO


async def test_password_reset_gives_a_new_temporary_password_and_ends_its_sessions(
        taro: Web, second_browser: Web) -> None:
    status, _ = await second_browser.login(JIRO, JIRO_PASSWORD)
    assert status == 200
    await taro.get("/contract")
    status, html = await taro.post("/contract/password/confirm", {"address": JIRO})
    assert status == 200 and "ログアウトされます" in html and "仮パスワード</dt>" not in html
    done = await taro.press_confirm("/contract/password")
    password = temporary_password(done)
    assert box(taro, JIRO).must_change_password
    status, html = await second_browser.get("/", allow_redirects=False)
    assert status == 303  # jiro's session ended
    status, html = await second_browser.login(JIRO, JIRO_PASSWORD)
    assert status == 401
    status, html = await second_browser.login(JIRO, password)
    assert status == 200 and h1(html) == "POP アカウントパスワード変更"


async def test_roles_change_but_a_contract_keeps_an_admin(taro: Web, second_browser: Web) -> None:
    await taro.get("/contract")
    status, html = await taro.post("/contract/role/confirm", {"address": TARO, "role": "user"})
    assert status == 400 and "唯一の管理者権限" in html
    status, html = await taro.post("/contract/role/confirm", {"address": JIRO, "role": "admin"})
    assert status == 200 and "管理者権限" in html
    await taro.press_confirm("/contract/role")
    assert box(taro, JIRO).role == "admin"
    await second_browser.login(JIRO, JIRO_PASSWORD)
    status, html = await second_browser.get("/contract")
    assert status == 200 and TARO in html

    # taro gives up the role: the next request already knows it.
    await taro.get("/contract")
    await taro.confirm_and_done("/contract/role", {"address": TARO, "role": "user"})
    status, _ = await taro.get("/contract")
    assert status == 404
    status, html = await taro.post("/contract/act", {"address": JIRO})
    assert status == 404
    status, html = await taro.post("/contract/role/confirm", {"address": TARO, "role": "admin"})
    assert status == 404 and box(taro, TARO).role == "user"


async def test_the_admin_acts_on_a_mailbox_of_the_contract(taro: Web) -> None:
    await taro.get("/contract")
    status, html = await taro.post("/contract/act", {"address": JIRO})
    assert status == 200 and f"<td>{JIRO}</td>" in html  # the account page of jiro
    assert "設定中のメールアカウント：" in html and f"<strong>{TARO}</strong>" in html
    await taro.get("/reject/sender/add")
    await taro.confirm_and_done("/reject/sender/add", {"entries": "only-for-jiro.example"})
    await taro.get("/forwarding/add")
    await taro.confirm_and_done("/forwarding/add", {"address": "jiro@example.org", "keep_copy": "yes"})
    assert load(taro, JIRO).reject_sender == ("only-for-jiro.example",)
    assert load(taro, JIRO).forwarding[0].address == "jiro@example.org"
    assert load(taro, TARO).reject_sender == () and load(taro, TARO).forwarding == ()
    theirs = quarantine_item(taro, JIRO, subject="jiro's quarantined mail")
    status, html = await taro.get("/quarantine")
    assert "jiro&#39;s quarantined mail" in html
    status, html = await taro.get(f"/quarantine/item/{theirs}")
    assert status == 200

    # The password page always changes the login's own password.
    await taro.get("/password")
    status, html = await taro.post("/password", {"current_password": PASSWORD, "new_password": "Taro-new-1",
                                                 "new_password_again": "Taro-new-1"})
    assert status == 200
    with taro.session() as s:
        assert mailboxes.check_login(s, TARO, "Taro-new-1") is not None
        assert mailboxes.check_login(s, JIRO, JIRO_PASSWORD) is not None

    status, html = await taro.get("/")
    csrf = taro.csrf()
    status, html = await taro.post("/contract/act/end", {}, csrf=csrf)
    assert status == 200 and h1(html) == "メールアカウント管理"
    status, html = await taro.get("/")
    assert f"<td>{TARO}</td>" in html and "設定中のメールアカウント" not in html


async def test_acting_ends_when_the_mailbox_leaves_or_the_admin_is_demoted(taro: Web) -> None:
    await taro.get("/contract")
    await taro.post("/contract/act", {"address": JIRO})
    with taro.session() as s, s.begin():
        contracts.set_role(s, JIRO, "admin")
        contracts.set_role(s, TARO, "user")
    status, html = await taro.get("/")
    assert f"<td>{TARO}</td>" in html and f"<td>{JIRO}</td>" not in html


async def test_changes_to_another_contract_are_refused(taro: Web) -> None:
    await taro.get("/contract")
    for flow, data in (("/contract/delete", {"address": HANAKO}),
                       ("/contract/password", {"address": HANAKO}),
                       ("/contract/role", {"address": HANAKO, "role": "user"})):
        status, html = await taro.post(flow + "/confirm", data)
        assert status == 400 and "対象が見つかりません" in html, flow
    status, _ = await taro.post("/contract/act", {"address": HANAKO})
    assert status == 404
    hanako = box(taro, HANAKO)
    assert (hanako.role, hanako.must_change_password) == ("admin", False)


async def test_a_tampered_confirmation_is_refused(taro: Web) -> None:
    await taro.get("/contract")
    await taro.post("/contract/delete/confirm", {"address": JIRO})
    fields = dict(re.findall(r'name="(pending|signature|step)" value="([^"]*)"', taro.last_html))
    fields = {k: html_lib.unescape(v) for k, v in fields.items()}
    fields["pending"] = fields["pending"].replace(JIRO, HANAKO)
    status, html = await taro.post("/contract/delete/done", fields)
    assert status == 400
    assert box(taro, HANAKO).address == HANAKO and box(taro, JIRO).address == JIRO


async def test_the_english_page(taro: Web) -> None:
    await taro.get("/lang/en?next=/contract")
    status, html = await taro.get("/contract")
    assert h1(html) == "Manage mail accounts" and "Contract number" in html and "2 / 5" in html
    await taro.get("/contract/add")
    status, html = await taro.post("/contract/add/confirm", {"local": "a", "role": "user"})
    assert status == 400 and "The part before @ must be 3-15 characters." in html


async def test_contract_changes_are_noticed_by_the_admin_and_the_mailbox_changed(taro: Web) -> None:
    await taro.get("/contract")
    await taro.post("/contract/act", {"address": JIRO})  # acting does not make it jiro's change
    await taro.get("/contract")
    await taro.confirm_and_done("/contract/role", {"address": JIRO, "role": "admin"})
    await taro.get("/contract/add")
    done = await taro.confirm_and_done("/contract/add", {"local": "sato", "role": "user"})
    password = temporary_password(done)
    with taro.session() as s:
        mine = change_events.pending(s, TARO)
        theirs = change_events.pending(s, JIRO)
        new = change_events.pending(s, "sato@example.jp")
    assert [e.target for e in mine] == [TARO, TARO] and {e.login for e in mine} == {TARO}
    assert len(theirs) == 1 and theirs[0].details["ja"]["title"] == "アカウント権限種別の変更"
    assert len(new) == 1
    # The temporary password is shown on the page, never put in a notice.
    assert all(password not in str(e.details) for e in mine + new)

"""Every URL of the admin page, in one place (relative to web.base_url's path).

No route takes a mailbox: every handler acts on the session's.  Changes are
POST only; a flow's three URLs are its input page (GET), ``…/confirm`` and
``…/done`` (POST).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from mailadmin.webapp.views import account, contact, contract, lists, quarantine, reset, settings


def add_routes(app: web.Application, prefix: str, static_dir: Path) -> None:
    p = prefix
    routes: list[web.RouteDef] = [
        web.get(p + "/login", account.login_form),
        web.post(p + "/login", account.login_submit),
        web.post(p + "/logout", account.logout),
        web.get(p + "/lang/{lang}", account.switch_language),
        web.get(p + "/", account.account),
        web.get(p + "/password", account.password_form),
        web.post(p + "/password", account.password_submit),
        # 転送設定
        web.get(p + "/forwarding", lists.forwarding_list),
        *lists.FORWARD_ADD.routes(p),
        *lists.FORWARD_DELETE.routes(p),
        # 受信拒否設定選択, From / Subject lists, ヘッダー受信拒否設定
        web.get(p + "/reject", lists.reject_menu),
        web.get(p + "/reject/header", lists.header_state),
        *lists.HEADER_FLOW.routes(p),
    ]
    # From, Subject and allow lists: 一覧参照, add, delete selected, delete all
    for entry_list in lists.ENTRY_LISTS:
        routes.append(web.get(p + entry_list.base, entry_list.show_list))
        routes += entry_list.add_flow().routes(p)
        routes += entry_list.delete_flow().routes(p)
        routes += entry_list.delete_all_flow().routes(p)
    routes += [
        # 自動返信設定
        web.get(p + "/auto_reply", settings.auto_reply_state),
        *settings.AUTO_REPLY.routes(p),
        # ウィルススキャン設定: the GET page is the confirm step
        *settings.VIRUS_SCAN.routes(p),
        # 迷惑メールスキャン設定: 参照 → ご利用確認 → input → 確認 → 完了
        web.get(p + "/spam_scan", settings.spam_state),
        web.get(p + "/spam_scan/notice", settings.spam_notice),
        *settings.SPAM_SCAN.routes(p),
        # 国外からのメール送信制限設定
        *settings.OVERSEAS.routes(p),
        # 迷惑メールフォルダ
        web.get(p + "/quarantine", quarantine.show_list),
        web.get(p + "/quarantine/item/{item_id}", quarantine.show_item),
        *quarantine.RELEASE.routes(p),
        *quarantine.DELETE.routes(p),
        # The quarantine notice's signed links: public, a confirm page before any action.
        web.get(p + "/q/{action}/{item_id}/{expiry}/{sig}", quarantine.link_confirm),
        web.post(p + "/q/{action}/{item_id}/{expiry}/{sig}", quarantine.link_act),
        # 契約のメールアカウント管理 (admin mailboxes only)
        *contract.routes(p),
        # 連絡先メールアドレス (the login's own) and パスワードをお忘れの方 (public)
        *contact.routes(p),
        *reset.routes(p),
    ]
    app.add_routes(routes)
    app.router.add_static(p + "/static", static_dir, append_version=True)

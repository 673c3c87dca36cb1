"""The mailbox admin page (メールアカウント管理ページ, SPEC §1–§9) as an aiohttp app.

``make_app(config_fn, session_factory)`` builds it; ``start_web(listen,
runtime)`` is the ``web`` role of ``mailadmin serve``.
"""

from mailadmin.webapp.app import make_app, start_web

__all__ = ["make_app", "start_web"]

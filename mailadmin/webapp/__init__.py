"""The mailbox admin page (メールアカウント管理ページ, SPEC §1–§9) as an aiohttp app.

``app.make_app(config_fn, session_factory)`` builds it; ``app.start_web(listen,
runtime)`` is the ``web`` role of ``mailadmin serve``.  ``page`` is what every
view shares; the package itself imports nothing, so a view importing
``page`` never runs the application module that routes to it.
"""

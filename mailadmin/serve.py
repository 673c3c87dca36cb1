"""``mailadmin serve [all|milter|policy|filter|web|jobs]``: the daemon's roles (SPEC §10, §11).

``all`` runs, in one asyncio process, every listener whose ``enabled`` is
true in conf/ (milter, Postfix policy delegation, SMTP content filter, the
admin page), the background jobs (outbox, quarantine purge, quarantine notices,
change notices) and the configuration watcher.  A role name runs that role
alone, for hosts that split them over several systemd units (systemd/); every listener role
also runs the watcher, so a filters/ edit governs the next message in every
process.

Lifecycle:

- startup: each listener's address, as the socket got it, is printed;
  ``READY=1`` goes to systemd once every listener accepts connections;
- SIGHUP, and a check every second, reload conf/, policies/ and filters/
  (:class:`ConfigHolder`: all or nothing; a broken edit keeps the running
  configuration and is logged);
- SIGTERM/SIGINT: ``STOPPING=1``; the listeners stop accepting; connections
  already open (every MTA-facing listener registers them with one
  :class:`~mailadmin.listeners.ConnectionTracker`) get :data:`DRAIN_SECONDS`
  to finish their SMTP/milter exchange (policy delegation connections, idle
  between one-line requests, only ``IDLE_DRAIN_SECONDS``); whatever is still
  running then is cancelled and its connection dropped, which the MTA
  answers with a temporary failure and retries later.
  Nothing is half-applied: a decision's database effects are one transaction
  (engine/execute.py).  The jobs stop last, so mail queued by the final
  transactions still leaves; the exit status is 0.

The listener roles are milter, policy (Postfix policy delegation), filter
(SMTP content filter) and web (the mailbox admin page, mailadmin/webapp/);
another is one more entry of :data:`LISTENER_ROLES` and a choice of the CLI's
serve sub-command.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailadmin import metrics
from mailadmin.config import resolve_config_file
from mailadmin.config.model import Config
from mailadmin.config.reload import ConfigHolder
from mailadmin.listeners import IDLE_DRAIN_SECONDS, ConnectionTracker, bound_address
from mailadmin.sd_notify import notify
from mailadmin.wiring import Runtime, make_runtime

log = logging.getLogger(__name__)

RELOAD_INTERVAL_SECONDS = 1.0
# sysexits.h EX_OSERR: a listener could not be opened (address in use,
# permissions); systemd's Restart=on-failure tries again.
EX_OSERR = 71
# Open connections get this long to finish after SIGTERM; below systemd's
# TimeoutStopSec (30 s in systemd/), so the stop never ends in SIGKILL.
DRAIN_SECONDS = 10.0
# Jobs are stopped after the listeners; a send in progress gets this long.
JOBS_STOP_SECONDS = 10.0

Starter = Callable[[str, Runtime, ConnectionTracker], Awaitable[asyncio.base_events.Server]]
JobLoop = Callable[[Runtime, asyncio.Event], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class ListenerRole:
    """A role that listens: whether and where conf/ says so, and how it starts."""

    name: str
    enabled: Callable[[Config], bool]
    listen: Callable[[Config], str]
    start: Callable[[], Starter]  # imported on use: a role loads only its own adapter


def _milter() -> Starter:
    from mailadmin.adapters.milter import start_milter

    return start_milter


def _policy() -> Starter:
    from mailadmin.adapters.postfix_policy import start_postfix_policy

    return start_postfix_policy


def _filter() -> Starter:
    from mailadmin.adapters.content_filter import start_content_filter

    return start_content_filter


def _srs() -> Starter:
    from mailadmin.srs_bounce import start_srs_bounce

    return start_srs_bounce


def _web() -> Starter:
    from mailadmin.webapp.app import start_web

    # The page's connections are aiohttp's: not tracked, they end with the
    # process (asyncio.run cancels them once the jobs have stopped).
    return lambda listen, runtime, _connections: start_web(listen, runtime)


LISTENER_ROLES: tuple[ListenerRole, ...] = (
    ListenerRole("milter", lambda c: c.conf.milter.enabled, lambda c: c.conf.milter.listen, _milter),
    ListenerRole(
        "policy", lambda c: c.conf.postfix_policy.enabled, lambda c: c.conf.postfix_policy.listen, _policy
    ),
    ListenerRole(
        "filter", lambda c: c.conf.content_filter.enabled, lambda c: c.conf.content_filter.listen, _filter
    ),
    ListenerRole("web", lambda c: c.conf.web.enabled, lambda c: c.conf.web.listen, _web),
    # Bounces to SRS addresses of forwarded copies (SPEC §3), on when [srs] is.
    ListenerRole("srs", lambda c: c.conf.srs.enabled, lambda c: c.conf.srs.listen, _srs),
)
ROLES = ("all", *(r.name for r in LISTENER_ROLES), "jobs")
# Roles that decide on submissions and so may run the overseas check: they open
# the GeoIP database at startup, so a missing file stops them at once.  The web
# page and the jobs never need it.
GEOIP_ROLES = ("milter", "policy", "filter")


def _needs_geoip(role: str, config: Config) -> bool:
    return any(r.name in GEOIP_ROLES and role in ("all", r.name) and r.enabled(config)
               for r in LISTENER_ROLES)


def _job_loops() -> dict[str, JobLoop]:
    from mailadmin import jobs

    return {
        "outbox": jobs.run_outbox,
        "quarantine_purge": jobs.run_quarantine_purge,
        "quarantine_notices": jobs.run_quarantine_notices,
        "change_notices": jobs.run_change_notices,
    }


def _say(text: str) -> None:
    # stdout, flushed: what an operator (or a test harness) waits for.
    print(f"mailadmin: {text}", flush=True)


# ------------------------------------------------------------------ configuration


def _log_refused(error: Exception) -> None:
    log.error("configuration reload refused, keeping the running one: %s", error)


async def _reload_loop(holder: ConfigHolder) -> None:
    while True:
        await asyncio.sleep(RELOAD_INTERVAL_SECONDS)
        before = holder.current
        # Stat'ing a few files is cheap, but a slow disk must not stall SMTP.
        error = await asyncio.to_thread(holder.reload_if_changed)
        if error is not None:
            metrics.CONFIG_RELOADS.labels("failed").inc()
            _log_refused(error)
        elif holder.current is not before:
            metrics.CONFIG_RELOADS.labels("ok").inc()
            log.info("configuration reloaded (files changed)")


def _reload_now(holder: ConfigHolder) -> None:
    notify("RELOADING=1")
    error = holder.reload()
    if error is not None:
        metrics.CONFIG_RELOADS.labels("failed").inc()
        _log_refused(error)
    else:
        metrics.CONFIG_RELOADS.labels("ok").inc()
        log.info("configuration reloaded")
    notify("READY=1")


# ------------------------------------------------------------------ shutdown


async def _drain(servers: list[asyncio.base_events.Server], connections: ConnectionTracker,
                 grace_seconds: float) -> None:
    """Stop accepting; let open connections finish for ``grace_seconds``
    (idle policy delegation connections :data:`IDLE_DRAIN_SECONDS`); cancel the rest."""
    for server in servers:
        server.close()
    await connections.drain(grace_seconds, IDLE_DRAIN_SECONDS)


async def _stop_tasks(tasks: list[asyncio.Task[None]], grace_seconds: float) -> None:
    if not tasks:
        return
    _done, pending = await asyncio.wait(tasks, timeout=grace_seconds)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# ------------------------------------------------------------------ running


async def _jobs_once(holder: ConfigHolder) -> None:
    """Each job once (``serve --once``, e.g. from cron on a host without the jobs role)."""
    from mailadmin import jobs

    runtime = make_runtime(lambda: holder.current, open_geoip=False)
    purged = await jobs.purge_once(runtime)
    notices = await jobs.send_quarantine_notices(runtime)
    changes = await jobs.send_change_notices(runtime)
    sent = await jobs.drain_outbox(runtime)
    done = ", ".join(f"{n} {what}" for what, n in purged.items())
    _say(f"purged: {done or 'nothing'}; {notices} quarantine notice(s) queued; "
         f"{changes} change notice(s) queued; {sent} outbox message(s) handled")


class _ListenFailed(Exception):
    """A listener could not be opened; already reported."""


async def _run(holder: ConfigHolder, role: str) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _reload_now, holder)

    config = holder.current
    runtime = make_runtime(lambda: holder.current, open_geoip=_needs_geoip(role, config))
    background: list[asyncio.Task[None]] = [asyncio.create_task(_reload_loop(holder), name="reload")]
    jobs_stop = asyncio.Event()
    job_tasks: list[asyncio.Task[None]] = []
    if role in ("all", "jobs"):
        for name, job in _job_loops().items():
            job_tasks.append(asyncio.create_task(job(runtime, jobs_stop), name=f"job:{name}"))
            _say(f"job {name} running")

    servers: list[asyncio.base_events.Server] = []
    connections = ConnectionTracker()
    try:
        for listener in LISTENER_ROLES:
            if role not in ("all", listener.name):
                continue
            if not listener.enabled(config):
                if role == listener.name:
                    log.warning("%s is disabled in %s; nothing to listen on", listener.name, config.conf.source)
                continue
            where = listener.listen(config)
            try:
                server = await listener.start()(where, runtime, connections)
            except OSError as exc:
                log.error("%s cannot listen on %s: %s", listener.name, where, exc)
                _say(f"{listener.name} cannot listen on {where}: {exc.strerror or exc}")
                raise _ListenFailed() from exc
            servers.append(server)
            _say(f"{listener.name} listening on {bound_address(server)}")
        if config.conf.metrics.enabled:
            # Every role, the jobs included, answers for its own process.
            from mailadmin.metrics_server import start_metrics

            where = config.conf.metrics.listen
            try:
                server = await start_metrics(where, runtime)
            except OSError as exc:
                log.error("metrics cannot listen on %s: %s", where, exc)
                _say(f"metrics cannot listen on {where}: {exc.strerror or exc}")
                raise _ListenFailed() from exc
            servers.append(server)
            _say(f"metrics listening on {bound_address(server)}")
    except BaseException:
        for server in servers:
            server.close()
        jobs_stop.set()
        await _stop_tasks(background + job_tasks, 0.0)
        raise

    log.info("mailadmin serving role=%s pid=%d config=%s", role, os.getpid(), config.conf.source)
    notify("READY=1")
    _say(f"serving ({role}); database {config.conf.database.url}")
    await stop.wait()

    notify("STOPPING=1")
    log.info("stopping")
    await _drain(servers, connections, DRAIN_SECONDS)
    jobs_stop.set()
    await _stop_tasks(job_tasks, JOBS_STOP_SECONDS)
    await _stop_tasks(background, 0.0)
    log.info("mailadmin stopped")
    _say("stopped")


def serve(args: argparse.Namespace, config: Config) -> int:
    environ = dict(os.environ)
    holder = ConfigHolder(Path(resolve_config_file(args.config, environ)), environ)
    if args.once:
        asyncio.run(_jobs_once(holder))
        return 0
    try:
        asyncio.run(_run(holder, args.role))
    except _ListenFailed:
        return EX_OSERR
    return 0

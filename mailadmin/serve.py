"""``mailadmin serve``: run the daemon's roles in one asyncio process.

Today this runs the background jobs (quarantine purge) and the configuration
watcher that reloads filters/ and policies/ without a restart (SPEC §11); the
MTA-facing roles join it as they are built.  SIGTERM/SIGINT stop it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

from mailadmin.config import resolve_config_file
from mailadmin.config.model import Config
from mailadmin.config.reload import ConfigHolder
from mailadmin.sd_notify import notify
from mailadmin.store import quarantine
from mailadmin.wiring import open_store, utcnow

log = logging.getLogger(__name__)

PURGE_INTERVAL_SECONDS = 3600.0
RELOAD_INTERVAL_SECONDS = 1.0


async def _purge_loop(holder: ConfigHolder, once: bool) -> None:
    store = open_store(holder.current)
    while True:
        def purge() -> int:
            with store.session_factory.begin() as session:
                return quarantine.purge_expired(session, utcnow())

        n = await asyncio.to_thread(purge)
        if n:
            log.info("quarantine purge deleted=%d", n)
        if once:
            return
        await asyncio.sleep(PURGE_INTERVAL_SECONDS)


async def _reload_loop(holder: ConfigHolder) -> None:
    while True:
        await asyncio.sleep(RELOAD_INTERVAL_SECONDS)
        error = holder.reload_if_changed()
        if error is not None:
            log.error("configuration reload refused, keeping the running one: %s", error)


def _reload_now(holder: ConfigHolder) -> None:
    notify("RELOADING=1")
    error = holder.reload()
    if error is not None:
        log.error("configuration reload refused, keeping the running one: %s", error)
    else:
        log.info("configuration reloaded")
    notify("READY=1")


async def _run(holder: ConfigHolder, role: str, once: bool) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _reload_now, holder)
    tasks = [asyncio.create_task(_purge_loop(holder, once))]
    if once:
        await tasks[0]
        return
    tasks.append(asyncio.create_task(_reload_loop(holder)))
    log.info("mailadmin serving role=%s pid=%d config=%s", role, os.getpid(), holder.current.conf.source)
    notify("READY=1")
    print(f"mailadmin: serving ({role}); database {holder.current.conf.database.url}; Ctrl-C to stop", flush=True)
    await stop.wait()
    notify("STOPPING=1")
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    log.info("mailadmin stopped")


def serve(args: argparse.Namespace, config: Config) -> int:
    environ = dict(os.environ)
    holder = ConfigHolder(Path(resolve_config_file(args.config, environ)), environ)
    asyncio.run(_run(holder, args.role, args.once))
    return 0

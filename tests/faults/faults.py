"""The faults injected during the load (issue 10): each a context manager
that breaks one part of the real stack on entry, yields a poll for "the
fault was hit" (mail was deferred, an outbox send failed), and repairs it on
exit.  Real components only; the parts are stopped, never replaced by fakes."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import select

from mailadmin.store.models import OutboxMessage
from tests.e2e.stack import Stack
from tests.faults.conftest import Spamd
from tests.fixtures.databases import PostgresCluster
from tests.faults.load import deferrals_since


@contextlib.contextmanager
def daemon_killed(stack: Stack) -> Iterator[Callable[[], bool]]:
    """SIGKILL ``mailadmin serve`` (no drain, no cleanup) with mail in flight; start it again."""
    offset = stack.postfix.log_size()
    stack.daemon.kill()
    try:
        yield deferrals_since(stack, offset)
    finally:
        # What the running out of the dead process's leases would do (600 s):
        # nobody is sending now, so nothing can go out twice because of it.
        stack.store.make_outbox_due()
        stack.daemon.start()


def scanner_stopped(stop: Callable[[], None], start: Callable[[], None]) -> Callable[[Stack], contextlib.AbstractContextManager[Callable[[], bool]]]:
    @contextlib.contextmanager
    def fault(stack: Stack) -> Iterator[Callable[[], bool]]:
        offset = stack.postfix.log_size()
        stop()
        try:
            yield deferrals_since(stack, offset)
        finally:
            start()
    return fault


def clamd_stopped(stack: Stack) -> contextlib.AbstractContextManager[Callable[[], bool]]:
    return scanner_stopped(stack.clamd.stop, stack.clamd.start)(stack)


def spamd_stopped_fault(spamd: Spamd) -> Callable[[Stack], contextlib.AbstractContextManager[Callable[[], bool]]]:
    def start() -> None:
        spamd.start()  # the same unix socket path: the daemon's configuration holds

    return scanner_stopped(spamd.stop, start)


def database_path(stack: Stack) -> Path:
    url = stack.store.url
    assert url.startswith("sqlite:///"), url
    return Path(url[len("sqlite:///"):])


@contextlib.contextmanager
def store_unavailable(stack: Stack) -> Iterator[Callable[[], bool]]:
    """The SQLite store cannot be written: another process holds its write lock.

    As root, ``chmod 000`` does not stop the daemon (root ignores file modes,
    and its pooled connections keep their open descriptors), so the store is
    taken away the way a SQLite site loses it in practice: a writer holding
    the lock past the daemon's 10 s busy timeout.  Every decision that must
    write (quarantine rows, outbox, auto-reply claims) then fails, and the
    adapter must tempfail rather than accept.
    """
    offset = stack.postfix.log_size()
    holder = sqlite3.connect(str(database_path(stack)), timeout=30, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield deferrals_since(stack, offset)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def postgres_stopped(cluster: PostgresCluster) -> Callable[[Stack], contextlib.AbstractContextManager[Callable[[], bool]]]:
    """The PostgreSQL store is gone: the server is stopped (``pg_ctl stop -m fast``:
    every session is ended, the daemon's pooled connections with them) and
    started again on the same port and data directory.  While it is down
    nothing can be read or written — rules, quarantine, outbox, claims — and
    the adapters must tempfail, never accept unscanned or drop."""
    @contextlib.contextmanager
    def fault(stack: Stack) -> Iterator[Callable[[], bool]]:
        offset = stack.postfix.log_size()
        cluster.stop()
        try:
            yield deferrals_since(stack, offset)
        finally:
            cluster.start()
    return fault


@contextlib.contextmanager
def relay_down(stack: Stack) -> Iterator[Callable[[], bool]]:
    """The relay listener (the next hop of every mail mailadmin creates) is gone."""
    stack.postfix.set_relay(False)

    def failed_send() -> bool:
        with stack.store.sessions() as session:
            return session.scalar(select(OutboxMessage.id).where(OutboxMessage.sent_at.is_(None),
                                                                 OutboxMessage.attempts >= 1).limit(1)) is not None
    try:
        yield failed_send
    finally:
        stack.postfix.set_relay(True)

"""The write transactions of concurrent messages, batched into one (group commit).

Every message the milter or the content filter accepts has its effects
written before it is answered (engine/execute.py).  Written one by one,
each costs a thread hand-off, a transaction and a commit — more CPU than
deciding the message.  Here one writer thread takes every write waiting when
it is free and runs them in one transaction with one commit: the messages
that arrive while a transaction runs share the next one, so the cost per
message falls as the load rises, and an idle server answers as fast as
before (a batch of one).

Each write is a function of a session that only executes statements (no
commit, no state of its own outside what it returns), so it can run again.
If a batch fails for one write's sake (a bad row, an error in one message's
work, a PostgreSQL deadlock or serialization failure with another host's
batch), every write of it is retried alone in its own transaction, so one
message's failure is never another's.  If the store itself failed (locked
past its busy timeout, unreachable, the connection lost), every write of the
batch gets that error at once: retried one by one they would each wait the
whole timeout again, and the messages are tempfailed all the same.  A caller hears
its result only after the transaction holding its write committed, or the
error of its own transaction: nothing is acknowledged that is not stored.

No library does this for SQLAlchemy sessions; the queue and the thread are
the standard library's.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_BATCH = 64
# PostgreSQL's serialization failure and deadlock: one transaction lost a race.
_RACE_SQLSTATES = frozenset({"40001", "40P01"})


def store_failed(exc: BaseException) -> bool:
    """Whether ``exc`` says the store failed, not one write of the batch."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        return getattr(exc.orig, "sqlstate", None) not in _RACE_SQLSTATES
    return False


@dataclass(slots=True)
class _Write(Generic[T]):
    work: Callable[[Session], T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]


def _settle(outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in outcomes:
        if future.done():  # the caller went away; its write stands or fell all the same
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class BatchWriter:
    """One writer thread per store; :meth:`run` from any event loop."""

    def __init__(self, session_factory: Callable[[], Session], *, max_batch: int = MAX_BATCH) -> None:
        self._session_factory = session_factory
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Write[Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.batches = 0
        self.writes = 0

    async def run(self, work: Callable[[Session], T]) -> T:
        """Run ``work(session)`` inside a transaction and return its result once committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._start()
        self._queue.put(_Write(work, loop, future))
        return await future

    def close(self) -> None:
        """Stop the thread once the writes queued so far are done."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="store-writer", daemon=True)
                self._thread.start()

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch: list[_Write[Any]] = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._write(batch)
            if stop:
                return

    def _write(self, batch: list[_Write[Any]]) -> None:
        self.batches += 1
        self.writes += len(batch)
        try:
            with self._session_factory() as session, session.begin():
                results = [item.work(session) for item in batch]
        except Exception as exc:
            if len(batch) > 1 and not store_failed(exc):
                log.info("a batch of %d writes failed (%s); each is retried alone", len(batch), exc)
                for item in batch:
                    self._write([item])
                return
            self._deliver(batch, None, exc)
            return
        self._deliver(batch, results, None)

    @staticmethod
    def _deliver(batch: list[_Write[Any]], results: list[Any] | None, error: BaseException | None) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for index, item in enumerate(batch):
            outcome = (item.future, True, results[index]) if results is not None else (item.future, False, error)
            by_loop.setdefault(item.loop, []).append(outcome)
        for loop, outcomes in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, outcomes)
            except RuntimeError:  # that loop is closed: nobody waits for these any more
                pass

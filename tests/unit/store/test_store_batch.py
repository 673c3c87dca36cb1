"""Group commit of concurrent writes (store/batch.py): one transaction for the
writes waiting together, nothing acknowledged before its commit, and one
write's failure never another's."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.store import outbox
from mailadmin.store.batch import BatchWriter
from mailadmin.store.models import OutboxMessage

from tests.unit.store.conftest import NOW


def _enqueue(tag: str) -> Callable[[Session], str]:
    def work(session: Session) -> str:
        outbox.enqueue(session, purpose="forward", mail_from="a@example.org",
                       rcpt_tos=[f"{tag}@elsewhere.example"], message=b"Subject: x\r\n\r\nbody\r\n", now=NOW)
        return tag
    return work


def _count(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(OutboxMessage)) or 0


async def test_concurrent_writes_share_transactions_and_all_commit(factory: sessionmaker[Session]) -> None:
    writer = BatchWriter(factory)
    gate = threading.Event()

    def blocker(session: Session) -> str:
        gate.wait(5)  # holds the writer while the others queue up behind it
        return "first"

    first = asyncio.ensure_future(writer.run(blocker))
    await asyncio.sleep(0.05)
    rest = [asyncio.ensure_future(writer.run(_enqueue(f"r{i}"))) for i in range(20)]
    await asyncio.sleep(0.05)
    gate.set()
    results = await asyncio.gather(first, *rest)
    assert results == ["first"] + [f"r{i}" for i in range(20)]
    assert _count(factory) == 20
    # the 20 that waited together went in one transaction, not twenty
    assert writer.writes == 21 and writer.batches == 2
    writer.close()


async def test_a_failing_write_fails_alone_and_the_others_commit(factory: sessionmaker[Session]) -> None:
    writer = BatchWriter(factory)
    gate = threading.Event()

    def blocker(session: Session) -> None:
        gate.wait(5)

    def broken(session: Session) -> None:
        outbox.enqueue(session, purpose="forward", mail_from="a@example.org",
                       rcpt_tos=["x@elsewhere.example"], message=b"x", now=NOW)
        raise IntegrityError("INSERT", {}, Exception("refused"))

    held = asyncio.ensure_future(writer.run(blocker))
    await asyncio.sleep(0.05)
    good = [asyncio.ensure_future(writer.run(_enqueue(f"g{i}"))) for i in range(5)]
    bad = asyncio.ensure_future(writer.run(broken))
    await asyncio.sleep(0.05)
    gate.set()
    await held
    assert await asyncio.gather(*good) == [f"g{i}" for i in range(5)]
    with pytest.raises(IntegrityError):
        await bad
    # the broken write's own row was rolled back with it; the good ones stand
    assert _count(factory) == 5
    writer.close()


async def test_nothing_is_acknowledged_before_its_commit(factory: sessionmaker[Session]) -> None:
    writer = BatchWriter(factory)
    assert await writer.run(_enqueue("c")) == "c"
    assert _count(factory) == 1  # read on another connection as soon as acknowledged
    writer.close()


def test_writes_from_several_event_loops(factory: sessionmaker[Session]) -> None:
    writer = BatchWriter(factory)

    def in_loop(tag: str) -> list[str]:
        async def main() -> list[str]:
            return list(await asyncio.gather(*(writer.run(_enqueue(f"{tag}{i}")) for i in range(10))))
        return asyncio.run(main())

    results: dict[str, list[str]] = {}
    threads = [threading.Thread(target=lambda t=t: results.__setitem__(t, in_loop(t))) for t in ("a", "b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert {k: sorted(v) for k, v in results.items()} == {t: sorted(f"{t}{i}" for i in range(10)) for t in "abc"}
    assert _count(factory) == 30
    writer.close()



async def test_a_store_failure_fails_the_whole_batch_at_once(factory: sessionmaker[Session]) -> None:
    from sqlalchemy.exc import OperationalError

    writer = BatchWriter(factory)
    gate = threading.Event()
    calls: list[str] = []

    def blocker(session: Session) -> None:
        gate.wait(5)

    def locked(tag: str) -> Callable[[Session], None]:
        def work(session: Session) -> None:
            calls.append(tag)
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return work

    held = asyncio.ensure_future(writer.run(blocker))
    await asyncio.sleep(0.05)
    waiting = [asyncio.ensure_future(writer.run(locked(f"w{i}"))) for i in range(5)]
    await asyncio.sleep(0.05)
    gate.set()
    await held
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, OperationalError) for r in results)
    # not retried one by one: each would wait the store's busy timeout again
    assert calls == ["w0"]
    writer.close()

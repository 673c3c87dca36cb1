"""SPEC §6: exactly one auto-reply per sender per window "even when several
messages from the sender arrive at the same moment, and across restarts and
several daemon processes".

Several OS processes (spawned, as separate daemons would be), each with many
threads, open their own engine on one SQLite file, wait at a shared barrier
and then all claim the same (mailbox, sender) at once, each committing its
own transaction.  Exactly one of them may win, per round.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mailadmin.store import claims, db
from mailadmin.store.models import AutoReplyClaim
from tests.fixtures.databases import Backend

PROCESSES = 3
THREADS_PER_PROCESS = 8
BARRIER_TIMEOUT_SECONDS = 120.0
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)
WINDOW = dt.timedelta(hours=24)
MAILBOX = "taro@example.jp"

# (sender, claim time, how many may win in the whole fleet)
ROUNDS: list[tuple[str, dt.datetime, int]] = [
    ("alice@example.org", NOW, 1),                                  # first message: one reply
    ("Alice@Example.ORG", NOW + dt.timedelta(hours=1), 0),          # within the window: none
    ("alice@example.org", NOW + WINDOW, 1),                         # a window later: one more
    ("bob@example.org", NOW + WINDOW, 1),                           # another sender has its own
    ("ALICE@example.org", NOW + WINDOW + dt.timedelta(hours=23), 0),  # the new window holds
]


def _claimer(url: str, barrier: Any, results: Any, process_index: int) -> None:
    """One daemon process: its own engine, THREADS_PER_PROCESS threads claiming every round."""
    engine = db.make_engine(url)
    factory = db.make_session_factory(engine)
    wins = [[False] * THREADS_PER_PROCESS for _ in ROUNDS]
    errors: list[str] = []

    def thread(thread_index: int) -> None:
        try:
            for round_index, (sender, when, _) in enumerate(ROUNDS):
                with factory() as session:
                    session.connection()  # connect before the start signal, not after it
                    barrier.wait(BARRIER_TIMEOUT_SECONDS)
                    won = claims.claim_auto_reply(session, MAILBOX, sender, when, WINDOW)
                    session.commit()
                wins[round_index][thread_index] = won
        except BaseException as exc:  # reported to the test, which fails on it
            errors.append(f"process {process_index} thread {thread_index}: {exc!r}")
            barrier.abort()

    threads = [threading.Thread(target=thread, args=(i,)) for i in range(THREADS_PER_PROCESS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.dispose()
    results.put((process_index, [sum(r) for r in wins], errors))


def test_exactly_one_claim_across_processes_and_threads(tmp_path: Path, backend: Backend) -> None:
    url = backend.migrated(tmp_path, "claims")
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES * THREADS_PER_PROCESS)
    results = context.Queue()
    processes = [context.Process(target=_claimer, args=(url, barrier, results, i)) for i in range(PROCESSES)]
    for p in processes:
        p.start()
    reports = [results.get(timeout=BARRIER_TIMEOUT_SECONDS * len(ROUNDS)) for _ in processes]
    for p in processes:
        p.join(timeout=BARRIER_TIMEOUT_SECONDS)
        assert p.exitcode == 0

    errors = [e for _, _, errs in reports for e in errs]
    assert errors == []
    winners_per_round = [sum(wins[r] for _, wins, _ in reports) for r in range(len(ROUNDS))]
    assert winners_per_round == [expected for _, _, expected in ROUNDS]

    engine = db.make_engine(url)
    try:
        with db.make_session_factory(engine)() as session:
            rows = {c.sender: c.last_sent_at for c in session.scalars(select(AutoReplyClaim))}
    finally:
        engine.dispose()
    assert rows == {"alice@example.org": NOW + WINDOW, "bob@example.org": NOW + WINDOW}

"""Rules snapshots kept in memory, exact within a second (SPEC §10: "a change
saved on the page governs the next message within one second, in every
daemon process").

Every change to a table a snapshot is read from bumps ``rules_generation``
(database triggers, migration 0005), whoever makes it: the page, the CLI,
another host.  A cache entry is used only while the generation it was read
under has been confirmed within ``max_age_seconds`` (default 0.5 s); past
that the next lookup reads the one-row generation again, and a different
value empties the cache.  So a decision never uses rules older than the
last confirmation, and the confirmation is never older than half a second.

On SQLite reading that row costs microseconds (a page in memory; WAL
readers never wait), so :func:`sqlite_generation_reader` confirms it for
every message, on the event loop: a change governs the very next message,
as without a cache.  PostgreSQL is a network round trip away, so there the
half-second confirmation applies.

:meth:`RulesCache.cached` answers from memory only, without touching the
database (no worker thread needed); :meth:`RulesCache.load` is the blocking
path (confirm the generation, read what is missing) for a worker thread.
Unknown addresses are remembered too (a new mailbox bumps the generation).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from mailadmin.mailtext.addresses import canonical_address
from mailadmin.store import rules
from mailadmin.store.models import RulesGeneration
from mailadmin.store.snapshots import MailboxRules

MAX_AGE_SECONDS = 0.5
MAX_ENTRIES = 200_000

_GENERATION_Q = select(RulesGeneration.value).where(RulesGeneration.id == 1)


GenerationReader = Callable[[], "int | None"]


def sqlite_generation_reader(engine: Engine) -> GenerationReader | None:
    """A reader of the generation on one connection of its own, for SQLite
    engines (None for others); None from the reader means "cannot tell"."""
    if engine.dialect.name != "sqlite":
        return None
    held: list[Any] = []

    def read() -> int | None:
        try:
            if not held:
                held.append(engine.raw_connection())
            cursor = held[0].cursor()
            try:
                cursor.execute("SELECT value FROM rules_generation WHERE id = 1")
                row = cursor.fetchone()
            finally:
                cursor.close()
        except Exception:  # the store is down or not migrated: the slow path reports it
            if held:
                with contextlib.suppress(Exception):
                    held.pop().close()
            return None
        return int(row[0]) if row else None

    return read


class RulesCache:
    def __init__(self, session_factory: Callable[[], Session], *, max_age_seconds: float = MAX_AGE_SECONDS,
                 max_entries: int = MAX_ENTRIES, monotonic: Callable[[], float] = time.monotonic,
                 generation_reader: GenerationReader | None = None) -> None:
        self._session_factory = session_factory
        self._read_generation = generation_reader
        self._max_age = max_age_seconds
        self._max_entries = max_entries
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._generation: int | None = None
        self._confirmed_at = float("-inf")
        self._entries: OrderedDict[str, MailboxRules | None] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def _fresh(self) -> bool:
        return self._monotonic() - self._confirmed_at <= self._max_age

    def cached(self, addresses: Sequence[str]) -> dict[str, MailboxRules] | None:
        """The snapshots of ``addresses`` from memory, or None when any is missing
        or the generation needs confirming (then call :meth:`load`)."""
        with self._lock:
            if self._read_generation is not None:
                generation = self._read_generation()
                if generation is None or generation != self._generation:
                    return None
                self._confirmed_at = self._monotonic()
            elif not self._fresh():
                return None
            out: dict[str, MailboxRules] = {}
            for address in addresses:
                key = canonical_address(address)
                if key not in self._entries:
                    self.misses += 1
                    return None
                snapshot = self._entries[key]
                if snapshot is not None:
                    out[address] = snapshot
            self.hits += 1
            return out

    def load(self, addresses: Sequence[str]) -> dict[str, MailboxRules]:
        """Blocking: confirm the generation, read what is not cached."""
        with self._session_factory() as session:
            # Always confirmed here: one tiny query next to the snapshots read on a miss.
            generation = session.scalar(_GENERATION_Q)
            with self._lock:
                if generation != self._generation:
                    self._entries.clear()
                    self._generation = generation
                self._confirmed_at = self._monotonic()
                generation_read = self._generation
            out: dict[str, MailboxRules] = {}
            found: dict[str, MailboxRules | None] = {}
            for address in addresses:
                key = canonical_address(address)
                with self._lock:
                    known = key in self._entries
                    snapshot = self._entries.get(key)
                if not known:
                    snapshot = rules.load_rules(session, address)
                    found[key] = snapshot
                if snapshot is not None:
                    out[address] = snapshot
        with self._lock:
            # Read under a generation that is still the current one: keep it.
            if found and generation_read == self._generation:
                self._entries.update(found)
                while len(self._entries) > self._max_entries:
                    self._entries.popitem(last=False)
        return out

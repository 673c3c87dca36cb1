"""Build the running pieces from a Config: store, scanner clients, GeoIP, engine.

The only place that turns configuration into live objects, so ``cli.py``
stays argument parsing and every daemon role is wired the same way.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from mailadmin.config.model import Config, LimitsConf
from mailadmin.engine.decide import ContentGroup, Decision, Engine
from mailadmin.engine.replies import SmtpReply
from mailadmin.message import Envelope, Message
from mailadmin.engine.execute import execute
from mailadmin.engine.protocol import DecisionService
from mailadmin.mailtext.srs import SrsRewriter
from mailadmin.services.clamd import ClamdClient
from mailadmin.services.geoip import LazyCountryResolver
from mailadmin.services.spamd import SpamdClient
from mailadmin.store import db, filtered, rules
from mailadmin.store.batch import BatchWriter
from mailadmin.store.claims import KnownClaims
from mailadmin.store.rules_cache import RulesCache, sqlite_generation_reader
from mailadmin.store.snapshots import MailboxRules


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class Store:
    url: str
    session_factory: sessionmaker[Session]
    # In-memory snapshots, exact within a second (store/rules_cache.py); None: read every time.
    rules_cache: RulesCache | None = None
    # Effects of concurrent messages share one transaction (store/batch.py).
    writer: BatchWriter | None = None
    # Auto-reply claims seen taken, so a repeated sender costs no statement (store/claims.py).
    known_claims: KnownClaims | None = None

    def cached_rules(self, addresses: Sequence[str]) -> dict[str, MailboxRules] | None:
        """From memory only (no database, no thread), or None."""
        return self.rules_cache.cached(addresses) if self.rules_cache is not None else None

    def load_rules(self, addresses: Sequence[str]) -> dict[str, MailboxRules]:
        """Blocking: for a worker thread."""
        if self.rules_cache is not None:
            return self.rules_cache.load(addresses)
        out: dict[str, MailboxRules] = {}
        with self.session_factory() as session:
            for address in addresses:
                snapshot = rules.load_rules(session, address)
                if snapshot is not None:
                    out[address] = snapshot
        return out


def open_store(config: Config) -> Store:
    database = config.conf.database
    engine = db.make_engine(database.url, pool_size=database.pool_size, max_overflow=database.max_overflow)
    factory = db.make_session_factory(engine)
    cache = (RulesCache(factory, max_entries=database.rules_cache_entries,
                        generation_reader=sqlite_generation_reader(engine))
             if database.rules_cache_entries else None)
    return Store(database.url, factory, cache, BatchWriter(factory), KnownClaims())


def make_clamd(config: Config) -> ClamdClient:
    c = config.conf.clamd
    return ClamdClient(c.address, c.timeout_seconds, c.max_size_bytes)


def make_spamd(config: Config) -> SpamdClient:
    c = config.conf.spamd
    return SpamdClient(c.address, c.timeout_seconds, c.max_size_bytes)


def make_engine(
    config: Callable[[], Config],
    store: Store,
    *,
    clock: Callable[[], dt.datetime] = utcnow,
    open_geoip: bool = False,
) -> Engine:
    """The engine; the GeoIP database is opened on the overseas check's first
    lookup, or here with ``open_geoip`` (roles that may run that check, so a
    missing file stops their startup)."""
    current = config()
    resolver = LazyCountryResolver(current.conf.geoip.database_path, current.conf.geoip.country_field)
    if open_geoip:
        resolver.open()
    return Engine(
        config=config,
        load_rules=store.load_rules,
        cached_rules=store.cached_rules,
        clamd=make_clamd(current),
        spamd=make_spamd(current),
        country_of=resolver.country,
        clock=clock,
    )


def srs_rewriter(config: Config) -> SrsRewriter | None:
    """The SRS rewriter of ``[srs]`` (SPEC §3), or None when SRS is off."""
    srs = config.conf.srs
    if not srs.enabled:
        return None
    return SrsRewriter(srs.domain, srs.secrets, srs.max_age_days)


@dataclass
class Runtime:
    """Everything an MTA-facing role needs, built once per process.

    ``config`` returns the current snapshot (reloads swap it); ``apply`` writes
    a decision's database effects in one transaction and wakes the outbox
    sender, so mail the daemon creates leaves promptly.
    """

    config: Callable[[], Config]
    store: Store
    engine: Engine
    clock: Callable[[], dt.datetime] = utcnow
    outbox_wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def limits(self) -> LimitsConf:
        return self.config().conf.limits

    async def check_submission(self, envelope: Envelope) -> SmtpReply | None:
        return await self.engine.check_submission(envelope)

    async def decide(self, envelope: Envelope, message: Message) -> Decision:
        return await self.engine.decide(envelope, message)

    async def apply(self, decision: Decision, message: Message,
                    reinject: Sequence[ContentGroup] = (),
                    taken: tuple[str, Sequence[str]] | None = None) -> None:
        await execute(
            decision, message,
            session_factory=self.store.session_factory,
            clamd=self.engine.clamd,
            now=self.clock(),
            reinject=reinject,
            srs=srs_rewriter(self.config()),
            writer=self.store.writer,
            known_claims=self.store.known_claims,
            taken=taken,
        )
        self.outbox_wakeup.set()

    async def already_taken(self, queue_id: str, raw: bytes, rcpt_tos: Sequence[str]) -> tuple[str, set[str]]:
        """The content filter's key of a queued message, and the recipients it
        already took that message for (store/filtered.py)."""
        key = filtered.digest(queue_id, raw)

        def read() -> set[str]:
            with self.store.session_factory() as session:
                return filtered.taken(session, key, rcpt_tos)

        return key, await asyncio.to_thread(read)


def make_runtime(config: Callable[[], Config], *, clock: Callable[[], dt.datetime] = utcnow,
                 open_geoip: bool = True) -> Runtime:
    store = open_store(config())
    runtime = Runtime(config, store, make_engine(config, store, clock=clock, open_geoip=open_geoip), clock)
    _adapters_take: DecisionService = runtime  # mypy: the Runtime is what the MTA adapters are given
    return runtime

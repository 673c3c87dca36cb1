"""Rules snapshots in memory (store/rules_cache.py; SPEC §10): every change to
the rule tables bumps the generation (database triggers), a cached snapshot
is used only under a confirmed generation, and a change governs the next
lookup at once on SQLite and within the half-second confirmation on
PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.config.model import LimitsPolicy, Policy
from mailadmin.store import mailboxes, rules
from mailadmin.store.models import Mailbox, RulesGeneration
from mailadmin.store.rules_cache import RulesCache, sqlite_generation_reader
from tests.unit.store.conftest import MAILBOX


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def generation(factory: sessionmaker[Session]) -> int:
    with factory() as s:
        value = s.scalar(select(RulesGeneration.value))
    assert value is not None
    return value


def make_cache(factory: sessionmaker[Session], clock: Clock, **kw: int) -> RulesCache:
    engine = factory.kw["bind"]
    return RulesCache(factory, monotonic=clock, generation_reader=sqlite_generation_reader(engine), **kw)


def test_every_change_to_a_rule_table_bumps_the_generation(factory: sessionmaker[Session]) -> None:
    seen = [generation(factory)]

    def changed() -> None:
        seen.append(generation(factory))
        assert seen[-1] > seen[-2]

    with factory.begin() as s:
        rules.add_entries(s, MAILBOX, "reject_sender", ["spam.example"], LimitsPolicy())
    changed()
    with factory.begin() as s:
        rules.add_forward(s, MAILBOX, "f@elsewhere.example", True, LimitsPolicy())
    changed()
    with factory.begin() as s:
        rules.delete_entries(s, MAILBOX, "reject_sender", ["spam.example"])
    changed()
    with factory.begin() as s:
        rules.set_spam_settings(s, MAILBOX, scan=False, quarantine=False, notice=False)
    changed()
    with factory.begin() as s:
        mailboxes.add_mailbox(s, "new@example.jp", Policy())
    changed()
    with factory.begin() as s:  # a postmaster's own SQL counts too
        s.execute(update(Mailbox).where(Mailbox.address == MAILBOX).values(virus_scan_enabled=False))
    changed()
    with factory.begin() as s:
        s.execute(text("DELETE FROM forward_destination"))
    changed()


def test_a_cached_snapshot_serves_until_a_change(factory: sessionmaker[Session]) -> None:
    clock = Clock()
    cache = make_cache(factory, clock)
    assert cache.cached([MAILBOX]) is None  # nothing known yet
    first = cache.load([MAILBOX])[MAILBOX]
    again = cache.cached([MAILBOX])
    assert again is not None and again[MAILBOX] is first
    assert cache.hits == 1

    with factory.begin() as s:
        rules.add_entries(s, MAILBOX, "reject_sender", ["spam.example"], LimitsPolicy())
    clock.now += 0.6  # past the half-second confirmation: both stores must see it
    assert cache.cached([MAILBOX]) is None
    assert cache.load([MAILBOX])[MAILBOX].reject_sender == ("spam.example",)
    assert cache.cached([MAILBOX])[MAILBOX].reject_sender == ("spam.example",)  # type: ignore[index]


def test_on_sqlite_the_very_next_lookup_sees_a_change(factory: sessionmaker[Session]) -> None:
    engine = factory.kw["bind"]
    cache = make_cache(factory, Clock())  # the clock never moves
    cache.load([MAILBOX])
    with factory.begin() as s:
        rules.add_entries(s, MAILBOX, "reject_sender", ["now.example"], LimitsPolicy())
    if engine.dialect.name == "sqlite":
        assert cache.cached([MAILBOX]) is None
        assert cache.load([MAILBOX])[MAILBOX].reject_sender == ("now.example",)
    else:
        # PostgreSQL: the snapshot may serve until the confirmation is due.
        assert cache.cached([MAILBOX]) is not None


def test_unknown_addresses_are_remembered_until_the_mailbox_exists(factory: sessionmaker[Session]) -> None:
    clock = Clock()
    cache = make_cache(factory, clock)
    assert cache.load(["later@example.jp", MAILBOX]).keys() == {MAILBOX}
    assert cache.cached(["later@example.jp"]) == {}
    with factory.begin() as s:
        mailboxes.add_mailbox(s, "later@example.jp", Policy())
    clock.now += 0.6
    assert cache.cached(["later@example.jp"]) is None
    assert cache.load(["later@example.jp"]).keys() == {"later@example.jp"}


def test_the_cache_holds_at_most_its_entries(factory: sessionmaker[Session]) -> None:
    with factory.begin() as s:
        for n in range(3):
            mailboxes.add_mailbox(s, f"box{n}@example.jp", Policy())
    cache = make_cache(factory, Clock(), max_entries=2)
    for n in range(3):
        cache.load([f"box{n}@example.jp"])
    assert cache.cached(["box0@example.jp"]) is None  # the oldest went
    assert cache.cached(["box1@example.jp", "box2@example.jp"]) is not None

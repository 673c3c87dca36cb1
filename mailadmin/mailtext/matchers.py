"""Reject and allow lists compiled once, matched in time independent of their length.

A mailbox may hold tens of thousands of entries (SPEC §4: "no limit on the
total beyond a postmaster's safety cap"), and every message to it is matched
against all of them.  The simple matchers (:func:`~mailadmin.mailtext.addresses.first_matching_entry`,
:func:`~mailadmin.checks.reject_lists.matching_subject_entry`) cost one
comparison per entry per message; these cost one look-up per candidate key
of the message:

- :class:`SenderMatcher`: every entry is reduced, as
  :func:`~mailadmin.mailtext.addresses.sender_entry_matches` reads it, to one
  key in one of three tables: a whole address (``user@example.com``), a
  domain only (``@example.com``), a domain and its subdomains
  (``example.com``).  An address is then looked up by its canonical form, its
  domain, and each suffix of its domain that starts after a dot.
- :class:`SubjectMatcher`: the NFKC + casefold forms of the entries in one
  Aho-Corasick automaton (pyahocorasick), run once over the normalised subject.

Both answer exactly what the simple matchers answer, the *first entry in list
order* that matches, not the first found in the message: each key remembers
the lowest position of an entry that has it, and the lowest position over all
hits wins.  ``tests/unit/mailtext/test_mailtext_matchers.py`` checks the
agreement by property.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import ahocorasick

from mailadmin.mailtext.addresses import _address_domain, _comparable_domain, canonical_address
from mailadmin.mailtext.headers import normalize_for_match


def _keep_first(table: dict[str, int], key: str, position: int) -> None:
    if key not in table:
        table[key] = position


class SenderMatcher:
    """The first entry of a From-syntax list (reject, allow) matching any address."""

    __slots__ = ("_entries", "_exact", "_domain", "_suffix", "_longest_suffix")

    def __init__(self, entries: Sequence[str]) -> None:
        self._entries = tuple(entries)
        self._exact: dict[str, int] = {}
        self._domain: dict[str, int] = {}
        self._suffix: dict[str, int] = {}
        for position, raw in enumerate(self._entries):
            entry = raw.strip()
            if not entry:
                continue
            if entry.startswith("@"):
                wanted = _comparable_domain(entry[1:])
                if wanted:
                    _keep_first(self._domain, wanted, position)
            elif "@" in entry:
                _keep_first(self._exact, canonical_address(entry), position)
            else:
                wanted = _comparable_domain(entry)
                if wanted:
                    _keep_first(self._suffix, wanted, position)
        # No suffix key is longer than this: an address's domain (a forged
        # header may make it very long) is only cut down to this length.
        self._longest_suffix = max(map(len, self._suffix), default=0)

    def __len__(self) -> int:
        return len(self._entries)

    def _best(self, address: str, best: int) -> int:
        address = address.strip().strip("<>").strip()
        if not address:
            return best
        position = self._exact.get(canonical_address(address))
        if position is not None and position < best:
            best = position
        if not (self._domain or self._suffix):
            return best
        domain = _address_domain(address)
        if not domain:
            return best
        for table in (self._domain, self._suffix):
            position = table.get(domain)
            if position is not None and position < best:
                best = position
        if self._suffix:
            # ``domain.endswith("." + wanted)``: every suffix after a dot, from
            # the shortest, up to the longest key there is.
            limit = len(domain) - self._longest_suffix - 1
            dot = domain.rfind(".")
            while dot >= 0 and dot >= limit:
                position = self._suffix.get(domain[dot + 1:])
                if position is not None and position < best:
                    best = position
                dot = domain.rfind(".", 0, dot)
        return best

    def first_match(self, addresses: Iterable[str]) -> str | None:
        """The first entry (in list order) that matches any of ``addresses``."""
        if not (self._exact or self._domain or self._suffix):
            return None
        best = len(self._entries)
        for address in addresses:
            if address:
                best = self._best(address, best)
                if best == 0:
                    break
        return self._entries[best] if best < len(self._entries) else None


class SubjectMatcher:
    """The first Subject entry whose normalised form is in a normalised subject."""

    __slots__ = ("_entries", "_automaton")

    def __init__(self, entries: Sequence[str]) -> None:
        self._entries = tuple(entries)
        lowest: dict[str, int] = {}
        for position, entry in enumerate(self._entries):
            needle = normalize_for_match(entry)
            if needle:
                _keep_first(lowest, needle, position)
        self._automaton: Any = None
        if lowest:
            automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
            for needle, position in lowest.items():
                automaton.add_word(needle, position)
            automaton.make_automaton()
            self._automaton = automaton

    def __len__(self) -> int:
        return len(self._entries)

    def first_match(self, subject: str | None) -> str | None:
        if not subject or self._automaton is None:
            return None
        haystack = normalize_for_match(subject)
        best = len(self._entries)
        for _end, position in self._automaton.iter(haystack):
            if position < best:
                best = position
                if best == 0:
                    break
        return self._entries[best] if best < len(self._entries) else None

"""Memoised pure text functions for the per-message path.

Mail repeats itself: the same From, To and Subject values, the same
addresses, arrive message after message, and parsing them (``email.utils``,
RFC 2047, IDNA) costs more per message than the whole rest of a check.  The
functions wrapped here are pure (the result depends on the argument alone),
so a bounded LRU cache is exact.  Long values are not cached: a 10 MB
header line must not be kept alive by the cache.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

MAX_ENTRIES = 8192
MAX_CACHED_CHARS = 1024


def short_text_cache(fn: Callable[[str], T]) -> Callable[[str], T]:
    """``fn`` with results for arguments up to :data:`MAX_CACHED_CHARS` kept
    in an LRU of :data:`MAX_ENTRIES`; ``fn`` must be pure and return an
    immutable value."""
    cached = functools.lru_cache(maxsize=MAX_ENTRIES)(fn)

    @functools.wraps(fn)
    def wrapper(value: str) -> T:
        if len(value) > MAX_CACHED_CHARS:
            return fn(value)
        return cached(value)

    return wrapper

"""Verdicts (what a check concluded) and dispositions (what happens to a copy).

Shared by ``engine`` and ``checks``; imports nothing from either.  A check
returns one of the verdict types or ``None`` ("no opinion"); the first verdict
in the chain wins (DESIGN.md "The chain").  ``engine/effects.py`` turns the
winning verdict into a :class:`Disposition` and its allowed effects.

Every verdict names its ``rule`` (the check or rule that decided: a metrics
label, a quarantine column) and its ``entry`` (what matched: the subscriber's
entry, the virus, the score); ``str(verdict)`` is ``rule:entry``, the reason
the decision log line and the dry run print.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Infected:
    """clamd found a virus (SPEC §7)."""

    virus: str

    rule = "infected"

    @property
    def entry(self) -> str:
        return self.virus

    def __str__(self) -> str:
        return f"infected:{self.virus}"


@dataclass(frozen=True, slots=True)
class Allowed:
    """The sender is on an allow list (SPEC §5); ``source`` is ``mailbox`` or ``site``."""

    entry: str
    source: str = "mailbox"

    rule = "allowed"

    def __str__(self) -> str:
        return f"allowed:{self.entry}"


@dataclass(frozen=True, slots=True)
class Blocked:
    """A reject rule matched (SPEC §4): quarantine, never bounce.

    ``rule`` is the check name (``reject_sender``, ``reject_subject``,
    ``header_conditions``, ``site_block``), ``entry`` the entry or condition
    that matched.
    """

    rule: str
    entry: str

    def __str__(self) -> str:
        return f"{self.rule}:{self.entry}"


@dataclass(frozen=True, slots=True)
class Spam:
    """spamd scored the message at or above the policy threshold (SPEC §8)."""

    score: float
    threshold: float
    rules: tuple[str, ...] = ()

    rule = "spam"

    @property
    def entry(self) -> str:
        return f"{self.score:.1f}/{self.threshold:.1f}"

    def __str__(self) -> str:
        return f"spam:{self.entry}"


@dataclass(frozen=True, slots=True)
class ScanFailed:
    """A scanner was unreachable or answered garbage; the policy's fail mode decides."""

    service: str
    error: str

    rule = "scan_failed"

    @property
    def entry(self) -> str:
        return self.service

    def __str__(self) -> str:
        return f"scan_failed:{self.service}"


@dataclass(frozen=True, slots=True)
class Refused:
    """An outbound submission is refused (SPEC §9 overseas restriction): permanent 5xx."""

    rule: str
    message: str

    entry = "refused"

    def __str__(self) -> str:
        return f"{self.rule}:refused"


Verdict = Infected | Allowed | Blocked | Spam | ScanFailed | Refused


@dataclass(frozen=True, slots=True)
class Pass:
    """No verdict: the check looked and found nothing (``detail`` goes into the trace)."""

    detail: str = "-"

    def __str__(self) -> str:
        return self.detail


@dataclass(frozen=True, slots=True)
class NotScanned:
    """A scanner failed and the policy says deliver anyway (``accept_tagged``).

    Not a verdict: the chain goes on, and the delivered copy carries a header
    saying it was not scanned (SPEC §7, §8).
    """

    service: str
    error: str

    def __str__(self) -> str:
        return f"not_scanned:{self.service}"


CheckResult = Verdict | Pass | NotScanned | None


class Disposition(str, enum.Enum):
    """What happens to one recipient's copy; the values are the dry-run/log tokens."""

    DELIVER = "deliver"
    DELIVER_TAGGED = "deliver_tagged"
    QUARANTINE = "quarantine"
    DROP_INFECTED = "drop_infected"
    TEMPFAIL = "tempfail"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One check's result for one recipient: ``name=result`` in the log line."""

    check: str
    result: str

    def __str__(self) -> str:
        return f"{self.check}={self.result}"


Trace = tuple[TraceStep, ...]


def format_trace(trace: Trace) -> str:
    return " ".join(str(step) for step in trace)

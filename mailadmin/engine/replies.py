"""The SMTP replies the MTA hears, typed so a code cannot change its class.

:func:`reply_for` is the one place a disposition becomes a reply; the
message-level replies (a message past a ``[limits]`` bound, an adapter that
could not finish) are here too, so every reply an adapter sends is made in this
module.  :class:`TempFail` only holds a 4xx and :class:`Reject` only a 5xx: a
refusal can never reach the sender as "try again", nor a deferral as a bounce.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mailadmin.errors import MessageLimitExceeded
from mailadmin.verdicts import Disposition, Refused, Verdict


@dataclass(frozen=True, slots=True)
class SmtpReply:
    """A failure reply: ``code`` 4xx or 5xx, ``status`` its enhanced code (RFC 3463)
    of the same class.  Made as :class:`TempFail` or :class:`Reject`, each of
    which holds only its own class (``code_class``)."""

    code: int
    status: str
    text: str

    code_class: ClassVar[int | None] = None

    def __post_init__(self) -> None:
        if not 400 <= self.code < 600 or not self.status.startswith(f"{self.code // 100}."):
            raise ValueError(f"not a failure reply: {self.code} {self.status}")
        if self.code_class is not None and self.code // 100 != self.code_class:
            raise ValueError(f"{type(self).__name__} needs a {self.code_class}xx code, not {self.code}")

    def __str__(self) -> str:
        return f"{self.code} {self.status} {self.text}"


@dataclass(frozen=True, slots=True)
class TempFail(SmtpReply):
    """A 4xx reply: the MTA keeps the message and tries again."""

    code_class = 4


@dataclass(frozen=True, slots=True)
class Reject(SmtpReply):
    """A 5xx reply: the message is refused for good."""

    code_class = 5


# A scanner down under the tempfail policy (SPEC §7, §8).
SCAN_TEMPFAIL = TempFail(451, "4.7.1", "Message could not be scanned now; try again later")
# The content filter could not finish (the store, a bug): the MTA keeps the message.
FILTER_TEMPFAIL = TempFail(451, "4.3.0", "Message could not be filtered now; try again later")


def reply_for(disposition: Disposition, verdict: Verdict | None) -> SmtpReply | None:
    """The reply for a recipient's disposition (``None``: the MTA's usual one)."""
    if disposition is Disposition.TEMPFAIL:
        return SCAN_TEMPFAIL
    if disposition is Disposition.REJECT:
        if not isinstance(verdict, Refused):
            raise TypeError(f"a rejection comes from a refusal, not {verdict!r}")
        return Reject(554, "5.7.1", verdict.message)
    return None


def limit_reply(exc: MessageLimitExceeded, *, after_queue: bool) -> SmtpReply:
    """A message past a ``[limits]`` bound.  Before queue (the milter) a 552
    is the sending MTA's to report, with no backscatter; after queue (the
    content filter) a 5xx would bounce, so the MTA keeps it (451) and the
    postmaster sees why in its queue."""
    text = f"Message exceeds a limit of this server ({exc.limit} {exc.maximum})"
    if after_queue:
        return TempFail(451, "4.3.4", text)
    return Reject(552, "5.3.4", text)

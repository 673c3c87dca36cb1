"""What the MTA adapters call of the running process (adapters/).

The milter, policy delegation and the content filter are given an object of
this shape instead of the concrete ``wiring.Runtime``, which satisfies it
structurally (wiring.py checks that with mypy); a test passes its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from mailadmin.config.model import LimitsConf
from mailadmin.engine.decide import ContentGroup, Decision
from mailadmin.engine.replies import SmtpReply
from mailadmin.message import Envelope, Message


class DecisionService(Protocol):
    """Decide on mail, and store what a decision does."""

    @property
    def limits(self) -> LimitsConf:
        """The message limits of the current configuration."""
        ...

    async def check_submission(self, envelope: Envelope) -> SmtpReply | None:
        """The overseas check of an authenticated submission: a refusal, or None."""
        ...

    async def decide(self, envelope: Envelope, message: Message) -> Decision:
        """Every recipient's outcome for one message."""
        ...

    async def apply(self, decision: Decision, message: Message,
                    reinject: Sequence[ContentGroup] = (),
                    taken: tuple[str, Sequence[str]] | None = None) -> None:
        """A decision's effects in one transaction (``reinject``: the copies the MTA
        does not deliver itself; ``taken``: the content filter's key and recipients)."""
        ...

    async def already_taken(self, queue_id: str, raw: bytes, rcpt_tos: Sequence[str]) -> tuple[str, set[str]]:
        """The content filter's key of a queued message, and the recipients it
        already took that message for."""
        ...

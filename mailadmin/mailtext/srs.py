"""Sender Rewriting Scheme for forwarded copies (SPEC §3: forwards keep passing SPF).

A forwarded copy leaves with the envelope sender rewritten into our SRS domain
(``SRS0=HHHH=TT=example.org=alice@srs.example.jp``, the Guarded scheme of
Shevek's SRS paper as libsrs2 and postsrsd write it), so the destination's SPF
check sees our domain, not the original sender's.  A bounce to such an address
is reversed to the original sender after checking its HMAC hash (any of the
configured secrets: the first signs, the others still verify after a
rotation) and its day timestamp (at most ``max_age_days`` old).  An address
already rewritten by another forwarder becomes SRS1, bouncing back through it.

Built on ``srslib`` (PyPI, MIT): a small, dependency-free implementation of
exactly that scheme, compatible with libsrs2/postsrsd addresses, with the
secret rotation (``prev_secrets``) and validity window we need.  ``pysrs`` was
not chosen: its last release is from 2018 and it is built around a
Sendmail/milter setup rather than being a library of two functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import srslib  # type: ignore[import-untyped]

from mailadmin.errors import MailadminError


class ForgedSrsAddress(MailadminError):
    """An address in our SRS domain that we did not write, or wrote too long ago."""


def _split(address: str) -> tuple[str, str]:
    local, at, domain = address.rpartition("@")
    return (local, domain.lower()) if at else ("", "")


class SrsRewriter:
    def __init__(self, domain: str, secrets: Sequence[str], max_age_days: int,
                 clock: Callable[[], float] = time.time) -> None:
        if not secrets:
            raise ValueError("SRS needs at least one secret")
        self.domain = domain.lower().rstrip(".")
        self._srs = srslib.SRS(secrets[0], prev_secrets=list(secrets[1:]), validity_days=max_age_days)
        # srslib reads the day from this attribute (meant for tests); the
        # daemon's clock is the process clock anyway.
        self._srs._time_fn = clock

    def is_ours(self, address: str) -> bool:
        return _split(address)[1] == self.domain

    def forward(self, sender: str) -> str:
        """The envelope sender of a forwarded copy of mail from ``sender``.

        The null sender stays null (a bounce must not draw one back), and an
        address of our SRS domain is already rewritten.
        """
        local, domain = _split(sender)
        if not local or not domain or domain == self.domain:
            return sender
        try:
            return str(self._srs.forward(sender, self.domain))
        except srslib.Error:
            return sender

    def reverse(self, address: str) -> str:
        """Where a bounce to ``address`` goes; ``ForgedSrsAddress`` when it is not
        one of ours, its hash is wrong or it is too old."""
        if not self.is_ours(address):
            raise ForgedSrsAddress(f"{address} is not in the SRS domain {self.domain}")
        try:
            return str(self._srs.reverse(address))
        except srslib.InvalidHashError as exc:
            raise ForgedSrsAddress(f"{address}: the hash does not match (forged)") from exc
        except srslib.InvalidTimestampError as exc:
            raise ForgedSrsAddress(f"{address}: expired or bad timestamp") from exc
        except srslib.Error as exc:
            raise ForgedSrsAddress(f"{address}: not an SRS address") from exc

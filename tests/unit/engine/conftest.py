"""Engine fixtures: a Config built from the model defaults, in-memory rules, scripted scanners.

The scanners here are unit-tier stand-ins that return scripted answers; the
real clamd and spamd are exercised in tests/integration and tests/e2e.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Any

import pytest

from mailadmin.config.model import Config, Policy
from mailadmin.engine.decide import Engine
from tests.fixtures.config import make_config
from mailadmin.errors import ServiceUnavailable
from mailadmin.store.snapshots import MailboxRules

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)


def with_policy(**tables: dict[str, Any]) -> Policy:
    policy = Policy()
    for table, values in tables.items():
        policy = dataclasses.replace(policy, **{table: dataclasses.replace(getattr(policy, table), **values)})
    return policy


class ScriptedClamd:
    def __init__(self, virus: str | None = None, fail: bool = False) -> None:
        self.virus, self.fail, self.calls = virus, fail, 0

    async def scan(self, data: bytes) -> str | None:
        self.calls += 1
        if self.fail:
            raise ServiceUnavailable("clamd", "connection refused")
        return self.virus if self.virus and self.virus_marker in data else None

    virus_marker = b"VIRUS-MARKER"


@dataclasses.dataclass
class Report:
    score: float
    rules: dict[str, float]


class ScriptedSpamd:
    def __init__(self, score: float = 0.0, fail: bool = False) -> None:
        self.score, self.fail, self.calls = score, fail, 0

    async def report(self, data: bytes) -> Report:
        self.calls += 1
        if self.fail:
            raise ServiceUnavailable("spamd", "timed out")
        return Report(self.score, {"TEST_RULE": self.score} if self.score else {})


def rules_for(address: str, **kw: Any) -> MailboxRules:
    return MailboxRules(address=address, domain=address.rpartition("@")[2], **kw)


def make_engine(
    mailboxes: Sequence[MailboxRules],
    *,
    clamd: ScriptedClamd | None = None,
    spamd: ScriptedSpamd | None = None,
    config: Config | None = None,
    countries: dict[str, str] | None = None,
    now: dt.datetime = NOW,
) -> Engine:
    table = {m.address: m for m in mailboxes}
    cfg = config or make_config()
    return Engine(
        config=lambda: cfg,
        load_rules=lambda addrs: {a: table[a] for a in addrs if a in table},
        clamd=clamd or ScriptedClamd(),
        spamd=spamd or ScriptedSpamd(),
        country_of=lambda ip: (countries or {}).get(ip),
        clock=lambda: now,
    )


def make_message(
    *,
    sender: str = "Alice <alice@example.org>",
    to: str = "taro@example.jp",
    subject: str | None = "Hello",
    body: str = "Hello there\n",
    headers: dict[str, str] | None = None,
) -> bytes:
    msg = EmailMessage()
    if sender is not None:
        msg["From"] = sender
    msg["To"] = to
    if subject is not None:
        msg["Subject"] = subject
    msg["Message-ID"] = "<orig-1@example.org>"
    for k, v in (headers or {}).items():
        msg[k] = v
    msg.set_content(body)
    return msg.as_bytes()


@pytest.fixture
def now() -> dt.datetime:
    return NOW

"""``mailadmin dry-run``: the real chain and real scanners, no side effects (SPEC §11).

Prints, per recipient, the outcome, the reason, the planned effects and the
trace — the same story the decision log line tells.  Nothing is written: the
auto-reply claim is only read, to say whether a reply would really go out.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from mailadmin.config.model import Config
from mailadmin.engine.decide import Decision, Engine
from mailadmin.engine.effects import AutoReplyTo
from mailadmin.message import Envelope, Message
from mailadmin.store import claims
from mailadmin.verdicts import Disposition
from mailadmin.wiring import Store, utcnow


def _effect_lines(decision: Decision, store: Store, now: dt.datetime) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with store.session_factory() as session:
        for o in decision.outcomes:
            lines: list[str] = []
            if o.is_local_mailbox and o.disposition in (Disposition.DELIVER, Disposition.DELIVER_TAGGED):
                lines.append("deliver to the mailbox" if o.deliver_local else "no copy kept in the mailbox")
            for effect in list(o.effects) + list(decision.message_effects):
                text = str(effect)
                if isinstance(effect, AutoReplyTo):
                    window = dt.timedelta(hours=effect.window_hours)
                    if claims.is_auto_reply_claimed(session, o.recipient, effect.to, now, window):
                        text += f"; not sent: already replied within {effect.window_hours} h"
                lines.append(text)
            if o.reply is not None:
                lines.append(f"SMTP reply {o.reply}")
            out[o.recipient] = lines
    return out


async def dry_run(
    engine: Engine,
    store: Store,
    config: Config,
    raw: bytes,
    *,
    mail_from: str,
    rcpt_tos: list[str],
    client_address: str | None = None,
    sasl_username: str | None = None,
    helo: str | None = None,
) -> dict[str, Any]:
    envelope = Envelope(
        mail_from=mail_from.strip("<>"),
        rcpt_tos=tuple(rcpt_tos),
        client_address=client_address,
        helo=helo,
        sasl_username=sasl_username,
        queue_id="dry-run",
    )
    decision = await engine.decide(envelope, Message(raw))
    effects = _effect_lines(decision, store, utcnow())
    return {
        o.recipient: {
            "outcome": o.disposition.value,
            "reason": o.reason,
            "effects": effects[o.recipient],
            "trace": {step.check: step.result for step in o.trace},
        }
        for o in decision.outcomes
    }


def format_text(report: dict[str, Any]) -> str:
    lines: list[str] = []
    for rcpt, r in report.items():
        lines.append(f"{rcpt}: {r['outcome']}")
        lines.append(f"  reason:  {r['reason']}")
        for e in r["effects"]:
            lines.append(f"  effect:  {e}")
        trace = " ".join(f"{k}={v}" for k, v in r["trace"].items())
        lines.append(f"  trace:   {trace or '-'}")
    return "\n".join(lines)

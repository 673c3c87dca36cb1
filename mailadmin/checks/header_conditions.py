"""header_conditions: the five ヘッダー受信拒否 checkboxes (SPEC §4, seed 004).

- ``from_missing``      no From header at all
- ``from_empty_angle``  ``From: <>``
- ``from_empty``        ``From:`` with nothing in it
- ``subject_missing``   no Subject header at all
- ``subject_empty``     ``Subject:`` with nothing in it (after decoding)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from mailadmin.checks.context import RecipientContext
from mailadmin.mailtext.entries import HEADER_CONDITIONS
from mailadmin.mailtext.headers import decode_header_value
from mailadmin.message import Message
from mailadmin.verdicts import Blocked, CheckResult, Pass


def _from_values(message: Message) -> list[str]:
    return [" ".join(v.split()) for v in message.header_values("From")]


def _from_missing(message: Message) -> bool:
    return not message.has_header("From")


def _from_empty_angle(message: Message) -> bool:
    return any(v.replace(" ", "") == "<>" for v in _from_values(message))


def _from_empty(message: Message) -> bool:
    return message.has_header("From") and any(v == "" for v in _from_values(message))


def _subject_missing(message: Message) -> bool:
    return not message.has_header("Subject")


def _subject_empty(message: Message) -> bool:
    values = message.header_values("Subject")
    return bool(values) and decode_header_value(values[0]).strip() == ""


_TESTS: dict[str, Callable[[Message], bool]] = {
    "from_missing": _from_missing,
    "from_empty_angle": _from_empty_angle,
    "from_empty": _from_empty,
    "subject_missing": _subject_missing,
    "subject_empty": _subject_empty,
}
assert tuple(_TESTS) == HEADER_CONDITIONS


def first_condition(conditions: Iterable[str], message: Message) -> str | None:
    """The first of ``conditions`` (in checkbox order) that ``message`` meets."""
    wanted = set(conditions)
    for name in HEADER_CONDITIONS:
        if name in wanted and _TESTS[name](message):
            return name
    return None


async def check(ctx: RecipientContext) -> CheckResult:
    condition = first_condition(ctx.rules.header_conditions, ctx.message)
    if condition is not None:
        return Blocked("header_conditions", condition)
    return Pass()

"""The exception tree of mailadmin.

::

    MailadminError
      ConfigError            file, line/key, reason -> stops startup or a reload
      EntryError             invalid user input; one message per broken rule, shown to the user
      NotFound               a domain, mailbox or quarantine item that does not exist
      ServiceError
        ServiceUnavailable   connect refused or timeout -> the policy's fail mode
        ServiceProtocolError unexpected reply -> the policy's fail mode, logged at ERROR
      ProtocolViolation      bad input from the MTA on the wire
      MessageLimitExceeded   a message past a [limits] bound (size, header fields, MIME depth)

Third-party exceptions are mapped to these at the boundary where they occur
(services/, store/, config/).  Nothing else is raised across module boundaries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


class MailadminError(Exception):
    """Base of every error mailadmin raises on purpose."""


class ConfigError(MailadminError):
    """An invalid configuration file; carries where and why."""

    def __init__(self, file: str, location: str | int | None, reason: str) -> None:
        self.file = file
        self.location = location
        self.reason = reason
        where = file if location is None else f"{file}:{location}"
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True, slots=True)
class Problem:
    """One broken rule of one input.

    ``code`` is a stable token (``password_too_short``, ``sender_bare_local_part``,
    ``duplicate``...) the web UI translates with ``params``; ``text`` is the
    English message the CLI prints.
    """

    code: str
    text: str
    params: dict[str, str | int] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.text


class EntryError(MailadminError):
    """Invalid input from a subscriber or postmaster.

    ``problems`` holds one entry per broken rule; nothing was changed when this
    is raised.
    """

    def __init__(self, problems: "Sequence[Problem | str] | Problem | str") -> None:
        items: Sequence[Problem | str] = [problems] if isinstance(problems, (Problem, str)) else problems
        self.problems: tuple[Problem, ...] = tuple(
            p if isinstance(p, Problem) else Problem("invalid", p) for p in items
        )
        super().__init__("; ".join(p.text for p in self.problems))

    @property
    def messages(self) -> tuple[str, ...]:
        return tuple(p.text for p in self.problems)


class NotFound(MailadminError):
    """A named object (domain, mailbox, quarantine item) does not exist."""


class ServiceError(MailadminError):
    """An outside system (clamd, spamd, relay, DNS, database) failed."""

    def __init__(self, service: str, detail: str) -> None:
        self.service = service
        self.detail = detail
        super().__init__(f"{service}: {detail}")


class ServiceUnavailable(ServiceError):
    """The service could not be reached or did not answer in time."""


class ServiceProtocolError(ServiceError):
    """The service answered something we do not understand."""


class ProtocolViolation(MailadminError):
    """The MTA sent something that breaks the protocol."""


class MessageLimitExceeded(MailadminError):
    """A message is larger than a ``[limits]`` bound allows: ``limit`` is the
    key (``max_header_fields``), ``value`` what the message has (at least),
    ``maximum`` the bound."""

    def __init__(self, limit: str, value: int, maximum: int) -> None:
        self.limit = limit
        self.value = value
        self.maximum = maximum
        super().__init__(f"{limit}: the message has {value}, the limit is {maximum}")


class UnrenderableMessage(MailadminError):
    """A message the ``email`` package parses but cannot write back out — a
    header value that would read as two fields, a non-ASCII boundary or
    preamble line — so parts cannot be removed from it (mailtext.mime_parts)."""

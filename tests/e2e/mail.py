"""Test messages and addresses for the e2e tier (EICAR and GTUBE built at run time)."""

from __future__ import annotations

import email.utils
import itertools

from tests.fixtures.scanners import Attachment, eicar_text, gtube_text, make_message

_serial = itertools.count(1)


def sender(name: str = "alice", domain: str = "sender.example") -> str:
    """A sender address no other test uses (auto-reply claims are per sender)."""
    return f"{name}{next(_serial)}@{domain}"


def outside(name: str = "dest") -> str:
    """A recipient outside our domains (a forwarding destination, a submission's recipient)."""
    return f"{name}{next(_serial)}@elsewhere.example"


def clean(to: str, frm: str, subject: str = "Lunch", **headers: str) -> bytes:
    return make_message(subject=subject, sender=frm, to=to, headers=headers or None)


def spam(to: str, frm: str, subject: str = "Cheap watches") -> bytes:
    return make_message(f"Buy now.\n\n{gtube_text()}\n", subject=subject, sender=frm, to=to)


def infected(to: str, frm: str, subject: str = "Invoice") -> bytes:
    return make_message(
        "The invoice is attached.\n", subject=subject, sender=frm, to=to,
        attachments=[Attachment("invoice.com", eicar_text().encode("ascii"))],
    )


def raw(headers: list[tuple[str, str]], body: str = "Hello.\r\n") -> bytes:
    """A message with exactly these headers (for header conditions: no Subject, From: <>...)."""
    lines = [f"{name}: {value}" if value else f"{name}:" for name, value in headers]
    lines += [f"Date: {email.utils.formatdate()}", f"Message-ID: {email.utils.make_msgid(domain='example.org')}"]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8")

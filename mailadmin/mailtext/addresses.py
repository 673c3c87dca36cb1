"""Mail addresses: addr-spec syntax (RFC 5321 §4.1.2, RFC 5322 §3.4.1), the
addresses in a From/To/Cc header, and the SPEC §4 boundary-suffix match of
sender entries used by the From reject list, the allow list (SPEC §5), the
site-wide filters and per-sender auto-replies (SPEC §6).

Domains are compared in their ASCII (A-label, RFC 5891) form, so an entry
typed as ``例え.jp`` matches mail from ``xn--r8jz45g.jp`` and the other way
round.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Iterable

from mailadmin.mailtext.memo import short_text_cache

MAX_ADDRESS_LENGTH = 254  # RFC 5321 §4.5.3.1.3 path limit minus the angle brackets
MAX_LOCAL_PART_LENGTH = 64
MAX_DOMAIN_LENGTH = 253

_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
_DOT_ATOM = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*\Z")
_QUOTED_STRING = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"\Z')
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
_ANGLE_ADDR = re.compile(r"<\s*([^<>\s]*)\s*>")
_FOLD = re.compile(r"\r?\n(?=[ \t])")


def canonical_domain(domain: str) -> str | None:
    """The lower-case ASCII form of a host name, or ``None`` when it is not one.

    A valid domain has at least two labels of letters, digits and inner
    hyphens (1–63 octets each, 253 in all) and a top-level label that is not
    all digits; a domain in Unicode must be IDNA-encodable.
    """
    if not domain or domain != domain.strip() or domain.endswith("."):
        return None
    if domain.isascii():
        ascii_domain = domain.lower()
    else:
        try:
            ascii_domain = domain.encode("idna").decode("ascii").lower()
        except UnicodeError:
            return None
    if len(ascii_domain) > MAX_DOMAIN_LENGTH:
        return None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return None
    if labels[-1].isdigit():
        return None
    return ascii_domain


def _comparable_domain(domain: str) -> str:
    """Like :func:`canonical_domain` but total: whatever cannot be encoded is
    compared as typed, lower-cased, so matching never raises."""
    domain = domain.strip().rstrip(".").lower()
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return domain


def _split_address(addr: str) -> tuple[str, str] | None:
    local, at, domain = addr.rpartition("@")
    if not at:
        return None
    return local, domain


def is_valid_local_part(local: str) -> bool:
    """A dot-atom or a quoted string of printable ASCII, at most 64 octets."""
    if not local or len(local) > MAX_LOCAL_PART_LENGTH:
        return False
    return bool(_DOT_ATOM.match(local) or _QUOTED_STRING.match(local))


def is_valid_address(addr: str) -> bool:
    """Whether ``addr`` is a syntactically valid ``local@domain`` addr-spec.

    No display name, angle brackets, comments, source routes or address
    literals: this is what a subscriber types as a forwarding destination.
    """
    if not addr or len(addr) > MAX_ADDRESS_LENGTH:
        return False
    parts = _split_address(addr)
    if parts is None:
        return False
    local, domain = parts
    return is_valid_local_part(local) and canonical_domain(domain) is not None


def domain_of(addr: str) -> str:
    """The lower-cased domain of ``addr`` (``""`` when there is no ``@``)."""
    parts = _split_address(addr.strip().strip("<>"))
    if parts is None:
        return ""
    return parts[1].strip().lower()


@short_text_cache
def canonical_address(addr: str) -> str:
    """The form two addresses are compared in: lower-case, ASCII domain."""
    addr = addr.strip().strip("<>").strip()
    parts = _split_address(addr)
    if parts is None:
        return addr.lower()
    local, domain = parts
    return f"{local.lower()}@{_comparable_domain(domain)}"


def header_addresses(value: str) -> list[str]:
    """Every addr-spec in a raw From/To/Cc header value, lower-cased, in order
    (see :func:`_header_addresses`)."""
    return list(_header_addresses(value))


@short_text_cache
def _header_addresses(value: str) -> tuple[str, ...]:
    """Every addr-spec in a raw From/To/Cc header value, lower-cased, in order.

    Display names (encoded or not), comments and group syntax are skipped;
    an address inside a display name (``"boss@bank.example" <x@evil.example>``)
    is not an address of the header.  Words without ``@`` are not addresses;
    ``<>`` and an empty value give ``[]``.
    """
    text = _FOLD.sub("", value).replace("\r", " ").replace("\n", " ")
    # A dict keeps the order and makes the duplicate test O(1): a forged From
    # of a hundred thousand addresses must not cost quadratic time.
    found: dict[str, None] = {}
    for _name, addr in email.utils.getaddresses([text]):
        addr = addr.strip()
        if not addr:
            continue
        if any(c.isspace() for c in addr) and not addr.startswith('"'):
            # A missing pair of angle brackets ("Spammer spam@x.example")
            # makes the parser glue the phrase to the address; the address
            # is the word with the "@".
            candidates = [word for word in addr.split() if "@" in word]
        else:
            candidates = [addr]
        for candidate in candidates:
            candidate = candidate.strip("<>").lower()
            if "@" in candidate:
                found.setdefault(candidate)
    # Older parsers drop what follows a syntax error; an angle address the
    # parser gave up on must still count, or a malformed From would slip past
    # the reject list.
    for match in _ANGLE_ADDR.finditer(_strip_quoted(text)):
        candidate = match.group(1).lower()
        if ":" in candidate:  # obsolete source route "@relay:user@host"
            candidate = candidate.rsplit(":", 1)[1]
        if "@" in candidate:
            found.setdefault(candidate)
    return tuple(found)


def _strip_quoted(text: str) -> str:
    """``text`` with quoted strings and comments blanked out."""
    out: list[str] = []
    in_quote = False
    depth = 0
    escaped = False
    for char in text:
        if escaped:
            escaped = False
            out.append(" ")
            continue
        if char == "\\" and (in_quote or depth):
            escaped = True
            out.append(" ")
            continue
        if in_quote:
            in_quote = char != '"'
            out.append(" ")
        elif depth:
            depth += {"(": 1, ")": -1}.get(char, 0)
            out.append(" ")
        elif char == '"':
            in_quote = True
            out.append(" ")
        elif char == "(":
            depth = 1
            out.append(" ")
        else:
            out.append(char)
    return "".join(out)


def sender_entry_matches(entry: str, address: str) -> bool:
    """SPEC §4: does a From-list entry match one sender address?

    Case-insensitive.  ``example.com`` matches the domain and every subdomain
    at a label boundary (``a@example.com``, ``a@mx.example.com``, not
    ``a@badexample.com``); ``@example.com`` matches that domain only;
    ``user@example.com`` that address only.  An empty address never matches.
    """
    entry = entry.strip()
    address = address.strip().strip("<>").strip()
    if not entry or not address:
        return False
    if entry.startswith("@"):
        wanted = _comparable_domain(entry[1:])
        return bool(wanted) and _address_domain(address) == wanted
    if "@" in entry:
        return canonical_address(entry) == canonical_address(address)
    wanted = _comparable_domain(entry)
    if not wanted:
        return False
    domain = _address_domain(address)
    return domain == wanted or domain.endswith("." + wanted)


def _address_domain(address: str) -> str:
    parts = _split_address(address)
    return _comparable_domain(parts[1]) if parts else ""


def first_matching_entry(entries: Iterable[str], addresses: Iterable[str]) -> str | None:
    """The first entry (in list order) that matches any of ``addresses``."""
    candidates = [a for a in addresses if a]
    if not candidates:
        return None
    for entry in entries:
        if any(sender_entry_matches(entry, a) for a in candidates):
            return entry
    return None

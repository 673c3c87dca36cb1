"""Changes to a received message, made on its raw header section: the
``[spam] `` subject tag with its X-Spam headers (SPEC §8), added and removed
header fields, the copy one group of recipients gets, and the field-by-field
difference between two header sections that the milter turns into header
actions (SPEC §10).

The body bytes are never touched: a rewritten message differs from the
original in its header fields only.  Where the header section ends is
:func:`mailadmin.message.header_block`'s answer.
"""

from __future__ import annotations

import email.header
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from mailadmin.mailtext.compose import _one_line
from mailadmin.mailtext.headers import decode_header_value
from mailadmin.mailtext.mime_parts import line_ending
from mailadmin.message import header_block

_HEADER_NAME = re.compile(rb"^[!-9;-~]+$")
_RULE_NAME = re.compile(r"[^A-Za-z0-9_.+-]")
_SPAM_HEADERS = (b"x-spam-flag", b"x-spam-status", b"x-spam-level")


def _split_fields(raw: bytes) -> tuple[list[bytes], bytes]:
    """Header fields (each with its continuation lines and line ends) and the
    rest of the message, starting at the blank line that ends the header."""
    block = header_block(raw)
    fields: list[bytes] = []
    position = 0
    length = len(block)
    while position < length:
        newline = block.find(b"\n", position)
        end = length if newline < 0 else newline + 1
        line = block[position:end]
        if line in (b"\r\n", b"\n", b"\r"):
            break  # the blank line that ends the block (or a lone CR at the very end)
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
        position = end
    return fields, raw[position:]


def _drop_orphan_lines(raw: bytes) -> bytes:
    """``raw`` without indented lines before its first header field.

    They belong to no field; left in front, they would become part of the
    first header we prepend (RFC 5322 §2.2.3 unfolding).
    """
    if raw[:1] not in (b" ", b"\t"):
        return raw
    fields, rest = _split_fields(raw)
    while fields and fields[0][:1] in (b" ", b"\t"):
        fields.pop(0)
    return _join_fields(fields, rest, line_ending(raw).encode("ascii"))


def _field_name(field: bytes) -> bytes:
    name, colon, _ = field.partition(b":")
    return name.strip().lower() if colon else b""


def _join_fields(fields: list[bytes], rest: bytes, eol: bytes) -> bytes:
    # a "field" of nothing but stray CRs would read as the end of the header
    out = [f if f.endswith(b"\n") else f.rstrip(b"\r") + eol for f in fields if f.strip(b"\r\n")]
    if not rest:
        rest = eol  # a message that was all header still needs its blank line
    return b"".join(out) + rest


def _encode_value(name: str, value: str, eol: str) -> bytes:
    value = _one_line(value, 998)
    if value.isascii():
        return value.encode("ascii")
    encoded = email.header.Header(value, "utf-8", header_name=name).encode(linesep=eol)
    return encoded.encode("ascii")


def add_header(raw: bytes, name: str, value: str) -> bytes:
    """``raw`` with ``name: value`` prepended.  Line breaks and control
    characters in ``value`` become spaces (no header injection); non-ASCII is
    RFC 2047-encoded."""
    name_bytes = name.encode("ascii", "replace")
    if not name.isascii() or not _HEADER_NAME.match(name_bytes):
        raise ValueError(f"not a header field name: {name!r}")
    eol = line_ending(raw)
    raw = _drop_orphan_lines(raw)
    return name_bytes + b": " + _encode_value(name, value, eol) + eol.encode("ascii") + raw


def remove_headers(raw: bytes, names: Iterable[str]) -> bytes:
    """``raw`` without any field named in ``names`` (case-insensitive)."""
    unwanted = {n.strip().lower().encode("ascii", "replace") for n in names}
    fields, rest = _split_fields(raw)
    kept = [f for f in fields if _field_name(f) not in unwanted]
    if len(kept) == len(fields):
        return raw
    return _join_fields(kept, rest, line_ending(raw).encode("ascii"))


def _spam_status(score: float, threshold: float, rules: Sequence[str], eol: str) -> str:
    names = [n for n in (_RULE_NAME.sub("", r) for r in rules) if n]
    value = f"Yes, score={score:.1f} required={threshold:.1f} tests="
    line_length = len("X-Spam-Status: ") + len(value)
    if not names:
        return value + "none"
    for index, rule in enumerate(names):
        piece = rule + ("," if index < len(names) - 1 else "")
        if line_length + len(piece) > 76 and index:
            value += eol + "\t"
            line_length = 1
        value += piece
        line_length += len(piece)
    return value


def _tagged_subject(value: bytes, prefix: str, eol: bytes) -> bytes | None:
    """The new Subject value, or ``None`` when it already carries ``prefix``."""
    decoded = decode_header_value(value.decode("ascii", "surrogateescape"))
    marker = prefix.strip().casefold()
    if not marker or decoded.lstrip().casefold().startswith(marker):
        return None
    original = value.lstrip(b" \t\r\n")
    if not original.strip():
        return b" " + _prefix_bytes(prefix.rstrip(), before_encoded_word=False) + eol
    before_word = original.startswith(b"=?")
    if not original.endswith(b"\n"):
        original += eol
    return b" " + _prefix_bytes(prefix, before_encoded_word=before_word) + original


def _prefix_bytes(prefix: str, *, before_encoded_word: bool) -> bytes:
    if prefix.isascii():
        return prefix.encode("ascii")
    trailing = prefix[len(prefix.rstrip()):]
    if before_encoded_word and trailing:
        # Space between two encoded words is dropped by decoders (RFC 2047
        # §6.2): the space must be inside the prefix's word to survive.
        word = email.header.Header(prefix, "utf-8").encode()
        return word.encode("ascii") + b" "
    word = email.header.Header(prefix.rstrip(), "utf-8").encode()
    return word.encode("ascii") + trailing.encode("ascii", "replace").replace(b"?", b" ")


def tag_spam(
    raw: bytes,
    *,
    prefix: str,
    score: float,
    threshold: float,
    rules: Sequence[str],
) -> bytes:
    """Mark ``raw`` as spam (SPEC §8): ``prefix`` in front of the Subject once,
    never doubled; ``X-Spam-Flag: YES``, ``X-Spam-Status`` and
    ``X-Spam-Level`` replacing any the sender set.  The body is untouched."""
    eol_text = line_ending(raw)
    eol = eol_text.encode("ascii")
    fields, rest = _split_fields(_drop_orphan_lines(raw))
    fields = [f for f in fields if _field_name(f) not in _SPAM_HEADERS]
    for index, field in enumerate(fields):
        if _field_name(field) == b"subject":
            value = field.partition(b":")[2]
            tagged = _tagged_subject(value, prefix, eol)
            if tagged is not None:
                fields[index] = b"Subject:" + tagged
            break
    else:
        fields.append(b"Subject: " + _prefix_bytes(prefix.rstrip(), before_encoded_word=False) + eol)
    stars = "*" * max(0, min(int(score), 50))
    added = [
        b"X-Spam-Flag: YES" + eol,
        b"X-Spam-Level: " + stars.encode("ascii") + eol,
        b"X-Spam-Status: " + _spam_status(score, threshold, rules, eol_text).encode("ascii") + eol,
    ]
    return _join_fields(added + fields, rest, eol)


# ---------------------------------------------------------------- the copy one group gets


class HeaderChange(Protocol):
    """One change to a received message's header (the engine's content effects)."""

    def apply_to(self, raw: bytes) -> bytes: ...


def render_copy(raw: bytes, changes: Iterable[HeaderChange]) -> bytes:
    """The bytes one group of recipients gets: ``changes`` made in order."""
    for change in changes:
        raw = change.apply_to(raw)
    return raw


# ---------------------------------------------------------------- header differences


def header_fields(raw: bytes) -> list[tuple[str, str]]:
    """The header fields of ``raw`` as the MTA reports them: name, and the
    value with one leading space removed and continuation lines joined by
    ``\\n`` (Postfix's and Sendmail's milter form)."""
    fields: list[tuple[str, str]] = []
    for line in header_block(raw).split(b"\n"):
        line = line[:-1] if line.endswith(b"\r") else line
        if not line:
            break  # the blank line that ends the block
        text = line.decode("utf-8", "surrogateescape")
        if text[:1] in (" ", "\t"):
            if fields:
                name, value = fields[-1]
                fields[-1] = (name, value + "\n" + text)
            continue
        name, colon, value = text.partition(":")
        if not colon:
            continue
        fields.append((name.strip(), value[1:] if value.startswith(" ") else value))
    return fields


@dataclass(frozen=True, slots=True)
class FieldChange:
    """Set the ``index``-th (1-based) field called ``name`` to ``value``;
    ``None`` deletes it."""

    index: int
    name: str
    value: str | None


@dataclass(frozen=True, slots=True)
class FieldInsert:
    """Put the field ``name: value`` at the top of the header."""

    name: str
    value: str


def header_edits(original: bytes, target: bytes) -> list[FieldChange | FieldInsert]:
    """The edits, in the order to make them, that turn ``original``'s header
    fields (as :func:`header_fields` reads them) into ``target``'s.

    Per field name, the original fields are paired with the *last* fields of
    that name in the target (the copy's new fields are prepended, so the
    sender's own come last) and changed where they differ; surplus original
    fields are deleted from the last one up, so no index shifts under a later
    edit; surplus target fields are inserted at the top, the last one first,
    so they end up in the target's order.  A value that would be empty is a
    delete and an insert (an empty value means "delete" to the milter).
    """
    old: dict[str, list[tuple[str, str]]] = {}
    for name, value in header_fields(original):
        old.setdefault(name.lower(), []).append((name, value))
    target_fields = header_fields(target)
    new: dict[str, list[int]] = {}
    for position, (name, _) in enumerate(target_fields):
        new.setdefault(name.lower(), []).append(position)
    changes: list[FieldChange | FieldInsert] = []
    deletes: list[FieldChange] = []
    inserted: set[int] = set()
    for key in dict.fromkeys([*old, *new]):
        was, wanted = old.get(key, []), new.get(key, [])
        surplus = max(0, len(wanted) - len(was))
        inserted.update(wanted[:surplus])
        for index, (old_name, old_value) in enumerate(was, start=1):
            if index > len(wanted):
                deletes.append(FieldChange(index, old_name, None))
                continue
            position = wanted[surplus + index - 1]
            value = target_fields[position][1]
            if value == old_value:
                continue
            if value.strip():
                changes.append(FieldChange(index, old_name, value))
            else:
                deletes.append(FieldChange(index, old_name, None))
                inserted.add(position)
    deletes.sort(key=lambda d: -d.index)
    top = [FieldInsert(*target_fields[p]) for p in sorted(inserted, reverse=True)]
    return changes + list(deletes) + list(top)

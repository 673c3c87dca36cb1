"""Leaf MIME parts of a message and their removal (RFC 2045, RFC 2046; SPEC §7).

Parts are named by the IMAP section numbers of RFC 3501 §6.4.5: the body of
a single-part message is ``1``, the parts of a multipart are ``1``, ``2``…,
nested parts ``2.1``, and the body parts of an attached message/rfc822 are
numbered under that attachment's number.  The virus scan scans each leaf's
decoded bytes and names the infected ones; the virus report attaches the
original with exactly those parts replaced by a short notice.

Messages are parsed and written back with the ``compat32`` policy and no line
length limit, so every header and every untouched part keeps its bytes.

Nesting deeper than :data:`MAX_MIME_DEPTH` raises
:class:`~mailadmin.errors.MessageLimitExceeded` instead of walking on: the
walk and the ``email`` generator recurse per level, and a message nested a
thousand deep would overflow the stack (and so would the ``email`` parser, so
the depth is measured first by a line scan).  The adapters refuse such mail first
(conf ``[limits] max_mime_depth``, at most this).
"""

from __future__ import annotations

import base64
import email
import email.errors
import email.message
import email.policy
import email.utils
import io
import re
from collections.abc import Iterable, Iterator
from email.generator import BytesGenerator

from mailadmin.errors import MessageLimitExceeded, UnrenderableMessage
from mailadmin.mailtext.headers import decode_header_value
from mailadmin.message import header_block

_PARSE_POLICY = email.policy.compat32
# The largest conf [limits] max_mime_depth; deep enough for the generator's
# recursion (about five frames a level) to stay clear of the stack limit.
MAX_MIME_DEPTH = 100
_CONTENT_TYPE = re.compile(rb"(?im)^content-type[ \t]*:")
# Boundaries are case-sensitive; the parameter name is not.
_BOUNDARY = re.compile(rb'(?i)boundary[ \t]*=[ \t]*(?:"([^"]*)"|([^;\s]+))')


def line_ending(raw: bytes) -> str:
    """The line ending ``raw`` uses (that of its first line; CRLF when it has none)."""
    newline = raw.find(b"\n")
    if newline > 0 and raw[newline - 1:newline] == b"\r":
        return "\r\n"
    return "\n" if newline >= 0 else "\r\n"


def _parse(raw: bytes) -> email.message.Message:
    depth = mime_depth(raw, MAX_MIME_DEPTH)
    if depth > MAX_MIME_DEPTH:
        # The email parser recurses per level: measured first, never parsed.
        raise MessageLimitExceeded("max_mime_depth", depth, MAX_MIME_DEPTH)
    return email.message_from_bytes(raw, policy=_PARSE_POLICY)


def _content_type(lines: list[bytes], start: int) -> tuple[bytes, int]:
    """The Content-Type value of the header block at ``start`` (unfolded)
    and the index of the first body line."""
    value = b""
    in_type = False
    i = start
    while i < len(lines):
        line = lines[i].rstrip(b"\r")
        i += 1
        if not line:
            break
        if line[:1] in (b" ", b"\t"):
            if in_type:
                value += b" " + line.strip()
            continue
        name, colon, rest = line.partition(b":")
        in_type = bool(colon) and name.strip().lower() == b"content-type"
        if in_type:
            value = rest.strip()
    return value, i


def mime_depth(raw: bytes, ceiling: int) -> int:
    """How deeply ``raw``'s MIME entities nest (1 = a single-part message; a
    multipart's parts are one deeper, as is the message inside a
    message/rfc822 part), counted up to ``ceiling + 1`` at most.

    A line scan with an explicit stack, never recursion: the ``email``
    parser itself recurses per level and overflows the stack on a message
    nested a thousand deep, so it cannot be the one to measure it.
    """
    if len(_CONTENT_TYPE.findall(raw)) <= ceiling:
        # Each level of nesting needs its own Content-Type field.
        return 0
    lines = raw.split(b"\n")
    open_boundaries: list[tuple[bytes, int]] = []  # (boundary, depth of its multipart)
    deepest = 0
    depth = 1
    i = 0
    at_headers = True
    while i < len(lines):
        if at_headers:
            deepest = max(deepest, depth)
            if deepest > ceiling:
                return deepest
            content_type, i = _content_type(lines, i)
            at_headers = False
            kind = content_type.lower()
            if kind.startswith(b"multipart/"):
                match = _BOUNDARY.search(content_type)
                if match:
                    open_boundaries.append((match.group(1) or match.group(2), depth))
            elif kind.startswith(b"message/rfc822"):
                depth, at_headers = depth + 1, True
            continue
        line = lines[i].rstrip(b"\r \t")
        i += 1
        if not line.startswith(b"--") or not open_boundaries:
            continue
        for index in range(len(open_boundaries) - 1, -1, -1):
            boundary, owner = open_boundaries[index]
            if line == b"--" + boundary:
                del open_boundaries[index + 1:]
                depth, at_headers = owner + 1, True
                break
            if line == b"--" + boundary + b"--":
                del open_boundaries[index:]
                break
    return deepest


def _flatten(message: email.message.Message, linesep: str) -> bytes:
    buffer = io.BytesIO()
    policy = _PARSE_POLICY.clone(linesep=linesep, max_line_length=None)
    try:
        BytesGenerator(buffer, mangle_from_=False, policy=policy).flatten(message)
    except (email.errors.MessageError, ValueError, LookupError) as exc:
        # What the parser let through, the generator may refuse (HeaderParseError for
        # a value holding a line break before "name:", UnicodeEncodeError for a
        # non-ASCII boundary line): a documented error, never a crash of the report.
        raise UnrenderableMessage(f"{type(exc).__name__}: {exc}"[:300]) from None
    return buffer.getvalue()


def _join(prefix: str, number: int) -> str:
    return f"{prefix}.{number}" if prefix else str(number)


def _body_leaves(entity: email.message.Message, prefix: str,
                 depth: int = 1) -> Iterator[tuple[str, email.message.Message]]:
    """The leaves of the body of ``entity`` (a message or a message/rfc822 part)."""
    if entity.is_multipart() and entity.get_content_maintype() == "multipart":
        for number, child in enumerate(_children(entity), start=1):
            yield from _part_leaves(child, _join(prefix, number), depth + 1)
    else:
        yield from _part_leaves(entity, _join(prefix, 1), depth)


def _part_leaves(part: email.message.Message, path: str,
                 depth: int) -> Iterator[tuple[str, email.message.Message]]:
    if depth > MAX_MIME_DEPTH:
        raise MessageLimitExceeded("max_mime_depth", depth, MAX_MIME_DEPTH)
    if part.is_multipart():
        children = _children(part)
        if part.get_content_type() == "message/rfc822" and len(children) == 1:
            yield from _body_leaves(children[0], path, depth + 1)
            return
        if part.get_content_maintype() == "multipart":
            for number, child in enumerate(children, start=1):
                yield from _part_leaves(child, _join(path, number), depth + 1)
            return
    yield path, part


def _children(part: email.message.Message) -> list[email.message.Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, email.message.Message)]
    return []


def _payload_bytes(part: email.message.Message) -> bytes:
    if part.is_multipart():
        # message/delivery-status and the like: their body as it stands
        whole = _flatten(part, "\n")
        return whole[len(header_block(whole)):]
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def leaf_parts(raw: bytes) -> list[tuple[str, bytes]]:
    """Every leaf MIME part of ``raw`` as ``(path, decoded payload bytes)``, in order."""
    return [(path, _payload_bytes(part)) for path, part in _body_leaves(_parse(raw), "")]


def describe_part(part: email.message.Message) -> str:
    """``"file name, content/type"`` of a part, for people to read."""
    content_type = part.get_content_type()
    filename = _filename(part)
    if filename.strip():
        shown = decode_header_value(filename).strip()
        if len(shown) > 100:
            shown = shown[:100] + "…"
        return f"{shown}, {content_type}"
    return content_type


def _filename(part: email.message.Message) -> str:
    """The part's file name, whichever way the sender wrote it: raw 8-bit
    (which ``email`` turns into U+FFFD), RFC 2047 inside the quotes (what
    Japanese mailers do) or RFC 2231."""
    scratch = email.message.Message()
    for key, value in part.raw_items():
        if key.lower() in ("content-disposition", "content-type"):
            scratch[key] = decode_header_value(str(value))
    filename = scratch.get_filename()
    return filename if isinstance(filename, str) else ""


def _removal_notice(description: str) -> str:
    return (
        f"この部分は削除されました ({description})。\n"
        f"This part was removed ({description}).\n"
    )


def _replace_with_notice(part: email.message.Message, is_top: bool) -> None:
    notice = _removal_notice(describe_part(part))
    for key in {k.lower() for k in part.keys()}:
        if key.startswith("content-"):
            del part[key]
    if is_top and "MIME-Version" not in part:
        part["MIME-Version"] = "1.0"
    part["Content-Type"] = 'text/plain; charset="utf-8"'
    part["Content-Transfer-Encoding"] = "base64"
    part.set_payload(base64.encodebytes(notice.encode("utf-8")).decode("ascii"))


def _clear_hidden_text(message: email.message.Message) -> None:
    """Preamble and epilogue are never shown to the reader but can carry
    anything, including what the scanner found."""
    for part in message.walk():
        if part.is_multipart() and part.get_content_maintype() == "multipart":
            part.preamble = None
            part.epilogue = ""


def strip_parts_found(raw: bytes, remove: Iterable[str]) -> tuple[bytes, frozenset[str]]:
    """Like :func:`strip_parts`, also returning the paths that existed and were removed."""
    wanted = {p.strip() for p in remove}
    message = _parse(raw)
    removed: set[str] = set()
    for path, part in list(_body_leaves(message, "")):
        if path in wanted:
            _replace_with_notice(part, is_top=part is message)
            removed.add(path)
    _clear_hidden_text(message)
    return _flatten(message, line_ending(raw)), frozenset(removed)


def strip_parts(raw: bytes, remove: Iterable[str]) -> bytes:
    """``raw`` with the leaf parts named in ``remove`` replaced by a short
    text/plain notice naming what was removed (file name, content type).

    A single-part message whose body (``1``) is removed keeps its headers and
    gets the notice as its body.  The preamble and epilogue of every multipart
    are dropped.  Unknown paths are ignored.  A message that cannot be written
    back out raises :class:`~mailadmin.errors.UnrenderableMessage`.
    """
    return strip_parts_found(raw, remove)[0]

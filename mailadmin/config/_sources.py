"""Reading the files a configuration is built from, and remembering what was read.

Every file and directory the loader looks at goes through :class:`Sources`,
which records a :class:`Stamp` taken when it was read.  The reloader
(``reload.py``) compares those stamps with the disk to know when a snapshot
is stale (SPEC §11: ``filters/`` are reloaded without a restart).  TOML syntax
errors become :class:`ConfigError` with the line ``tomllib`` reports.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import stat
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mailadmin.errors import ConfigError

# File timestamps come from a coarse kernel clock, so a file rewritten with the
# same size within one tick of being read looks unchanged by stat alone (git's
# "racy clean" problem).  Stamps this close to their mtime are also compared
# by content.
RACY_WINDOW_NS = 2_000_000_000

StampKind = Literal["file", "dir", "missing", "other"]


@dataclass(frozen=True, slots=True)
class Stamp:
    """What one path looked like when the loader read it."""

    path: Path
    kind: StampKind
    mtime_ns: int
    size: int
    inode: int
    taken_ns: int
    # sha256 of the file's bytes or of the directory's sorted listing
    digest: bytes

    def is_racy(self) -> bool:
        return self.kind in ("file", "dir") and self.mtime_ns >= self.taken_ns - RACY_WINDOW_NS

    def same_stat(self, other: Stamp) -> bool:
        return (self.kind, self.mtime_ns, self.size, self.inode) == (
            other.kind,
            other.mtime_ns,
            other.size,
            other.inode,
        )


def _stat_stamp(path: Path, digest: bytes = b"") -> Stamp:
    now = time.time_ns()
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return Stamp(path, "missing", 0, 0, 0, now, b"")
    except NotADirectoryError:
        return Stamp(path, "missing", 0, 0, 0, now, b"")
    kind: StampKind
    if stat.S_ISREG(st.st_mode):
        kind = "file"
    elif stat.S_ISDIR(st.st_mode):
        kind = "dir"
    else:
        kind = "other"
    return Stamp(path, kind, st.st_mtime_ns, st.st_size, st.st_ino, now, digest)


def _listing_digest(names: list[str]) -> bytes:
    return hashlib.sha256("\0".join(sorted(names)).encode("utf-8", "surrogateescape")).digest()


def current_stamp(path: Path) -> Stamp:
    """A fresh stamp of ``path``, with the digest of what is there now."""
    before = _stat_stamp(path)
    try:
        if before.kind == "file":
            digest = hashlib.sha256(path.read_bytes()).digest()
        elif before.kind == "dir":
            digest = _listing_digest(os.listdir(path))
        else:
            return before
    except OSError:
        return _stat_stamp(path)
    return Stamp(
        before.path, before.kind, before.mtime_ns, before.size, before.inode, before.taken_ns, digest
    )


def is_unchanged(old: Stamp) -> tuple[bool, Stamp]:
    """Whether ``old`` still describes the disk; also the stamp to keep from now on.

    Stat alone decides unless the old stamp is racy; then the content decides,
    and the fresh stamp (no longer racy once the window has passed) replaces it.
    """
    now = _stat_stamp(old.path)
    if not old.same_stat(now):
        return False, now
    if not old.is_racy():
        return True, old
    fresh = current_stamp(old.path)
    return fresh.same_stat(old) and fresh.digest == old.digest, fresh


class Sources:
    """Reads configuration files and directories, stamping each one."""

    def __init__(self) -> None:
        self.stamps: dict[Path, Stamp] = {}

    def read_text(self, path: Path) -> str | None:
        """The UTF-8 text of ``path``, or None when it does not exist."""
        before = _stat_stamp(path)
        if before.kind == "missing":
            self.stamps[path] = before
            return None
        if before.kind != "file":
            raise ConfigError(str(path), None, "not a regular file")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(str(path), None, f"cannot read: {exc.strerror or exc}") from exc
        self.stamps[path] = dataclasses.replace(before, digest=hashlib.sha256(data).digest())
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise ConfigError(str(path), line, "not valid UTF-8 text") from exc
        # A byte-order mark from a Windows editor is not content.
        return text.removeprefix("\ufeff")

    def list_dir(self, path: Path) -> list[str] | None:
        """Sorted names in the directory ``path``, or None when it does not exist."""
        before = _stat_stamp(path)
        if before.kind == "missing":
            self.stamps[path] = before
            return None
        if before.kind != "dir":
            raise ConfigError(str(path), None, "not a directory")
        try:
            names = sorted(os.listdir(path))
        except OSError as exc:
            raise ConfigError(str(path), None, f"cannot list: {exc.strerror or exc}") from exc
        self.stamps[path] = dataclasses.replace(before, digest=_listing_digest(names))
        return names


# ------------------------------------------------------------------ TOML

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_TOML_AT_END = re.compile(r"\s*\(at end of document\)$")


def parse_toml(text: str, file: str) -> dict[str, Any]:
    """Parse TOML, turning a syntax error into ConfigError(file, line, reason)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _TOML_POSITION.search(message)
        if found is not None:
            reason = message[: found.start()]
            raise ConfigError(
                file, int(found.group(1)), f"TOML syntax error: {reason} (column {found.group(2)})"
            ) from exc
        found = _TOML_AT_END.search(message)
        if found is not None:
            last_line = max(1, len(text.splitlines()))
            reason = message[: found.start()]
            raise ConfigError(file, last_line, f"TOML syntax error: {reason} (at end of file)") from exc
        raise ConfigError(file, None, f"TOML syntax error: {message}") from exc


_TABLE_HEADER = re.compile(r"^\[\[?\s*([^\]]*?)\s*\]\]?")
_KEY_LINE = re.compile(r"""^((?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*'))*)\s*=""")


def _dotted(text: str) -> tuple[str, ...]:
    parts = re.findall(r"""[A-Za-z0-9_\-]+|"[^"]*"|'[^']*'""", text)
    return tuple(p[1:-1] if p[:1] in ("'", '"') else p for p in parts)


def locate(text: str, path: tuple[str, ...]) -> int | None:
    """Best-effort line number where the key ``path`` (e.g. ("clamd", "timeout_seconds")) is set.

    Falls back to the line of the nearest enclosing table header, so an error
    about a missing key still points at its table.  Multi-line strings may
    fool it; it is only used to make messages easier to act on.
    """
    current: tuple[str, ...] = ()
    best: tuple[int, int] | None = None  # (matched depth, line)
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        header = _TABLE_HEADER.match(stripped)
        if header is not None:
            current = _dotted(header.group(1))
            if current == path[: len(current)] and (best is None or len(current) > best[0]):
                best = (len(current), number)
            continue
        key = _KEY_LINE.match(stripped)
        if key is None:
            continue
        full = current + _dotted(key.group(1))
        if full == path:
            return number
        # An inline table (`clamd = { ... }`) holds its keys on this line.
        if full == path[: len(full)] and (best is None or len(full) > best[0]):
            best = (len(full), number)
    return None if best is None else best[1]

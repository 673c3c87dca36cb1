"""``filters/``: the postmaster's site-wide entries (SPEC §11) -> :class:`SiteFilters`.

Plain files, one entry per line, ``#`` comment lines and blank lines ignored:

- ``sender_block.list`` and ``allow.list``: From-entry syntax (SPEC §4, §5),
- ``subject_block.list``: subject entries (SPEC §4),
- ``header_conditions.list``: names from ``HEADER_CONDITIONS``.

Each line goes through the same validator the subscriber's web form uses
(``mailadmin.mailtext.entries``), so a site entry means exactly what the
same text typed on the page would mean.  A missing file is an empty list; any
other ``*.list`` name is an error, since a misspelt file would block nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mailadmin.config._schema import did_you_mean
from mailadmin.config._sources import Sources
from mailadmin.config.model import LimitsPolicy, SiteFilters
from mailadmin.errors import ConfigError, EntryError

LIST_SUFFIX = ".list"
FILES: dict[str, str] = {
    "sender_block.list": "sender_block",
    "subject_block.list": "subject_block",
    "allow.list": "allow",
    "header_conditions.list": "header_conditions",
}

Validator = Callable[[str], str]
# What two entries are compared by for duplicates: the same as the subscriber's lists.
DuplicateKey = Callable[[str], str]


def _validators(limits: LimitsPolicy) -> dict[str, tuple[Validator, DuplicateKey]]:
    # Imported here: mailtext sits below config in the import order, and this
    # keeps loading conf/ and policies/ independent of it.
    from mailadmin.mailtext.entries import (
        parse_header_conditions,
        parse_sender_entry,
        parse_subject_entry,
        sender_entry_key,
        subject_entry_key,
    )

    def sender(raw: str) -> str:
        return parse_sender_entry(raw, max_length=limits.entry_max_length)

    def subject(raw: str) -> str:
        return parse_subject_entry(
            raw, min_length=limits.subject_entry_min_length, max_length=limits.entry_max_length
        )

    def condition(raw: str) -> str:
        (name,) = parse_header_conditions([raw])
        return name

    return {
        "sender_block": (sender, sender_entry_key),
        "allow": (sender, sender_entry_key),
        "subject_block": (subject, subject_entry_key),
        "header_conditions": (condition, str),
    }


def parse_list(
    text: str, file: str, validate: Validator, duplicate_key: DuplicateKey = str
) -> tuple[str, ...]:
    """Entries of one list file, in file order; ConfigError(file, line, reason) on a bad line."""
    entries: list[str] = []
    first_line: dict[str, tuple[int, str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        raw = line.strip()
        if not raw or raw.startswith("#"):
            continue
        try:
            entry = validate(raw)
        except EntryError as exc:
            # The validator's messages quote the entry, as on the web form.
            raise ConfigError(file, number, "; ".join(exc.messages)) from None
        key = duplicate_key(entry)
        if key in first_line:
            line_before, entry_before = first_line[key]
            same = "" if entry_before == entry else f" as {entry_before!r}"
            raise ConfigError(
                file, number, f"duplicate entry {entry!r}: already on line {line_before}{same}"
            )
        first_line[key] = (number, entry)
        entries.append(entry)
    return tuple(entries)


def load_site_filters(filters_dir: Path, limits: LimitsPolicy, sources: Sources) -> SiteFilters:
    """Load every known list file from ``filters_dir`` (entry lengths from ``limits``)."""
    names = sources.list_dir(filters_dir)
    if names is None:
        raise ConfigError(str(filters_dir), None, "filters directory not found (see paths.filters_dir)")
    for name in names:
        if name.endswith(LIST_SUFFIX) and not name.startswith(".") and name not in FILES:
            raise ConfigError(
                str(filters_dir / name),
                None,
                f"unknown filters file {name}{did_you_mean(name, FILES)}"
                f" (known: {', '.join(FILES)})",
            )
    validators = _validators(limits)
    lists: dict[str, tuple[str, ...]] = {}
    for name, field in FILES.items():
        path = filters_dir / name
        text = sources.read_text(path)
        validate, duplicate_key = validators[field]
        lists[field] = () if text is None else parse_list(text, str(path), validate, duplicate_key)
    return SiteFilters(
        sender_block=lists["sender_block"],
        subject_block=lists["subject_block"],
        allow=lists["allow"],
        header_conditions=frozenset(lists["header_conditions"]),
    )

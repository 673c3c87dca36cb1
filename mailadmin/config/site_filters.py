"""``filters/``: the postmaster's site-wide entries (SPEC §11) -> :class:`SiteFilters`.

Plain files, one entry per line, ``#`` comment lines and blank lines ignored:

- ``sender_block.list`` and ``allow.list``: From-entry syntax (SPEC §4, §5),
- ``subject_block.list``: subject entries (SPEC §4),
- ``header_conditions.list``: names from ``mailtext.entries.HEADER_CONDITIONS``.

Each line goes through the same validator the subscriber's web form uses
(``mailadmin.mailtext.entries``), so a site entry means exactly what the
same text typed on the page would mean.  A missing file is an empty list; any
other ``*.list`` name is an error, since a misspelt file would block nothing.
"""

from __future__ import annotations

from pathlib import Path

from mailadmin.config._schema import did_you_mean
from mailadmin.config._sources import Sources
from mailadmin.config.model import LimitsPolicy, SiteFilters
from mailadmin.errors import ConfigError, EntryError
from mailadmin.mailtext.entries import EntryKind, check_entries, parse_header_conditions

LIST_SUFFIX = ".list"
FILES: dict[str, str] = {
    "sender_block.list": "sender_block",
    "subject_block.list": "subject_block",
    "allow.list": "allow",
    "header_conditions.list": "header_conditions",
}



def parse_list(text: str, file: str, kind: EntryKind, limits: LimitsPolicy) -> tuple[str, ...]:
    """Entries of one list file, in file order; ConfigError(file, line, reason) on a bad line."""
    typed = ((number, line.strip()) for number, line in enumerate(text.splitlines(), 1))
    entries: list[str] = []
    for checked in check_entries(kind, ((n, raw) for n, raw in typed
                                        if raw and not raw.startswith("#")), limits):
        number, entry = checked.position, checked.entry
        if entry is None:
            # The validator's messages quote the entry, as on the web form.
            raise ConfigError(file, number, "; ".join(p.text for p in checked.problems))
        if checked.first is not None:
            line_before, entry_before = checked.first
            same = "" if entry_before == entry else f" as {entry_before!r}"
            raise ConfigError(
                file, number, f"duplicate entry {entry!r}: already on line {line_before}{same}"
            )
        entries.append(entry)
    return tuple(entries)


def parse_conditions(text: str, file: str) -> frozenset[str]:
    """The names of ``header_conditions.list``; ConfigError(file, line, reason) on a bad line."""
    names: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        raw = line.strip()
        if not raw or raw.startswith("#"):
            continue
        try:
            (name,) = parse_header_conditions([raw])
        except EntryError as exc:
            raise ConfigError(file, number, "; ".join(exc.messages)) from None
        if name in names:
            raise ConfigError(
                file, number, f"duplicate entry {name!r}: already on line {names[name]}"
            )
        names[name] = number
    return frozenset(names)


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
    texts = {field: (str(filters_dir / name), sources.read_text(filters_dir / name))
             for name, field in FILES.items()}

    def entries(field: str, kind: EntryKind) -> tuple[str, ...]:
        file, text = texts[field]
        return () if text is None else parse_list(text, file, kind, limits)

    conditions_file, conditions_text = texts["header_conditions"]
    return SiteFilters(
        sender_block=entries("sender_block", "sender"),
        subject_block=entries("subject_block", "subject"),
        allow=entries("allow", "sender"),
        header_conditions=(frozenset() if conditions_text is None
                           else parse_conditions(conditions_text, conditions_file)),
    )

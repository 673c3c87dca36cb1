"""Turning parsed TOML tables into the frozen dataclasses of ``model.py``.

The dataclasses are the schema: their field names are the keys and their
type hints the TOML types, so a key added to ``model.py`` is accepted here
without a second list to keep in step.  Value rules beyond the type live in
per-key check functions supplied by ``conf.py`` and ``policies.py``.  Every
value carries the :class:`Origin` it came from (file and line, or the
environment variable), so an error names the place to fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import ipaddress
import math
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailadmin.config._sources import locate
from mailadmin.errors import ConfigError

ENVIRONMENT = "environment"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a value was set: a file and line, or ("environment", variable name)."""

    file: str
    location: str | int | None

    def error(self, key_path: str, reason: str) -> ConfigError:
        return ConfigError(self.file, self.location, f"{key_path}: {reason}")


@dataclass(frozen=True, slots=True)
class Value:
    value: Any
    origin: Origin


class Invalid(Exception):
    """A value breaks a rule; the text says which, in words a postmaster acts on."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


# A check takes the typed value and returns it (possibly normalised) or raises Invalid.
Check = Callable[[Any], Any]
# A table check sees the built table and returns (keys involved, reason) or None.
TableCheck = Callable[[Any], "tuple[tuple[str, ...], str] | None"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """The TOML keys of a table dataclass and their types (``source`` is not a key)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init and f.name != "source"}


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _is_network_type(tp: Any) -> bool:
    return set(typing.get_args(tp)) == {ipaddress.IPv4Network, ipaddress.IPv6Network}


def parse_network(text: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise Invalid(f"{text!r} is not a network in CIDR notation (e.g. 192.0.2.0/24, 2001:db8::/32)") from exc
        raise Invalid(f"{text!r} has host bits set; the network is {loose}") from exc


def coerce(value: Any, tp: Any) -> Any:
    """Check a parsed TOML value against the field type; return the model's value."""
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise Invalid(f"must be true or false, got {_describe(value)}")
    if tp is int:
        # bool is an int subclass in Python, but `true` is not a count.
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise Invalid(f"must be an integer, got {_describe(value)}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise Invalid("must be a finite number")
            return float(value)
        raise Invalid(f"must be a number, got {_describe(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise Invalid(f"must be a string, got {_describe(value)}")
    if tp is Path:
        if isinstance(value, str):
            if not value:
                raise Invalid("must not be empty")
            return Path(value)
        raise Invalid(f"must be a path string, got {_describe(value)}")
    if typing.get_origin(tp) is tuple:
        item_type = typing.get_args(tp)[0]
        if not isinstance(value, (list, tuple)):
            raise Invalid(f"must be an array, got {_describe(value)}")
        items: list[Any] = []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise Invalid(f"item {index + 1} must be a string, got {_describe(item)}")
            if _is_network_type(item_type):
                items.append(parse_network(item))
            elif item_type is str:
                items.append(item)
            else:  # pragma: no cover - a model type this loader does not know yet
                raise TypeError(f"unsupported item type {item_type!r}")
        return tuple(items)
    raise TypeError(f"unsupported field type {tp!r}")  # pragma: no cover


_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0"})


def parse_env_value(text: str, tp: Any) -> Any:
    """Turn an environment variable's text into the TOML-typed value for ``tp``."""
    if tp is bool:
        word = text.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        raise Invalid(f"must be true/false, yes/no or 1/0, got {text!r}")
    if tp is int:
        try:
            return int(text.strip())
        except ValueError:
            raise Invalid(f"must be an integer, got {text!r}") from None
    if tp is float:
        try:
            return float(text.strip())
        except ValueError:
            raise Invalid(f"must be a number, got {text!r}") from None
    if typing.get_origin(tp) is tuple:
        return [item.strip() for item in text.split(",") if item.strip()]
    return text


def check_keys(
    raw: Mapping[str, Any], tables: Mapping[str, type], file: str, text: str, *, scope: str = ""
) -> None:
    """Refuse unknown tables and keys (a typo would otherwise silently do nothing)."""
    for table, content in raw.items():
        if table not in tables:
            raise ConfigError(
                file,
                locate(text, (table,)),
                f"unknown table {scope}{table}{did_you_mean(table, tables)}",
            )
        if not isinstance(content, dict):
            raise ConfigError(
                file, locate(text, (table,)), f"{table} must be a table ([{table}]), got {_describe(content)}"
            )
        known = field_types(tables[table])
        for key in content:
            if key not in known:
                raise ConfigError(
                    file,
                    locate(text, (table, key)),
                    f"unknown key {table}.{key}{did_you_mean(key, known)}",
                )


def values_of(raw: Mapping[str, Any], file: str, text: str) -> dict[str, dict[str, Value]]:
    """Wrap every leaf of already key-checked TOML tables with its origin."""
    return {
        table: {key: Value(value, Origin(file, locate(text, (table, key)))) for key, value in content.items()}
        for table, content in raw.items()
    }


def build_table(
    cls: type,
    table: str,
    values: Mapping[str, Value],
    table_origin: Origin,
    checks: Mapping[str, Check],
    table_check: TableCheck | None = None,
    *,
    blame_file: str | None = None,
) -> Any:
    """Build one table dataclass: type-check, value-check, then check the table as a whole.

    Keys missing from ``values`` take the model's default; a key without a
    default is required.  A table check's complaint is reported at the key it
    names, or at a key set in ``blame_file`` when it names several.
    """
    kwargs: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, tp in field_types(cls).items():
        if key not in values:
            f = fields[key]
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise table_origin.error(f"{table}.{key}", "missing; this key has no default")
            continue
        entry = values[key]
        try:
            typed = coerce(entry.value, tp)
            check = checks.get(key)
            kwargs[key] = typed if check is None else check(typed)
        except Invalid as exc:
            raise entry.origin.error(f"{table}.{key}", exc.reason) from None
    built = cls(**kwargs)
    if table_check is not None:
        complaint = table_check(built)
        if complaint is not None:
            candidates, reason = complaint
            chosen = next(
                (k for k in candidates if k in values and values[k].origin.file == blame_file),
                next((k for k in candidates if k in values), None),
            )
            origin = values[chosen].origin if chosen is not None else table_origin
            raise origin.error(f"{table}.{chosen or candidates[0]}", reason)
    return built


# ------------------------------------------------------------------ value checks


def int_range(low: int, high: int | None = None) -> Check:
    def check(value: int) -> int:
        if value < low or (high is not None and value > high):
            bound = f"at least {low}" if high is None else f"between {low} and {high}"
            raise Invalid(f"must be {bound}, got {value}")
        return value

    return check


def seconds(value: float) -> float:
    if not 0 < value <= 300:
        raise Invalid(f"must be more than 0 and at most 300 seconds, got {value:g}")
    return value


def one_of(*choices: str) -> Check:
    def check(value: str) -> str:
        if value not in choices:
            listed = ", ".join(f'"{c}"' for c in choices)
            raise Invalid(f'must be one of {listed}, got "{value}"{did_you_mean(value, choices)}')
        return value

    return check


def non_empty(value: str) -> str:
    if not value.strip():
        raise Invalid("must not be empty")
    return value


def single_line(value: str) -> str:
    """Text that ends up in a mail header or an SMTP reply: no line breaks or control characters."""
    non_empty(value)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise Invalid("must be one line without control characters")
    return value

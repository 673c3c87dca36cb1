"""``policies/``: what the rules are (SPEC §11) -> :class:`Policies`.

``policies/default.toml`` is the policy of every domain; each
``policies/domains/<domain>.toml`` holds only the keys that differ for that
domain and is merged over the default, key by key.  Every value is checked
against the limits the SPEC sets (password rule §1, list sizes §4, auto-reply
window §6, scanner failure §7/§8, unlock maximum §9).
"""

from __future__ import annotations

import re
import string
import zoneinfo
from pathlib import Path
from typing import Any

from mailadmin.config._schema import (
    Check,
    Invalid,
    Origin,
    TableCheck,
    Value,
    build_table,
    check_keys,
    field_types,
    int_range,
    one_of,
    single_line,
    values_of,
)
from mailadmin.config._sources import Sources, locate, parse_toml
from mailadmin.config.model import (
    LimitsPolicy,
    PasswordPolicy,
    Policies,
    Policy,
)
from mailadmin.errors import ConfigError

DEFAULT_FILE = "default.toml"
DOMAINS_DIR = "domains"

TABLES: dict[str, type] = dict(field_types(Policy))

# Lower-case LDH labels, at least two of them, a non-numeric top label.
_DOMAIN = re.compile(r"^(?=.{1,253}$)((?!-)[a-z0-9-]{1,63}(?<!-)\.)+(?!-)(?=.*[a-z])[a-z0-9-]{1,63}(?<!-)$")


def is_domain_name(name: str) -> bool:
    return _DOMAIN.match(name) is not None


# ------------------------------------------------------------------ value checks


def allowed_symbols(value: str) -> str:
    wrong = sorted({ch for ch in value if ch not in string.punctuation})
    if wrong:
        raise Invalid(f"may hold only ASCII symbols, not {''.join(wrong)!r}")
    return value


def home_countries(value: tuple[str, ...]) -> tuple[str, ...]:
    if not value:
        raise Invalid('must name at least one country, e.g. ["JP"]')
    for code in value:
        if not re.fullmatch(r"[A-Z]{2}", code):
            raise Invalid(f"{code!r} is not a two-letter upper-case country code (ISO 3166-1, e.g. \"JP\")")
    duplicates = sorted({c for c in value if value.count(c) > 1})
    if duplicates:
        raise Invalid(f"{duplicates[0]} is listed twice")
    return value


def _threshold(value: float) -> float:
    # SpamAssassin scores are small signed numbers; anything outside this is a typo.
    if not -100 <= value <= 100:
        raise Invalid(f"must be a SpamAssassin score between -100 and 100, got {value:g}")
    return value


_FAIL_MODE = one_of("tempfail", "accept_tagged")


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"{value!r} is not an IANA time zone name (e.g. \"Asia/Tokyo\")") from None
    return value

CHECKS: dict[str, dict[str, Check]] = {
    "password": {
        "min_length": int_range(1, 128),
        "max_length": int_range(1, 128),
        "allowed_symbols": allowed_symbols,
    },
    "limits": {
        "entries_per_submission": int_range(1, 100),
        "entry_max_length": int_range(1, 320),
        "subject_entry_min_length": int_range(1, 320),
        "max_entries_per_list": int_range(1),
        "max_forwarding_destinations": int_range(1, 100),
        "max_per_sender_replies": int_range(0, 1000),
    },
    "mailbox_defaults": {},
    "quarantine": {
        "retention_days": int_range(1, 365),
        "notice_interval_minutes": int_range(1),
    },
    "auto_reply": {"window_hours": int_range(1, 168), "timezone": _timezone},
    "spam_scan": {"threshold": _threshold, "subject_tag": single_line},
    "overseas": {
        "home_countries": home_countries,
        "unlock_max_days": int_range(1, 7),
        "unknown_country": one_of("restricted", "domestic"),
    },
    "scanner_failure": {"virus": _FAIL_MODE, "spam": _FAIL_MODE},
    "login": {
        "max_failures_per_address": int_range(1),
        "max_failures_per_ip": int_range(1),
        "window_minutes": int_range(1, 1440),
    },
    "contracts": {"max_mailboxes": int_range(1, 1000)},
    "contact": {
        "code_ttl_hours": int_range(1, 168),
        "code_max_attempts": int_range(1, 20),
        "max_code_requests_per_address": int_range(1),
        "max_code_requests_per_ip": int_range(1),
        "request_window_minutes": int_range(1, 1440),
        "notice_batch_seconds": int_range(1, 3600),
    },
}


def _password_lengths(policy: PasswordPolicy) -> tuple[tuple[str, ...], str] | None:
    if policy.min_length > policy.max_length:
        return ("min_length", "max_length"), (
            f"min_length {policy.min_length} is more than max_length {policy.max_length}"
        )
    return None


def _subject_lengths(policy: LimitsPolicy) -> tuple[tuple[str, ...], str] | None:
    if policy.subject_entry_min_length > policy.entry_max_length:
        return ("subject_entry_min_length", "entry_max_length"), (
            f"subject_entry_min_length {policy.subject_entry_min_length} "
            f"is more than entry_max_length {policy.entry_max_length}"
        )
    return None


TABLE_CHECKS: dict[str, TableCheck] = {"password": _password_lengths, "limits": _subject_lengths}


# ------------------------------------------------------------------ loading


def _read_values(path: Path, sources: Sources, *, required: bool) -> tuple[dict[str, dict[str, Value]], str]:
    file = str(path)
    text = sources.read_text(path)
    if text is None:
        if required:
            raise ConfigError(file, None, "policy file not found")
        return {}, ""
    raw = parse_toml(text, file)
    check_keys(raw, TABLES, file, text)
    return values_of(raw, file, text), text


def _build_policy(
    values: dict[str, dict[str, Value]], file: str, text: str
) -> Policy:
    tables: dict[str, Any] = {}
    for table, cls in TABLES.items():
        tables[table] = build_table(
            cls,
            table,
            values.get(table, {}),
            Origin(file, locate(text, (table,)) if text else None),
            CHECKS[table],
            TABLE_CHECKS.get(table),
            blame_file=file,
        )
    return Policy(**tables)


def _is_ignored(name: str) -> bool:
    # Hidden files and editor or package-manager leftovers are not policies.
    return name.startswith(".") or not name.endswith(".toml")


def load_policies(policies_dir: Path, sources: Sources) -> Policies:
    """Load ``default.toml`` and every ``domains/<domain>.toml`` merged over it."""
    if sources.list_dir(policies_dir) is None:
        raise ConfigError(str(policies_dir), None, "policies directory not found (see paths.policies_dir)")
    default_path = policies_dir / DEFAULT_FILE
    default_values, default_text = _read_values(default_path, sources, required=True)
    default = _build_policy(default_values, str(default_path), default_text)

    domains: dict[str, Policy] = {}
    domains_dir = policies_dir / DOMAINS_DIR
    for name in sources.list_dir(domains_dir) or []:
        if _is_ignored(name):
            continue
        path = domains_dir / name
        if path.is_dir():
            continue
        domain = name.removesuffix(".toml")
        if not is_domain_name(domain):
            hint = " (use lower case)" if is_domain_name(domain.lower()) else ""
            raise ConfigError(
                str(path), None, f"file name must be <domain>.toml; {domain!r} is not a domain name{hint}"
            )
        own, text = _read_values(path, sources, required=True)
        merged = {table: dict(keys) for table, keys in default_values.items()}
        for table, keys in own.items():
            merged.setdefault(table, {}).update(keys)
        domains[domain] = _build_policy(merged, str(path), text)
    return Policies(default=default, domains=domains)

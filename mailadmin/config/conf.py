"""``conf/mailadmin.toml``: how mailadmin runs (SPEC §11) -> :class:`RuntimeConf`.

Reads the file, applies ``MAILADMIN_<TABLE>_<KEY>`` environment overrides
(validated exactly like the file), checks every value and resolves the
relative paths against the conf file's directory.  Unknown tables and keys are
errors, in the file and in the environment, because a misspelt key would
otherwise leave a default silently in force.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mailadmin.config._schema import (
    ENVIRONMENT,
    Check,
    Invalid,
    Origin,
    TableCheck,
    Value,
    build_table,
    check_keys,
    did_you_mean,
    field_types,
    int_range,
    non_empty,
    one_of,
    parse_env_value,
    seconds,
    values_of,
)
from mailadmin.config._sources import Sources, locate, parse_toml
from mailadmin.config.model import PathsConf, RuntimeConf
from mailadmin.errors import ConfigError

ENV_PREFIX = "MAILADMIN_"
# Variables with the prefix that name something else than a conf key.
ENV_NOT_OVERRIDES = ("MAILADMIN_CONFIG",)
ENV_NOT_OVERRIDE_PREFIXES = ("MAILADMIN_TEST_",)

TABLES: dict[str, type] = dict(field_types(RuntimeConf))
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


# ------------------------------------------------------------------ value checks


def _is_hostname(text: str) -> bool:
    name = text[:-1] if text.endswith(".") else text
    return 0 < len(name) <= 253 and all(_HOST_LABEL.match(label) for label in name.split("."))


def _host(text: str) -> str:
    """A host name or IP address (IPv6 without brackets)."""
    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    if not _is_hostname(text):
        raise Invalid(f"{text!r} is not a host name or IP address")
    return text


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise Invalid(f"port must be a number from 1 to 65535, got {text!r}")
    return int(text)


def split_host_port(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port)."""
    if text.startswith("["):
        end = text.find("]:")
        if end < 0:
            raise Invalid(f"{text!r} must look like [2001:db8::1]:port")
        host = text[1:end]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise Invalid(f"{host!r} in brackets must be an IPv6 address") from None
        return host, _port(text[end + 2 :])
    host, colon, port = text.rpartition(":")
    if not colon or not host:
        raise Invalid(f"{text!r} must be host:port")
    if ":" in host:
        raise Invalid(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:{port}")
    return _host(host), _port(port)


def listen_address(value: str) -> str:
    """``unix:/absolute/path`` or ``inet:host:port`` (Postfix's milter notation)."""
    kind, colon, rest = value.partition(":")
    if colon and kind == "unix":
        if not rest.startswith("/"):
            raise Invalid(f"{value!r}: the socket path after unix: must be absolute")
        return value
    if colon and kind == "inet":
        split_host_port(rest)
        return value
    raise Invalid(f"{value!r} must be unix:/absolute/path or inet:host:port")


def service_address(value: str) -> str:
    """An absolute unix-socket path or ``host:port`` / ``[v6]:port``."""
    if value.startswith("/"):
        return value
    if value.startswith(("unix:", "inet:")):
        raise Invalid(f"{value!r}: write a socket path or host:port, without unix:/inet:")
    split_host_port(value)
    return value


def database_url(value: str) -> str:
    if value.startswith("sqlite:///") and len(value) > len("sqlite:///"):
        return value
    if re.match(r"^postgresql(\+[a-z0-9_]+)?://", value):
        return value
    raise Invalid(
        "must be sqlite:////absolute/path.db or postgresql[+driver]://user@host/dbname, "
        f"got {value!r}"
    )


def http_base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid(f"must be an http:// or https:// URL, got {value!r}")
    if not value.endswith("/"):
        raise Invalid(f"must end with '/', e.g. {value}/")
    return value


def server_name_template(value: str) -> str:
    non_empty(value)
    try:
        rendered = value.format(domain="example.jp")
    except (KeyError, IndexError, ValueError):
        raise Invalid(f"{value!r}: the only placeholder allowed is {{domain}}") from None
    if not _is_hostname(rendered):
        raise Invalid(f"{value!r} does not give a host name")
    return value


def helo_name(value: str) -> str:
    if not _is_hostname(value) and not re.match(r"^\[[0-9A-Fa-f:.]+\]$", value):
        raise Invalid(f"{value!r} is not a host name (or an [address] literal)")
    return value


def log_level(value: str) -> str:
    return str(one_of(*LOG_LEVELS)(value.upper()))


def country_field(value: str) -> str:
    return str(one_of("auto", "country_code", "country.iso_code")(value))


def nameservers(value: tuple[str, ...]) -> tuple[str, ...]:
    """IP addresses, each optionally ``ip:port`` or ``[v6]:port``."""
    for item in value:
        try:
            ipaddress.ip_address(item)
            continue
        except ValueError:
            pass
        host, _port = split_host_port(item)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise Invalid(f"{item!r}: a name server is an IP address (optionally with :port)") from None
    return value


_SCANNER: dict[str, Check] = {
    "address": service_address,
    "timeout_seconds": seconds,
    "max_size_bytes": int_range(1),
}
_LISTENER: dict[str, Check] = {"listen": listen_address}

CHECKS: dict[str, dict[str, Check]] = {
    "database": {"url": database_url, "pool_size": int_range(1, 100), "max_overflow": int_range(0, 100),
                 "rules_cache_entries": int_range(0, 10_000_000)},
    "clamd": _SCANNER,
    "spamd": _SCANNER,
    "relay": {
        "host": _host,
        "port": int_range(1, 65535),
        "timeout_seconds": seconds,
        "helo_name": helo_name,
    },
    "geoip": {"database_path": non_empty, "country_field": country_field},
    "milter": _LISTENER,
    "postfix_policy": _LISTENER,
    "content_filter": {"listen": listen_address},
    "web": {"listen": listen_address, "base_url": http_base_url},
    "metrics": {"listen": listen_address},
    "domains": {"smtp_server": server_name_template, "pop_server": server_name_template},
    "logging": {"level": log_level},
    "paths": {},
    "limits": {
        "max_message_bytes": int_range(65_536, 2**31 - 1),
        "max_header_fields": int_range(50, 100_000),
        "max_header_bytes": int_range(16_384, 64 * 1024 * 1024),
        "max_mime_depth": int_range(5, 100),
    },
    "dns": {"nameservers": nameservers, "timeout_seconds": seconds},
    "quarantine_links": {"secret_file": non_empty},
    "srs": {"listen": listen_address, "max_age_days": int_range(1, 1000)},
}


def _srs_table(srs: Any) -> tuple[tuple[str, ...], str] | None:
    if srs.domain and not _is_hostname(srs.domain):
        return ("domain",), f"{srs.domain!r} is not a domain name"
    if any(len(s) < 16 for s in srs.secrets):
        return ("secrets",), "every secret must be at least 16 characters long"
    if srs.enabled and not srs.domain:
        return ("domain", "enabled"), "SRS is enabled: set the domain forwarded copies are sent from"
    if srs.enabled and not srs.secrets:
        return ("secrets", "enabled"), "SRS is enabled: set at least one secret"
    return None


TABLE_CHECKS: dict[str, TableCheck] = {"srs": _srs_table}


# ------------------------------------------------------------------ environment


def _env_table(rest: str) -> str | None:
    for table in sorted(TABLES, key=len, reverse=True):
        if rest.startswith(table.upper() + "_"):
            return table
    return None


def env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Value]]:
    """``MAILADMIN_<TABLE>_<KEY>`` variables as typed values, by table and key.

    A variable whose table is known but whose key is not is an error: it was
    meant as an override and would otherwise do nothing.
    """
    found: dict[str, dict[str, Value]] = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in ENV_NOT_OVERRIDES:
            continue
        if name.startswith(ENV_NOT_OVERRIDE_PREFIXES):
            continue
        rest = name[len(ENV_PREFIX) :]
        table = _env_table(rest)
        if table is None:
            continue
        key = rest[len(table) + 1 :].lower()
        known = field_types(TABLES[table])
        if key not in known:
            raise ConfigError(
                ENVIRONMENT, name, f"unknown key {table}.{key}{did_you_mean(key, known)}"
            )
        try:
            value = parse_env_value(environ[name], known[key])
        except Invalid as exc:
            raise ConfigError(ENVIRONMENT, name, f"{table}.{key}: {exc.reason}") from None
        found.setdefault(table, {})[key] = Value(value, Origin(ENVIRONMENT, name))
    return found


# ------------------------------------------------------------------ loading


def _resolve(base: Path, path: Path) -> Path:
    return Path(os.path.normpath(base / path))


def _listener_clash(conf: RuntimeConf, origins: dict[str, dict[str, Value]], file: str) -> None:
    seen: dict[str, str] = {}
    listeners: list[tuple[str, str, bool]] = [
        ("milter", conf.milter.listen, conf.milter.enabled),
        ("postfix_policy", conf.postfix_policy.listen, conf.postfix_policy.enabled),
        ("content_filter", conf.content_filter.listen, conf.content_filter.enabled),
        ("web", conf.web.listen, conf.web.enabled),
        ("metrics", conf.metrics.listen, conf.metrics.enabled),
    ]
    for table, listen, enabled in listeners:
        if not enabled:
            continue
        if listen in seen:
            value = origins.get(table, {}).get("listen")
            origin = value.origin if value is not None else Origin(file, None)
            raise origin.error(f"{table}.listen", f"{listen} is already used by {seen[listen]}.listen")
        seen[listen] = table


def _relay_loop(conf: RuntimeConf, origins: dict[str, dict[str, Value]], file: str) -> None:
    # The relay must be an MTA listener that does not run mailadmin again:
    # relaying into our own content filter would send every message round forever.
    cf = conf.content_filter
    if not (cf.enabled and cf.listen.startswith("inet:")):
        return
    host, port = split_host_port(cf.listen[len("inet:") :])
    if (host, port) == (conf.relay.host, conf.relay.port):
        value = origins.get("relay", {}).get("port") or origins.get("relay", {}).get("host")
        origin = value.origin if value is not None else Origin(file, None)
        raise origin.error("relay.port", "relays into the content filter's own listener")


def load_runtime_conf(
    config_file: Path, environ: Mapping[str, str], sources: Sources
) -> RuntimeConf:
    """Read, override from ``environ``, validate and return the runtime configuration."""
    file = str(config_file)
    text = sources.read_text(config_file)
    if text is None:
        raise ConfigError(file, None, "configuration file not found")
    raw = parse_toml(text, file)
    check_keys(raw, TABLES, file, text)
    values = values_of(raw, file, text)
    for table, overrides in env_overrides(environ).items():
        values.setdefault(table, {}).update(overrides)

    tables: dict[str, Any] = {}
    for table, cls in TABLES.items():
        table_origin = Origin(file, locate(text, (table,)))
        tables[table] = build_table(
            cls,
            table,
            values.get(table, {}),
            table_origin,
            CHECKS[table],
            TABLE_CHECKS.get(table),
        )
    base = Path(os.path.abspath(config_file)).parent
    paths: PathsConf = tables["paths"]
    tables["paths"] = PathsConf(
        policies_dir=_resolve(base, paths.policies_dir),
        filters_dir=_resolve(base, paths.filters_dir),
    )
    geoip = tables["geoip"]
    if not Path(geoip.database_path).is_absolute():
        tables["geoip"] = dataclasses.replace(
            geoip, database_path=str(_resolve(base, Path(geoip.database_path)))
        )
    links = tables["quarantine_links"]
    if not Path(links.secret_file).is_absolute():
        tables["quarantine_links"] = dataclasses.replace(
            links, secret_file=str(_resolve(base, Path(links.secret_file)))
        )
    conf = RuntimeConf(**tables, source=Path(os.path.abspath(config_file)))
    _listener_clash(conf, values, file)
    _relay_loop(conf, values, file)
    return conf


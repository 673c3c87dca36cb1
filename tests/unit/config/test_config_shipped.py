"""The shipped conf/, policies/ and filters/ load as they are, and keep every key
present and commented (SPEC §11; DESIGN: "every key present and commented")."""

from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
import typing
from pathlib import Path

import pytest

from mailadmin import paths
from mailadmin.config import CONFIG_ENV, load_all, resolve_config_file
from mailadmin.config.model import Policy, RuntimeConf
from mailadmin.config.site_filters import FILES

SHIPPED_CONF = paths.shipped("conf") / "mailadmin.toml"
SHIPPED_DEFAULT_POLICY = paths.shipped("policies") / "default.toml"


def _keys(cls: type) -> list[tuple[str, str]]:
    """(table, key) for every key of a two-level config dataclass."""
    hints = typing.get_type_hints(cls)
    pairs: list[tuple[str, str]] = []
    for table in dataclasses.fields(cls):
        if table.name == "source":
            continue
        pairs.extend((table.name, f.name) for f in dataclasses.fields(hints[table.name]))
    return pairs


RUNTIME_KEYS = _keys(RuntimeConf)
POLICY_KEYS = _keys(Policy)


def test_key_tables_cover_every_table_of_the_model() -> None:
    assert {t for t, _ in RUNTIME_KEYS} == {f.name for f in dataclasses.fields(RuntimeConf)} - {"source"}
    assert {t for t, _ in POLICY_KEYS} == {f.name for f in dataclasses.fields(Policy)}
    assert ("clamd", "timeout_seconds") in RUNTIME_KEYS
    assert ("overseas", "exempt_networks") in POLICY_KEYS


def _is_commented(lines: list[str], table: str, key: str) -> bool:
    """The key's line has a trailing comment or a comment line right above it."""
    current = ""
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("["):
            current = stripped.strip("[]").strip()
            continue
        if current == table and stripped.split("=")[0].strip() == key:
            above = lines[index - 1].strip() if index else ""
            return "#" in line.split("=", 1)[1] or above.startswith("#")
    raise AssertionError(f"{table}.{key} not found")


@pytest.mark.parametrize(("table", "key"), RUNTIME_KEYS)
def test_shipped_conf_sets_and_comments_every_runtime_key(table: str, key: str) -> None:
    text = SHIPPED_CONF.read_text(encoding="utf-8")
    assert key in tomllib.loads(text)[table]
    assert _is_commented(text.splitlines(), table, key)


@pytest.mark.parametrize(("table", "key"), POLICY_KEYS)
def test_shipped_default_policy_sets_and_comments_every_policy_key(table: str, key: str) -> None:
    text = SHIPPED_DEFAULT_POLICY.read_text(encoding="utf-8")
    assert key in tomllib.loads(text)[table]
    assert _is_commented(text.splitlines(), table, key)


def test_shipped_configuration_loads_with_production_defaults() -> None:
    config = load_all(SHIPPED_CONF)
    conf = config.conf
    assert conf.source == SHIPPED_CONF.resolve()
    assert conf.database.url == "sqlite:////var/lib/mailadmin/mailadmin.db"
    assert conf.clamd.address == "/run/clamav/clamd.ctl"
    assert conf.spamd.address == "127.0.0.1:783"
    # The relay is the MTA listener that does not run mailadmin again (SPEC §10).
    assert (conf.relay.host, conf.relay.port) == ("127.0.0.1", 10026)
    assert conf.milter.listen == "unix:/var/spool/postfix/mailadmin/milter.sock"
    assert conf.postfix_policy.listen == "inet:127.0.0.1:10040"
    assert conf.web.listen == "inet:127.0.0.1:8080"
    assert conf.content_filter.enabled is False
    assert conf.geoip.database_path == "/var/lib/mailadmin/geoip/dbip-country.mmdb"
    # The checkout works as-is: paths point at the folders beside conf/.
    assert conf.paths.policies_dir == paths.shipped("policies").resolve()
    assert conf.paths.filters_dir == paths.shipped("filters").resolve()


def test_shipped_policies_follow_the_spec_defaults() -> None:
    policy = load_all(SHIPPED_CONF).policies.default
    assert (policy.password.min_length, policy.password.max_length) == (6, 32)
    assert policy.password.allowed_symbols == "%+-./:=@^_"
    assert policy.limits.entries_per_submission == 20
    assert policy.limits.entry_max_length == 320
    assert policy.quarantine.retention_days == 7
    assert policy.auto_reply.window_hours == 24
    assert policy.overseas.unlock_max_days == 7
    assert policy.overseas.home_countries == ("JP",)
    assert policy.overseas.exempt_networks == ()
    assert policy.overseas.unknown_country == "restricted"
    assert (policy.scanner_failure.virus, policy.scanner_failure.spam) == ("tempfail", "tempfail")
    assert policy.spam_scan.threshold == 5.0
    assert policy.spam_scan.subject_tag == "[spam] "


def test_shipped_domain_example_overrides_only_what_it_names() -> None:
    policies = load_all(SHIPPED_CONF).policies
    example = policies.for_domain("Example.NET")
    assert example.quarantine.retention_days == 14
    assert example.overseas.exempt_networks == (ipaddress.ip_network("192.0.2.0/24"),)
    assert example.quarantine.notice_interval_minutes == policies.default.quarantine.notice_interval_minutes
    assert example.password == policies.default.password
    assert policies.for_domain("other.example") is policies.default
    # the demo domain of scripts/run.sh runs on the default policy
    assert policies.for_domain("example.jp") is policies.default


@pytest.mark.parametrize("name", sorted(FILES))
def test_shipped_filters_files_explain_themselves_and_block_nothing(name: str) -> None:
    lines = (paths.shipped("filters") / name).read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# ")
    assert all(not line.strip() or line.lstrip().startswith("#") for line in lines)


def test_shipped_filters_load_empty() -> None:
    filters = load_all(SHIPPED_CONF).filters
    assert filters.sender_block == filters.subject_block == filters.allow == ()
    assert filters.header_conditions == frozenset()


def test_load_all_without_environ_reads_no_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILADMIN_CLAMD_ADDRESS", "not an address")
    assert load_all(SHIPPED_CONF).conf.clamd.address == "/run/clamav/clamd.ctl"


@pytest.mark.parametrize(
    ("cli_value", "environ", "expected"),
    [
        ("/srv/a.toml", {CONFIG_ENV: "/srv/b.toml"}, Path("/srv/a.toml")),
        (None, {CONFIG_ENV: "/srv/b.toml"}, Path("/srv/b.toml")),
        ("", {CONFIG_ENV: "/srv/b.toml"}, Path("/srv/b.toml")),
        (None, {}, None),
        (None, {CONFIG_ENV: ""}, None),
    ],
)
def test_resolve_config_file_prefers_cli_then_environment_then_default(
    cli_value: str | None, environ: dict[str, str], expected: Path | None
) -> None:
    result = resolve_config_file(cli_value, environ)
    assert result == (expected if expected is not None else paths.default_config_file())

"""MAILADMIN_<TABLE>_<KEY> environment overrides: applied over the file,
typed by the field, validated exactly like the file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mailadmin.config import load_all
from mailadmin.errors import ConfigError

if TYPE_CHECKING:
    from conftest import Tree


def test_overrides_replace_file_values(tree: Tree) -> None:
    environ = {
        "MAILADMIN_DATABASE_URL": "postgresql+psycopg://mailadmin@db.example.jp/mailadmin",
        "MAILADMIN_CLAMD_ADDRESS": "127.0.0.1:3310",
        "MAILADMIN_CLAMD_TIMEOUT_SECONDS": "12.5",
        "MAILADMIN_SPAMD_ADDRESS": "[::1]:783",
        "MAILADMIN_SPAMD_MAX_SIZE_BYTES": "1000000",
        "MAILADMIN_POSTFIX_POLICY_LISTEN": "inet:[::1]:10041",
        "MAILADMIN_CONTENT_FILTER_ENABLED": "yes",
        "MAILADMIN_MILTER_ENABLED": "0",
        "MAILADMIN_RELAY_PORT": "2525",
        "MAILADMIN_LOGGING_LEVEL": "debug",
        "MAILADMIN_WEB_BASE_URL": "https://mail.example.jp/admin/",
    }
    conf = load_all(tree.conf_file, environ).conf
    assert conf.database.url == "postgresql+psycopg://mailadmin@db.example.jp/mailadmin"
    assert conf.clamd.address == "127.0.0.1:3310"
    assert conf.clamd.timeout_seconds == 12.5
    assert conf.spamd.address == "[::1]:783"
    assert conf.spamd.max_size_bytes == 1_000_000
    assert conf.postfix_policy.listen == "inet:[::1]:10041"
    assert conf.content_filter.enabled is True
    assert conf.milter.enabled is False
    assert conf.relay.port == 2525
    assert conf.logging.level == "DEBUG"
    assert conf.web.base_url == "https://mail.example.jp/admin/"
    # Untouched keys keep the file's values.
    assert conf.spamd.timeout_seconds == 30.0
    assert conf.relay.host == "127.0.0.1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("YES", True), ("on", True), ("1", True),
     ("false", False), ("No", False), ("off", False), ("0", False)],
)
def test_boolean_words(tree: Tree, text: str, expected: bool) -> None:
    conf = load_all(tree.conf_file, {"MAILADMIN_WEB_ENABLED": text}).conf
    assert conf.web.enabled is expected


def test_path_override_is_relative_to_the_conf_file(tree: Tree) -> None:
    other = tree.root / "site-filters"
    (tree.filters_dir).rename(other)
    conf = load_all(tree.conf_file, {"MAILADMIN_PATHS_FILTERS_DIR": "../site-filters"}).conf
    assert conf.paths.filters_dir == other


def test_override_repairs_a_bad_file_value(tree: Tree) -> None:
    tree.replace("conf/mailadmin.toml", "timeout_seconds = 30", "timeout_seconds = 0")
    conf = load_all(tree.conf_file, {"MAILADMIN_CLAMD_TIMEOUT_SECONDS": "5"}).conf
    assert conf.clamd.timeout_seconds == 5.0


def test_override_supplies_a_key_missing_from_the_file(tree: Tree) -> None:
    tree.replace("conf/mailadmin.toml", 'address = "/run/clamav/clamd.ctl"\n', "")
    conf = load_all(tree.conf_file, {"MAILADMIN_CLAMD_ADDRESS": "/run/clamd.sock"}).conf
    assert conf.clamd.address == "/run/clamd.sock"


@pytest.mark.parametrize(
    "name",
    ["MAILADMIN_CONFIG", "MAILADMIN_TEST_POSTFIX", "MAILADMIN_TEST_CLAMD_ADDRESS", "MAILADMIN_FOO",
     "MAILADMINISTRATOR", "OTHER_CLAMD_ADDRESS"],
)
def test_variables_that_are_not_overrides_are_left_alone(tree: Tree, name: str) -> None:
    conf = load_all(tree.conf_file, {name: "not a valid value: anything"}).conf
    assert conf.clamd.address == "/run/clamav/clamd.ctl"


BAD = [
    ("MAILADMIN_CLAMD_TIMEOUT_SECONDS", "0",
     "clamd.timeout_seconds: must be more than 0 and at most 300 seconds, got 0"),
    ("MAILADMIN_CLAMD_TIMEOUT_SECONDS", "soon", "clamd.timeout_seconds: must be a number, got 'soon'"),
    ("MAILADMIN_RELAY_PORT", "25.5", "relay.port: must be an integer, got '25.5'"),
    ("MAILADMIN_RELAY_PORT", "70000", "relay.port: must be between 1 and 65535, got 70000"),
    ("MAILADMIN_CONTENT_FILTER_ENABLED", "maybe",
     "content_filter.enabled: must be true/false, yes/no or 1/0, got 'maybe'"),
    ("MAILADMIN_POSTFIX_POLICY_LISTEN", "127.0.0.1:10040",
     "postfix_policy.listen: '127.0.0.1:10040' must be unix:/absolute/path or inet:host:port"),
    ("MAILADMIN_SPAMD_ADDRESS", "::1:783", "spamd.address: '::1:783': write an IPv6 address in brackets"),
    ("MAILADMIN_DATABASE_URL", "mysql://db/mailadmin", "database.url: must be sqlite:////absolute/path.db"),
    ("MAILADMIN_DATABASE_URL", "", "database.url: must be sqlite:////absolute/path.db"),
    ("MAILADMIN_LOGGING_LEVEL", "loud", 'logging.level: must be one of "DEBUG"'),
    ("MAILADMIN_CLAMD_TIMOUT_SECONDS", "5", "unknown key clamd.timout_seconds; did you mean timeout_seconds?"),
    ("MAILADMIN_POSTFIX_POLICY_ADDRESS", "inet:127.0.0.1:1", "unknown key postfix_policy.address"),
    ("MAILADMIN_WEB_LISTEN", "inet:127.0.0.1:10040",
     "web.listen: inet:127.0.0.1:10040 is already used by postfix_policy.listen"),
]


@pytest.mark.parametrize(("name", "value", "reason"), BAD)
def test_bad_override_names_the_variable(tree: Tree, name: str, value: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_all(tree.conf_file, {name: value})
    assert caught.value.file == "environment"
    assert caught.value.location == name
    assert reason in caught.value.reason


def test_environment_does_not_hide_file_errors_elsewhere(tree: Tree) -> None:
    tree.replace("conf/mailadmin.toml", "port = 10026", "port = 0")
    with pytest.raises(ConfigError) as caught:
        load_all(tree.conf_file, {"MAILADMIN_CLAMD_ADDRESS": "/run/clamd.sock"})
    assert caught.value.file == str(tree.conf_file)
    assert caught.value.reason.startswith("relay.port:")


def test_overrides_cover_only_the_conf_file(tree: Tree) -> None:
    # Policies are per domain and live in files; no MAILADMIN_QUARANTINE_* exists.
    config = load_all(tree.conf_file, {"MAILADMIN_QUARANTINE_RETENTION_DAYS": "1"})
    assert config.policies.default.quarantine.retention_days == 7
    assert isinstance(config.conf.source, Path)


def test_relative_geoip_path_is_relative_to_the_conf_file(tree: Tree) -> None:
    conf = load_all(tree.conf_file, {"MAILADMIN_GEOIP_DATABASE_PATH": "geoip/country.mmdb"}).conf
    assert conf.geoip.database_path == str(tree.root / "conf" / "geoip" / "country.mmdb")
    absolute = load_all(tree.conf_file, {"MAILADMIN_GEOIP_DATABASE_PATH": "/srv/geo.mmdb"}).conf
    assert absolute.geoip.database_path == "/srv/geo.mmdb"

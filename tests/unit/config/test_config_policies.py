"""policies/default.toml with per-domain overrides merged over it key by key (SPEC §11)."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

import pytest

from mailadmin.config import load_all
from mailadmin.config.policies import is_domain_name
from mailadmin.errors import ConfigError

if TYPE_CHECKING:
    from conftest import Tree

DOMAINS = "policies/domains"


def test_override_changes_only_its_keys_and_follows_the_default_for_the_rest(tree: Tree) -> None:
    tree.replace("policies/default.toml", "notice_interval_minutes = 60", "notice_interval_minutes = 30")
    policies = load_all(tree.conf_file).policies
    example = policies.domains["example.net"]
    assert example.quarantine.retention_days == 14
    # Same table, key not in the override: the default's (edited) value.
    assert example.quarantine.notice_interval_minutes == 30
    assert example.overseas.exempt_networks == (ipaddress.ip_network("192.0.2.0/24"),)
    assert example.overseas.home_countries == policies.default.overseas.home_countries
    assert example.login == policies.default.login
    assert policies.default.quarantine.retention_days == 7


def test_several_domains_each_get_their_own_policy(tree: Tree) -> None:
    (tree.path(DOMAINS) / "example.com.toml").write_text(
        '[scanner_failure]\nspam = "accept_tagged"\n\n[overseas]\nhome_countries = ["JP", "US"]\n'
    )
    policies = load_all(tree.conf_file).policies
    assert sorted(policies.domains) == ["example.com", "example.net"]
    com = policies.for_domain("EXAMPLE.com")
    assert com.scanner_failure.spam == "accept_tagged"
    assert com.scanner_failure.virus == "tempfail"
    assert com.overseas.home_countries == ("JP", "US")
    assert com.quarantine.retention_days == 7
    assert policies.for_domain("example.net").scanner_failure.spam == "tempfail"


def test_empty_override_file_is_the_default(tree: Tree) -> None:
    (tree.path(DOMAINS) / "mail.example.net.toml").write_text("# nothing differs yet\n")
    policies = load_all(tree.conf_file).policies
    assert policies.domains["mail.example.net"] == policies.default


def test_default_file_may_leave_keys_to_the_model(tree: Tree) -> None:
    tree.path("policies/default.toml").write_text("[quarantine]\nretention_days = 3\n")
    policy = load_all(tree.conf_file).policies.default
    assert policy.quarantine.retention_days == 3
    assert policy.quarantine.notice_interval_minutes == 60
    assert policy.password.min_length == 6


@pytest.mark.parametrize(
    "name", [".example.org.toml", "README", "notes.txt", "example.org.toml~", "example.org.toml.dpkg-old"]
)
def test_hidden_and_non_toml_files_are_not_policies(tree: Tree, name: str) -> None:
    (tree.path(DOMAINS) / name).write_text("this is not TOML [\n")
    assert sorted(load_all(tree.conf_file).policies.domains) == ["example.net"]


def test_missing_domains_directory_means_no_overrides(tree: Tree) -> None:
    (tree.path(DOMAINS) / "example.net.toml").unlink()
    tree.path(DOMAINS).rmdir()
    assert load_all(tree.conf_file).policies.domains == {}


def test_override_cannot_break_a_combined_rule_without_being_named(tree: Tree) -> None:
    tree.append("policies/domains/example.net.toml", "\n[limits]\nentry_max_length = 1\n")
    with pytest.raises(ConfigError) as caught:
        load_all(tree.conf_file)
    assert caught.value.file == str(tree.path("policies/domains/example.net.toml"))
    assert caught.value.location == tree.line_of("policies/domains/example.net.toml", "entry_max_length = 1")
    assert caught.value.reason == (
        "limits.entry_max_length: subject_entry_min_length 2 is more than entry_max_length 1"
    )


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("example.jp", True),
        ("mail.example.co.jp", True),
        ("xn--eckwd4c7c.xn--zckzah", True),
        ("a-b.example", True),
        ("1.example", True),
        ("Example.jp", False),
        ("localhost", False),
        ("-a.example", False),
        ("a-.example", False),
        ("a..example", False),
        ("example.123", False),
        ("a_b.example", False),
        ("example.jp.", False),
        ("x" * 64 + ".example", False),
    ],
)
def test_domain_file_names(name: str, valid: bool) -> None:
    assert is_domain_name(name) is valid


def test_auto_reply_timezone_must_be_an_iana_zone(tree: Tree) -> None:
    tree.replace("policies/default.toml", 'timezone = "Asia/Tokyo"', 'timezone = "Japan/Osaka"')
    with pytest.raises(ConfigError) as caught:
        load_all(tree.conf_file)
    assert caught.value.file == str(tree.path("policies/default.toml"))
    assert "auto_reply.timezone" in caught.value.reason and "IANA" in caught.value.reason

"""Broken configuration files stop loading with the file, the line and the reason
(SPEC §11: "Invalid configuration stops startup (or a reload) with the file,
line and reason").

Every case edits a fresh copy of the shipped files in one way and checks the
ConfigError names the edited file, the edited line, and says why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from mailadmin.config import load_all
from mailadmin.errors import ConfigError

if TYPE_CHECKING:
    from conftest import Tree

CONF = "conf/mailadmin.toml"
DEFAULT = "policies/default.toml"
EXAMPLE = "policies/domains/example.net.toml"
SENDERS = "filters/sender_block.list"
SUBJECTS = "filters/subject_block.list"
ALLOW = "filters/allow.list"
CONDITIONS = "filters/header_conditions.list"

LAST = -1  # the location is the last line of the file


@dataclass(frozen=True)
class LastLineWith:
    """The location is the last line containing ``needle`` (the second of two equal lines)."""

    needle: str


@dataclass(frozen=True)
class Broken:
    edit: Callable[[Tree], object]
    file: str  # relative path of the file the error must name
    line: str | LastLineWith | int | None  # a text on the expected line, LAST, or None (no line)
    reason: str  # must appear in the reason


def replace(relative: str, old: str, new: str) -> Callable[[Tree], object]:
    return lambda tree: tree.replace(relative, old, new)


def append(relative: str, text: str) -> Callable[[Tree], object]:
    return lambda tree: tree.append(relative, text)


def both(*edits: Callable[[Tree], object]) -> Callable[[Tree], object]:
    def run(tree: Tree) -> None:
        for edit in edits:
            edit(tree)

    return run


def rename_example(name: str) -> Callable[[Tree], object]:
    def run(tree: Tree) -> None:
        source = tree.path(EXAMPLE)
        source.rename(source.with_name(name))

    return run


def case(
    id: str, edit: Callable[[Tree], object], file: str, line: str | LastLineWith | int | None, reason: str
) -> object:
    return pytest.param(Broken(edit, file, line, reason), id=id)


def conf(id: str, old: str, new: str, reason: str, line: str | LastLineWith | None = None) -> object:
    return case(id, replace(CONF, old, new), CONF, new.splitlines()[0] if line is None else line, reason)


def policy(id: str, old: str, new: str, reason: str) -> object:
    return case(id, replace(DEFAULT, old, new), DEFAULT, new, reason)


CASES = [
    # ---- TOML syntax: the line tomllib reports
    conf("syntax-missing-value", "timeout_seconds = 30", "timeout_seconds = ",
         "TOML syntax error: Invalid value"),
    conf("syntax-unterminated-string", 'level = "INFO"', 'level = "INFO', "TOML syntax error"),
    case("syntax-duplicate-key", replace(CONF, 'level = "INFO"\n', 'level = "INFO"\nlevel = "DEBUG"\n'),
         CONF, 'level = "DEBUG"', "Cannot overwrite a value"),
    policy("syntax-in-policy", "retention_days = 7", "retention_days = = 7", "TOML syntax error"),
    case("syntax-in-domain-file", replace(EXAMPLE, "retention_days = 14", "retention_days = 14 days"),
         EXAMPLE, "retention_days = 14 days", "TOML syntax error"),
    # ---- unknown tables and keys: a typo must not leave a default in force
    conf("unknown-key", "timeout_seconds = 30", "timout_seconds = 30",
         "unknown key clamd.timout_seconds; did you mean timeout_seconds?"),
    conf("unknown-table", "[logging]", "[loging]", "unknown table loging; did you mean logging?"),
    case("unknown-top-level-key", lambda t: t.path(CONF).write_text(
        "debug = true\n" + t.path(CONF).read_text()), CONF, "debug = true", "unknown table debug"),
    policy("unknown-policy-table", "[limits]", "[limit]", "unknown table limit; did you mean limits?"),
    policy("unknown-policy-key", "retention_days = 7", "retention_day = 7",
           "unknown key quarantine.retention_day; did you mean retention_days?"),
    case("unknown-key-in-domain-file", replace(EXAMPLE, "retention_days = 14", "retension_days = 14"),
         EXAMPLE, "retension_days = 14", "unknown key quarantine.retension_days; did you mean retention_days?"),
    # ---- wrong types
    conf("int-given-string", "port = 10026", 'port = "10026"', "relay.port: must be an integer, got a string"),
    conf("int-given-float", "max_size_bytes = 512000", "max_size_bytes = 512000.0",
         "spamd.max_size_bytes: must be an integer, got a number"),
    conf("number-given-bool", "timeout_seconds = 30", "timeout_seconds = true",
         "clamd.timeout_seconds: must be a number, got a boolean"),
    conf("bool-given-string", "enabled = false", 'enabled = "no"',
         "content_filter.enabled: must be true or false, got a string"),
    conf("string-given-int", 'helo_name = "localhost"', "helo_name = 1",
         "relay.helo_name: must be a string, got an integer"),
    policy("policy-bool-given-string", "virus_scan = true", 'virus_scan = "yes"',
           "mailbox_defaults.virus_scan: must be true or false, got a string"),
    policy("threshold-given-string", "threshold = 5.0", 'threshold = "high"',
           "spam_scan.threshold: must be a number, got a string"),
    policy("array-given-string", 'home_countries = ["JP"]', 'home_countries = "JP"',
           "overseas.home_countries: must be an array, got a string"),
    policy("array-item-given-int", "exempt_networks = []", "exempt_networks = [5]",
           "overseas.exempt_networks: item 1 must be a string, got an integer"),
    # ---- conf values
    conf("timeout-zero", "timeout_seconds = 30", "timeout_seconds = 0",
         "clamd.timeout_seconds: must be more than 0 and at most 300 seconds, got 0"),
    conf("timeout-over-300", "timeout_seconds = 30", "timeout_seconds = 301",
         "clamd.timeout_seconds: must be more than 0 and at most 300 seconds, got 301"),
    conf("max-size-zero", "max_size_bytes = 26214400", "max_size_bytes = 0",
         "clamd.max_size_bytes: must be at least 1, got 0"),
    conf("listen-port-too-big", '"inet:127.0.0.1:10040"', '"inet:127.0.0.1:70000"',
         "postfix_policy.listen: port must be a number from 1 to 65535", line="70000"),
    conf("listen-port-zero", '"inet:127.0.0.1:10040"', '"inet:127.0.0.1:0"',
         "postfix_policy.listen: port must be a number from 1 to 65535", line="inet:127.0.0.1:0"),
    conf("listen-unix-relative", '"unix:/var/spool/postfix/mailadmin/milter.sock"',
         '"unix:var/spool/postfix/mailadmin/milter.sock"', "milter.listen",
         line="unix:var/spool"),
    conf("listen-without-scheme", '"inet:127.0.0.1:8080"', '"127.0.0.1:8080"',
         "web.listen: '127.0.0.1:8080' must be unix:/absolute/path or inet:host:port",
         line='listen = "127.0.0.1:8080"'),
    conf("listen-v6-without-brackets", '"inet:127.0.0.1:10040"', '"inet:::1:10040"',
         "write an IPv6 address in brackets", line="inet:::1"),
    conf("listen-bad-host", '"inet:127.0.0.1:10040"', '"inet:bad_host!:10040"',
         "'bad_host!' is not a host name or IP address", line="bad_host"),
    conf("clamd-address-relative-path", '"/run/clamav/clamd.ctl"', '"clamd.ctl"',
         "clamd.address: 'clamd.ctl' must be host:port", line='"clamd.ctl"'),
    conf("spamd-address-without-port", '"127.0.0.1:783"', '"127.0.0.1"',
         "spamd.address: '127.0.0.1' must be host:port", line='address = "127.0.0.1"'),
    conf("spamd-address-port-zero", '"127.0.0.1:783"', '"127.0.0.1:0"',
         "spamd.address: port must be a number from 1 to 65535", line="127.0.0.1:0"),
    conf("spamd-address-with-scheme", '"127.0.0.1:783"', '"inet:127.0.0.1:783"',
         "spamd.address: 'inet:127.0.0.1:783': write a socket path or host:port", line="inet:127.0.0.1:783"),
    conf("database-url-unsupported", 'url = "sqlite:////var', 'url = "mysql:////var',
         "database.url: must be sqlite:////absolute/path.db or postgresql"),
    conf("database-url-relative-sqlite", 'url = "sqlite:////var/lib/mailadmin/mailadmin.db"',
         'url = "sqlite://"', "database.url: must be sqlite:///"),
    conf("logging-level", 'level = "INFO"', 'level = "VERBOSE"',
         'logging.level: must be one of "DEBUG", "INFO", "WARNING", "ERROR", got "VERBOSE"'),
    conf("base-url-without-slash", 'base_url = "http://127.0.0.1:8080/"', 'base_url = "http://127.0.0.1:8080"',
         "web.base_url: must end with '/'"),
    conf("base-url-not-http", 'base_url = "http://127.0.0.1:8080/"', 'base_url = "ftp://mail.example.jp/"',
         "web.base_url: must be an http:// or https:// URL"),
    conf("server-template-bad-placeholder", 'smtp_server = "smtp.{domain}"', 'smtp_server = "smtp.{host}"',
         "domains.smtp_server: 'smtp.{host}': the only placeholder allowed is {domain}"),
    conf("server-template-not-a-host", 'pop_server = "pop.{domain}"', 'pop_server = "pop server"',
         "domains.pop_server: 'pop server' does not give a host name"),
    conf("relay-port-zero", "port = 10026", "port = 0", "relay.port: must be between 1 and 65535, got 0"),
    conf("relay-helo-with-space", 'helo_name = "localhost"', 'helo_name = "mail host"',
         "relay.helo_name: 'mail host' is not a host name"),
    conf("geoip-country-field", 'country_field = "auto"', 'country_field = "country"',
         "geoip.country_field: must be one of"),
    case("relay-into-the-content-filter",
         both(replace(CONF, "enabled = false", "enabled = true"),
              replace(CONF, "port = 10026", "port = 10025")),
         CONF, "port = 10025", "relay.port: relays into the content filter's own listener"),
    conf("two-listeners-one-address", 'listen = "inet:127.0.0.1:8080"', 'listen = "inet:127.0.0.1:10040"',
         "web.listen: inet:127.0.0.1:10040 is already used by postfix_policy.listen",
         line=LastLineWith('listen = "inet:127.0.0.1:10040"')),
    case("required-key-missing", replace(CONF, 'address = "/run/clamav/clamd.ctl"\n', ""),
         CONF, "[clamd]", "clamd.address: missing; this key has no default"),
    case("conf-file-missing", lambda t: t.conf_file.unlink(), CONF, None, "configuration file not found"),
    case("policies-dir-missing", replace(CONF, '"../policies"', '"../policy"'),
         "policy", None, "policies directory not found"),
    case("filters-dir-missing", replace(CONF, '"../filters"', '"../filter"'),
         "filter", None, "filters directory not found"),
    case("default-policy-missing", lambda t: t.path(DEFAULT).unlink(), DEFAULT, None, "policy file not found"),
    # ---- policy values (SPEC §1, §4, §6, §7-§9)
    policy("password-min-zero", "min_length = 6", "min_length = 0",
           "password.min_length: must be between 1 and 128, got 0"),
    policy("password-max-over-128", "max_length = 32", "max_length = 129",
           "password.max_length: must be between 1 and 128, got 129"),
    policy("password-min-over-max", "min_length = 6", "min_length = 40",
           "password.min_length: min_length 40 is more than max_length 32"),
    policy("password-symbols-not-symbols", 'allowed_symbols = "%+-./:=@^_"', 'allowed_symbols = "%+a"',
           "password.allowed_symbols: may hold only ASCII symbols, not 'a'"),
    policy("entries-per-submission-over-100", "entries_per_submission = 20", "entries_per_submission = 101",
           "limits.entries_per_submission: must be between 1 and 100, got 101"),
    policy("entries-per-submission-zero", "entries_per_submission = 20", "entries_per_submission = 0",
           "limits.entries_per_submission: must be between 1 and 100, got 0"),
    policy("entry-max-length-over-320", "entry_max_length = 320", "entry_max_length = 321",
           "limits.entry_max_length: must be between 1 and 320, got 321"),
    policy("subject-min-over-entry-max", "subject_entry_min_length = 2", "subject_entry_min_length = 321",
           "limits.subject_entry_min_length: must be between 1 and 320, got 321"),
    policy("forwarding-destinations-zero", "max_forwarding_destinations = 10", "max_forwarding_destinations = 0",
           "limits.max_forwarding_destinations: must be between 1 and 100, got 0"),
    policy("retention-zero", "retention_days = 7", "retention_days = 0",
           "quarantine.retention_days: must be between 1 and 365, got 0"),
    policy("retention-over-365", "retention_days = 7", "retention_days = 366",
           "quarantine.retention_days: must be between 1 and 365, got 366"),
    policy("notice-interval-zero", "notice_interval_minutes = 60", "notice_interval_minutes = 0",
           "quarantine.notice_interval_minutes: must be at least 1, got 0"),
    policy("auto-reply-window-zero", "window_hours = 24", "window_hours = 0",
           "auto_reply.window_hours: must be between 1 and 168, got 0"),
    policy("auto-reply-window-over-a-week", "window_hours = 24", "window_hours = 169",
           "auto_reply.window_hours: must be between 1 and 168, got 169"),
    policy("unlock-over-7-days", "unlock_max_days = 7", "unlock_max_days = 8",
           "overseas.unlock_max_days: must be between 1 and 7, got 8"),
    policy("home-countries-lower-case", 'home_countries = ["JP"]', 'home_countries = ["jp"]',
           "overseas.home_countries: 'jp' is not a two-letter upper-case country code"),
    policy("home-countries-three-letters", 'home_countries = ["JP"]', 'home_countries = ["JPN"]',
           "overseas.home_countries: 'JPN' is not a two-letter upper-case country code"),
    policy("home-countries-empty", 'home_countries = ["JP"]', "home_countries = []",
           "overseas.home_countries: must name at least one country"),
    policy("home-countries-twice", 'home_countries = ["JP"]', 'home_countries = ["JP", "JP"]',
           "overseas.home_countries: JP is listed twice"),
    policy("exempt-network-host-bits", "exempt_networks = []", 'exempt_networks = ["10.0.0.1/8"]',
           "overseas.exempt_networks: '10.0.0.1/8' has host bits set; the network is 10.0.0.0/8"),
    policy("exempt-network-garbage", "exempt_networks = []", 'exempt_networks = ["192.0.2.0/24", "intranet"]',
           "overseas.exempt_networks: 'intranet' is not a network in CIDR notation"),
    policy("exempt-network-v6-host-bits", "exempt_networks = []", 'exempt_networks = ["2001:db8::1/32"]',
           "'2001:db8::1/32' has host bits set; the network is 2001:db8::/32"),
    policy("unknown-country-mode", 'unknown_country = "restricted"', 'unknown_country = "foreign"',
           'overseas.unknown_country: must be one of "restricted", "domestic", got "foreign"'),
    policy("scanner-failure-virus", 'virus = "tempfail"', 'virus = "accept"',
           'scanner_failure.virus: must be one of "tempfail", "accept_tagged", got "accept"; did you mean accept_tagged?'),
    policy("scanner-failure-spam", 'spam = "tempfail"', 'spam = "reject"',
           'scanner_failure.spam: must be one of "tempfail", "accept_tagged", got "reject"'),
    policy("spam-threshold-absurd", "threshold = 5.0", "threshold = 1000",
           "spam_scan.threshold: must be a SpamAssassin score between -100 and 100, got 1000"),
    policy("subject-tag-empty", 'subject_tag = "[spam] "', 'subject_tag = ""',
           "spam_scan.subject_tag: must not be empty"),
    policy("subject-tag-two-lines", 'subject_tag = "[spam] "', 'subject_tag = "[spam]\\nBcc: x"',
           "spam_scan.subject_tag: must be one line without control characters"),
    policy("login-window-zero", "window_minutes = 15", "window_minutes = 0",
           "login.window_minutes: must be between 1 and 1440, got 0"),
    # ---- per-domain overrides: the domain file is named, even for a combination with the default
    case("domain-value-out-of-range", replace(EXAMPLE, "retention_days = 14", "retention_days = 400"),
         EXAMPLE, "retention_days = 400", "quarantine.retention_days: must be between 1 and 365, got 400"),
    case("domain-bad-network", replace(EXAMPLE, '["192.0.2.0/24"]', '["192.0.2.1/24"]'),
         EXAMPLE, "192.0.2.1/24", "overseas.exempt_networks: '192.0.2.1/24' has host bits set"),
    case("domain-max-below-default-min", append(EXAMPLE, "\n[password]\nmax_length = 4\n"),
         EXAMPLE, "max_length = 4", "password.max_length: min_length 6 is more than max_length 4"),
    case("domain-file-upper-case", rename_example("Example.JP.toml"), "policies/domains/Example.JP.toml",
         None, "file name must be <domain>.toml; 'Example.JP' is not a domain name (use lower case)"),
    case("domain-file-not-a-domain", rename_example("not_a_domain.toml"), "policies/domains/not_a_domain.toml",
         None, "'not_a_domain' is not a domain name"),
    case("domain-file-single-label", rename_example("localhost.toml"), "policies/domains/localhost.toml",
         None, "'localhost' is not a domain name"),
    case("domain-file-named-default", rename_example("default.toml"), "policies/domains/default.toml",
         None, "'default' is not a domain name"),
    case("domain-file-leading-hyphen", rename_example("-bad.example.toml"),
         "policies/domains/-bad.example.toml", None, "'-bad.example' is not a domain name"),
    # ---- filters/: the line of the bad entry, with the validator's own words
    case("sender-bare-local-part", append(SENDERS, "example.net\nuser\n"), SENDERS, LAST,
         "'user': a local part alone can't be matched reliably"),
    case("sender-wildcard", append(SENDERS, "*.example.com\n"), SENDERS, LAST, "wildcards are not used"),
    case("allow-invalid", append(ALLOW, "not an address\n"), ALLOW, LAST, "contains spaces"),
    case("subject-too-short", append(SUBJECTS, "x\n"), SUBJECTS, LAST, "too short"),
    case("subject-half-width-katakana", append(SUBJECTS, "\uff76\uff80\uff76\uff85\n"), SUBJECTS, LAST,
         "half-width katakana"),
    case("header-condition-unknown", append(CONDITIONS, "from_missin\n"), CONDITIONS, LAST,
         "'from_missin' is not a header condition"),
    case("sender-duplicate", append(SENDERS, "example.com\n\nEXAMPLE.COM\n"), SENDERS, LAST,
         "duplicate entry 'example.com': already on line"),
    case("subject-duplicate-full-width", append(SUBJECTS, "sale\n\uff33\uff21\uff2c\uff25\n"), SUBJECTS, LAST,
         "duplicate entry"),
    case("header-condition-duplicate", append(CONDITIONS, "from_missing\nfrom_missing\n"), CONDITIONS, LAST,
         "duplicate entry 'from_missing'"),
    case("unknown-filters-file", lambda t: (t.filters_dir / "sender_blocks.list").write_text("x.example\n"),
         "filters/sender_blocks.list", None,
         "unknown filters file sender_blocks.list; did you mean sender_block.list?"),
    case("filters-file-not-utf8", lambda t: t.path(SENDERS).write_bytes(b"# comment\nexample.com\n\xff\n"),
         SENDERS, LAST, "not valid UTF-8 text"),
]


@pytest.mark.parametrize("broken", CASES)
def test_broken_configuration_names_file_line_and_reason(tree: Tree, broken: Broken) -> None:
    broken.edit(tree)
    with pytest.raises(ConfigError) as caught:
        load_all(tree.conf_file)
    error = caught.value
    assert error.file == str(tree.path(broken.file))
    if broken.line is None:
        assert error.location is None
    elif broken.line == LAST:
        assert error.location == len(tree.path(broken.file).read_bytes().splitlines())
    elif isinstance(broken.line, LastLineWith):
        assert error.location == tree.line_of(broken.file, broken.line.needle, last=True)
    else:
        assert isinstance(broken.line, str)
        assert error.location == tree.line_of(broken.file, broken.line)
    assert broken.reason in error.reason
    assert str(error) == (
        f"{error.file}: {error.reason}" if error.location is None
        else f"{error.file}:{error.location}: {error.reason}"
    )


def test_duplicate_filter_entry_names_both_lines(tree: Tree) -> None:
    tree.append(SENDERS, "example.com\nexample.org\nExample.COM\n")
    last = len(tree.path(SENDERS).read_text().splitlines())
    first = last - 2
    with pytest.raises(ConfigError) as caught:
        load_all(tree.conf_file)
    assert caught.value.location == last
    assert f"already on line {first}" in caught.value.reason


def test_unchanged_copy_loads(tree: Tree) -> None:
    assert load_all(tree.conf_file).conf.source == tree.conf_file

"""The frozen configuration snapshot: ``conf/`` (how it runs), ``policies/``
(what the rules are) and ``filters/`` (site-wide entries).  SPEC §11.

Every field name is the TOML key; units are in the names.  The loader
(``mailadmin.config.load_all``) fills these from files + environment and
validates them; nothing else constructs them except tests.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# ---------------------------------------------------------------- conf/mailadmin.toml


@dataclass(frozen=True, slots=True)
class DatabaseConf:
    url: str = "sqlite:////var/lib/mailadmin/mailadmin.db"
    # PostgreSQL: connections each process keeps open, and how many more it may
    # open at a peak (SQLite ignores both).
    pool_size: int = 5
    max_overflow: int = 10
    # Mailboxes whose rules a process keeps in memory (0: read them per message).
    rules_cache_entries: int = 20_000


@dataclass(frozen=True, slots=True)
class ScannerConf:
    """clamd or spamd: ``address`` is an absolute unix-socket path or ``host:port``."""

    address: str
    timeout_seconds: float
    max_size_bytes: int


@dataclass(frozen=True, slots=True)
class RelayConf:
    """The one SMTP relay for every message the daemon sends (SPEC §10).

    It must not pass mail through mailadmin again, or re-injected copies and
    notices would be filtered twice: Postfix's 127.0.0.1:10026 smtpd with
    ``-o smtpd_milters= -o content_filter=`` (conf/postfix/), hence the port.
    """

    host: str = "127.0.0.1"
    port: int = 10026
    timeout_seconds: float = 30.0
    helo_name: str = "localhost"


@dataclass(frozen=True, slots=True)
class GeoipConf:
    database_path: str = "/var/lib/mailadmin/geoip/dbip-country.mmdb"
    # "auto" reads country_code (ip-location-db layout) or country.iso_code (MaxMind layout)
    country_field: str = "auto"


@dataclass(frozen=True, slots=True)
class DnsConf:
    """The resolver for the forwarding destination's mail exchanger check (SPEC §3).

    ``nameservers`` empty: the system resolver (/etc/resolv.conf); else IP
    addresses, each optionally with a port (``192.0.2.53:5353``, ``[2001:db8::53]:53``).
    """

    nameservers: tuple[str, ...] = ()
    timeout_seconds: float = 3.0


@dataclass(frozen=True, slots=True)
class SrsConf:
    """The Sender Rewriting Scheme of forwarded copies (SPEC §3).

    ``secrets``: the first signs new addresses; the others (previous ones,
    after a rotation) are still accepted when a bounce comes back.
    ``listen``: where the MTA hands over mail for ``domain`` (the bounces).
    """

    enabled: bool = False
    domain: str = ""
    secrets: tuple[str, ...] = ()
    max_age_days: int = 21
    listen: str = "inet:127.0.0.1:10027"


@dataclass(frozen=True, slots=True)
class QuarantineLinksConf:
    """The one-click release/delete links of the quarantine notice (SPEC §8).

    ``secret_file`` holds the HMAC key; created (random, mode 0600) when it does
    not exist.  Several hosts serving the page must share the same file.
    """

    secret_file: str = "/var/lib/mailadmin/quarantine-link.key"


@dataclass(frozen=True, slots=True)
class ListenerConf:
    """A listener: ``unix:/abs/path`` or ``inet:host:port``; ``enabled`` false turns it off."""

    listen: str
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class ContentFilterConf:
    listen: str = "inet:127.0.0.1:10025"
    enabled: bool = False


@dataclass(frozen=True, slots=True)
class WebConf:
    listen: str = "inet:127.0.0.1:8080"
    enabled: bool = True
    base_url: str = "http://127.0.0.1:8080/"


@dataclass(frozen=True, slots=True)
class MetricsConf:
    """The Prometheus endpoint ``/metrics`` of each mailadmin process."""

    listen: str = "inet:127.0.0.1:9125"
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class LimitsConf:
    """What one message may hold before mailadmin refuses it (the milter: 552
    5.3.4 before queue) or leaves it in the MTA's queue (the content filter:
    451, never a bounce after queue).  They bound the memory and time one
    message costs: the milter buffers at most ``max_message_bytes`` and stops
    storing header fields past the limits."""

    max_message_bytes: int = 52_428_800
    max_header_fields: int = 1000
    max_header_bytes: int = 1_048_576
    max_mime_depth: int = 100


@dataclass(frozen=True, slots=True)
class DomainDefaultsConf:
    """Server names shown on the account page when a domain does not set its own;
    ``{domain}`` is replaced by the domain name."""

    smtp_server: str = "smtp.{domain}"
    pop_server: str = "pop.{domain}"


@dataclass(frozen=True, slots=True)
class LoggingConf:
    level: str = "INFO"


@dataclass(frozen=True, slots=True)
class PathsConf:
    """Where policies/ and filters/ are; relative paths are relative to the conf file."""

    policies_dir: Path = Path("policies")
    filters_dir: Path = Path("filters")


@dataclass(frozen=True, slots=True)
class RuntimeConf:
    """Everything in ``conf/mailadmin.toml``."""

    database: DatabaseConf
    clamd: ScannerConf
    spamd: ScannerConf
    relay: RelayConf
    geoip: GeoipConf
    milter: ListenerConf
    postfix_policy: ListenerConf
    content_filter: ContentFilterConf
    web: WebConf
    metrics: MetricsConf
    domains: DomainDefaultsConf
    logging: LoggingConf
    paths: PathsConf
    dns: DnsConf = field(default_factory=DnsConf)
    quarantine_links: QuarantineLinksConf = field(default_factory=QuarantineLinksConf)
    srs: SrsConf = field(default_factory=SrsConf)
    limits: LimitsConf = field(default_factory=LimitsConf)
    source: Path | None = None  # the file it was read from


# ---------------------------------------------------------------- policies/*.toml


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    min_length: int = 6
    max_length: int = 32
    # SPEC §1 character set
    allowed_symbols: str = "%+-./:=@^_"


@dataclass(frozen=True, slots=True)
class LimitsPolicy:
    entries_per_submission: int = 20
    entry_max_length: int = 320
    subject_entry_min_length: int = 2
    max_entries_per_list: int = 1000  # the postmaster's safety cap
    max_forwarding_destinations: int = 10
    max_per_sender_replies: int = 20


@dataclass(frozen=True, slots=True)
class MailboxDefaults:
    """Settings of a newly created mailbox."""

    virus_scan: bool = True
    spam_scan: bool = True
    spam_quarantine: bool = False
    quarantine_notice: bool = False


@dataclass(frozen=True, slots=True)
class QuarantinePolicy:
    retention_days: int = 7
    notice_interval_minutes: int = 60


@dataclass(frozen=True, slots=True)
class AutoReplyPolicy:
    window_hours: int = 24
    # the zone in which a subscriber's auto-reply start and end dates are meant
    timezone: str = "Asia/Tokyo"


@dataclass(frozen=True, slots=True)
class SpamPolicy:
    threshold: float = 5.0
    subject_tag: str = "[spam] "


@dataclass(frozen=True, slots=True)
class OverseasPolicy:
    home_countries: tuple[str, ...] = ("JP",)
    unlock_max_days: int = 7
    exempt_networks: tuple[IPNetwork, ...] = ()
    # what an address the GeoIP data does not know counts as: "restricted" | "domestic"
    unknown_country: str = "restricted"


@dataclass(frozen=True, slots=True)
class ScannerFailurePolicy:
    """SPEC §7, §8: "tempfail" (the MTA retries) or "accept_tagged"
    (deliver with a header saying it was not scanned)."""

    virus: str = "tempfail"
    spam: str = "tempfail"


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    max_failures_per_address: int = 5
    max_failures_per_ip: int = 20
    window_minutes: int = 15


@dataclass(frozen=True, slots=True)
class ContractsPolicy:
    """Seed 002: mailboxes one contract (お客様番号) may hold; a contract's own
    limit (``mailadmin contract set-limit``) overrides it."""

    max_mailboxes: int = 5


@dataclass(frozen=True, slots=True)
class ContactPolicy:
    """Seeds 000, 001, 003: the contact address (連絡先メールアドレス), its one-time
    認証コード, password reset by code, and change notices."""

    code_ttl_hours: int = 24
    code_max_attempts: int = 5
    # code requests (contact confirmation and password reset) per window
    max_code_requests_per_address: int = 5
    max_code_requests_per_ip: int = 20
    request_window_minutes: int = 60
    # changes within this many seconds of the first one go out in one notice
    notice_batch_seconds: int = 60


@dataclass(frozen=True, slots=True)
class Policy:
    """The effective policy of one domain: default.toml merged with domains/<domain>.toml."""

    password: PasswordPolicy = field(default_factory=PasswordPolicy)
    limits: LimitsPolicy = field(default_factory=LimitsPolicy)
    mailbox_defaults: MailboxDefaults = field(default_factory=MailboxDefaults)
    quarantine: QuarantinePolicy = field(default_factory=QuarantinePolicy)
    auto_reply: AutoReplyPolicy = field(default_factory=AutoReplyPolicy)
    spam_scan: SpamPolicy = field(default_factory=SpamPolicy)
    overseas: OverseasPolicy = field(default_factory=OverseasPolicy)
    scanner_failure: ScannerFailurePolicy = field(default_factory=ScannerFailurePolicy)
    login: LoginPolicy = field(default_factory=LoginPolicy)
    contracts: ContractsPolicy = field(default_factory=ContractsPolicy)
    contact: ContactPolicy = field(default_factory=ContactPolicy)


@dataclass(frozen=True, slots=True)
class Policies:
    default: Policy = field(default_factory=Policy)
    domains: dict[str, Policy] = field(default_factory=dict)

    def for_domain(self, domain: str) -> Policy:
        return self.domains.get(domain.lower(), self.default)


# ---------------------------------------------------------------- filters/


@dataclass(frozen=True, slots=True)
class SiteFilters:
    """Site-wide entries applied to every mailbox (SPEC §11), same syntax as a subscriber's."""

    sender_block: tuple[str, ...] = ()
    subject_block: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    header_conditions: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Config:
    conf: RuntimeConf
    policies: Policies
    filters: SiteFilters

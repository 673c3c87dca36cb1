"""overseas: the overseas sending restriction for authenticated submissions (SPEC §9).

A submission authenticated as a mailbox, from a client address whose country
is not a home country, is refused with a permanent error telling the user how
to unlock it — unless the mailbox's unlock is still in force, the address is in
a postmaster-exempt network, or it is private/loopback (domestic).  An address
the GeoIP data does not know follows ``overseas.unknown_country``.  The unlock
ends by itself: ``now < overseas_unlocked_until`` is all that is checked.
Receiving is never restricted; this check runs only in the outbound chain.

It is the only check that needs the GeoIP database, and only for a public
client address: the database is opened on that first lookup, and a database
that cannot be opened is reported as this check's need.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from mailadmin.config.model import Policy
from mailadmin.errors import ConfigError
from mailadmin.store.snapshots import MailboxRules
from mailadmin.verdicts import CheckResult, Pass, Refused

CountryOf = Callable[[str], "str | None"]

# Addresses that never leave the provider's own networks count as domestic
# (SPEC §9).  Spelled out rather than ipaddress's is_private, which also covers
# documentation and benchmarking ranges that are public space in disguise.
DOMESTIC_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # RFC 1918
        "100.64.0.0/10",                                   # RFC 6598 carrier-grade NAT
        "127.0.0.0/8", "169.254.0.0/16",                   # loopback, link-local
        "::1/128", "fc00::/7", "fe80::/10",                # loopback, ULA, link-local
    )
)


@dataclass(frozen=True, slots=True)
class OutboundContext:
    client_address: str | None
    sender_rules: MailboxRules
    policy: Policy
    now: dt.datetime
    country_of: CountryOf
    page_url: str


def refusal_text(page_url: str) -> str:
    # SMTP reply text must stay ASCII: Postfix passes it to clients that may not speak SMTPUTF8.
    return (
        "Sending from outside the home country is restricted for this mailbox. "
        f"Unlock it (overseas sending restriction) on the mailbox admin page: {page_url}"
    )


def client_country(ctx: OutboundContext) -> str:
    """``domestic``/``exempt`` for addresses the rule never restricts, else a country code or ``unknown``."""
    if not ctx.client_address:
        return "domestic"
    try:
        ip = ipaddress.ip_address(ctx.client_address.split("%", 1)[0])
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in ctx.policy.overseas.exempt_networks):
        return "exempt"
    if any(ip in net for net in DOMESTIC_NETWORKS):
        return "domestic"
    try:
        return ctx.country_of(str(ip)) or "unknown"
    except ConfigError as exc:
        raise ConfigError(
            exc.file, "geoip.database_path",
            f"the overseas check (overseas sending restriction of authenticated submissions) "
            f"needs the GeoIP database to place client {ip}: {exc.reason}",
        ) from exc


async def check(ctx: OutboundContext) -> CheckResult:
    where = client_country(ctx)
    overseas = ctx.policy.overseas
    if where in ("domestic", "exempt") or where in overseas.home_countries:
        return Pass(where)
    if where == "unknown" and overseas.unknown_country == "domestic":
        return Pass("unknown=domestic")
    if ctx.sender_rules.is_overseas_unlocked(ctx.now):
        return Pass(f"{where}:unlocked")
    return Refused("overseas", refusal_text(ctx.page_url))

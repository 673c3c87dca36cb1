"""overseas, 国外からのメール送信制限設定 (SPEC §9): an authenticated submission
from a client address whose country is not a home country is ``Refused`` (a
permanent error saying how to unlock), unless the mailbox's unlock is still in
force, the address is in a postmaster-exempt network, or it is private or
loopback.  An address the GeoIP data does not know follows
``overseas.unknown_country``.  The GeoIP answer is given here as a table
(:class:`FakeGeoIP`); the real database is in tests/unit/services and the MTA
hook in tests/integration.  That receiving is never restricted is the outbound
chain's business (tests/unit/engine/test_decide.py)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Any

import pytest

from mailadmin.checks import overseas
from mailadmin.errors import ConfigError
from mailadmin.verdicts import CheckResult, Pass, Refused

from .conftest import NOW, PAGE_URL, FakeGeoIP, outbound_context, policy

COUNTRIES = {
    "8.8.8.8": "US", "8.8.4.4": "US", "1.1.1.1": "AU", "133.0.0.1": "JP",
    "2001:4860::1": "US", "2001:200::1": "JP",
}
REFUSED = Refused("overseas", overseas.refusal_text(PAGE_URL))
DAY = dt.timedelta(days=1)


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


@pytest.mark.parametrize(
    ("client", "unlocked_until", "overseas_policy", "expected"),
    [
        # "from a client IP whose country is not a home country (default JP) are refused"
        pytest.param("8.8.8.8", None, {}, REFUSED, id="us-restricted"),
        pytest.param("1.1.1.1", None, {}, REFUSED, id="au-restricted"),
        pytest.param("133.0.0.1", None, {}, Pass("JP"), id="jp-home"),
        pytest.param("2001:4860::1", None, {}, REFUSED, id="v6-us-restricted"),
        pytest.param("2001:200::1", None, {}, Pass("JP"), id="v6-jp-home"),
        pytest.param("::ffff:8.8.8.8", None, {}, REFUSED, id="v4-mapped-us-restricted"),
        pytest.param("::ffff:133.0.0.1", None, {}, Pass("JP"), id="v4-mapped-jp-home"),
        pytest.param("8.8.8.8", None, {"home_countries": ("JP", "US")}, Pass("US"), id="home-countries-policy"),
        pytest.param("133.0.0.1", None, {"home_countries": ("US",)}, REFUSED, id="jp-not-a-home-country"),
        # "The toggle unlocks until now + 7 days ... The unlock ends by itself at its time"
        pytest.param("8.8.8.8", NOW + DAY, {}, Pass("US:unlocked"), id="unlocked"),
        pytest.param("8.8.8.8", NOW + 7 * DAY, {}, Pass("US:unlocked"), id="unlocked-for-7-days"),
        pytest.param("8.8.8.8", NOW + dt.timedelta(seconds=1), {}, Pass("US:unlocked"), id="unlock-ends-in-a-second"),
        pytest.param("8.8.8.8", NOW, {}, REFUSED, id="unlock-ended-just-now"),
        pytest.param("8.8.8.8", NOW - dt.timedelta(seconds=1), {}, REFUSED, id="unlock-expired-by-itself"),
        pytest.param("8.8.8.8", NOW - 30 * DAY, {}, REFUSED, id="unlock-long-gone"),
        # "Private and loopback ranges count as domestic"
        pytest.param("10.1.2.3", None, {}, Pass("domestic"), id="rfc1918-10"),
        pytest.param("172.16.5.4", None, {}, Pass("domestic"), id="rfc1918-172-16"),
        pytest.param("172.32.0.1", None, {}, REFUSED, id="172-32-is-public-and-unknown"),
        pytest.param("192.168.1.10", None, {}, Pass("domestic"), id="rfc1918-192-168"),
        pytest.param("100.64.1.1", None, {}, Pass("domestic"), id="carrier-grade-nat"),
        pytest.param("127.0.0.1", None, {}, Pass("domestic"), id="v4-loopback"),
        pytest.param("169.254.1.1", None, {}, Pass("domestic"), id="v4-link-local"),
        pytest.param("::1", None, {}, Pass("domestic"), id="v6-loopback"),
        pytest.param("fd00::1", None, {}, Pass("domestic"), id="v6-unique-local"),
        pytest.param("fe80::1%eth0", None, {}, Pass("domestic"), id="v6-link-local-with-zone"),
        pytest.param("::ffff:192.168.1.1", None, {}, Pass("domestic"), id="v4-mapped-private"),
        pytest.param(None, None, {}, Pass("domestic"), id="no-client-address"),
        pytest.param("", None, {}, Pass("domestic"), id="empty-client-address"),
        # "an unknown public address follows policy (default: restricted)"
        pytest.param("203.0.113.9", None, {}, REFUSED, id="unknown-restricted-by-default"),
        pytest.param("203.0.113.9", None, {"unknown_country": "restricted"}, REFUSED, id="unknown-restricted"),
        pytest.param("203.0.113.9", None, {"unknown_country": "domestic"}, Pass("unknown=domestic"),
                     id="unknown-domestic-by-policy"),
        pytest.param("203.0.113.9", NOW + DAY, {}, Pass("unknown:unlocked"), id="unknown-unlocked"),
        pytest.param("not-an-address", None, {}, REFUSED, id="unparsable-address-is-unknown"),
        pytest.param("not-an-address", None, {"unknown_country": "domestic"}, Pass("unknown=domestic"),
                     id="unparsable-address-unknown-domestic"),
        # "postmaster-listed networks (webmail servers, internal relays) are exempt"
        pytest.param("8.8.8.8", None, {"exempt_networks": (net("8.8.8.0/24"),)}, Pass("exempt"), id="exempt-v4"),
        pytest.param("8.8.4.4", None, {"exempt_networks": (net("8.8.8.0/24"),)}, REFUSED, id="outside-exempt-v4"),
        pytest.param("2001:4860::1", None, {"exempt_networks": (net("2001:4860::/32"),)}, Pass("exempt"),
                     id="exempt-v6"),
        pytest.param("::ffff:8.8.8.8", None, {"exempt_networks": (net("8.8.8.0/24"),)}, Pass("exempt"),
                     id="exempt-v4-mapped"),
        pytest.param("203.0.113.9", None, {"exempt_networks": (net("203.0.113.0/24"),)}, Pass("exempt"),
                     id="exempt-unknown-address"),
        pytest.param("192.168.1.10", None, {"exempt_networks": (net("192.168.0.0/16"),)}, Pass("exempt"),
                     id="exempt-named-before-domestic"),
    ],
)
async def test_overseas(client: str | None, unlocked_until: dt.datetime | None,
                        overseas_policy: dict[str, Any], expected: CheckResult) -> None:
    geoip = FakeGeoIP(COUNTRIES)
    ctx = outbound_context(client, unlocked_until=unlocked_until, policy=policy(overseas=overseas_policy),
                           geoip=geoip)
    assert await overseas.check(ctx) == expected
    # the GeoIP data is consulted only for a public address outside the exempt networks
    placed_without_geoip = client in (None, "", "not-an-address") or (
        isinstance(expected, Pass) and expected.detail in ("domestic", "exempt"))
    assert geoip.asked == ([] if placed_without_geoip or client is None else [looked_up(client)])


def looked_up(client: str) -> str:
    """The address the database is asked about: an IPv4-mapped address as IPv4."""
    ip = ipaddress.ip_address(client)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def test_refusal_tells_how_to_unlock() -> None:
    """"a permanent SMTP error whose text tells the user how to unlock it on the page"."""
    text = overseas.refusal_text(PAGE_URL)
    assert PAGE_URL in text and "Unlock" in text and "overseas sending restriction" in text
    assert text.isascii()  # SMTP reply text reaches clients that may not speak SMTPUTF8


async def test_an_unreadable_geoip_database_is_the_checks_need() -> None:
    def broken(ip: str) -> str | None:
        raise ConfigError("/var/lib/mailadmin/geoip.mmdb", None, "no such file")

    with pytest.raises(ConfigError) as raised:
        await overseas.check(outbound_context("8.8.8.8", geoip=broken))
    assert raised.value.location == "geoip.database_path"
    assert "overseas" in raised.value.reason and "8.8.8.8" in raised.value.reason
    assert "no such file" in raised.value.reason
    # a private address never opens the database
    assert await overseas.check(outbound_context("192.168.1.10", geoip=broken)) == Pass("domestic")

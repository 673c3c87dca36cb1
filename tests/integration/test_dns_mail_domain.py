"""The forwarding destination's mail exchanger check (SPEC §3; RFC 5321 §5.1,
RFC 7505) against a real DNS server on loopback (tests/fixtures/dns_server.py)."""

from __future__ import annotations

import socket

import pytest

from mailadmin.config.model import DnsConf
from mailadmin.errors import EntryError, ServiceUnavailable
from mailadmin.services.dns import check_mail_domain
from tests.fixtures.dns_server import DnsServer


@pytest.fixture
def conf(dns_server: DnsServer) -> DnsConf:
    return DnsConf(nameservers=dns_server.nameservers, timeout_seconds=1.0)


async def test_mx_records_in_preference_order(conf: DnsConf, dns_server: DnsServer) -> None:
    found = await check_mail_domain("mx.test", conf)
    assert (found.via, found.hosts) == ("mx", ("mail.mx.test", "backup.mx.test"))
    assert "mx.test. IN MX" in dns_server.queries


@pytest.mark.parametrize(("domain", "host"), [("a-only.test", "192.0.2.26"), ("aaaa-only.test", "2001:db8::26")])
async def test_a_or_aaaa_is_the_implicit_mx(conf: DnsConf, domain: str, host: str) -> None:
    found = await check_mail_domain(domain, conf)
    assert (found.via, found.hosts) == ("a", (host,))


@pytest.mark.parametrize(("domain", "code", "text"), [
    # RFC 7505: a null MX refuses mail even though the name has an A record.
    ("nullmx.test", "forward_null_mx", "accepts no mail (null MX, RFC 7505)"),
    ("txt-only.test", "forward_no_mx", "has no mail exchanger"),
    ("no-such-name.test", "forward_domain_unknown", "does not exist"),
])
async def test_domains_that_take_no_mail_are_refused(conf: DnsConf, domain: str, code: str, text: str) -> None:
    with pytest.raises(EntryError) as info:
        await check_mail_domain(domain, conf)
    (problem,) = info.value.problems
    assert problem.code == code and text in problem.text and domain in problem.text
    assert problem.params == {"domain": domain}


async def test_servfail_is_could_not_check(conf: DnsConf) -> None:
    with pytest.raises(ServiceUnavailable) as info:
        await check_mail_domain("servfail.test", conf)
    assert info.value.service == "dns"
    assert "could not check the mail exchanger of servfail.test" in str(info.value)
    assert "try again" in str(info.value)


async def test_silence_is_a_timeout_not_an_accept(conf: DnsConf) -> None:
    with pytest.raises(ServiceUnavailable) as info:
        await check_mail_domain("silent.test", DnsConf(conf.nameservers, timeout_seconds=0.5))
    assert "timed out" in str(info.value) and "try again" in str(info.value)


async def test_no_server_listening_is_could_not_check() -> None:
    # A UDP port nobody listens on: ICMP unreachable or silence, never an answer.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ServiceUnavailable):
        await check_mail_domain("mx.test", DnsConf((f"127.0.0.1:{port}",), timeout_seconds=0.5))


async def test_outside_the_test_zone_the_catch_all_answers(conf: DnsConf) -> None:
    found = await check_mail_domain("elsewhere.example", conf)
    assert found.hosts == ("mx.elsewhere.example",)

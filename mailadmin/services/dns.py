"""Does a domain accept mail?  The forwarding destination check (SPEC §3).

A new forwarding destination's domain must have a mail exchanger:

- its MX records (RFC 5321 §5.1), any exchange but ".";
- none at all (the name exists, no MX): its A or AAAA records, the implicit
  MX of RFC 5321 §5.1;
- a null MX (RFC 7505: the single MX "0 ." and, we hold, any MX whose
  exchange is ".") says it accepts no mail: refused, with no A/AAAA fallback;
- a name that does not exist (NXDOMAIN), or one with neither MX nor A/AAAA:
  refused.

Each refusal is an ``EntryError`` with its own problem code, shown to the
subscriber or postmaster.  A lookup that fails (timeout, SERVFAIL, no
resolver configuration) is ``ServiceUnavailable("dns", ...)``: the caller
says "could not check, try again" and nothing is saved, never a silent
accept.

Looked up with dnspython's asyncio resolver: the system resolver
(/etc/resolv.conf) unless ``[dns] nameservers`` names others, with
``[dns] timeout_seconds`` for the whole lookup.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
from dns.rdtypes.ANY.MX import MX

from mailadmin.config.model import DnsConf
from mailadmin.errors import EntryError, Problem, ServiceUnavailable

SERVICE = "dns"


@dataclass(frozen=True, slots=True)
class MailExchangers:
    """Where mail for ``domain`` goes: ``via`` is "mx" or "a" (the implicit MX)."""

    domain: str
    via: str
    hosts: tuple[str, ...]


def _nameserver(text: str) -> dns.nameserver.Do53Nameserver:
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        return dns.nameserver.Do53Nameserver(host, int(port))
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return dns.nameserver.Do53Nameserver(host, int(port))
    return dns.nameserver.Do53Nameserver(text, 53)


def make_resolver(conf: DnsConf) -> dns.asyncresolver.Resolver:
    """The resolver ``[dns]`` describes; ``ServiceUnavailable`` without a usable one."""
    try:
        resolver = dns.asyncresolver.Resolver(configure=not conf.nameservers)
    except dns.exception.DNSException as exc:  # no /etc/resolv.conf, or no nameserver in it
        raise ServiceUnavailable(SERVICE, f"no resolver configuration: {exc}") from exc
    if conf.nameservers:
        resolver.nameservers = [_nameserver(n) for n in conf.nameservers]
    resolver.timeout = conf.timeout_seconds
    resolver.lifetime = conf.timeout_seconds
    # Validation must see the zone as it is now; a resolver cache would hide a fix.
    resolver.cache = None
    return resolver


def _could_not_check(domain: str, exc: BaseException) -> ServiceUnavailable:
    if isinstance(exc, dns.exception.Timeout):
        why = "the DNS lookup timed out"
    elif isinstance(exc, dns.resolver.NoNameservers):
        why = "no name server answered (SERVFAIL or refused)"
    else:
        why = f"the DNS lookup failed ({type(exc).__name__})"
    return ServiceUnavailable(SERVICE, f"could not check the mail exchanger of {domain}: {why}; try again")


def _problem(code: str, text: str, domain: str) -> EntryError:
    return EntryError(Problem(code, text, {"domain": domain}))


async def _addresses(resolver: dns.asyncresolver.Resolver, name: dns.name.Name,
                     domain: str) -> tuple[str, ...]:
    found: list[str] = []
    for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        try:
            answer = await resolver.resolve(name, rdtype, search=False)
        except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
            continue
        except dns.exception.DNSException as exc:
            raise _could_not_check(domain, exc) from exc
        found.extend(r.to_text() for r in answer)
    return tuple(found)


async def check_mail_domain(domain: str, conf: DnsConf) -> MailExchangers:
    """Where mail for ``domain`` would go; ``EntryError`` when it accepts none,
    ``ServiceUnavailable`` when DNS could not tell."""
    try:
        name = dns.name.from_text(domain.rstrip(".") + ".")
    except dns.exception.DNSException as exc:
        raise _problem("forward_domain_invalid", f"'{domain}' is not a valid domain name.", domain) from exc
    resolver = make_resolver(conf)
    try:
        answer = await resolver.resolve(name, dns.rdatatype.MX, search=False)
    except dns.resolver.NXDOMAIN as exc:
        raise _problem("forward_domain_unknown", f"The domain {domain} does not exist (DNS).", domain) from exc
    except dns.resolver.NoAnswer:
        answer = None
    except dns.exception.DNSException as exc:
        raise _could_not_check(domain, exc) from exc
    if answer is not None:
        records = [r for r in answer if isinstance(r, MX)]
        if any(r.exchange == dns.name.root for r in records):
            raise _problem("forward_null_mx",
                           f"The domain {domain} accepts no mail (null MX, RFC 7505).", domain)
        if records:
            ordered = sorted(records, key=lambda r: r.preference)
            return MailExchangers(domain, "mx", tuple(r.exchange.to_text(omit_final_dot=True) for r in ordered))
    hosts = await _addresses(resolver, name, domain)
    if not hosts:
        raise _problem("forward_no_mx",
                       f"The domain {domain} has no mail exchanger (no MX, A or AAAA record).", domain)
    return MailExchangers(domain, "a", hosts)


async def check_forward_destination(address: str, conf: DnsConf) -> MailExchangers:
    """The mail exchanger check of a (syntactically valid) forwarding address.

    Every path that adds a forward (the page, ``rules import``) calls this; a
    lookup failure becomes the user-facing ``forward_dns_failed`` problem, so
    nothing is saved unchecked.
    """
    domain = address.rpartition("@")[2]
    try:
        return await check_mail_domain(domain, conf)
    except ServiceUnavailable as exc:
        raise EntryError(Problem(
            "forward_dns_failed",
            f"Could not check the mail exchanger of {domain} ({exc.detail}).",
            {"domain": domain},
        )) from exc


async def check_forward_destinations(addresses: dict[str, str], conf: DnsConf) -> None:
    """``check_forward_destination`` for several addresses (by where they came
    from, e.g. ``forwarding[0].address``); one ``EntryError`` naming every one
    that fails, each with its origin."""
    problems: list[Problem] = []
    for where, address in addresses.items():
        try:
            await check_forward_destination(address, conf)
        except EntryError as exc:
            problems += [Problem(p.code, f"{where}: {p.text}", p.params) for p in exc.problems]
    if problems:
        raise EntryError(problems)

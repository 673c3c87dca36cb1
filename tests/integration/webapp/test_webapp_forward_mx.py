"""Adding a forward on the page checks the destination domain's mail exchanger
(SPEC §3; RFC 5321 §5.1, RFC 7505) against the real loopback DNS server of the
test run (tests/fixtures/dns_server.py): refusals and DNS failures go back to
the input page with their own message, in Japanese and English, nothing saved."""

from __future__ import annotations

import html as html_lib

import pytest

from mailadmin.store import rules
from tests.fixtures.dns_server import DnsServer

from .conftest import TARO, Web


def forwards(web: Web) -> list[str]:
    with web.session() as s:
        snapshot = rules.load_rules(s, TARO)
    assert snapshot is not None
    return [f.address for f in snapshot.forwarding]


@pytest.mark.parametrize(("address", "ja", "en"), [
    ("x@nullmx.test", "ドメイン nullmx.test はメールを受け取らない設定です（null MX、RFC 7505）。",
     "The domain nullmx.test accepts no mail (null MX, RFC 7505)."),
    ("x@txt-only.test", "ドメイン txt-only.test にはメールの受け取り先（MX・A・AAAA レコード）がありません。",
     "The domain txt-only.test has no mail exchanger (no MX, A or AAAA record)."),
    ("x@gone.test", "ドメイン gone.test は存在しません（DNS）。", "The domain gone.test does not exist (DNS)."),
    ("x@servfail.test", "ドメイン servfail.test のメールの受け取り先を確認できませんでした",
     "Could not check the mail exchanger of servfail.test (DNS did not answer). Please try again later."),
])
async def test_destination_without_mail_exchanger_is_refused(taro: Web, address: str, ja: str, en: str) -> None:
    await taro.get("/forwarding/add")
    status, page = await taro.post("/forwarding/add/confirm", {"address": address, "keep_copy": "yes"})
    assert status == 400 and ja in html_lib.unescape(page)
    assert 'name="pending"' not in page  # no confirm page
    taro.client.session.cookie_jar.update_cookies({"lang": "en"}, response_url=taro.client.make_url("/"))
    await taro.get("/forwarding/add")
    status, page = await taro.post("/forwarding/add/confirm", {"address": address, "keep_copy": "yes"})
    assert status == 400 and en in html_lib.unescape(page)
    assert forwards(taro) == []


@pytest.mark.parametrize("address", ["x@mx.test", "x@a-only.test", "x@aaaa-only.test"])
async def test_mx_or_address_fallback_is_accepted(taro: Web, dns_server: DnsServer, address: str) -> None:
    domain = address.split("@")[1]
    done = await taro.confirm_and_done("/forwarding/add", {"address": address, "keep_copy": "yes"})
    assert address in done
    assert forwards(taro) == [address]
    assert f"{domain}. IN MX" in dns_server.queries  # really asked, not assumed


async def test_bad_syntax_is_named_without_a_lookup(taro: Web, dns_server: DnsServer) -> None:
    before = len(dns_server.queries)
    await taro.get("/forwarding/add")
    status, page = await taro.post("/forwarding/add/confirm", {"address": "not an address", "keep_copy": "yes"})
    assert status == 400 and "メールアドレスとして正しくありません" in page
    assert len(dns_server.queries) == before

"""The engine with the real scanner clients: real clamd and spamd, and fakes that
refuse, hang or answer garbage, each turned into the policy's fail mode (SPEC §7, §8)."""

from __future__ import annotations

import base64
import io
import zipfile
from contextlib import AbstractAsyncContextManager
from collections.abc import Callable
from typing import Any

import pytest

from mailadmin.engine.decide import Engine
from mailadmin.message import Envelope, Message
from mailadmin.services.clamd import ClamdClient
from mailadmin.services.spamd import SpamdClient
from mailadmin.verdicts import Disposition

from tests.fixtures.scanners import make_message
from tests.fixtures.config import make_config
from tests.unit.engine.conftest import rules_for, with_policy

BOX = rules_for("taro@example.jp")
ENV = Envelope(mail_from="alice@example.org", rcpt_tos=(BOX.address,), client_address="192.0.2.1",
               helo="mx.example.org")


def engine_with(clamd_address: str, spamd_address: str, *, policy: Any = None,
                timeout: float = 10.0) -> Engine:
    cfg = make_config(policy)
    return Engine(
        config=lambda: cfg,
        load_rules=lambda addrs: {a: BOX for a in addrs if a == BOX.address},
        clamd=ClamdClient(clamd_address, timeout, 25_000_000),
        spamd=SpamdClient(spamd_address, timeout, 500_000),
        country_of=lambda ip: None,
    )


def plain(body: str) -> bytes:
    """A text message a real spamd scores as ham on any day: dated now, with a
    Message-ID of the sender's domain (the shared fixture builder)."""
    return make_message(f"{body}\n", subject="Lunch on Friday", to="taro@example.jp")


def with_attachment(name: str, payload: bytes, ctype: str = "application/octet-stream") -> bytes:
    b64 = base64.encodebytes(payload).decode()
    return (
        "From: alice@example.org\r\nTo: taro@example.jp\r\nSubject: file\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n"
        f'--b1\r\nContent-Type: {ctype}; name="{name}"\r\nContent-Transfer-Encoding: base64\r\n'
        f'Content-Disposition: attachment; filename="{name}"\r\n\r\n{b64}\r\n--b1--\r\n'
    ).encode()


def zipped(name: str, payload: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(name, payload)
    return buf.getvalue()


@pytest.mark.parametrize("transport", ["tcp", "unix"])
async def test_real_clamd_finds_eicar_everywhere(clamd_instance: Any, spamd_instance: Any,
                                                 eicar: str, transport: str) -> None:
    address = clamd_instance.tcp_address if transport == "tcp" else clamd_instance.unix_address
    engine = engine_with(address, spamd_instance.tcp_address)
    for raw in (plain(eicar),
                with_attachment("eicar.com", eicar.encode()),
                with_attachment("eicar.zip", zipped("eicar.com", eicar.encode()), "application/zip")):
        o = (await engine.decide(ENV, Message(raw))).outcome(BOX.address)
        assert o.disposition is Disposition.DROP_INFECTED, raw[:200]
        assert "Eicar" in o.reason
    clean = (await engine.decide(ENV, Message(plain("just words")))).outcome(BOX.address)
    assert clean.disposition is Disposition.DELIVER
    assert clean.trace[0].result == "clean"


async def test_real_spamd_tags_gtube(clamd_instance: Any, spamd_instance: Any, gtube: str) -> None:
    engine = engine_with(clamd_instance.tcp_address, spamd_instance.unix_address)
    o = (await engine.decide(ENV, Message(plain(gtube)))).outcome(BOX.address)
    assert o.disposition is Disposition.DELIVER_TAGGED
    assert float(o.reason.split(":")[1].split("/")[0]) >= 5.0
    ham = (await engine.decide(ENV, Message(plain("Lunch on Friday at noon? Regards, Alice")))).outcome(BOX.address)
    assert ham.disposition is Disposition.DELIVER


@pytest.mark.parametrize("behaviour", ["refuse", "hang", "garbage"])
@pytest.mark.parametrize("scanner", ["clamd", "spamd"])
async def test_scanner_failures_follow_policy(clamd_instance: Any, spamd_instance: Any,
                                              fake_scanner: Callable[[str], AbstractAsyncContextManager[str]],
                                              scanner: str, behaviour: str) -> None:
    async with fake_scanner(behaviour) as bad:
        clamd = bad if scanner == "clamd" else clamd_instance.tcp_address
        spamd = bad if scanner == "spamd" else spamd_instance.tcp_address
        tempfail = engine_with(clamd, spamd, timeout=0.5)
        o = (await tempfail.decide(ENV, Message(plain("hello")))).outcome(BOX.address)
        assert o.disposition is Disposition.TEMPFAIL
        assert o.reply is not None and o.reply.code == 451

        accept = engine_with(clamd, spamd, timeout=0.5, policy=with_policy(
            scanner_failure={"virus": "accept_tagged", "spam": "accept_tagged"}))
        o = (await accept.decide(ENV, Message(plain("hello")))).outcome(BOX.address)
        assert o.disposition is Disposition.DELIVER
        assert any(getattr(e, "name", "") == "X-Mailadmin-Not-Scanned" for e in o.effects)

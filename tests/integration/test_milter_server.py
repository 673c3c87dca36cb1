"""The milter server on a free TCP port and on a unix socket, with a real
SQLite store and the real clamd/spamd (SPEC §10).  Two MTA sides drive it:
Debian's ``miltertest`` (OpenDKIM's libmilter-compatible test MTA, Lua
script generated per test) and a small client built on our codec that
speaks like Postfix 3.7 (version 6, every "no reply" flag offered)."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from mailadmin.adapters import milter_codec as mc
from mailadmin.adapters.milter import start_milter
from mailadmin.config.model import Policy, ScannerConf
from mailadmin.listeners import ConnectionTracker, bound_address
from mailadmin.store import quarantine, rules
from mailadmin.wiring import Runtime
from tests.fixtures.config import make_config
from tests.fixtures.databases import Backend
from tests.fixtures.geo import build_test_mmdb
from tests.fixtures.runtime import build_runtime
from tests.fixtures.scanners import make_message

MILTERTEST = "/usr/bin/miltertest"
NOW = dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.timezone.utc)
POSTFIX_OFFER = mc.OptNeg(6, mc.Action(0x3F), mc.Proto(0x1FFFFF))
FINAL = (mc.Accept, mc.Continue, mc.Reject, mc.Tempfail, mc.Discard, mc.ReplyCode)
COUNTRIES = {"JP": ("192.0.2.0/24",), "US": ("203.0.113.0/24",)}  # the clients below: 192.0.2.10, 203.0.113.9
IO_TIMEOUT_SECONDS = 30.0


@pytest.fixture
def database_url(backend: Backend, tmp_path: Path) -> str:
    """A migrated, empty database on SQLite or PostgreSQL (the ``backend`` parameter)."""
    return backend.migrated(tmp_path, "mail")


# ---------------------------------------------------------------- the daemon side


@pytest.fixture(scope="module")
def countries_mmdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_test_mmdb(tmp_path_factory.mktemp("milter-geo") / "countries.mmdb", networks=COUNTRIES)


def seed(session: Session, policy: Policy) -> None:
    rules.set_spam_settings(session, "taro@example.jp", scan=True, quarantine=False, notice=False)
    rules.set_spam_settings(session, "hanako@example.jp", scan=True, quarantine=True, notice=False)


def milter_runtime(url: str, clamd: str, spamd: str, mmdb: Path) -> Runtime:
    config = make_config(database_url=url, clamd=ScannerConf(clamd, 10.0, 25_000_000),
                         spamd=ScannerConf(spamd, 20.0, 500_000), geoip_path=mmdb)
    return build_runtime(config, clock=lambda: NOW, mailboxes=("taro@example.jp", "hanako@example.jp"),
                         seed=seed)


@dataclass
class Milter:
    runtime: Runtime
    address: str        # inet:host:port or unix:/path (ours)
    miltertest: str     # the same in miltertest's syntax


@pytest.fixture(params=["tcp", "unix"])
async def milter(database_url: str, request: pytest.FixtureRequest, tmp_path: Path, clamd_instance: Any,
                 spamd_instance: Any, countries_mmdb: Path) -> AsyncIterator[Milter]:
    runtime = milter_runtime(database_url, clamd_instance.tcp_address, spamd_instance.unix_address, countries_mmdb)
    listen = "inet:127.0.0.1:0" if request.param == "tcp" else f"unix:{tmp_path}/milter.sock"
    server = await start_milter(listen, runtime)
    address = bound_address(server)
    if address.startswith("inet:"):
        host, _, port = address[5:].rpartition(":")
        theirs = f"inet:{port}@{host}"
    else:
        theirs = address
    try:
        yield Milter(runtime, address, theirs)
    finally:
        server.close()
        await server.wait_closed()


# ---------------------------------------------------------------- a Postfix-like MTA side


class MtaClient:
    """The MTA side over our codec; honours the "no reply" flags negotiated."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.protocol = mc.Proto(0)

    @classmethod
    async def connect(cls, address: str) -> MtaClient:
        if address.startswith("unix:"):
            reader, writer = await asyncio.open_unix_connection(address[5:])
        else:
            host, _, port = address[5:].rpartition(":")
            reader, writer = await asyncio.open_connection(host, int(port))
        client = cls(reader, writer)
        reply = await client.ask(POSTFIX_OFFER)
        assert isinstance(reply[0], mc.OptNegReply)
        client.protocol = reply[0].protocol
        return client

    async def read(self) -> mc.Response:
        length = mc.parse_length(await asyncio.wait_for(self.reader.readexactly(4), IO_TIMEOUT_SECONDS))
        packet = await asyncio.wait_for(self.reader.readexactly(length), IO_TIMEOUT_SECONDS)
        return mc.decode_response(packet[:1], packet[1:])

    def send(self, command: mc.Command) -> None:
        self.writer.write(mc.encode_command(command))

    async def ask(self, command: mc.Command) -> list[mc.Response]:
        """Send; read the answer unless "no reply" was negotiated for it.  At
        end of message, read the change requests up to the final verdict."""
        self.send(command)
        await self.writer.drain()
        no_reply = {mc.Connect: mc.Proto.NR_CONN, mc.Helo: mc.Proto.NR_HELO, mc.Mail: mc.Proto.NR_MAIL,
                    mc.Rcpt: mc.Proto.NR_RCPT, mc.Header: mc.Proto.NR_HDR, mc.Body: mc.Proto.NR_BODY}
        bit = no_reply.get(type(command))
        if isinstance(command, (mc.Macros, mc.Abort, mc.Quit)) or (bit is not None and self.protocol & bit):
            return []
        out = [await self.read()]
        if isinstance(command, mc.EndOfMessage):
            while not isinstance(out[-1], FINAL):
                out.append(await self.read())
        return out

    async def message(self, raw: bytes, mail_from: str, rcpts: Sequence[str], *,
                      client: str = "192.0.2.10", macros: dict[str, str] | None = None,
                      queue_id: str = "4QTest1") -> list[mc.Response]:
        """One message as Postfix sends it; the MAIL answer if it ends the
        transaction, else the end-of-message answers."""
        await self.ask(mc.Macros(b"C", {"j": "mx.example.jp", "{daemon_name}": "mx"}))
        await self.ask(mc.Connect("client.example.org", "4", 40000, client))
        await self.ask(mc.Helo("client.example.org"))
        await self.ask(mc.Macros(b"M", macros or {}))
        mail = await self.ask(mc.Mail((f"<{mail_from}>",)))
        if mail != [mc.Continue()]:
            await self.ask(mc.Abort())
            return mail
        for rcpt in rcpts:
            await self.ask(mc.Rcpt((f"<{rcpt}>",)))
        head, _, body = raw.partition(b"\r\n\r\n")
        for line in head.replace(b"\r\n\t", b"\n\t").replace(b"\r\n ", b"\n ").split(b"\r\n"):
            name, _, value = line.decode().partition(":")
            await self.ask(mc.Header(name, value.removeprefix(" ")))
        for start in range(0, len(body), 65535):
            await self.ask(mc.Body(body[start:start + 65535]))
        await self.ask(mc.Macros(b"E", {"i": queue_id}))
        return await self.ask(mc.EndOfMessage())

    async def close(self) -> None:
        self.send(mc.Quit())
        self.writer.close()
        await self.writer.wait_closed()


def spam_message(gtube: str) -> bytes:
    return make_message(f"Buy now.\n\n{gtube}\n", subject="Great offer", to="taro@example.jp")


# ---------------------------------------------------------------- our client


async def test_spam_is_tagged_for_one_and_quarantined_for_the_other(milter: Milter, gtube: str) -> None:
    client = await MtaClient.connect(milter.address)
    try:
        answer = await client.message(spam_message(gtube), "spammer@example.org",
                                      ["taro@example.jp", "hanako@example.jp"])
    finally:
        await client.close()
    assert answer[-1] == mc.Accept()
    assert mc.DelRcpt("<hanako@example.jp>") in answer
    assert mc.ChangeHeader(1, "Subject", "[spam] Great offer") in answer
    assert mc.InsertHeader(0, "X-Spam-Flag", "YES") in answer
    status = [a for a in answer if isinstance(a, mc.InsertHeader) and a.name == "X-Spam-Status"]
    assert status and status[0].value.startswith("Yes, score=") and "GTUBE" in status[0].value
    with milter.runtime.store.session_factory() as session:
        [item] = quarantine.list_items(session, "hanako@example.jp")
        assert quarantine.list_items(session, "taro@example.jp") == []
        assert item.sender == "spammer@example.org" and item.subject == "Great offer"


async def test_several_messages_on_one_connection(milter: Milter, gtube: str) -> None:
    client = await MtaClient.connect(milter.address)
    try:
        for n in range(3):
            clean = await client.message(make_message(f"Lunch number {n}?"), "alice@example.org",
                                         ["taro@example.jp", "friend@example.org"], queue_id=f"Q{n}")
            assert clean == [mc.Accept()], n
        spam = await client.message(spam_message(gtube), "x@example.org", ["hanako@example.jp"])
        assert spam == [mc.Discard()]  # the only recipient's copy is in quarantine
    finally:
        await client.close()


async def test_overseas_submission_is_refused_at_mail(milter: Milter) -> None:
    client = await MtaClient.connect(milter.address)
    try:
        [refusal] = await client.message(make_message(), "taro@example.jp", ["friend@example.org"],
                                         client="203.0.113.9", macros={"{auth_authen}": "taro@example.jp"})
        assert isinstance(refusal, mc.ReplyCode)
        assert (refusal.code, refusal.status) == (554, "5.7.1")
        assert "https://mail.example.jp/" in refusal.text
        # the same login from home goes on
        home = await client.message(make_message(), "taro@example.jp", ["friend@example.org"],
                                    client="192.0.2.10", macros={"{auth_authen}": "taro@example.jp"})
        assert home == [mc.Accept()]
    finally:
        await client.close()


async def test_clamd_down_is_a_451(database_url: str, tmp_path: Path, spamd_instance: Any, countries_mmdb: Path,
                                   fake_scanner: Callable[[str], AbstractAsyncContextManager[str]]) -> None:
    async with fake_scanner("refuse") as dead_clamd:
        runtime = milter_runtime(database_url, dead_clamd, spamd_instance.tcp_address, countries_mmdb)
        server = await start_milter("inet:127.0.0.1:0", runtime)
        try:
            client = await MtaClient.connect(bound_address(server))
            [answer] = await client.message(make_message(), "alice@example.org", ["taro@example.jp"])
            await client.close()
        finally:
            server.close()
    assert isinstance(answer, mc.ReplyCode)
    assert (answer.code, answer.status) == (451, "4.7.1")


async def test_a_malformed_packet_closes_the_connection(milter: Milter) -> None:
    client = await MtaClient.connect(milter.address)
    client.writer.write(b"\x00\x00\x00\x00")  # length 0: no command byte
    await client.writer.drain()
    assert await asyncio.wait_for(client.reader.read(), IO_TIMEOUT_SECONDS) == b""
    client.writer.close()


async def test_closing_the_server_closes_idle_connections(database_url: str, tmp_path: Path, clamd_instance: Any,
                                                          spamd_instance: Any, countries_mmdb: Path) -> None:
    runtime = milter_runtime(database_url, clamd_instance.tcp_address, spamd_instance.tcp_address, countries_mmdb)
    server = await start_milter(f"unix:{tmp_path}/m.sock", runtime)
    client = await MtaClient.connect(bound_address(server))
    assert await client.message(make_message(), "a@example.org", ["taro@example.jp"]) == [mc.Accept()]
    server.close()
    # the idle connection ends by itself (no further message is taken)
    assert await asyncio.wait_for(client.reader.read(), IO_TIMEOUT_SECONDS) == b""
    client.writer.close()


async def test_a_message_in_flight_finishes_after_close(database_url: str, tmp_path: Path, clamd_instance: Any,
                                                      spamd_instance: Any, countries_mmdb: Path) -> None:
    runtime = milter_runtime(database_url, clamd_instance.tcp_address, spamd_instance.tcp_address, countries_mmdb)
    connections = ConnectionTracker()
    server = await start_milter("inet:127.0.0.1:0", runtime, connections)
    client = await MtaClient.connect(bound_address(server))
    await client.ask(mc.Connect("client.example.org", "4", 40000, "192.0.2.10"))
    assert await client.ask(mc.Mail(("<a@example.org>",))) == [mc.Continue()]
    await client.ask(mc.Rcpt(("<taro@example.jp>",)))
    drained = asyncio.create_task(connections.drain(IO_TIMEOUT_SECONDS))
    await client.ask(mc.Header("Subject", "late"))
    await client.ask(mc.Body(b"still here\r\n"))
    answer = await client.ask(mc.EndOfMessage())  # (spamd tags this bare message; fine)
    assert answer[-1] == mc.Accept()
    assert await asyncio.wait_for(client.reader.read(), IO_TIMEOUT_SECONDS) == b""
    assert await drained is True
    client.writer.close()
    server.close()


# ---------------------------------------------------------------- Debian's miltertest


def lua_string(text: str) -> str:
    return "\"" + text.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n").replace("\r", "\\r") + "\""


async def run_miltertest(script: str, path: Path) -> str:
    path.write_text(script)
    process = await asyncio.create_subprocess_exec(
        MILTERTEST, "-v", "-s", str(path), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(), IO_TIMEOUT_SECONDS * 2)
    text = out.decode(errors="replace")
    assert process.returncode == 0, text
    return text


def lua_prelude(address: str, client_ip: str) -> str:
    return f"""
local conn = mt.connect({lua_string(address)}, 20, 0.05)
if conn == nil then error("mt.connect failed") end
mt.macro(conn, SMFIC_CONNECT, "j", "mx.example.jp")
if mt.conninfo(conn, "client.example.org", {lua_string(client_ip)}) ~= nil then error("conninfo") end
if mt.helo(conn, "client.example.org") ~= nil then error("helo") end
"""


def lua_message(headers: Sequence[tuple[str, str]], body: str) -> str:
    lines = [f'if mt.header(conn, {lua_string(n)}, {lua_string(v)}) ~= nil then error("header") end'
             for n, v in headers]
    lines.append(f'if mt.bodystring(conn, {lua_string(body)}) ~= nil then error("body") end')
    lines.append('if mt.eom(conn) ~= nil then error("eom") end')
    return "\n".join(lines) + "\n"


def test_miltertest_is_installed() -> None:
    assert shutil.which("miltertest") == MILTERTEST


async def test_miltertest_sees_the_spam_changes_and_the_deleted_recipient(milter: Milter, gtube: str,
                                                                          tmp_path: Path) -> None:
    script = lua_prelude(milter.miltertest, "192.0.2.10") + """
mt.macro(conn, SMFIC_MAIL, "i", "4QLua1")
if mt.mailfrom(conn, "<spammer@example.org>") ~= nil then error("mailfrom") end
if mt.getreply(conn) ~= SMFIR_CONTINUE then error("MAIL not continued") end
if mt.rcptto(conn, "<taro@example.jp>") ~= nil then error("rcpt") end
if mt.rcptto(conn, "<hanako@example.jp>") ~= nil then error("rcpt") end
""" + lua_message([("From", "spammer@example.org"), ("To", "taro@example.jp"), ("Subject", "Great offer"),
                   ("X-Spam-Flag", "NO")], f"Buy now.\r\n\r\n{gtube}\r\n") + """
if mt.getreply(conn) ~= SMFIR_ACCEPT then error("not accepted") end
if not mt.eom_check(conn, MT_HDRCHANGE, "Subject", "[spam] Great offer") then error("subject not tagged") end
if not mt.eom_check(conn, MT_HDRCHANGE, "X-Spam-Flag", "YES") then error("sender's flag not replaced") end
if not mt.eom_check(conn, MT_HDRINSERT, "X-Spam-Status") then error("no X-Spam-Status") end
if not mt.eom_check(conn, MT_RCPTDELETE, "<hanako@example.jp>") then error("quarantined rcpt kept") end
if mt.eom_check(conn, MT_RCPTDELETE, "<taro@example.jp>") then error("tagged rcpt deleted") end
print("spam ok")
mt.disconnect(conn)
"""
    assert "spam ok" in await run_miltertest(script, tmp_path / "spam.lua")
    with milter.runtime.store.session_factory() as session:
        assert [i.sender for i in quarantine.list_items(session, "hanako@example.jp")] == ["spammer@example.org"]


async def test_miltertest_sees_the_overseas_refusal_at_mail(milter: Milter, tmp_path: Path) -> None:
    script = lua_prelude(milter.miltertest, "203.0.113.9") + """
mt.macro(conn, SMFIC_MAIL, "{auth_authen}", "taro@example.jp")
if mt.mailfrom(conn, "<taro@example.jp>") ~= nil then error("mailfrom") end
if mt.getreply(conn) ~= SMFIR_REPLYCODE then error("MAIL not refused") end
print("refused ok")
mt.disconnect(conn)
"""
    assert "refused ok" in await run_miltertest(script, tmp_path / "overseas.lua")


async def test_miltertest_sees_451_when_clamd_is_down(database_url: str, 
        tmp_path: Path, spamd_instance: Any, countries_mmdb: Path,
        fake_scanner: Callable[[str], AbstractAsyncContextManager[str]]) -> None:
    async with fake_scanner("refuse") as dead_clamd:
        runtime = milter_runtime(database_url, dead_clamd, spamd_instance.tcp_address, countries_mmdb)
        server = await start_milter(f"unix:{tmp_path}/down.sock", runtime)
        try:
            script = lua_prelude(f"unix:{tmp_path}/down.sock", "192.0.2.10") + """
if mt.mailfrom(conn, "<alice@example.org>") ~= nil then error("mailfrom") end
if mt.rcptto(conn, "<taro@example.jp>") ~= nil then error("rcpt") end
""" + lua_message([("From", "alice@example.org"), ("Subject", "hello")], "hello\r\n") + """
if mt.getreply(conn) ~= SMFIR_REPLYCODE then error("no reply code") end
-- (miltertest's MT_SMTPREPLY check ends the run with status 1 here, whatever
-- its arguments; the code and enhanced status are checked by the codec
-- client's test_clamd_down_is_a_451)
print("tempfail ok")
mt.disconnect(conn)
"""
            assert "tempfail ok" in await run_miltertest(script, tmp_path / "down.lua")
        finally:
            server.close()

"""The one address syntax of clamd and spamd in conf/mailadmin.toml: an absolute
unix socket path, ``host:port`` or ``[v6]:port`` (SPEC §11)."""

from __future__ import annotations

import pytest

from mailadmin.errors import ConfigError
from mailadmin.services import TcpAddress, UnixAddress, parse_service_address
from mailadmin.services.clamd import ClamdClient
from mailadmin.services.spamd import SpamdClient


@pytest.mark.parametrize(("text", "parsed"), [
    ("/run/clamav/clamd.ctl", UnixAddress("/run/clamav/clamd.ctl")),
    ("/var/spool/postfix/spamd.sock", UnixAddress("/var/spool/postfix/spamd.sock")),
    ("127.0.0.1:3310", TcpAddress("127.0.0.1", 3310)),
    ("localhost:783", TcpAddress("localhost", 783)),
    ("scan.example.jp:1", TcpAddress("scan.example.jp", 1)),
    ("[::1]:3310", TcpAddress("::1", 3310)),
    ("[2001:db8::5]:65535", TcpAddress("2001:db8::5", 65535)),
])
def test_valid_addresses(text: str, parsed: UnixAddress | TcpAddress) -> None:
    assert parse_service_address("clamd", text) == parsed
    assert str(parsed) == text


@pytest.mark.parametrize("text", [
    "", "clamd", "127.0.0.1", ":3310", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
    "127.0.0.1:port", "127.0.0.1:-1", "127.0.0.1: 3310", "127.0.0.1:３３１０",
    "::1:3310", "[::1]", "[::1]3310", "[]:3310", "relative/clamd.sock",
    "unix:/run/clamd.sock", "inet:127.0.0.1:3310",
])
def test_invalid_addresses_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_service_address("spamd", text)
    assert (caught.value.file, caught.value.location) == ("spamd", "address")


def test_clients_check_their_address_when_built() -> None:
    with pytest.raises(ConfigError, match="clamd"):
        ClamdClient("127.0.0.1", 5.0, 1000)
    with pytest.raises(ConfigError, match="spamd"):
        SpamdClient("localhost", 5.0, 1000)
    assert ClamdClient("[::1]:3310", 5.0, 1000).address == TcpAddress("::1", 3310)
    assert SpamdClient("/run/spamd.sock", 5.0, 1000).address == UnixAddress("/run/spamd.sock")

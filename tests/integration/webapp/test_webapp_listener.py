"""The ``web`` role of ``mailadmin serve``: start_web(listen, runtime) on a free
loopback port answers HTTP; closing the server stops accepting."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from mailadmin.config.model import Config
from mailadmin.listeners import bound_address
from mailadmin.webapp.app import start_web
from tests.fixtures.runtime import build_runtime

from .conftest import Clock, TARO, PASSWORD


async def test_start_web_serves_the_login_page(config: Config, clock: Clock) -> None:
    runtime = build_runtime(config, clock=clock, open_geoip=False)  # the page reads no GeoIP
    server = await start_web("inet:127.0.0.1:0", runtime)
    try:
        address = bound_address(server)
        assert address.startswith("inet:127.0.0.1:")
        base = f"http://127.0.0.1:{address.rsplit(':', 1)[1]}"
        # unsafe: the jar keeps cookies of an IP-address host such as 127.0.0.1
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
            async with client.get(base + "/login") as response:
                html = await response.text()
                assert response.status == 200 and "メールアドレスログイン" in html
            token = html.split('name="csrf" value="')[1].split('"')[0]
            async with client.post(base + "/login", data={"address": TARO, "password": PASSWORD,
                                                          "csrf": token}) as response:
                assert response.status == 200 and TARO in await response.text()
    finally:
        server.close()
        await server.wait_closed()


async def test_start_web_on_a_unix_socket(config: Config, clock: Clock, tmp_path: Path) -> None:
    runtime = build_runtime(config, clock=clock, open_geoip=False)
    path = tmp_path / "web.sock"
    server = await start_web(f"unix:{path}", runtime)
    try:
        connector = aiohttp.UnixConnector(path=str(path))
        async with aiohttp.ClientSession(connector=connector) as client:
            async with client.get("http://localhost/login") as response:
                assert response.status == 200
                assert "Content-Security-Policy" in response.headers
    finally:
        server.close()
        await server.wait_closed()

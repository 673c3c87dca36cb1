from __future__ import annotations

from .conftest import Web


async def test_account_page(taro: Web) -> None:
    status, html = await taro.get("/")
    assert status == 200
    assert "smtp.example.jp" in html

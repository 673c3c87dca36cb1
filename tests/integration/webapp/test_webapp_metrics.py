"""Admin page logins in the metrics (SPEC §11): ok, failed and throttled, each
counted once per attempt."""

from __future__ import annotations

from mailadmin.metrics import REGISTRY

from .conftest import PASSWORD, TARO, Web


def logins(result: str) -> float:
    return REGISTRY.get_sample_value("mailadmin_web_logins_total", {"result": result}) or 0.0


async def test_logins_are_counted_by_result(web: Web) -> None:
    before = {r: logins(r) for r in ("ok", "failed", "throttled")}
    status, _ = await web.login(TARO, PASSWORD)
    assert status == 200
    await web.post("/logout", {})
    for _ in range(5):  # the policy's max_failures_per_address
        status, _ = await web.login(TARO, "wrong-1")
        assert status == 401
    status, _ = await web.login(TARO, PASSWORD)
    assert status == 429
    assert {r: logins(r) - before[r] for r in before} == {"ok": 1, "failed": 5, "throttled": 1}

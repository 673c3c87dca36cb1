"""SRS rewriting and reversal (SPEC §3): the forward address, the bounce's way
back, secret rotation, expiry and forgeries."""

from __future__ import annotations

import re
import time

import pytest

from mailadmin.mailtext.srs import ForgedSrsAddress, SrsRewriter

SECRET, OLD = "a-new-secret-of-32-characters!!!", "the-previous-secret-still-valid"
DAY = 86400.0


def rewriter(*secrets: str, clock: float | None = None, max_age_days: int = 21) -> SrsRewriter:
    now = time.time() if clock is None else clock
    return SrsRewriter("srs.example.jp", secrets or (SECRET,), max_age_days, clock=lambda: now)


def test_forward_and_back() -> None:
    srs = rewriter()
    rewritten = srs.forward("Alice@Example.org")
    assert re.fullmatch(r"SRS0=[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=example\.org=Alice@srs\.example\.jp",
                        rewritten, re.IGNORECASE), rewritten
    assert srs.reverse(rewritten).lower() == "alice@example.org"
    assert srs.reverse(rewritten.upper().replace("@SRS.EXAMPLE.JP", "@srs.example.jp")).lower() == "alice@example.org"


@pytest.mark.parametrize("sender", ["", "<>", "no-at-sign", "x@srs.example.jp"])
def test_what_is_not_rewritten(sender: str) -> None:
    assert rewriter().forward(sender) == sender


def test_an_srs0_of_another_forwarder_becomes_srs1_back_through_it() -> None:
    theirs = SrsRewriter("fwd.example.net", ("their-secret-of-16+chars",), 21)
    once = theirs.forward("alice@example.org")
    twice = rewriter().forward(once)
    assert twice.startswith("SRS1=") and twice.endswith("@srs.example.jp")
    back = rewriter().reverse(twice)
    assert back.lower().endswith("@fwd.example.net") and theirs.reverse(back).lower() == "alice@example.org"


def test_the_previous_secret_still_verifies_after_a_rotation() -> None:
    signed_before = rewriter(OLD).forward("bob@example.org")
    assert rewriter(SECRET, OLD).reverse(signed_before) == "bob@example.org"
    with pytest.raises(ForgedSrsAddress, match="hash"):
        rewriter(SECRET).reverse(signed_before)  # once the old secret is dropped
    assert rewriter(SECRET, OLD).forward("bob@example.org") == rewriter(SECRET).forward("bob@example.org")


def test_max_age() -> None:
    now = time.time()
    old = rewriter(clock=now - 22 * DAY).forward("bob@example.org")
    with pytest.raises(ForgedSrsAddress, match="expired"):
        rewriter(clock=now).reverse(old)
    recent = rewriter(clock=now - 20 * DAY).forward("bob@example.org")
    assert rewriter(clock=now).reverse(recent) == "bob@example.org"
    with pytest.raises(ForgedSrsAddress, match="expired"):
        rewriter(clock=now, max_age_days=7).reverse(recent)


@pytest.mark.parametrize("address", [
    "SRS0=AAAA=AB=example.org=bob@srs.example.jp",   # made-up hash
    "bob@srs.example.jp",                              # not SRS at all
    "SRS0=xxxx@srs.example.jp",
])
def test_forgeries_are_refused(address: str) -> None:
    with pytest.raises(ForgedSrsAddress):
        rewriter().reverse(address)


def test_an_altered_original_is_refused() -> None:
    good = rewriter().forward("bob@example.org")
    with pytest.raises(ForgedSrsAddress, match="hash"):
        rewriter().reverse(good.replace("=bob@", "=eve@"))
    with pytest.raises(ForgedSrsAddress, match="not in the SRS domain"):
        rewriter().reverse(good.replace("@srs.example.jp", "@other.example"))


def test_conf_needs_domain_and_secrets_when_enabled(tmp_path: "pytest.TempPathFactory") -> None:
    from mailadmin import paths
    from mailadmin.config import load_all
    from mailadmin.errors import ConfigError

    conf = paths.shipped("conf") / "mailadmin.toml"
    base = {"MAILADMIN_GEOIP_DATABASE_PATH": "/nonexistent.mmdb"}
    assert load_all(conf, base).conf.srs.enabled is False
    with pytest.raises(ConfigError, match="set the domain"):
        load_all(conf, {**base, "MAILADMIN_SRS_ENABLED": "true", "MAILADMIN_SRS_SECRETS": SECRET})
    with pytest.raises(ConfigError, match="at least one secret"):
        load_all(conf, {**base, "MAILADMIN_SRS_ENABLED": "true", "MAILADMIN_SRS_DOMAIN": "srs.example.jp"})
    with pytest.raises(ConfigError, match="at least 16 characters"):
        load_all(conf, {**base, "MAILADMIN_SRS_SECRETS": "short"})
    on = load_all(conf, {**base, "MAILADMIN_SRS_ENABLED": "yes", "MAILADMIN_SRS_DOMAIN": "srs.example.jp",
                         "MAILADMIN_SRS_SECRETS": f"{SECRET},{OLD}"}).conf.srs
    assert on.secrets == (SECRET, OLD) and on.max_age_days == 21

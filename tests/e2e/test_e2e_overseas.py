"""Overseas sending restriction through a real Postfix (SPEC §9, §10).

XCLIENT stands in for the client's address and SMTP AUTH login (Postfix
trusts it from 127.0.0.0/8 here only).  Two paths: the milter at MAIL FROM
(the ``main`` port) and policy delegation at RCPT (the ``policy`` port, no
milter).  In the test GeoIP data 8.8.8.8 is US, 133.0.0.1 JP, and 1.1.1.0/24
(AU) is an exempt network in the test policies.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest

from tests.e2e import mail
from tests.e2e.stack import REPO_ROOT, SmtpResult, Stack, send

PATHS = {"milter": ("main", "mail"), "policy": ("policy", "rcpt")}


def submit(stack: Stack, path: str, user: str, client_ip: str, to: str) -> SmtpResult:
    port_name, _stage = PATHS[path]
    return send(stack.postfix.ports[port_name], user, [to], mail.clean(to, user, subject="From abroad"),
                xclient=f"ADDR={client_ip} NAME=[UNAVAILABLE] LOGIN={user}")


def assert_refused(result: SmtpResult, path: str) -> None:
    assert result.stage == PATHS[path][1], result
    assert result.code == 554, result
    assert "unlock" in result.text.lower() or "解除" in result.text, result


def cli(stack: Stack, *args: str) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "mailadmin", "--config", str(REPO_ROOT / "conf" / "mailadmin.toml"), *args],
        env={**os.environ, **stack.daemon.environ}, capture_output=True, text=True, timeout=60, check=False,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


@pytest.mark.parametrize("path", sorted(PATHS))
def test_refused_abroad_until_unlocked_and_again_after_the_unlock_ends(mailstack: Stack, path: str) -> None:
    user = mailstack.store.mailbox("trip")
    to = mail.outside()

    assert_refused(submit(mailstack, path, user, "8.8.8.8", to), path)
    assert submit(mailstack, path, user, "133.0.0.1", to).accepted, "home country"

    cli(mailstack, "overseas", "unlock", user)
    assert submit(mailstack, path, user, "8.8.8.8", to).accepted
    mailstack.settle()
    assert len(mailstack.sink.to(to)) == 2

    # The unlock ends by itself at its time: no job, the next submission sees it.
    mailstack.store.set_unlocked_until(user, dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1))
    assert_refused(submit(mailstack, path, user, "8.8.8.8", to), path)


@pytest.mark.parametrize("path", sorted(PATHS))
def test_exempt_network_is_not_restricted(mailstack: Stack, path: str) -> None:
    user = mailstack.store.mailbox("webm")
    to = mail.outside()
    assert submit(mailstack, path, user, "1.1.1.1", to).accepted
    assert_refused(submit(mailstack, path, user, "8.8.8.8", to), path)


def test_receiving_from_abroad_is_never_restricted(mailstack: Stack) -> None:
    rcpt = mailstack.store.mailbox("recv")
    frm = mail.sender()
    for port in ("main", "policy"):
        result = send(mailstack.postfix.ports[port], frm, [rcpt], mail.clean(rcpt, frm, subject=port),
                      xclient="ADDR=8.8.8.8 NAME=[UNAVAILABLE]")
        assert result.accepted, result
    mailstack.settle()
    assert sorted(m.subject for m in mailstack.sink.to(rcpt)) == ["main", "policy"]

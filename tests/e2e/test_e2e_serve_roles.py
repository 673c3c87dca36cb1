"""``mailadmin serve ROLE`` runs that role alone and prints each listener's real
address; ``serve --once`` runs the jobs once (SPEC §11)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.e2e.stack import Daemon, REPO_ROOT, Stack, free_port


def role_daemon(stack: Stack, tmp_path: Path) -> Daemon:
    return Daemon(tmp_path, {
        **stack.daemon.environ,
        "MAILADMIN_POSTFIX_POLICY_LISTEN": f"inet:127.0.0.1:{free_port()}",
        "MAILADMIN_MILTER_LISTEN": f"unix:{tmp_path / 'milter.sock'}",
        "MAILADMIN_CONTENT_FILTER_LISTEN": f"inet:127.0.0.1:{free_port()}",
        "MAILADMIN_METRICS_LISTEN": f"inet:127.0.0.1:{free_port()}",
    })


def test_policy_role_alone(mailstack: Stack, tmp_path: Path) -> None:
    daemon = role_daemon(mailstack, tmp_path)
    daemon.start("policy")
    try:
        output = daemon.log_path.read_text()
        [port] = re.findall(r"policy listening on inet:127\.0\.0\.1:(\d+)", output)
        assert daemon.environ["MAILADMIN_POSTFIX_POLICY_LISTEN"] == f"inet:127.0.0.1:{port}"
        assert "milter listening" not in output and "filter listening" not in output
        assert "job " not in output, "the jobs run in their own role"
        with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as sock:
            sock.sendall(b"request=smtpd_access_policy\nprotocol_state=RCPT\nsender=a@b.example\n"
                         b"recipient=c@example.jp\nclient_address=8.8.8.8\n\n")
            reply = b""
            while not reply.endswith(b"\n\n"):
                chunk = sock.recv(1024)
                assert chunk, reply
                reply += chunk
        assert reply == b"action=DUNNO\n\n"
    finally:
        assert daemon.stop() == 0


def test_jobs_role_alone(mailstack: Stack, tmp_path: Path) -> None:
    daemon = role_daemon(mailstack, tmp_path)
    daemon.start("jobs")
    try:
        output = daemon.log_path.read_text()
        assert "job outbox running" in output
        # Only its metrics endpoint: the jobs answer the MTA nothing.
        assert re.findall(r"mailadmin: (\w+) listening on", output) == ["metrics"]
    finally:
        assert daemon.stop() == 0


def test_once_runs_the_jobs_and_exits(mailstack: Stack) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "mailadmin", "--config", str(REPO_ROOT / "conf" / "mailadmin.toml"),
         "serve", "--once"],
        env={**os.environ, **mailstack.daemon.environ}, capture_output=True, text=True, timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "outbox message(s) handled" in run.stdout


def test_systemd_hears_ready_after_the_listeners_and_stopping_on_sigterm(mailstack: Stack,
                                                                        tmp_path: Path) -> None:
    notify_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        notify.settimeout(30)
        daemon = role_daemon(mailstack, tmp_path)
        daemon.start("policy", NOTIFY_SOCKET=str(notify_path))
        try:
            assert notify.recv(256) == b"READY=1"
            # Ready means accepting: the printed listener answers now.
            [port] = re.findall(r"policy listening on inet:127\.0\.0\.1:(\d+)", daemon.log_path.read_text())
            socket.create_connection(("127.0.0.1", int(port)), timeout=5).close()
        finally:
            assert daemon.stop() == 0
        assert notify.recv(256) == b"STOPPING=1"


def test_a_listener_that_cannot_bind_is_reported_and_the_exit_status_says_so(mailstack: Stack,
                                                                              tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        run = subprocess.run(
            [sys.executable, "-m", "mailadmin", "--config", str(REPO_ROOT / "conf" / "mailadmin.toml"),
             "serve", "policy"],
            env={**os.environ, **mailstack.daemon.environ,
                 "MAILADMIN_POSTFIX_POLICY_LISTEN": f"inet:127.0.0.1:{port}"},
            capture_output=True, text=True, timeout=60, check=False,
        )
    assert run.returncode == 71, run.stdout + run.stderr
    assert f"policy cannot listen on inet:127.0.0.1:{port}" in run.stdout


def test_web_role_serves_the_admin_page(mailstack: Stack, tmp_path: Path) -> None:
    port = free_port()
    daemon = role_daemon(mailstack, tmp_path)
    daemon.start("web", MAILADMIN_WEB_ENABLED="true", MAILADMIN_WEB_LISTEN=f"inet:127.0.0.1:{port}",
                 MAILADMIN_WEB_BASE_URL=f"http://127.0.0.1:{port}/")
    try:
        assert f"web listening on inet:127.0.0.1:{port}" in daemon.log_path.read_text()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as response:
            page = response.read().decode()
            assert response.status == 200
        assert "<form" in page and "password" in page.lower()
    finally:
        assert daemon.stop() == 0

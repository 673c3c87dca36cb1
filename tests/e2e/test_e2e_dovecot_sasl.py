"""The shipped Dovecot snippet over mailadmin's store, as Postfix's SMTP AUTH
backend (SPEC §1, §9, §11): the mailbox password works at once, a suspended
mailbox cannot log in, and a real SMTP AUTH login from abroad meets the
overseas restriction in the milter."""

from __future__ import annotations

import contextlib
import smtplib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.harness.postfix_instance import port_open
from tests.e2e import mail
from tests.e2e.stack import REPO_ROOT, Stack, tail, wait_for

PASSWORD = "Tokyo2024-ok"


@pytest.fixture(scope="module")
def dovecot(stack: Stack) -> Iterator[Path]:
    """An auth-only Dovecot (no IMAP/POP) whose passdb is conf/dovecot/dovecot-sql.conf.ext."""
    base = stack.base / "dovecot"
    (base / "run").mkdir(parents=True)
    (base / "state").mkdir()
    db_file = stack.store.url.removeprefix("sqlite:///")
    sql = (REPO_ROOT / "conf" / "dovecot" / "dovecot-sql.conf.ext").read_text()
    (base / "dovecot-sql.conf.ext").write_text(
        sql.replace("connect = /var/lib/mailadmin/mailadmin.db", f"connect = {db_file}"))
    port = stack.postfix.sasl_port
    conf = base / "dovecot.conf"
    conf.write_text(f"""\
base_dir = {base / 'run'}
state_dir = {base / 'state'}
instance_name = mailadmin-e2e-{port}
protocols =
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = {base / 'dovecot.log'}
auth_verbose = yes
# Failing on purpose is part of the tests: no penalty delay.
auth_failure_delay = 0
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = sql
  args = {base / 'dovecot-sql.conf.ext'}
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home={base}/home/%u
}}
service auth {{
  inet_listener sasl {{
    address = 127.0.0.1
    port = {port}
  }}
}}
# The store's SQLite file and its WAL belong to root here.
service auth-worker {{
  user = root
}}
service anvil {{
  chroot =
}}
service stats {{
  chroot =
}}
""")
    # Dovecot keeps the caller's stderr open: never let it inherit a pipe.
    subprocess.run(["dovecot", "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=open(base / "dovecot.stderr", "wb"), check=True, timeout=60)
    try:
        wait_for(lambda: port_open(port), "Dovecot's SASL listener", details=lambda: tail(base / "dovecot.log"))
        yield conf
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            subprocess.run(["doveadm", "-c", str(conf), "stop"], capture_output=True, timeout=30, check=False)


def auth_test(conf: Path, user: str, password: str) -> bool:
    run = subprocess.run(["doveadm", "-c", str(conf), "auth", "test", user, password],
                         capture_output=True, text=True, timeout=60, check=False)
    return run.returncode == 0 and "succeeded" in run.stdout


def test_dovecot_verifies_the_stored_password_and_refuses_a_suspended_mailbox(mailstack: Stack,
                                                                               dovecot: Path) -> None:
    user = mailstack.store.mailbox("pop")
    mailstack.store.set_password(user, PASSWORD)
    assert auth_test(dovecot, user, PASSWORD)
    assert not auth_test(dovecot, user, PASSWORD + "x")
    mailstack.store.set_status(user, "suspended")
    assert not auth_test(dovecot, user, PASSWORD)


def smtp_auth_send(stack: Stack, user: str, password: str, to: str, client_ip: str | None) -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", stack.postfix.ports["submission"], timeout=60) as smtp:
        smtp.ehlo("client.e2e.test")
        if client_ip is not None:
            code, text = smtp.docmd("XCLIENT", f"ADDR={client_ip} NAME=[UNAVAILABLE]")
            assert code == 220, text
            smtp.ehlo("client.e2e.test")
        smtp.user, smtp.password = user, password
        smtp.auth("PLAIN", smtp.auth_plain)
        code, text = smtp.mail(user)
        if code >= 400:
            return code, text.decode(errors="replace")
        code, text = smtp.rcpt(to)
        if code >= 400:
            return code, text.decode(errors="replace")
        code, text = smtp.data(mail.clean(to, user, subject="submitted"))
        return code, text.decode(errors="replace")


def test_real_smtp_auth_is_restricted_abroad_and_passes_at_home(mailstack: Stack, dovecot: Path) -> None:
    user = mailstack.store.mailbox("sub")
    mailstack.store.set_password(user, PASSWORD)
    to = mail.outside()

    code, text = smtp_auth_send(mailstack, user, PASSWORD, to, "8.8.8.8")
    assert code == 554, text
    code, text = smtp_auth_send(mailstack, user, PASSWORD, to, "133.0.0.1")
    assert code == 250, text
    mailstack.settle()
    [delivered] = mailstack.sink.to(to)
    assert delivered.mail_from == user

    with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
        smtp_auth_send(mailstack, user, "wrong-Pass1", to, None)
    assert refused.value.smtp_code == 535

"""The end-to-end mail stack: a throwaway Postfix, an SMTP sink, and ``mailadmin serve``.

Everything binds loopback ports picked free at run time (COMPONENTS.md §3):

- **Postfix** (``postfix -c DIR start``, never the system instance), built
  from the shipped snippets in conf/postfix/ with addresses substituted, so a
  broken snippet fails here; the instance itself (directories, start/stop,
  queue, log) is bench/harness/postfix_instance.py's, the benchmark's builder
  too.  Its smtpd listeners:

  ============  =========================================================
  ``main``      milter (unix socket) + policy delegation: the milter path
  ``policy``    policy delegation only: the overseas check at RCPT time
  ``filter``    ``content_filter`` to mailadmin's SMTP filter (after queue)
  ``upstream``  no hook; queues mail and hands it to ``main`` over SMTP, so
                a tempfail there is retried from a real queue (the remote
                MTA's part)
  ``relay``     conf/postfix/master.cf.relay: where mailadmin sends the mail
                it creates; passes nothing through mailadmin again
  ============  =========================================================

  Every domain is relayed to the sink.
- **Sink**: an aiosmtpd server keeping every delivered message with its
  envelope.
- **mailadmin serve** as a subprocess with ``MAILADMIN_*`` overrides, so it
  can be killed, restarted and pointed at other scanners.

Waiting is always polling with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.message
import email.policy
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope as SinkEnvelope, Session as SinkSession
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from bench.harness.postfix_instance import SERVICES, PostfixInstance, port_open
from mailadmin.config import load_all
from mailadmin.config.model import Policy
from mailadmin.store import db, mailboxes, rules_document
from mailadmin.store.models import Mailbox, OutboxMessage, QuarantineItem
from tests.fixtures.scanners import ClamdInstance, SpamdInstance, _stop_group, start_clamd

REPO_ROOT = Path(__file__).resolve().parents[2]
POSTFIX_SNIPPETS = REPO_ROOT / "conf" / "postfix"
DEFAULT_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.05
DOMAIN = "example.jp"
# Forwarded copies leave with SRS0 senders here; Postfix routes it back to mailadmin.
SRS_DOMAIN = "srs.e2e.test"


class Timeout(AssertionError):
    pass


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = DEFAULT_TIMEOUT_SECONDS,
              details: Callable[[], str] | None = None) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Timeout(f"timed out after {timeout:.0f} s waiting for {what}"
                          + (f"\n{details()}" if details else ""))
        time.sleep(POLL_SECONDS)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} not written)"


# ------------------------------------------------------------------ sink


@dataclass(frozen=True)
class Delivered:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes

    @property
    def message(self) -> email.message.EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        return parsed

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    def header(self, name: str) -> str | None:
        value = self.message.get(name)
        return None if value is None else str(value)


class _SinkHandler:
    def __init__(self, sink: "Sink") -> None:
        self.sink = sink

    async def handle_DATA(self, server: SMTP, session: SinkSession, envelope: SinkEnvelope) -> str:
        data = envelope.original_content or b""
        # aiosmtpd reports the null sender as "<>"
        mail_from = "" if envelope.mail_from in (None, "<>") else envelope.mail_from
        self.sink.add(Delivered(mail_from, tuple(envelope.rcpt_tos), data))
        return "250 OK stored"


class Sink:
    """The next hop for every domain: keeps each message with its envelope."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[Delivered] = []
        self.port = free_port()
        self._controller = Controller(_SinkHandler(self), hostname="127.0.0.1", port=self.port,
                                      server_hostname="sink.e2e.test")

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def add(self, item: Delivered) -> None:
        with self._lock:
            self._messages.append(item)

    def all(self) -> list[Delivered]:
        with self._lock:
            return list(self._messages)

    def to(self, rcpt: str) -> list[Delivered]:
        """Every message delivered to ``rcpt``."""
        return [m for m in self.all() if rcpt.lower() in (r.lower() for r in m.rcpt_tos)]

    def wait_to(self, rcpt: str, count: int = 1, timeout: float = DEFAULT_TIMEOUT_SECONDS,
                details: Callable[[], str] | None = None) -> list[Delivered]:
        found: list[Delivered] = wait_for(lambda: len(self.to(rcpt)) >= count and self.to(rcpt),
                                          f"{count} message(s) to {rcpt} at the sink", timeout, details)
        return found

    def bounces(self) -> list[Delivered]:
        """Delivery status notifications (Postfix bounces or delay notices)."""
        return [m for m in self.all()
                if m.mail_from == "" and "report-type=delivery-status" in
                m.message.get("Content-Type", "").replace('"', "").replace(" ", "")]


# ------------------------------------------------------------------ Postfix


class Postfix(PostfixInstance):
    """The e2e instance (bench/harness/postfix_instance.py builds and runs it):
    the listeners of the module docstring, the shipped snippets, every domain
    relayed to the sink."""

    def __init__(self, base: Path, *, sink_port: int, milter_socket: Path, policy_port: int,
                 filter_port: int, sasl_port: int, srs_port: int = 0) -> None:
        super().__init__(base)
        self.sink_port = sink_port
        self.milter_socket = milter_socket
        self.policy_port = policy_port
        self.filter_port = filter_port
        self.sasl_port = sasl_port
        # mailadmin's SRS bounce listener: mail to SRS_DOMAIN goes there (conf/postfix/main.cf.srs).
        self.srs_port = srs_port
        self.ports: dict[str, int] = {}
        self.relay_enabled = True

    def _snippet(self, name: str) -> str:
        text = (POSTFIX_SNIPPETS / name).read_text()
        return (text.replace("unix:/mailadmin/milter.sock", f"unix:{self.milter_socket}")
                    .replace("inet:127.0.0.1:10040", f"inet:127.0.0.1:{self.policy_port}")
                    .replace("127.0.0.1:10026", f"127.0.0.1:{self.ports['relay']}")
                    .replace("[127.0.0.1]:10025", f"[127.0.0.1]:{self.filter_port}")
                    .replace("srs.example.jp", SRS_DOMAIN)
                    .replace("[127.0.0.1]:10027", f"[127.0.0.1]:{self.srs_port}"))

    def _main_cf(self) -> str:
        b = self.base
        return f"""\
compatibility_level = 3.6
queue_directory = {self.queue}
data_directory = {self.data}
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.e2e.test
mydomain = e2e.test
myorigin = $myhostname
mydestination =
local_recipient_maps =
local_transport = error:5.1.1 local delivery disabled in the test instance
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = static:ALL
default_transport = smtp:[127.0.0.1]:{self.sink_port}
relay_transport = smtp:[127.0.0.1]:{self.sink_port}
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtpd_peername_lookup = no
maillog_file = {self.maillog}
maillog_file_prefixes = {b}, /var, /dev/stdout
smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtpd_client_restrictions =
smtpd_helo_restrictions =
smtpd_sender_restrictions =
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
biff = no
queue_run_delay = 300s
minimal_backoff_time = 300s
maximal_backoff_time = 600s
maximal_queue_lifetime = 1h
bounce_queue_lifetime = 1h
delay_warning_time = 0
smtpd_banner = $myhostname ESMTP e2e
""" + self._snippet("main.cf.milter") + self._snippet("main.cf.policy") + (
            self._snippet("main.cf.srs") if self.srs_port else "")

    def _master_cf(self) -> str:
        p = self.ports
        text = f"""\
127.0.0.1:{p['main']} inet n - n - - smtpd
  -o syslog_name=postfix/main
127.0.0.1:{p['policy']} inet n - n - - smtpd
  -o syslog_name=postfix/policy-only
  -o smtpd_milters=
127.0.0.1:{p['filter']} inet n - n - - smtpd
  -o syslog_name=postfix/filter-in
  -o smtpd_milters=
  -o content_filter=mailadmin-filter:[127.0.0.1]:{self.filter_port}
127.0.0.1:{p['upstream']} inet n - n - - smtpd
  -o syslog_name=postfix/upstream
  -o smtpd_milters=
  -o smtpd_recipient_restrictions=permit_mynetworks,reject
  -o content_filter=smtp:[127.0.0.1]:{p['main']}
127.0.0.1:{p['submission']} inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_sasl_type=dovecot
  -o smtpd_sasl_path=inet:127.0.0.1:{self.sasl_port}
  -o smtpd_sasl_security_options=noanonymous
  -o smtpd_tls_security_level=none
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
""" + SERVICES + self._snippet("master.cf.filter")
        if self.relay_enabled:
            text += self._snippet("master.cf.relay")
        return text

    def start(self, listeners: Mapping[str, int] | None = None,
              timeout: float = DEFAULT_TIMEOUT_SECONDS) -> int | None:
        """Pick the listeners' ports, write the configuration and start; wait for
        every listener but submission (without Dovecot up its smtpd dies, and
        master then holds the service back for a minute)."""
        for name in ("main", "policy", "filter", "upstream", "relay", "submission"):
            self.ports[name] = free_port()
        self.create()
        self.write_config(self._main_cf(), self._master_cf())
        if listeners is None:
            listeners = {name: port for name, port in self.ports.items() if name != "submission"}
        return super().start(listeners, timeout)

    def set_relay(self, enabled: bool) -> None:
        """Take the relay listener out of master.cf (or back) and reload Postfix."""
        self.relay_enabled = enabled
        self.write_config(master_cf=self._master_cf())
        self.reload()
        port = self.ports["relay"]
        wait_for(lambda: port_open(port) == enabled,
                 f"the relay on port {port} to be {'up' if enabled else 'down'}")


# ------------------------------------------------------------------ mailadmin


@dataclass
class Daemon:
    """``mailadmin serve`` as a subprocess."""

    base: Path
    environ: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    runs: int = 0
    # started with settings other than the session's (another spamd, relay...)
    runs_with_overrides: bool = False

    @property
    def log_path(self) -> Path:
        return self.base / f"mailadmin-{self.runs}.log"

    def start(self, role: str = "all", **overrides: str) -> None:
        self.runs += 1
        self.runs_with_overrides = bool(overrides)
        env = {**os.environ, **self.environ, **overrides}
        with open(self.log_path, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mailadmin", "--config", str(REPO_ROOT / "conf" / "mailadmin.toml"),
                 "serve", role],
                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=self.base,
            )
        process = self.process
        wait_for(lambda: process.poll() is not None or b"mailadmin: serving" in self.log_path.read_bytes(),
                 "mailadmin serve to be ready", details=lambda: tail(self.log_path))
        if process.poll() is not None:
            raise AssertionError(f"mailadmin serve exited with {process.returncode}:\n{tail(self.log_path)}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, and the exit status."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"mailadmin did not stop on SIGTERM:\n{tail(self.log_path)}") from None

    def kill(self) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def restart(self, **overrides: str) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop()
        self.start(**overrides)

    def log(self) -> str:
        return tail(self.log_path, 200)


# ------------------------------------------------------------------ sending


@dataclass(frozen=True)
class SmtpResult:
    """How an SMTP transaction ended: ``stage`` is "mail", "rcpt", "data" or "done"."""

    stage: str
    code: int
    text: str
    rcpt_codes: dict[str, int] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.stage == "done" and 200 <= self.code < 300


def send(port: int, mail_from: str, rcpt_tos: Sequence[str], data: bytes, *,
         xclient: str | None = None, timeout: float = 120.0) -> SmtpResult:
    """One SMTP transaction; every reply code is returned, nothing raises for 4xx/5xx."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.e2e.test", timeout=timeout) as smtp:
        smtp.ehlo()
        if xclient is not None:
            code, text = smtp.docmd("XCLIENT", xclient)
            assert code == 220, f"XCLIENT refused: {code} {text!r}"
            smtp.ehlo()
        code, text = smtp.mail(mail_from)
        if code >= 400:
            smtp.rset()
            return SmtpResult("mail", code, text.decode(errors="replace"))
        rcpt_codes: dict[str, int] = {}
        last = (250, b"")
        for rcpt in rcpt_tos:
            rc, rt = smtp.rcpt(rcpt)
            rcpt_codes[rcpt] = rc
            if rc >= 400:
                last = (rc, rt)
        if not any(c < 400 for c in rcpt_codes.values()):
            smtp.rset()
            return SmtpResult("rcpt", last[0], last[1].decode(errors="replace"), rcpt_codes)
        code, text = smtp.data(data)
        stage = "done" if code < 400 else "data"
        return SmtpResult(stage, code, text.decode(errors="replace"), rcpt_codes)


# ------------------------------------------------------------------ store


class StoreAccess:
    """The test's own view of the daemon's store."""

    def __init__(self, url: str, policy: Policy) -> None:
        self.url = url
        self.policy = policy
        db.upgrade(url)
        self.sessions: sessionmaker[Session] = db.make_session_factory(db.make_engine(url))
        self._n = 0
        with self.sessions.begin() as session:
            if not any(d.name == DOMAIN for d in mailboxes.list_domains(session)):  # a shared store has it
                mailboxes.add_domain(session, DOMAIN, smtp_server=f"smtp.{DOMAIN}", pop_server=f"pop.{DOMAIN}")

    def mailbox(self, prefix: str, **doc: Any) -> str:
        """A new mailbox ``<prefix><n>@example.jp`` with the rules in ``doc`` (rules export format)."""
        self._n += 1
        address = f"{prefix}{self._n}@{DOMAIN}"
        with self.sessions.begin() as session:
            mailboxes.add_mailbox(session, address, self.policy)
            rules_document.import_rules(session, address, {"version": 1, **doc}, self.policy)
        return address

    def quarantine(self, address: str) -> list[QuarantineItem]:
        with self.sessions() as session:
            return list(session.scalars(
                select(QuarantineItem).join(Mailbox, Mailbox.id == QuarantineItem.mailbox_id)
                .where(Mailbox.address == address.lower()).order_by(QuarantineItem.id)
            ))

    def outbox_to(self, rcpt: str, purpose: str | None = None) -> list[OutboxMessage]:
        with self.sessions() as session:
            rows = list(session.scalars(select(OutboxMessage)))
        return [r for r in rows if rcpt.lower() in (x.lower() for x in r.rcpt_tos)
                and (purpose is None or r.purpose == purpose)]

    def outbox_busy(self) -> int:
        """Unsent outbox messages that have not failed yet (being or about to be sent)."""
        with self.sessions() as session:
            n: int = session.scalar(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.sent_at.is_(None), OutboxMessage.last_error.is_(None))) or 0
            return n

    def make_outbox_due(self) -> int:
        """What the passing of the retry delay would do: every unsent message is due now."""
        now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
        with self.sessions.begin() as session:
            result = session.execute(update(OutboxMessage).where(OutboxMessage.sent_at.is_(None))
                                     .values(next_attempt_at=now))
            return int(result.rowcount)  # type: ignore[attr-defined]

    def set_password(self, address: str, password: str) -> None:
        with self.sessions.begin() as session:
            mailboxes.set_password(session, address, password, self.policy)

    def set_status(self, address: str, status: str) -> None:
        with self.sessions.begin() as session:
            mailboxes.set_status(session, address, status)

    def set_unlocked_until(self, address: str, until: dt.datetime | None) -> None:
        with self.sessions.begin() as session:
            mailboxes.mailbox_row(session, address).overseas_unlocked_until = until


class HangingScanner:
    """A spamd (or clamd) that accepts, reads and never answers; counts connections,
    so a test knows when a message is in flight inside mailadmin."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.address = "127.0.0.1:%d" % self._sock.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._conns)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        with self._lock:
            for conn in self._conns:
                conn.close()


class HeldScanner:
    """A slow scanner: a proxy to the real one that holds each request until
    :meth:`release`, so a message stays in flight as long as a test needs."""

    def __init__(self, target_unix_path: str) -> None:
        self.target = target_unix_path
        self._released = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.address = "127.0.0.1:%d" % self._sock.getsockname()[1]
        self._lock = threading.Lock()
        self._count = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def connections(self) -> int:
        with self._lock:
            return self._count

    def release(self) -> None:
        self._released.set()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self._count += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as upstream:
            self._released.wait()
            upstream.connect(self.target)

            def pump(src: socket.socket, dst: socket.socket) -> None:
                with contextlib.suppress(OSError):
                    while data := src.recv(65536):
                        dst.sendall(data)
                    dst.shutdown(socket.SHUT_WR)

            back = threading.Thread(target=pump, args=(upstream, conn), daemon=True)
            back.start()
            pump(conn, upstream)
            back.join(timeout=60)

    def close(self) -> None:
        self._released.set()
        self._sock.close()


# ------------------------------------------------------------------ the whole stack

# A network listed in the test policies' overseas.exempt_networks (an AU range
# of the test GeoIP file, so only the exemption lets it through).
EXEMPT_NETWORK = "1.1.1.0/24"


class Clamd:
    """A clamd of the e2e tier's own, stoppable: its unix socket path never changes."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.process: subprocess.Popen[bytes] | None = None
        self.instance: ClamdInstance | None = None

    @property
    def socket_path(self) -> str:
        return str(self.base / "clamd.sock")

    def start(self) -> None:
        self.instance, self.process = start_clamd(self.base)
        assert self.instance.unix_address == self.socket_path

    def stop(self) -> None:
        if self.process is not None:
            _stop_group(self.process)
            self.process = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)


@dataclass
class Stack:
    base: Path
    postfix: Postfix
    sink: Sink
    daemon: Daemon
    store_access: "StoreAccess | None"
    clamd: Clamd
    spamd: SpamdInstance
    filters_dir: Path
    started: list[str] = field(default_factory=list)

    @property
    def store(self) -> "StoreAccess":
        assert self.store_access is not None
        return self.store_access

    @store.setter
    def store(self, value: "StoreAccess") -> None:
        self.store_access = value

    def stop(self) -> None:
        """Stop what was started; every part is stopped even when another fails."""
        def daemon() -> None:
            process = self.daemon.process
            if process is not None and process.poll() is None:
                self.daemon.stop()

        # Postfix first: it closes its milter and policy connections, so the
        # daemon's SIGTERM finds nothing left to drain.
        steps = {"postfix": self.postfix.stop, "daemon": daemon, "clamd": self.clamd.stop,
                 "sink": self.sink.stop}
        with contextlib.ExitStack() as stack:
            for name in reversed(steps):
                if name in self.started:
                    stack.callback(steps[name])
        self.started.clear()

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until nothing is in flight: Postfix has no message in hand and the
        outbox nothing unsent that has not failed yet (checked queue, outbox, queue,
        so a message moving between them is always seen)."""
        def idle() -> bool:
            return (self.postfix.busy() == 0 and self.store.outbox_busy() == 0
                    and self.postfix.busy() == 0)

        wait_for(idle, "the mail stack to settle", timeout, self.diagnostics)

    def diagnostics(self) -> str:
        return (f"--- mailadmin log\n{self.daemon.log()}\n--- Postfix maillog\n"
                f"{tail(self.postfix.maillog, 80)}")

    @property
    def main_port(self) -> int:
        return self.postfix.ports["main"]


def start_stack(base: Path, spamd: SpamdInstance, mmdb_path: Path, *, database_url: str | None = None,
                **environ_overrides: str) -> "Stack":
    """Start everything under ``base`` (root-owned, mode 0755: Postfix's
    unprivileged processes must reach its queue); :meth:`Stack.stop` ends it.
    ``database_url`` shares a store with another stack (a second MTA host);
    ``environ_overrides`` are further MAILADMIN_* settings of its daemon."""
    base.mkdir(mode=0o755, exist_ok=True)
    base.chmod(0o755)
    sink = Sink()
    clamd = Clamd(base / "clamd")
    clamd.base.mkdir()
    (base / "run").mkdir(mode=0o755)
    policies = shutil.copytree(REPO_ROOT / "policies", base / "policies")
    filters = shutil.copytree(REPO_ROOT / "filters", base / "filters")
    default_policy = policies / "default.toml"
    default_policy.write_text(default_policy.read_text().replace(
        "exempt_networks = []", f'exempt_networks = ["{EXEMPT_NETWORK}"]'))
    postfix = Postfix(
        base=base / "postfix",
        sink_port=sink.port,
        milter_socket=base / "run" / "milter.sock",
        policy_port=free_port(),
        filter_port=free_port(),
        sasl_port=free_port(),
        srs_port=free_port(),
    )
    database_url = database_url or f"sqlite:///{base / 'mailadmin.db'}"
    environ = {
        "MAILADMIN_DATABASE_URL": database_url,
        "MAILADMIN_CLAMD_ADDRESS": clamd.socket_path,
        "MAILADMIN_SPAMD_ADDRESS": spamd.unix_address,
        "MAILADMIN_RELAY_HOST": "127.0.0.1",
        "MAILADMIN_GEOIP_DATABASE_PATH": str(mmdb_path),
        "MAILADMIN_MILTER_LISTEN": f"unix:{postfix.milter_socket}",
        "MAILADMIN_MILTER_ENABLED": "true",
        "MAILADMIN_POSTFIX_POLICY_LISTEN": f"inet:127.0.0.1:{postfix.policy_port}",
        "MAILADMIN_POSTFIX_POLICY_ENABLED": "true",
        "MAILADMIN_CONTENT_FILTER_LISTEN": f"inet:127.0.0.1:{postfix.filter_port}",
        "MAILADMIN_CONTENT_FILTER_ENABLED": "true",
        "MAILADMIN_WEB_ENABLED": "false",
        "MAILADMIN_METRICS_LISTEN": f"inet:127.0.0.1:{free_port()}",
        "MAILADMIN_PATHS_POLICIES_DIR": str(policies),
        "MAILADMIN_PATHS_FILTERS_DIR": str(filters),
        "MAILADMIN_LOGGING_LEVEL": "INFO",
        # The loopback DNS server of the test run (tests/fixtures/dns_server.py).
        "MAILADMIN_DNS_NAMESERVERS": os.environ.get("MAILADMIN_TEST_DNS_SERVER", ""),
        "MAILADMIN_QUARANTINE_LINKS_SECRET_FILE": str(base / "quarantine-link.key"),
        "MAILADMIN_SRS_ENABLED": "true",
        "MAILADMIN_SRS_DOMAIN": SRS_DOMAIN,
        "MAILADMIN_SRS_SECRETS": "e2e-srs-secret-current,e2e-srs-secret-previous",
        "MAILADMIN_SRS_LISTEN": f"inet:127.0.0.1:{postfix.srs_port}",
        **environ_overrides,
    }
    stack = Stack(base, postfix, sink, Daemon(base, environ), None, clamd, spamd, filters)
    try:
        sink.start()
        stack.started.append("sink")
        clamd.start()
        stack.started.append("clamd")
        # Recorded first: a Postfix whose listener never comes up is stopped too
        # (its stop does nothing unless `postfix start` ran).
        stack.started.append("postfix")
        postfix.start()
        environ["MAILADMIN_RELAY_PORT"] = str(postfix.ports["relay"])
        config = load_all(REPO_ROOT / "conf" / "mailadmin.toml", {**os.environ, **environ})
        stack.store = StoreAccess(database_url, config.policies.default)
        stack.daemon.start()
        stack.started.append("daemon")
    except BaseException:
        stack.stop()
        raise
    return stack

#!/usr/bin/env python3
"""Postfix mail-filter benchmark harness.

Measures what a mail filter hooked into a real Postfix costs, in messages per
second and per-message latency, using Postfix's own load tools: smtp-source
(client) -> Postfix instance under test -> smtp-sink (next hop).

Built-in configurations (run interleaved, A B C D A B C D ..., N rounds):
  A   Postfix alone (no milter, no policy service): the limit of this machine
  B   + no-op pymilter milter (noop_milter.py --mode full)
  B0  + no-op pymilter milter asking only for end-of-message (--mode min)  [optional]
  BH  + no-op pymilter milter, headers only, no-reply headers (--mode headers) [optional]
  C   + Rspamd 3.4 proxy worker in milter mode over TCP, offline, with local
        From/Subject multimap reject lists
  CU  the same rspamd worker, reached over a unix socket        [optional]
  D   + check_policy_service -> trivial asyncio policy server (DUNNO)
  E   + no-op milter in pure asyncio (aio_milter.py), answers every event [optional]
  EN  + the same, negotiating "no reply" for all events but end-of-message [optional]
  ENQ + EN with TCP_QUICKACK set after every read                         [optional]
  M   + YOUR milter       (--milter ADDR [--milter-cmd CMD | --milter-pid PID])
  P   + YOUR policy server (--policy ADDR [--policy-cmd CMD | --policy-pid PID])
Plus a raw policy-protocol load test (policy_load.py) against the asyncio
policy server (and against --policy ADDR if given).

Everything runs on 127.0.0.1, ports 21000-21999, under BENCH_ROOT
(default /tmp/bench).  The Postfix instance is built and run by
postfix_instance.py beside this file (the end-to-end tests build theirs with
it too); its main.cf is MAIN_CF below.  Every process the harness starts is tracked by PID and
stopped at the end (also on Ctrl-C).  See README.md.
"""
import argparse
import datetime
import email.utils
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

from postfix_instance import SERVICES, PostfixInstance

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("BENCH_ROOT", "/tmp/bench")
VENV_PY = os.path.join(ROOT, "venv", "bin", "python")
HOST = "127.0.0.1"
PORTS = {
    "smtpd": 21025,          # Postfix instance under test
    "sink": 21026,           # smtp-sink, next hop
    "noop_milter": 21101,    # B
    "noop_milter_min": 21102,  # B0
    "noop_milter_hdr": 21103,  # BH
    "aio_milter": 21111,     # E   asyncio milter, answers every event
    "aio_milter_nr": 21112,  # EN  asyncio milter, no-reply flags
    "aio_milter_nrq": 21113, # ENQ asyncio milter, no-reply flags + TCP_QUICKACK
    "rspamd_proxy": 21332,   # C (milter)
    "rspamd_controller": 21334,
    "rspamd_dns": 21053,     # nothing listens here: rspamd's DNS goes nowhere
    "policy": 21401,         # D
    "policy_raw": 21402,     # raw policy load test
}
CLK_TCK = os.sysconf("SC_CLK_TCK")
SENDER = "alice@sender.example"
RCPT = "bob@rcpt.example"

LOG = None


def log(*a):
    s = time.strftime("%H:%M:%S ") + " ".join(str(x) for x in a)
    print(s, flush=True)
    if LOG:
        LOG.write(s + "\n")
        LOG.flush()


# --------------------------------------------------------------------------
# process bookkeeping
# --------------------------------------------------------------------------
STARTED = []  # Popen objects we started, stopped in reverse order


def start_proc(name, argv, logfile, env=None, cwd=None):
    lf = open(logfile, "ab")
    p = subprocess.Popen(argv, stdout=lf, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                         start_new_session=True)
    p.bench_name = name
    p.bench_log = logfile
    STARTED.append(p)
    log(f"started {name} pid={p.pid}: {' '.join(argv) if isinstance(argv, list) else argv}")
    return p


def stop_proc(p, timeout=15):
    if p.poll() is None:
        try:
            os.kill(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"{p.bench_name} pid={p.pid} ignored SIGTERM, SIGKILL")
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(5)
    if p in STARTED:
        STARTED.remove(p)


def wait_unix(path, timeout=60, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited before {path} appeared")
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(path)
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{path} did not accept connections within {timeout}s")


def wait_port(host, port, timeout=60, proc=None):
    t_end = time.time() + timeout
    while time.time() < t_end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.bench_name} exited (rc={proc.returncode}) before listening on {port}; see {proc.bench_log}")
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listening on {host}:{port} after {timeout}s")


def port_free(port):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def run(argv, check=True, **kw):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed rc={r.returncode}: {r.stdout}")
    return r


# --------------------------------------------------------------------------
# CPU accounting via /proc
# --------------------------------------------------------------------------
def read_all_procs():
    """{pid: (ppid, utime+stime ticks, comm)} for every process."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        comm = st[st.index("(") + 1:st.rindex(")")]
        fields = st[st.rindex(")") + 2:].split()
        out[int(d)] = (int(fields[1]), int(fields[11]) + int(fields[12]), comm)
    return out


def tree(procs, roots):
    """pids of roots and all their descendants."""
    kids = {}
    for pid, (ppid, _, _) in procs.items():
        kids.setdefault(ppid, []).append(pid)
    res, stack = set(), [r for r in roots if r]
    while stack:
        p = stack.pop()
        if p in res:
            continue
        res.add(p)
        stack.extend(kids.get(p, []))
    return res


def sys_cpu():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    return {"busy": user + nice + system + irq + softirq, "idle": idle + iowait, "steal": steal}


class CpuSnap:
    """CPU-time snapshot: whole system, and per group of process trees."""

    def __init__(self, groups):
        # groups: {name: [root pids]}
        self.t = time.monotonic()
        self.sys = sys_cpu()
        self.procs = read_all_procs()
        self.groups = {g: tree(self.procs, roots) for g, roots in groups.items()}

    @staticmethod
    def diff(a, b, mine_roots):
        """CPU seconds used between snapshots a and b."""
        res = {"wall_s": b.t - a.t,
               "sys_busy_s": (b.sys["busy"] - a.sys["busy"]) / CLK_TCK,
               "sys_idle_s": (b.sys["idle"] - a.sys["idle"]) / CLK_TCK,
               "steal_s": (b.sys["steal"] - a.sys["steal"]) / CLK_TCK}
        for g in a.groups:
            pids = a.groups[g] | b.groups.get(g, set())
            tot = 0
            for p in pids:
                if p in b.procs and p in a.procs:
                    tot += b.procs[p][1] - a.procs[p][1]
                elif p in b.procs:  # appeared during the window
                    tot += b.procs[p][1]
            res[f"cpu_{g}_s"] = tot / CLK_TCK
        # "foreign": long-lived processes that are not ours (other tenants of the box)
        mine = tree(b.procs, mine_roots) | tree(a.procs, mine_roots)
        for g in a.groups:
            mine |= a.groups[g] | b.groups.get(g, set())
        foreign = 0
        for p, (_, ticks, comm) in b.procs.items():
            if p in mine or p in (0, 1):
                continue
            foreign += ticks - (a.procs[p][1] if p in a.procs else 0)
        res["cpu_foreign_s"] = foreign / CLK_TCK
        return res


# --------------------------------------------------------------------------
# smtp-sink with a live delivery counter
# --------------------------------------------------------------------------
class Sink:
    def __init__(self, port):
        self.port = port
        self.count = 0
        self.cond = threading.Condition()
        self.reached = {}  # target -> monotonic time first reached
        self.proc = None

    def start(self):
        argv = ["smtp-sink", "-u", "postfix", "-c", "-m", "1000", f"{HOST}:{self.port}", "1024"]
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0,
                             start_new_session=True)
        p.bench_name, p.bench_log = "smtp-sink", "(pipe)"
        STARTED.append(p)
        self.proc = p
        log(f"started smtp-sink pid={p.pid}: {' '.join(argv)}")
        threading.Thread(target=self._reader, daemon=True).start()
        wait_port(HOST, self.port, 10, p)

    def _reader(self):
        fd = self.proc.stdout.fileno()
        buf = b""
        rx = re.compile(rb"mesg=(\d+)")
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            now = time.monotonic()
            buf += chunk
            *recs, buf = buf.split(b"\r")
            n = None
            for r in recs:
                m = rx.search(r)
                if m:
                    n = int(m.group(1))
            if n is not None:
                with self.cond:
                    self.count = n
                    for t in list(self.reached):
                        if self.reached[t] is None and n >= t:
                            self.reached[t] = now
                    self.cond.notify_all()

    def expect(self, target):
        with self.cond:
            self.reached.setdefault(target, now_if(self.count >= target))

    def wait(self, target, timeout):
        """Block until `target` messages were delivered; return the time it happened."""
        self.expect(target)
        with self.cond:
            ok = self.cond.wait_for(lambda: self.count >= target, timeout)
            if not ok:
                return None
            return self.reached.get(target) or time.monotonic()


def now_if(cond):
    return time.monotonic() if cond else None


# --------------------------------------------------------------------------
# Postfix instance
# --------------------------------------------------------------------------
MASTER_CF = """\
# Benchmark instance (generated by bench.py). No chroot, smtpd on loopback only.
{host}:{port} inet n - n - - smtpd
""" + SERVICES

MAIN_CF = """\
# Benchmark instance (generated by bench.py) -- configuration {cfg}
compatibility_level = 3.6
queue_directory = {spool}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
maillog_file = {maillog}
maillog_file_prefixes = {pfdir}
myhostname = mx.bench.example
mydomain = bench.example
myorigin = $myhostname
mydestination =
local_transport = error:local delivery disabled
alias_maps =
alias_database =
inet_interfaces = {host}
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [{host}]:{sink_port}
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtpd_peername_lookup = no
smtpd_tls_security_level = none
smtp_tls_security_level = none
smtpd_banner = $myhostname ESMTP
biff = no
append_dot_mydomain = no
smtputf8_enable = no
maximal_queue_lifetime = 1h
bounce_queue_lifetime = 1h
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = {recipient_restrictions}
smtpd_milters = {milters}
non_smtpd_milters =
milter_default_action = tempfail
milter_protocol = 6
{extra}
"""


class Postfix(PostfixInstance):
    """The instance under test (postfix_instance.py builds and runs it): one
    smtpd on PORTS["smtpd"], everything relayed to the smtp-sink, main.cf
    rewritten for each configuration."""

    def __init__(self, root, extra_main=""):
        super().__init__(os.path.join(root, "pf"), queue_name="spool")
        self.extra_main = extra_main

    def create(self):
        super().create()
        self.write_config(master_cf=MASTER_CF.format(host=HOST, port=PORTS["smtpd"]))
        self.configure("A", None, None)

    def configure(self, cfgname, milter, policy):
        rr = []
        if policy:
            rr.append(f"check_policy_service {policy}")
        rr += ["permit_mynetworks", "reject_unauth_destination"]
        self.write_config(main_cf=MAIN_CF.format(
            cfg=cfgname, pfdir=self.base, spool=self.queue, data=self.data, maillog=self.maillog,
            host=HOST, sink_port=PORTS["sink"], recipient_restrictions=", ".join(rr),
            milters=milter or "", extra=self.extra_main))

    def start(self):
        return super().start({"smtpd": PORTS["smtpd"]})

    def log_stats(self, offset):
        data = self.log_since(offset)
        c = {
            "sent": len(re.findall(r" status=sent ", data)),
            "deferred": len(re.findall(r" status=deferred ", data)),
            "bounced": len(re.findall(r" status=bounced ", data)),
            "smtpd_reject": len(re.findall(r"postfix/smtpd\[\d+\]: \S+: (?:reject|milter-reject):", data)),
            "warnings": len(re.findall(r"warning:", data)),
            "fatal": len(re.findall(r"(?:fatal|panic):", data)),
        }
        warn = re.findall(r"(warning: .*)", data)
        c["warning_samples"] = sorted(set(w[:160] for w in warn))[:5]
        return c


# --------------------------------------------------------------------------
# test message and the SMTP probe client
# --------------------------------------------------------------------------
WORDS = ("the quarterly report draft includes revenue figures for each region and the "
         "forecast for next year please review the attached numbers before our meeting on "
         "thursday we also need to confirm the budget for the new project team and agree on "
         "the timeline for the product launch let me know if you have any questions about "
         "the methodology or the data sources used in this analysis").split()


def make_message(path, size, frm=f'"Alice Example" <{SENDER}>', subject="Quarterly report draft for review",
                 msgid="bench-0001"):
    import random
    rnd = random.Random(42)
    hdr = (f"From: {frm}\n"
           f'To: "Bob Example" <{RCPT}>\n'
           f"Subject: {subject}\n"
           f"Date: {email.utils.formatdate()}\n"
           f"Message-ID: <{msgid}@sender.example>\n"
           "MIME-Version: 1.0\n"
           'Content-Type: text/plain; charset="us-ascii"\n'
           "Content-Transfer-Encoding: 7bit\n"
           "\n"
           "Hi Bob,\n\n")
    body = []
    total = len(hdr)
    line = []
    while total < size:
        w = rnd.choice(WORDS)
        line.append(w)
        if sum(len(x) + 1 for x in line) > 70:
            s = " ".join(line)
            body.append(s)
            total += len(s) + 1
            line = []
    body.append("")
    body.append("Details: https://www.example.com/reports/q3?id=1234")
    body.append("Regards, Alice")
    text = hdr + "\n".join(body) + "\n"
    with open(path, "w") as f:
        f.write(text)
    return text


def smtp_txn(port, data_text, mail_from=SENDER, rcpt=RCPT, timeout=60):
    """One SMTP transaction, new connection, no pipelining (like smtp-source).
    Returns (final_code, stage, seconds from connect() to the reply after '.')."""
    t0 = time.perf_counter()
    s = socket.create_connection((HOST, port), timeout=timeout)
    f = s.makefile("rb")

    def reply():
        while True:
            line = f.readline()
            if not line:
                raise ConnectionError("server closed")
            if line[3:4] != b"-":
                return int(line[:3])

    try:
        code = reply()
        if code != 220:
            return code, "connect", time.perf_counter() - t0
        for cmd, want, stage in ((b"EHLO probe.example\r\n", 250, "ehlo"),
                                 (f"MAIL FROM:<{mail_from}>\r\n".encode(), 250, "mail"),
                                 (f"RCPT TO:<{rcpt}>\r\n".encode(), 250, "rcpt"),
                                 (b"DATA\r\n", 354, "data")):
            s.sendall(cmd)
            code = reply()
            if code != want:
                return code, stage, time.perf_counter() - t0
        lines = data_text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        payload = "".join(("." + ln if ln.startswith(".") else ln) + "\r\n" for ln in lines) + ".\r\n"
        s.sendall(payload.encode())
        code = reply()
        dt = time.perf_counter() - t0
        try:
            s.sendall(b"QUIT\r\n")
            reply()
        except OSError:
            pass
        return code, "eom", dt
    finally:
        f.close()
        s.close()


def pct(vals, p):
    v = sorted(vals)
    if not v:
        return None
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


# --------------------------------------------------------------------------
# filters (the things being measured)
# --------------------------------------------------------------------------
class Filter:
    """A milter or policy service; optionally started/stopped by the harness."""

    def __init__(self, name, kind, addr, argv=None, pid=None, env=None, ready_timeout=60, log_name=None):
        self.name, self.kind, self.addr = name, kind, addr  # kind: milter|policy
        self.argv, self.ext_pid, self.env = argv, pid, env
        self.ready_timeout = ready_timeout
        self.proc = None
        self.log_name = log_name or name

    def hostport(self):
        a = self.addr
        if a.startswith("inet:"):
            a = a[5:]
        if a.startswith("unix:"):
            return None
        h, _, p = a.rpartition(":")
        return (h or HOST, int(p))

    def start(self, logdir):
        if self.argv:
            hp = self.hostport()
            if hp and not port_free(hp[1]):
                raise RuntimeError(f"port {hp[1]} for {self.name} already in use")
            self.proc = start_proc(self.name, self.argv, os.path.join(logdir, f"{self.log_name}.log"),
                                   env=self.env)
        hp = self.hostport()
        if hp:
            wait_port(hp[0], hp[1], self.ready_timeout, self.proc)
        elif self.addr.startswith("unix:"):
            wait_unix(self.addr[5:], self.ready_timeout, self.proc)

    def pid(self):
        if self.proc:
            return self.proc.pid
        return self.ext_pid

    def stop(self):
        if self.proc:
            stop_proc(self.proc, timeout=20)
            self.proc = None


class Rspamd(Filter):
    def __init__(self, root, proxy_count=1):
        self.rdir = os.path.join(root, "rspamd")
        self.proxy_count = proxy_count
        vars_ = {"LOCAL_CONFDIR": os.path.join(self.rdir, "etc"), "DBDIR": os.path.join(self.rdir, "db"),
                 "RUNDIR": os.path.join(self.rdir, "run"), "LOGDIR": os.path.join(self.rdir, "log")}
        self.vars = vars_
        self.unix_path = os.path.join(self.rdir, "run", "milter.sock")
        argv = ["rspamd", "-f", "-u", "_rspamd", "-g", "_rspamd", "-c", os.path.join(self.rdir, "rspamd.conf")]
        argv += [f"--var={k}={v}" for k, v in vars_.items()]
        super().__init__("C", "milter", f"inet:{HOST}:{PORTS['rspamd_proxy']}", argv=argv,
                         ready_timeout=180, log_name="rspamd-stdout")

    def prepare(self):
        src = os.path.join(HERE, "conf", "rspamd")
        if os.path.exists(os.path.join(self.rdir, "etc")):
            shutil.rmtree(os.path.join(self.rdir, "etc"))
        shutil.copytree(src, os.path.join(self.rdir, "etc"))
        for d in ("db", "run", "log"):
            os.makedirs(os.path.join(self.rdir, d), exist_ok=True)
        try:
            os.remove(os.path.join(self.rdir, "log", "rspamd.log"))  # log of a previous --keep run
        except OSError:
            pass
        subst = {"@PROXY_PORT@": str(PORTS["rspamd_proxy"]),
                 "@CONTROLLER_PORT@": str(PORTS["rspamd_controller"]),
                 "@DNS_PORT@": str(PORTS["rspamd_dns"]),
                 "@PROXY_COUNT@": str(self.proxy_count),
                 "@PROXY_UNIX@": self.unix_path}
        for dirpath, _, files in os.walk(os.path.join(self.rdir, "etc")):
            for fn in files:
                p = os.path.join(dirpath, fn)
                with open(p) as f:
                    t = f.read()
                t2 = t
                for k, v in subst.items():
                    t2 = t2.replace(k, v)
                if t2 != t:
                    with open(p, "w") as f:
                        f.write(t2)
        os.replace(os.path.join(self.rdir, "etc", "rspamd.conf.in"), os.path.join(self.rdir, "rspamd.conf"))
        run(["chown", "-R", "_rspamd:_rspamd", self.rdir])
        r = run(["rspamadm"] + [f"--var={k}={v}" for k, v in self.vars.items()] +
                ["configtest", "-c", os.path.join(self.rdir, "rspamd.conf")], check=False)
        log("rspamadm configtest:", r.stdout.strip().replace("\n", " | "))
        if "syntax OK" not in r.stdout:
            raise RuntimeError("rspamd configtest failed")

    def start(self, logdir):
        lf = os.path.join(self.rdir, "log", "rspamd.log")
        try:
            log_off = os.path.getsize(lf)
        except OSError:
            log_off = 0
        super().start(logdir)
        wait_port(HOST, PORTS["rspamd_controller"], 60, self.proc)
        # wait until the scanning worker has loaded the hyperscan database (compiled by
        # hs_helper at first start, ~5-30 s); before that rspamd falls back to PCRE.
        t_end = time.time() + 120
        while time.time() < t_end:
            try:
                with open(lf, errors="replace") as f:
                    f.seek(log_off)
                    t = f.read()
                if re.search(r"\(rspamd_proxy\).*hyperscan database of \d+ regexps has been loaded", t):
                    log("rspamd: hyperscan database loaded by the proxy worker")
                    break
            except OSError:
                pass
            time.sleep(1)
        time.sleep(2)

    def stat(self):
        try:
            s = socket.create_connection((HOST, PORTS["rspamd_controller"]), timeout=5)
            s.sendall(b"GET /stat HTTP/1.0\r\nPassword: q1\r\n\r\n")
            data = b""
            while True:
                c = s.recv(65536)
                if not c:
                    break
                data += c
            s.close()
            body = data.split(b"\r\n\r\n", 1)[1]
            j = json.loads(body)
            return {"scanned": j.get("scanned"), "actions": j.get("actions")}
        except Exception as e:  # noqa: BLE001
            return {"error": str(e)}


# --------------------------------------------------------------------------
# benchmark
# --------------------------------------------------------------------------
class Bench:
    def __init__(self, args):
        self.args = args
        self.root = ROOT
        self.logdir = os.path.join(self.root, "logs")
        self.pf = Postfix(self.root, extra_main=args.postfix_extra)
        self.sink = Sink(PORTS["sink"])
        self.filters = {}
        self.addr_override = {}  # config -> address, when it differs from the filter's own
        self.results = []
        self.msgfile = os.path.join(self.root, "message.eml")

    # -- setup ---------------------------------------------------------
    def setup(self):
        a = self.args
        if os.path.exists(os.path.join(self.root, "pf")):
            shutil.rmtree(os.path.join(self.root, "pf"))
        os.makedirs(self.logdir, exist_ok=True)
        for name, port in PORTS.items():
            if name != "rspamd_dns" and not port_free(port):
                raise RuntimeError(f"port {port} ({name}) is busy; is another bench running?")
        self.msg_text = make_message(self.msgfile, a.size)
        os.chmod(self.msgfile, 0o644)
        wanted = a.configs
        py = VENV_PY if os.path.exists(VENV_PY) else sys.executable
        # built-in filters
        if "B" in wanted:
            self.filters["B"] = Filter("B", "milter", f"inet:{HOST}:{PORTS['noop_milter']}",
                                       argv=[py, os.path.join(HERE, "noop_milter.py"), "--mode", "full",
                                             "--listen", f"inet:{PORTS['noop_milter']}@{HOST}"])
        if "B0" in wanted:
            self.filters["B0"] = Filter("B0", "milter", f"inet:{HOST}:{PORTS['noop_milter_min']}",
                                        argv=[py, os.path.join(HERE, "noop_milter.py"), "--mode", "min",
                                              "--listen", f"inet:{PORTS['noop_milter_min']}@{HOST}"])
        if "BH" in wanted:
            self.filters["BH"] = Filter("BH", "milter", f"inet:{HOST}:{PORTS['noop_milter_hdr']}",
                                        argv=[py, os.path.join(HERE, "noop_milter.py"), "--mode", "headers",
                                              "--listen", f"inet:{PORTS['noop_milter_hdr']}@{HOST}"])
        for cfg, port, extra in (("E", "aio_milter", ["--mode", "reply"]),
                                 ("EN", "aio_milter_nr", ["--mode", "noreply"]),
                                 ("ENQ", "aio_milter_nrq", ["--mode", "noreply", "--quickack"])):
            if cfg in wanted:
                self.filters[cfg] = Filter(cfg, "milter", f"inet:{HOST}:{PORTS[port]}",
                                           argv=[sys.executable, os.path.join(HERE, "aio_milter.py"), *extra,
                                                 "--listen", f"inet:{HOST}:{PORTS[port]}"])
        if "C" in wanted or "CU" in wanted:
            r = Rspamd(self.root, a.rspamd_proxy_count)
            r.prepare()
            if "C" in wanted:
                self.filters["C"] = r
            if "CU" in wanted:
                self.filters["CU"] = r
                self.addr_override["CU"] = f"unix:{r.unix_path}"
        if "D" in wanted:
            self.filters["D"] = Filter("D", "policy", f"inet:{HOST}:{PORTS['policy']}",
                                       argv=[sys.executable, os.path.join(HERE, "policy_server.py"),
                                             "--impl", a.policy_impl, "--listen", f"inet:{HOST}:{PORTS['policy']}"])
        # user-supplied (the product)
        if a.milter:
            self.filters["M"] = Filter("M", "milter", a.milter,
                                       argv=shlex.split(a.milter_cmd) if a.milter_cmd else None,
                                       pid=a.milter_pid, log_name="M-product-milter")
            if "M" not in wanted:
                wanted.append("M")
        if a.milter_unix:
            self.filters["MU"] = Filter("MU", "milter", a.milter_unix,
                                        argv=shlex.split(a.milter_unix_cmd) if a.milter_unix_cmd else None,
                                        log_name="MU-product-milter-unix")
            if "MU" not in wanted:
                wanted.append("MU")
        if a.policy:
            self.filters["P"] = Filter("P", "policy", a.policy,
                                       argv=shlex.split(a.policy_cmd) if a.policy_cmd else None,
                                       pid=a.policy_pid, log_name="P-product-policy")
            if "P" not in wanted:
                wanted.append("P")
        for c in wanted:
            if c != "A" and c not in self.filters:
                raise SystemExit(f"unknown configuration {c!r} (or missing --milter/--policy)")
        self.order = wanted
        self.pf.create()
        self.sink.start()
        started = []
        for f in self.filters.values():
            if f not in started:
                f.start(self.logdir)
                started.append(f)
        log("filters up:", {k: (self.addr_override.get(k, v.addr), v.pid()) for k, v in self.filters.items()})

    def postfix_for(self, cfg):
        f = self.filters.get(cfg)
        addr = self.addr_override.get(cfg, f.addr) if f else None
        milter = addr if f and f.kind == "milter" else None
        policy = addr if f and f.kind == "policy" else None
        self.pf.configure(cfg, milter, policy)
        return self.pf.start()

    # -- functional check ----------------------------------------------
    def functional_check(self):
        """One clean, one From-blocklisted and one Subject-blocklisted message per config."""
        good = self.msg_text
        bad_from = make_message(os.path.join(self.root, "bad_from.eml"), 1500,
                                frm="Spam Sender <spammer@bad.example>", msgid="bench-bad-from")
        bad_subj = make_message(os.path.join(self.root, "bad_subj.eml"), 1500,
                                subject="You have won a prize", msgid="bench-bad-subj")
        out = {}
        for cfg in self.order:
            self.postfix_for(cfg)
            base = self.sink.count
            res = {}
            for label, text in (("clean", good), ("from_blocklisted", bad_from), ("subject_blocklisted", bad_subj)):
                code, stage, dt = smtp_txn(PORTS["smtpd"], text)
                res[label] = f"{code}@{stage}"
            accepted = sum(1 for v in res.values() if v.startswith("250"))
            self.sink.wait(base + accepted, 30)
            self.pf.wait_empty(30)
            self.pf.stop()
            out[cfg] = res
            log(f"functional check {cfg}: {res}")
        return out

    # -- one measured run ----------------------------------------------
    def one_run(self, cfg, rnd):
        a = self.args
        f = self.filters.get(cfg)
        log_off = self.pf.log_size()
        master = self.postfix_for(cfg)
        time.sleep(0.5)
        src_base = ["smtp-source", "-s", str(a.sessions), "-f", SENDER, "-t", RCPT, "-N",
                    "-M", "client.example", "-F", self.msgfile]
        # warm-up (not measured): starts smtpd/cleanup/smtp processes, filter threads etc.
        base = self.sink.count
        if a.warmup:
            r = run(src_base[:3] + ["-m", str(a.warmup)] + src_base[3:] + [f"{HOST}:{PORTS['smtpd']}"], check=False,
                    timeout=120)
            if r.returncode != 0:
                log(f"warm-up failed for {cfg}: {r.stdout[-500:]}")
            if self.sink.wait(base + a.warmup, 120) is None:
                log(f"warm-up: only {self.sink.count - base}/{a.warmup} delivered")
            self.pf.wait_empty(60)
        base = self.sink.count
        target = base + a.messages
        self.sink.expect(target)
        groups = {"filter": [f.pid()] if f and f.pid() else [], "sink": [self.sink.proc.pid],
                  "postfix": [master]}
        mine_roots = [os.getpid(), master]
        s0 = CpuSnap(groups)
        t0 = time.monotonic()
        argv = src_base[:3] + ["-m", str(a.messages)] + src_base[3:] + [f"{HOST}:{PORTS['smtpd']}"]
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            _, status, ru = os.wait4(p.pid, 0)
        except ChildProcessError:
            status, ru = 0, None
        t_inj = time.monotonic()
        p.returncode = os.waitstatus_to_exitcode(status)
        src_out = p.stdout.read()
        t_done = self.sink.wait(target, a.timeout)
        s1 = CpuSnap(groups)
        ok = t_done is not None and p.returncode == 0
        if t_done is None:
            log(f"TIMEOUT: {self.sink.count - base}/{a.messages} delivered in {a.timeout}s")
            t_done = time.monotonic()
        cpu = CpuSnap.diff(s0, s1, mine_roots)
        # the postfix group only sees long-lived processes; the master reaps the rest,
        # so sys_busy - everything-else is the better estimate (reported below).
        inj_s = t_inj - t0
        e2e_s = t_done - t0
        n = a.messages
        res = {
            "config": cfg, "round": rnd, "ok": ok, "messages": n, "sessions": a.sessions,
            "size_bytes": len(self.msg_text),
            "inject_s": round(inj_s, 3), "e2e_s": round(e2e_s, 3),
            "inject_mps": round(n / inj_s, 1), "e2e_mps": round(n / e2e_s, 1),
            # closed loop: each session sends its messages one after another
            "lat_mean_loaded_ms": round(1000.0 * inj_s * a.sessions / n, 2),
            "source_rc": p.returncode,
            "source_cpu_s": round(ru.ru_utime + ru.ru_stime, 3) if ru else None,
        }
        for k, v in cpu.items():
            res[k] = round(v, 3)
        res["filter_cpu_ms_per_msg"] = round(1000.0 * cpu["cpu_filter_s"] / n, 3) if f and f.pid() else None
        res["sys_cpu_ms_per_msg"] = round(1000.0 * cpu["sys_busy_s"] / n, 3)
        res["filter_cpu_pct"] = round(100.0 * cpu["cpu_filter_s"] / cpu["wall_s"], 1) if f and f.pid() else None
        if p.returncode != 0:
            res["source_output"] = src_out[-400:]
        # unloaded latency: K sequential transactions from a Python client
        lat = []
        bad = 0
        base2 = self.sink.count
        for _ in range(a.probe):
            code, stage, dt = smtp_txn(PORTS["smtpd"], self.msg_text)
            if code == 250:
                lat.append(dt * 1000.0)
            else:
                bad += 1
        self.sink.wait(base2 + len(lat), 60)
        if lat:
            res["probe_n"] = len(lat)
            res["probe_p50_ms"] = round(pct(lat, 50), 3)
            res["probe_p90_ms"] = round(pct(lat, 90), 3)
            res["probe_p99_ms"] = round(pct(lat, 99), 3)
            res["probe_mean_ms"] = round(statistics.fmean(lat), 3)
        res["probe_failed"] = bad
        self.pf.wait_empty(60)
        self.pf.stop()
        res["maillog"] = self.pf.log_stats(log_off)
        exp_sent = a.warmup + n + len(lat)
        if res["maillog"]["sent"] != exp_sent:
            res["maillog_note"] = f"expected {exp_sent} status=sent, saw {res['maillog']['sent']}"
        log(f"[{cfg} r{rnd}] ok={ok} inject={res['inject_mps']}/s e2e={res['e2e_mps']}/s "
            f"lat_loaded={res['lat_mean_loaded_ms']}ms probe_p50={res.get('probe_p50_ms')}ms "
            f"filter_cpu={res['filter_cpu_ms_per_msg']}ms/msg sys_cpu={res['sys_cpu_ms_per_msg']}ms/msg "
            f"foreign={res['cpu_foreign_s']}s steal={res['steal_s']}s")
        return res

    # -- policy raw load -------------------------------------------------
    def policy_raw(self):
        a = self.args
        out = []
        targets = []
        py = sys.executable
        for impl in a.policy_raw_impls:
            port = PORTS["policy_raw"]
            srv = Filter(f"policy-raw-{impl}", "policy", f"inet:{HOST}:{port}",
                         argv=[py, os.path.join(HERE, "policy_server.py"), "--impl", impl,
                               "--listen", f"inet:{HOST}:{port}"])
            targets.append((f"asyncio-{impl}", srv))
        if a.policy:
            targets.append(("P-product", self.filters["P"]))
        for label, srv in targets:
            own = srv.proc is None and srv.argv is not None
            if own:
                srv.start(self.logdir)
            for rnd in range(1, a.rounds + 1):
                for c in a.policy_conns:
                    argv = [py, os.path.join(HERE, "policy_load.py"), "--addr", srv.addr,
                            "--conns", str(c), "--duration", str(a.policy_duration), "--warmup", "1"]
                    if srv.pid():
                        argv += ["--server-pid", str(srv.pid())]
                    r = run(argv, check=False, timeout=a.policy_duration + 60)
                    try:
                        j = json.loads(r.stdout.strip().splitlines()[-1])
                    except Exception:  # noqa: BLE001
                        j = {"error": r.stdout[-400:]}
                    j.update({"server": label, "round": rnd})
                    out.append(j)
                    log(f"[policy-raw {label} c={c} r{rnd}] rps={j.get('rps')} p50={j.get('lat_ms', {}).get('p50')}ms "
                        f"p99={j.get('lat_ms', {}).get('p99')}ms server_cpu={j.get('server_cpu_pct')}% "
                        f"client_cpu={j.get('client_cpu_pct')}%")
            if own:
                srv.stop()
        return out

    def cleanup(self):
        try:
            self.pf.stop()
        except Exception as e:  # noqa: BLE001
            log("postfix stop:", e)
        for p in list(reversed(STARTED)):
            stop_proc(p)


def med(vals):
    v = [x for x in vals if x is not None]
    return statistics.median(v) if v else None


def fmt(x, nd=1):
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def summarize(results, order, policy_raw, meta, functional):
    lines = []
    by = {c: [r for r in results if r["config"] == c] for c in order}
    base = med([r["e2e_mps"] for r in by.get("A", []) if r["ok"]])
    base_inj = med([r["inject_mps"] for r in by.get("A", []) if r["ok"]])
    base_p50 = med([r.get("probe_p50_ms") for r in by.get("A", []) if r["ok"]])
    lines.append("| cfg | what | ok runs | e2e msg/s (median, min-max) | vs A | inject msg/s | vs A | "
                 "mean latency under load, ms | unloaded latency p50 / p99, ms | +p50 vs A, ms | "
                 "filter CPU ms/msg | filter CPU % | whole-box CPU ms/msg | foreign CPU s/run |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    desc = meta["descriptions"]
    for c in order:
        rs = [r for r in by[c] if r["ok"]]
        e2e = [r["e2e_mps"] for r in rs]
        m = med(e2e)
        inj = med([r["inject_mps"] for r in rs])
        p50 = med([r.get("probe_p50_ms") for r in rs])
        lines.append(
            f"| {c} | {desc.get(c, '')} | {len(rs)}/{len(by[c])} | "
            f"{fmt(m)} ({fmt(min(e2e) if e2e else None)}-{fmt(max(e2e) if e2e else None)}) | "
            f"{fmt(m / base if m and base else None, 2)} | {fmt(inj)} | "
            f"{fmt(inj / base_inj if inj and base_inj else None, 2)} | "
            f"{fmt(med([r['lat_mean_loaded_ms'] for r in rs]), 2)} | "
            f"{fmt(p50, 2)} / {fmt(med([r.get('probe_p99_ms') for r in rs]), 2)} | "
            f"{fmt(p50 - base_p50 if p50 is not None and base_p50 is not None else None, 2)} | "
            f"{fmt(med([r['filter_cpu_ms_per_msg'] for r in rs]), 3)} | "
            f"{fmt(med([r['filter_cpu_pct'] for r in rs]))} | "
            f"{fmt(med([r['sys_cpu_ms_per_msg'] for r in rs]), 2)} | "
            f"{fmt(med([r['cpu_foreign_s'] for r in rs]))} |")
    out = ["## Postfix + filter (interleaved runs)", "",
           f"{meta['messages']} messages of {meta['size_bytes']} bytes per run, {meta['sessions']} concurrent "
           f"smtp-source sessions, one message per SMTP connection, {meta['rounds']} rounds, order "
           f"{' '.join(order)} each round. Medians over rounds.", ""] + lines
    if functional:
        out += ["", "Functional check (reply code@stage for a clean, a From-blocklisted and a "
                    "Subject-blocklisted message):", ""]
        for c, r in functional.items():
            out.append(f"- {c}: " + ", ".join(f"{k} {v}" for k, v in r.items()))
    if policy_raw:
        out += ["", "## Raw policy-protocol throughput (policy_load.py, closed loop, loopback)", "",
                "| server | conns | req/s (median, min-max) | p50 ms | p99 ms | server CPU % | server CPU us/req | client CPU % |",
                "|---|---|---|---|---|---|---|---|"]
        servers = []
        for r in policy_raw:
            if r["server"] not in servers:
                servers.append(r["server"])
        for s in servers:
            conns = sorted({r["conns"] for r in policy_raw if r["server"] == s and "conns" in r})
            for c in conns:
                rs = [r for r in policy_raw if r["server"] == s and r.get("conns") == c and "rps" in r]
                rps = [r["rps"] for r in rs]
                out.append(f"| {s} | {c} | {fmt(med(rps), 0)} ({fmt(min(rps) if rps else None, 0)}-"
                           f"{fmt(max(rps) if rps else None, 0)}) | "
                           f"{fmt(med([r['lat_ms']['p50'] for r in rs]), 3)} | "
                           f"{fmt(med([r['lat_ms']['p99'] for r in rs]), 3)} | "
                           f"{fmt(med([r.get('server_cpu_pct') for r in rs]))} | "
                           f"{fmt(med([r.get('server_cpu_us_per_req') for r in rs]))} | "
                           f"{fmt(med([r.get('client_cpu_pct') for r in rs]))} |")
    return "\n".join(out) + "\n"


def versions():
    v = {}

    def cmd(argv):
        try:
            return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  timeout=20).stdout.strip()
        except Exception as e:  # noqa: BLE001
            return f"? ({e})"

    v["postfix"] = cmd(["postconf", "-h", "-d", "mail_version"])
    v["rspamd"] = cmd(["rspamd", "--version"]).splitlines()[0] if shutil.which("rspamd") else None
    dq = cmd(["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", "postfix", "rspamd", "libmilter1.0.1",
              "libmilter-dev", "libhyperscan5"])
    v["debian_packages"] = dq.splitlines()
    py = VENV_PY if os.path.exists(VENV_PY) else sys.executable
    v["pymilter"] = cmd([py, "-c", "import Milter,milter;print(getattr(Milter,'__version__','?'), 'libmilter', milter.getversion())"])
    v["python"] = sys.version.split()[0]
    v["python_venv"] = cmd([py, "-c", "import sys;print(sys.version.split()[0])"])
    v["kernel"] = platform.release()
    try:
        v["debian"] = open("/etc/debian_version").read().strip()
    except OSError:
        pass
    v["cpus"] = os.cpu_count()
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            v["cpu_model"] = m.group(1) if m else None
    except OSError:
        pass
    return v


def main():
    global LOG
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="A,B,C,D",
                    help="comma list, run in this order each round (built-ins: A,B,B0,BH,C,CU,D,E,EN,ENQ; M/P are added "
                         "automatically with --milter/--policy). Default %(default)s")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--messages", type=int, default=5000, help="messages per measured run")
    ap.add_argument("--sessions", type=int, default=4, help="concurrent smtp-source sessions")
    ap.add_argument("--size", type=int, default=4096, help="approximate message size, bytes")
    ap.add_argument("--warmup", type=int, default=200, help="unmeasured messages before each run")
    ap.add_argument("--probe", type=int, default=200, help="sequential messages for the unloaded latency probe")
    ap.add_argument("--timeout", type=float, default=150, help="max seconds to wait for delivery of one run")
    ap.add_argument("--milter", help="product milter address in Postfix syntax, e.g. inet:127.0.0.1:21200")
    ap.add_argument("--milter-cmd", help="command that starts the product milter (harness starts/stops it)")
    ap.add_argument("--milter-pid", type=int, help="PID of an already running product milter (for CPU accounting)")
    ap.add_argument("--milter-unix", help="the product milter again, on a unix socket (config MU)")
    ap.add_argument("--milter-unix-cmd", help="command that starts the unix-socket product milter")
    ap.add_argument("--policy", help="product policy service address in Postfix syntax, e.g. inet:127.0.0.1:21201")
    ap.add_argument("--policy-cmd", help="command that starts the product policy service")
    ap.add_argument("--policy-pid", type=int, help="PID of an already running product policy service")
    ap.add_argument("--policy-impl", default="streams", choices=("streams", "protocol"),
                    help="implementation of the built-in asyncio policy server used by D")
    ap.add_argument("--policy-raw", default="streams,protocol",
                    help="built-in policy server implementations for the raw load test ('' to skip)")
    ap.add_argument("--policy-conns", default="1,4,16,64")
    ap.add_argument("--policy-duration", type=float, default=5.0)
    ap.add_argument("--skip-policy-raw", action="store_true")
    ap.add_argument("--rspamd-proxy-count", type=int, default=1, help="rspamd proxy worker processes (Debian default 1)")
    ap.add_argument("--postfix-extra", default="", help="extra main.cf lines for the instance (e.g. 'in_flow_delay = 0')")
    ap.add_argument("--out", default=os.path.join(HERE, "results"), help="results directory")
    ap.add_argument("--tag", default="", help="label appended to the results folder name")
    ap.add_argument("--keep", action="store_true", help="keep BENCH_ROOT/pf and rspamd state after the run")
    ap.add_argument("--no-functional-check", action="store_true")
    args = ap.parse_args()
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    args.policy_conns = [int(x) for x in args.policy_conns.split(",") if x]
    args.policy_raw_impls = [x for x in args.policy_raw.split(",") if x]
    if args.skip_policy_raw:
        args.policy_raw_impls = []
    if os.geteuid() != 0:
        raise SystemExit("run as root (postfix instance, smtp-sink -u postfix, rspamd -u _rspamd)")

    os.makedirs(ROOT, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + (f"-{args.tag}" if args.tag else "")
    outdir = os.path.join(args.out, stamp)
    os.makedirs(outdir, exist_ok=True)
    LOG = open(os.path.join(outdir, "bench.log"), "w")
    b = Bench(args)

    def on_signal(sig, frm):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    meta = {"started": stamp, "argv": sys.argv, "messages": args.messages, "sessions": args.sessions,
            "rounds": args.rounds, "warmup": args.warmup, "probe": args.probe, "ports": PORTS,
            "bench_root": ROOT, "versions": versions(),
            "descriptions": {"A": "Postfix alone", "B": "+ no-op pymilter (all callbacks)",
                             "B0": "+ no-op pymilter (eom only)", "BH": "+ no-op pymilter (headers, no-reply)",
                             "C": f"+ rspamd milter, TCP (offline, {args.rspamd_proxy_count} proxy proc)",
                             "CU": f"+ rspamd milter, unix socket (offline, {args.rspamd_proxy_count} proxy proc)",
                             "D": f"+ asyncio policy ({args.policy_impl})",
                             "E": "+ asyncio milter, answers every event",
                             "EN": "+ asyncio milter, no-reply flags (like rspamd)",
                             "ENQ": "+ asyncio milter, no-reply flags + TCP_QUICKACK",
                             "M": f"+ product milter {args.milter}", "MU": f"+ product milter {args.milter_unix}", "P": f"+ product policy {args.policy}"}}
    log("versions:", json.dumps(meta["versions"]))
    functional = {}
    policy_raw = []
    try:
        b.setup()
        meta["size_bytes"] = len(b.msg_text)
        if not args.no_functional_check:
            functional = b.functional_check()
        for rnd in range(1, args.rounds + 1):
            for cfg in b.order:
                try:
                    r = b.one_run(cfg, rnd)
                except Exception as e:  # noqa: BLE001
                    log(f"run {cfg} r{rnd} failed: {e!r}")
                    r = {"config": cfg, "round": rnd, "ok": False, "error": repr(e)}
                    b.pf.stop()
                b.results.append(r)
                with open(os.path.join(outdir, "runs.jsonl"), "a") as f:
                    f.write(json.dumps(r) + "\n")
        # filter-side counters (sanity: did the filter see the traffic?)
        meta["filter_stats"] = {}
        for k in ("C", "CU"):
            if k in b.filters:
                meta["filter_stats"]["rspamd_controller_stat"] = b.filters[k].stat()
        if args.policy_raw_impls or args.policy:
            policy_raw = b.policy_raw()
            with open(os.path.join(outdir, "policy_raw.jsonl"), "w") as f:
                for r in policy_raw:
                    f.write(json.dumps(r) + "\n")
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        b.cleanup()
        # counters printed by the built-in filters on exit
        for name in ("B", "B0", "BH", "D", "E", "EN", "ENQ"):
            lf = os.path.join(b.logdir, f"{name}.log")
            if os.path.exists(lf):
                with open(lf) as f:
                    tail = [ln for ln in f.read().splitlines() if ln.startswith("{")]
                if tail:
                    meta.setdefault("filter_stats", {})[name] = json.loads(tail[-1])
        for name in os.listdir(b.logdir) if os.path.isdir(b.logdir) else []:
            shutil.copy(os.path.join(b.logdir, name), os.path.join(outdir, "filter-" + name))
        if os.path.exists(os.path.join(ROOT, "rspamd", "log", "rspamd.log")):
            with open(os.path.join(ROOT, "rspamd", "log", "rspamd.log"), errors="replace") as f:
                lines = f.read().splitlines()
            with open(os.path.join(outdir, "rspamd.log.tail"), "w") as f:
                f.write("\n".join(lines[:40] + ["..."] + lines[-40:]) + "\n")
        if not args.keep:
            for d in ("pf", "rspamd", "logs"):
                shutil.rmtree(os.path.join(ROOT, d), ignore_errors=True)
            for fn in ("message.eml", "bad_from.eml", "bad_subj.eml"):
                try:
                    os.remove(os.path.join(ROOT, fn))
                except OSError:
                    pass
    meta["functional_check"] = functional
    with open(os.path.join(outdir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
    if b.results:
        summary = summarize(b.results, b.order, policy_raw, meta, functional)
        with open(os.path.join(outdir, "summary.md"), "w") as f:
            f.write(summary)
        print()
        print(summary)
        log(f"results in {outdir}")


if __name__ == "__main__":
    main()

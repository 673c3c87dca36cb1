#!/usr/bin/env bash
# The milter's CPU per message without Postfix (bench/milter_load.py as the MTA),
# side by side in one run with the no-op asyncio milter (harness aio_milter.py,
# no-reply flags + TCP_QUICKACK: bench/run.sh's ENQ), over loopback TCP and a
# unix socket, interleaved round by round.  Store: bench/populate.py's
# $MAILBOXES mailboxes with every rule active, scanners off (as bench/run.sh).
#
#   bash bench/milter_cpu.sh            ROUNDS=5 MESSAGES=3000 SESSIONS=4 MAILBOXES=100000
#   BASELINE=/path/to/other/checkout bash bench/milter_cpu.sh
# Prints one JSON line per round and target, then the medians.  With BASELINE
# (a checkout of an earlier commit, set up with `bash scripts/bootstrap.sh run`)
# that checkout's milter runs too, as MB / MBU, on its own copy of the store
# (populated by its own bench/populate.py, at its own schema), interleaved
# with the others: a change measured against the code before it in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
MAILBOXES=${MAILBOXES:-100000}
ROUNDS=${ROUNDS:-5}
MESSAGES=${MESSAGES:-3000}
SESSIONS=${SESSIONS:-4}
work=${BENCH_WORK:-/tmp/mailadmin-bench}
mkdir -p "$work"
db="$work/store-$MAILBOXES.db"
[ -f "$db" ] || .venv/bin/python bench/populate.py "sqlite:///$db" "$MAILBOXES"
py=.venv/bin/python
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT

$py bench/harness/aio_milter.py --listen inet:127.0.0.1:21300 --mode noreply --quickack 2>"$work/enq-tcp.log" &
pids+=($!); enq_tcp=$!
$py bench/harness/aio_milter.py --listen "unix:$work/enq.sock" --mode noreply --quickack 2>"$work/enq-unix.log" &
pids+=($!); enq_unix=$!
serve() {  # serve LISTEN METRICS_PORT LOG
    env MAILADMIN_CONFIG="$root/conf/mailadmin.toml" MAILADMIN_DATABASE_URL="sqlite:///$db" \
        MAILADMIN_GEOIP_DATABASE_PATH="$root/var/geoip/dbip-country.mmdb" MAILADMIN_LOGGING_LEVEL=INFO \
        MAILADMIN_MILTER_LISTEN="$1" MAILADMIN_METRICS_LISTEN="inet:127.0.0.1:$2" \
        .venv/bin/mailadmin serve milter 2>"$3" &
}
serve inet:127.0.0.1:21301 21310 "$work/m-tcp.log"; pids+=($!); m_tcp=$!
serve "unix:$work/m.sock" 21311 "$work/m-unix.log"; pids+=($!); m_unix=$!
if [ -n "${BASELINE:-}" ]; then
    base_db="$work/store-$MAILBOXES-baseline.db"
    [ -f "$base_db" ] || (cd "$BASELINE" && .venv/bin/python bench/populate.py "sqlite:///$base_db" "$MAILBOXES")
    serve_base() {  # serve_base LISTEN METRICS_PORT LOG
        env MAILADMIN_CONFIG="$BASELINE/conf/mailadmin.toml" MAILADMIN_DATABASE_URL="sqlite:///$base_db" \
            MAILADMIN_GEOIP_DATABASE_PATH="$root/var/geoip/dbip-country.mmdb" MAILADMIN_LOGGING_LEVEL=INFO \
            MAILADMIN_MILTER_LISTEN="$1" MAILADMIN_METRICS_LISTEN="inet:127.0.0.1:$2" \
            "$BASELINE/.venv/bin/mailadmin" serve milter 2>"$3" &
    }
    serve_base inet:127.0.0.1:21302 21312 "$work/mb-tcp.log"; pids+=($!); mb_tcp=$!
    serve_base "unix:$work/mb.sock" 21313 "$work/mb-unix.log"; pids+=($!); mb_unix=$!
fi
for _ in $(seq 100); do
    [ -S "$work/m.sock" ] && [ -S "$work/enq.sock" ] && ss -ltn | grep -q ':21301 ' \
        && { [ -z "${BASELINE:-}" ] || { [ -S "$work/mb.sock" ] && ss -ltn | grep -q ':21302 '; }; } && break
    sleep 0.1
done
results="$work/milter-cpu-$(date +%s).jsonl"
load() {  # load NAME TARGET PID FROM
    $py bench/milter_load.py --target "$2" --pid "$3" --messages "$MESSAGES" --sessions "$SESSIONS" \
        --recipients-from "$4" | sed "s/^{/{\"cfg\": \"$1\", /" | tee -a "$results"
}
for round in $(seq "$ROUNDS"); do
    load ENQ inet:127.0.0.1:21300 $enq_tcp 0
    load ENQU "unix:$work/enq.sock" $enq_unix 0
    load M inet:127.0.0.1:21301 $m_tcp 0
    load MU "unix:$work/m.sock" $m_unix 0
    if [ -n "${BASELINE:-}" ]; then
        load MB inet:127.0.0.1:21302 $mb_tcp 0
        load MBU "unix:$work/mb.sock" $mb_unix 0
    fi
done
$py - "$results" <<'EOF'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["cfg"], []).append(r)
print(f"{'cfg':5} {'msg/s':>8} {'cpu ms/msg':>11}   (medians of {len(rows) // len(by)} rounds)")
med = {}
for cfg, rs in by.items():
    med[cfg] = (statistics.median(r["msg_per_s"] for r in rs), statistics.median(r["server_cpu_ms_per_msg"] for r in rs))
    print(f"{cfg:5} {med[cfg][0]:8.1f} {med[cfg][1]:11.3f}   answers {rs[-1]['answers']}")
for m, e in (("M", "ENQ"), ("MU", "ENQU"), ("MB", "ENQ"), ("MBU", "ENQU"), ("M", "MB"), ("MU", "MBU")):
    if m in med and e in med:
        print(f"{m} / {e}: CPU {med[m][1] / med[e][1]:.2f}x, msg/s {med[m][0] / med[e][0]:.2f}x")
EOF

#!/usr/bin/env bash
# Start the throwaway clamd and spamd the tests use (tests/fixtures/scanners.py),
# for trying mailadmin by hand: loopback only, a tiny EICAR signature database,
# SpamAssassin's shipped rules without network tests.
#
#   scripts/start-scanners.sh BASEDIR          start; prints the addresses to export
#   scripts/start-scanners.sh --stop BASEDIR   stop both
#
# BASEDIR must not exist yet, and its parents must be readable by the
# debian-spamd user (spamd's children run as that user).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--stop" ]; then
    base=${2:?usage: $0 --stop BASEDIR}
    [ -f "$base/pids" ] || { echo "start-scanners: no $base/pids" >&2; exit 1; }
    while read -r pid; do
        # Each daemon leads its own process group: this reaches spamd's children too.
        kill -TERM -- "-$pid" 2>/dev/null || true
    done <"$base/pids"
    rm -f "$base/pids"
    echo "start-scanners: stopped"
    exit 0
fi

base=${1:?usage: $0 BASEDIR | --stop BASEDIR}
[ -e "$base" ] && { echo "start-scanners: $base already exists" >&2; exit 1; }
mkdir -p "$base/clamd" "$base/spamd"
base=$(cd "$base" && pwd)
[ -x .venv/bin/python ] || { echo "start-scanners: run scripts/bootstrap.sh test first" >&2; exit 1; }

.venv/bin/python - "$base" <<'PY'
import sys
from pathlib import Path

from tests.fixtures.scanners import start_clamd, start_spamd

base = Path(sys.argv[1])
clamd, _ = start_clamd(base / "clamd")
with open(base / "pids", "w") as pids:
    print(clamd.pid, file=pids)
spamd, _ = start_spamd(base / "spamd")
with open(base / "pids", "a") as pids:
    print(spamd.pid, file=pids)
print(f"export MAILADMIN_CLAMD_ADDRESS={clamd.unix_address}   # or {clamd.tcp_address}")
print(f"export MAILADMIN_SPAMD_ADDRESS={spamd.unix_address}   # or {spamd.tcp_address}")
PY
echo "# stop with: $0 --stop $base"

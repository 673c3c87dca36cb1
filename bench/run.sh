#!/usr/bin/env bash
# Throughput of mailadmin hooked into a real Postfix, side by side in one run with
# Postfix alone, a no-op pymilter and rspamd as a milter (bench/harness, see its
# header).  mailadmin runs with every rule type active on a store of
# $MAILBOXES mailboxes (bench/populate.py), scanners off, as:
#   M   milter over loopback TCP        MU  milter over a unix socket
#   P   Postfix policy delegation
# ENQ (a no-op asyncio milter with the same no-reply flags and TCP_QUICKACK) is
# in the default configs: the milter's goal is stated against it.
#
#   bash bench/run.sh [harness options, e.g. --rounds 3 --messages 3000]
# Results: bench/harness/results/<stamp>-mailadmin/summary.md
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bash scripts/bootstrap.sh run >/dev/null
MAILBOXES=${MAILBOXES:-100000}
work=${BENCH_WORK:-/tmp/mailadmin-bench}
mkdir -p "$work"
chmod 755 "$work"
db="$work/store-$MAILBOXES.db"
if [ ! -f "$db" ]; then
    .venv/bin/python bench/populate.py "sqlite:///$db" "$MAILBOXES"
fi

env_common=(
    MAILADMIN_CONFIG="$root/conf/mailadmin.toml"
    MAILADMIN_DATABASE_URL="sqlite:///$db"
    MAILADMIN_GEOIP_DATABASE_PATH="$root/var/geoip/dbip-country.mmdb"
    MAILADMIN_LOGGING_LEVEL=INFO
)
serve() {  # serve ROLE VAR=VALUE...
    local role=$1; shift
    echo "env ${env_common[*]} $* $root/.venv/bin/mailadmin serve $role"
}

cd bench/harness
exec ./run.sh --configs ${CONFIGS:-A,B,CU,D,ENQ} --rounds ${ROUNDS:-3} --messages ${MESSAGES:-3000} --tag mailadmin \
    --milter inet:127.0.0.1:21200 \
    --milter-cmd "$(serve milter MAILADMIN_MILTER_LISTEN=inet:127.0.0.1:21200 MAILADMIN_METRICS_LISTEN=inet:127.0.0.1:21210)" \
    --milter-unix "unix:$work/milter.sock" \
    --milter-unix-cmd "$(serve milter MAILADMIN_MILTER_LISTEN=unix:$work/milter.sock MAILADMIN_METRICS_LISTEN=inet:127.0.0.1:21211)" \
    --policy inet:127.0.0.1:21201 \
    --policy-cmd "$(serve policy MAILADMIN_POSTFIX_POLICY_LISTEN=inet:127.0.0.1:21201 MAILADMIN_METRICS_LISTEN=inet:127.0.0.1:21212)" \
    "$@"

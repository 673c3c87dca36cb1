#!/usr/bin/env bash
# Create .venv with mailadmin (and, with "test", its test dependencies) installed,
# and fetch the offline GeoIP database into var/geoip/.  Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}
bash scripts/install-system-deps.sh "$mode"
[ -x .venv/bin/python ] || python3 -m venv .venv
extra=""
# The tests run the store on SQLite and on a real PostgreSQL (psycopg).
[ "$mode" = test ] && extra="[test,postgresql]"
stamp=".venv/.installed-$mode$extra"  # new extras mean a new install
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e ".$extra"
    touch "$stamp"
fi
bash scripts/fetch-geoip.sh var/geoip

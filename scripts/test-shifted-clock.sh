#!/usr/bin/env bash
# Run tests with the clock shifted far ahead and far back (Debian's faketime),
# to prove that no test depends on the day it runs.
#   scripts/test-shifted-clock.sh [PYTEST ARGS...]     default: the whole suite
#   SHIFTS="+400 days|-400 days" (|-separated) chooses the shifts.
# Every process the tests start inherits the shifted clock (clamd, spamd,
# Chromium, mailadmin serve), except Postfix's daemons: Postfix clears its
# environment (import_environment), so they stamp Received lines on the real
# clock, as an MTA on another host with its own clock would.  Files keep the
# kernel's real modification times.
set -euo pipefail
cd "$(dirname "$0")/.."
export MAILADMIN_TEST_GEOIP="${MAILADMIN_TEST_GEOIP:-$PWD/var/geoip/dbip-country.mmdb}"
IFS='|' read -r -a shifts <<< "${SHIFTS:-+400 days|-400 days}"
for shift in "${shifts[@]}"; do
    echo "== tests with the clock shifted ${shift}: $(faketime "$shift" date -u '+%Y-%m-%d %H:%M UTC')"
    faketime "$shift" .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
done

#!/usr/bin/env bash
# Install everything the tests need (Debian packages: Postfix, clamd, spamd,
# Dovecot, Chromium; Python deps; the GeoIP data) and run the whole suite:
# unit, integration and end-to-end tiers, then the unit and integration tiers
# again with the clock shifted 400 days ahead and back (no test may depend on
# the day it runs).  Exits non-zero when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
export MAILADMIN_TEST_GEOIP="$PWD/var/geoip/dbip-country.mmdb"
mkdir -p test-artifacts
.venv/bin/mypy
.venv/bin/python -m pytest -q -p no:cacheprovider --junitxml=test-artifacts/junit.xml "$@"
if [ $# -eq 0 ]; then
    # Time zones and dates are the same on both stores: SQLite is enough here.
    bash scripts/test-shifted-clock.sh -k "not postgresql" tests/unit tests/integration
fi

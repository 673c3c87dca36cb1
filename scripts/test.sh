#!/usr/bin/env bash
# Install everything the tests need (Debian packages: Postfix, clamd, spamd,
# Dovecot, Chromium; Python deps; the GeoIP data) and run the whole suite:
# unit, integration and end-to-end tiers.  Exits non-zero when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
export MAILADMIN_TEST_GEOIP="$PWD/var/geoip/dbip-country.mmdb"
mkdir -p test-artifacts
.venv/bin/mypy
.venv/bin/python -m pytest -q -p no:cacheprovider --junitxml=test-artifacts/junit.xml "$@"

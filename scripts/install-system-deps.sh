#!/usr/bin/env bash
# Debian packages mailadmin and its test suite use.  Idempotent.
#   scripts/install-system-deps.sh run    what `mailadmin serve` needs
#   scripts/install-system-deps.sh test   + real Postfix, clamd, spamd, Dovecot, Chromium, PostgreSQL for the tests
set -euo pipefail
mode=${1:-run}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

run_pkgs=(ca-certificates)
# Use the machine's Python 3.11+ and npm when present; otherwise Debian's.
python3 -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
    || run_pkgs+=(python3 python3-venv python3-dev gcc)
command -v npm >/dev/null 2>&1 || run_pkgs+=(npm)
test_pkgs=(postfix swaks clamav-daemon clamav-testfiles clamdscan spamassassin spamd spamc
           dovecot-core dovecot-sqlite miltertest chromium fonts-noto-cjk sqlite3 faketime
           postgresql prometheus)
pkgs=("${run_pkgs[@]}")
[ "$mode" = test ] && pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

# The tests start their own throwaway clamd/spamd/Postfix on loopback.  Keep the
# packages' system services from starting at install time (freshclam would try
# to reach the internet, Postfix would take port 25).
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
fi
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections

if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
    $SUDO apt-get update -q
fi
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
    --no-install-recommends "${missing[@]}"

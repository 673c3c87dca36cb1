#!/usr/bin/env bash
# Set up everything on a fresh Debian machine and run mailadmin with an embedded
# SQLite store in var/: a demo domain example.jp and mailbox demo@example.jp
# (its temporary password is printed once, when it is created).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh run
mkdir -p var
export MAILADMIN_CONFIG="$PWD/conf/mailadmin.toml"
export MAILADMIN_DATABASE_URL="sqlite:///$PWD/var/mailadmin.db"
export MAILADMIN_GEOIP_DATABASE_PATH="$PWD/var/geoip/dbip-country.mmdb"
ma=.venv/bin/mailadmin
$ma check-config
$ma db upgrade
$ma domain list | grep -q '^example\.jp\b' || $ma domain add example.jp
$ma mailbox list | grep -q '^demo@example\.jp\b' || $ma mailbox add demo@example.jp
exec $ma serve

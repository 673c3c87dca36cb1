"""CountryResolver on tiny mmdb files in both record layouts and on the real
DB-IP Lite file that scripts/fetch-geoip.sh installs; choosing between mmdb and
RIR delegated-stats data (SPEC §9: the country of an IP, v4 and v6, offline)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mailadmin.errors import ConfigError, ServiceUnavailable
from mailadmin.services.geoip import (
    CountryResolver,
    RirCountryResolver,
    open_country_resolver,
)
from tests.fixtures.geo import REPO_ROOT, build_test_mmdb

EXPECTED = [
    ("133.0.0.1", "JP"),
    ("133.255.255.255", "JP"),
    ("8.8.8.8", "US"),
    ("1.1.1.1", "AU"),
    ("2001:200::1", "JP"),
    ("2001:200:ffff:ffff:ffff:ffff:ffff:ffff", "JP"),
    ("::ffff:133.0.0.1", "JP"),
    ("132.255.255.255", None),
    ("8.8.9.1", None),
    ("2001:201::1", None),
    ("192.0.2.1", None),
    ("10.0.0.1", None),
    ("::1", None),
    ("not an address", None),
    ("", None),
    ("133.0.0.256", None),
    ("2001:200::zz", None),
]


@pytest.mark.parametrize(("ip", "country"), EXPECTED)
@pytest.mark.parametrize("field", ["auto", "country_code"])
def test_ip_location_db_layout(test_mmdb_path: Path, field: str, ip: str, country: str | None) -> None:
    with CountryResolver(str(test_mmdb_path), field) as resolver:
        assert resolver.country(ip) == country


@pytest.mark.parametrize(("ip", "country"), EXPECTED)
@pytest.mark.parametrize("field", ["auto", "country.iso_code"])
def test_maxmind_layout(test_mmdb_maxmind_path: Path, field: str, ip: str, country: str | None) -> None:
    with CountryResolver(str(test_mmdb_maxmind_path), field) as resolver:
        assert resolver.country(ip) == country


def test_a_field_the_file_does_not_use_finds_nothing(test_mmdb_path: Path,
                                                     test_mmdb_maxmind_path: Path) -> None:
    with CountryResolver(str(test_mmdb_path), "country.iso_code") as resolver:
        assert resolver.country("133.0.0.1") is None
    with CountryResolver(str(test_mmdb_maxmind_path), "country_code") as resolver:
        assert resolver.country("133.0.0.1") is None


def test_codes_come_back_upper_case(tmp_path: Path) -> None:
    path = build_test_mmdb(tmp_path / "lower.mmdb", "country_code", {"jp": ("133.0.0.0/8",)})
    with CountryResolver(str(path)) as resolver:
        assert resolver.country("133.1.2.3") == "JP"


@pytest.mark.parametrize("make", [
    lambda tmp: tmp / "missing.mmdb",
    lambda tmp: tmp,
    lambda tmp: (tmp / "text.mmdb", (tmp / "text.mmdb").write_text("not a database"))[0],
    lambda tmp: (tmp / "empty.mmdb", (tmp / "empty.mmdb").write_bytes(b""))[0],
])
def test_an_unusable_file_is_a_config_error(tmp_path: Path, make: object) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(ConfigError) as caught:
        CountryResolver(str(path))
    assert caught.value.file == str(path) and caught.value.location is None


def test_an_unknown_field_is_a_config_error(test_mmdb_path: Path) -> None:
    with pytest.raises(ConfigError, match="country_field"):
        CountryResolver(str(test_mmdb_path), "iso")


def test_a_closed_resolver_says_so(test_mmdb_path: Path) -> None:
    resolver = CountryResolver(str(test_mmdb_path))
    resolver.close()
    resolver.close()
    with pytest.raises(ServiceUnavailable):
        resolver.country("133.0.0.1")


@pytest.mark.parametrize(("ip", "country"), [
    ("133.0.0.1", "JP"),
    ("210.130.0.1", "JP"),
    ("8.8.8.8", "US"),
    ("1.1.1.1", "AU"),
    ("2001:200::1", "JP"),
    ("::ffff:133.0.0.1", "JP"),
    ("10.1.2.3", None),
    ("127.0.0.1", None),
    ("::1", None),
    ("bogus", None),
])
def test_the_real_dbip_database(dbip_mmdb: Path, ip: str, country: str | None) -> None:
    with CountryResolver(str(dbip_mmdb)) as resolver:
        assert resolver.country(ip) == country


def test_fetch_script_is_idempotent(dbip_mmdb: Path) -> None:
    before = dbip_mmdb.stat().st_mtime_ns
    run = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "fetch-geoip.sh"), str(dbip_mmdb.parent)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    assert "already present" in run.stdout
    assert dbip_mmdb.stat().st_mtime_ns == before


def test_fetch_script_replaces_a_damaged_file(dbip_mmdb: Path, tmp_path: Path) -> None:
    dest = tmp_path / "geoip"
    dest.mkdir()
    shutil.copy(dbip_mmdb.parent / "dbip-country.mmdb.sha256", dest)
    (dest / "dbip-country.mmdb").write_bytes(b"damaged")
    run = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "fetch-geoip.sh"), str(dest)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    assert (dest / "dbip-country.mmdb").read_bytes() == dbip_mmdb.read_bytes()
    assert "IP Geolocation by DB-IP" in (dest / "DBIP-LICENSE").read_text()
    with CountryResolver(str(dest / "dbip-country.mmdb")) as resolver:
        assert resolver.country("133.0.0.1") == "JP"


def test_fetch_script_wants_a_destination() -> None:
    run = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "fetch-geoip.sh")],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode != 0 and "usage" in run.stderr


DELEGATED = """2|apnic|20261101|4|19850701|20261031|+1000
apnic|*|ipv4|*|3|summary
apnic|AU|ipv4|1.1.1.0|256|20110811|assigned
apnic|JP|ipv4|133.0.0.0|16777216|19970303|allocated
apnic|JP|ipv6|2001:200::|32|19990813|allocated
apnic|JP|asn|2497|1|19950906|allocated
"""


def test_open_country_resolver_picks_the_format(test_mmdb_path: Path, tmp_path: Path) -> None:
    mmdb = open_country_resolver(str(test_mmdb_path))
    assert isinstance(mmdb, CountryResolver)
    rir_dir = tmp_path / "rir"
    rir_dir.mkdir()
    (rir_dir / "delegated-apnic-latest").write_text(DELEGATED)
    (rir_dir / "delegated-arin-extended-latest").write_text(
        "arin|US|ipv4|8.8.8.0|256|19921201|allocated\n")
    one_file = open_country_resolver(str(rir_dir / "delegated-apnic-latest"))
    whole_dir = open_country_resolver(str(rir_dir))
    assert isinstance(one_file, RirCountryResolver) and isinstance(whole_dir, RirCountryResolver)
    for resolver in (mmdb, one_file, whole_dir):
        assert [resolver.country(ip) for ip in ("133.0.0.1", "2001:200::1", "1.1.1.1", "192.0.2.1")] \
            == ["JP", "JP", "AU", None]
        resolver.close()
    assert whole_dir.country("8.8.8.8") == "US" and one_file.country("8.8.8.8") is None
    with pytest.raises(ConfigError):
        open_country_resolver(str(tmp_path / "nothing-here.mmdb"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError):
        open_country_resolver(str(tmp_path / "empty"))

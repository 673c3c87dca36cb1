"""Country codes from mmdb records in both layouts, and from RIR delegated-stats
files (SPEC §9: "MaxMind-format mmdb, or RIR delegated-stats files")."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailadmin.errors import ConfigError
from mailadmin.services.geoip import (
    LazyCountryResolver,
    RirCountryResolver,
    country_from_record,
    is_mmdb,
    load_rir_delegated,
    parse_rir_delegated,
)


@pytest.mark.parametrize(("record", "field", "code"), [
    ({"country_code": "JP"}, "auto", "JP"),
    ({"country_code": "jp"}, "auto", "JP"),
    ({"country_code": " us "}, "country_code", "US"),
    ({"country": {"iso_code": "JP", "names": {"en": "Japan"}}}, "auto", "JP"),
    ({"country": {"iso_code": "au"}}, "country.iso_code", "AU"),
    ({"registered_country": {"iso_code": "JP"}}, "auto", "JP"),
    ({"country": {"names": {}}, "registered_country": {"iso_code": "DE"}}, "country.iso_code", "DE"),
    ({"country_code": "JP", "country": {"iso_code": "US"}}, "auto", "JP"),
    ({"country_code": "JP", "country": {"iso_code": "US"}}, "country.iso_code", "US"),
    ({"country": {"iso_code": "JP"}}, "country_code", None),
    ({"country_code": "JP"}, "country.iso_code", None),
    ({"country_code": ""}, "auto", None),
    ({"country_code": "JPN"}, "auto", None),
    ({"country_code": "J1"}, "auto", None),
    ({"country_code": 81}, "auto", None),
    ({"country": "JP"}, "auto", None),
    ({}, "auto", None),
    (None, "auto", None),
    ("JP", "auto", None),
    ([{"country_code": "JP"}], "auto", None),
])
def test_country_from_record(record: object, field: str, code: str | None) -> None:
    assert country_from_record(record, field) == code


DELEGATED = """# comment line
2|apnic|20261101|9|19850701|20261031|+1000
apnic|*|asn|*|1|summary
apnic|*|ipv4|*|5|summary
apnic|*|ipv6|*|2|summary
apnic|AU|ipv4|1.1.1.0|256|20110811|assigned
apnic|JP|ipv4|133.0.0.0|16777216|19970303|allocated
apnic|JP|ipv4|210.128.0.0|1048576|19980901|allocated
apnic|CN|ipv4|1.0.1.0|768|20110414|allocated
apnic||ipv4|1.0.16.0|4096||available
apnic|ZZ|ipv4|1.0.32.0|256||reserved|
apnic|JP|ipv6|2001:200::|32|19990813|allocated
apnic|au|ipv6|2001:dc0::|35|20040701|assigned|A91872ED
apnic|JP|asn|2497|1|19950906|allocated
"""


@pytest.fixture
def delegated_file(tmp_path: Path) -> Path:
    path = tmp_path / "delegated-apnic-extended-latest"
    path.write_text(DELEGATED)
    return path


@pytest.mark.parametrize(("ip", "code"), [
    ("1.1.1.0", "AU"), ("1.1.1.255", "AU"), ("1.1.2.0", None), ("1.1.0.255", None),
    ("133.0.0.0", "JP"), ("133.255.255.255", "JP"), ("134.0.0.0", None),
    ("210.128.0.1", "JP"), ("210.143.255.255", "JP"), ("210.144.0.0", None),
    # 768 addresses: not a power of two, so not one CIDR block.
    ("1.0.1.0", "CN"), ("1.0.3.255", "CN"), ("1.0.4.0", None),
    ("1.0.16.1", None), ("1.0.32.1", None),
    ("2001:200::", "JP"), ("2001:200:ffff:ffff:ffff:ffff:ffff:ffff", "JP"), ("2001:201::", None),
    ("2001:dc0::1", "AU"), ("2001:dc0:1fff::1", "AU"), ("2001:dc0:2000::", None),
    ("::ffff:133.1.2.3", "JP"), ("0.0.0.0", None), ("255.255.255.255", None), ("::", None),
    ("garbage", None), ("", None), ("133.0.0", None),
])
def test_delegated_lookups(delegated_file: Path, ip: str, code: str | None) -> None:
    resolver = load_rir_delegated([delegated_file])
    assert resolver.country(ip) == code
    assert len(resolver) == 6


def test_several_files_make_one_resolver(delegated_file: Path, tmp_path: Path) -> None:
    arin = tmp_path / "delegated-arin-extended-latest"
    arin.write_text("2|arin|20261101|1|19700101|20261031|-0500\n"
                    "arin|US|ipv4|8.8.8.0|256|19921201|allocated|abc\n"
                    "arin|US|ipv6|2001:4860::|32|20050314|allocated|abc\n")
    resolver = load_rir_delegated([delegated_file, str(arin)])
    assert [resolver.country(ip) for ip in ("8.8.8.8", "2001:4860::1", "133.0.0.1")] == ["US", "US", "JP"]
    resolver.close()


def test_overlapping_ranges_keep_the_one_that_starts_first() -> None:
    v4, v6 = parse_rir_delegated([
        "x|JP|ipv4|10.0.0.0|256|0|allocated",
        "x|US|ipv4|10.0.0.128|256|0|allocated",
        "x|CN|ipv4|10.0.0.16|16|0|allocated",
    ])
    resolver = RirCountryResolver(v4, v6)
    assert [resolver.country(ip) for ip in ("10.0.0.20", "10.0.0.200", "10.0.1.100", "10.0.2.0")] \
        == ["JP", "JP", "US", None]


@pytest.mark.parametrize(("line", "reason"), [
    ("apnic|JP|ipv4|133.0.0|256|19970303|allocated", "bad ipv4 record"),
    ("apnic|JP|ipv4|133.0.0.0|many|19970303|allocated", "bad ipv4 record"),
    ("apnic|JP|ipv4|133.0.0.0|0|19970303|allocated", "bad ipv4 record"),
    ("apnic|JP|ipv4|255.255.255.0|257|19970303|allocated", "bad ipv4 record"),
    ("apnic|JP|ipv6|2001:200::|129|19990813|allocated", "bad ipv6 record"),
    ("apnic|JP|ipv6|2001:200::1|32|19990813|allocated", "bad ipv6 record"),
    ("apnic|JPN|ipv4|133.0.0.0|256|19970303|allocated", "two-letter"),
])
def test_malformed_records_name_file_and_line(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "delegated"
    path.write_text("2|apnic|20261101|1|19850701|20261031|+1000\n" + line + "\n")
    with pytest.raises(ConfigError, match=reason) as caught:
        load_rir_delegated([path])
    assert (caught.value.file, caught.value.location) == (str(path), 2)


def test_unreadable_or_empty_data_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_rir_delegated([tmp_path / "missing"])
    assert caught.value.file == str(tmp_path / "missing")
    only_asn = tmp_path / "asn-only"
    only_asn.write_text("apnic|JP|asn|2497|1|19950906|allocated\n")
    with pytest.raises(ConfigError, match="no allocated or assigned"):
        load_rir_delegated([only_asn])
    with pytest.raises(ConfigError):
        load_rir_delegated([])


def test_is_mmdb_looks_for_the_metadata_marker(tmp_path: Path, delegated_file: Path) -> None:
    fake = tmp_path / "fake.mmdb"
    fake.write_bytes(b"\0" * 300_000 + b"\xab\xcd\xefMaxMind.com" + b"\0" * 100)
    assert is_mmdb(fake)
    assert not is_mmdb(delegated_file)
    assert not is_mmdb(tmp_path / "missing.mmdb")
    far = tmp_path / "far.mmdb"
    far.write_bytes(b"\xab\xcd\xefMaxMind.com" + b"\0" * 200_000)
    assert not is_mmdb(far)


def test_lazy_resolver_opens_on_first_lookup(tmp_path: Path, delegated_file: Path) -> None:
    missing = tmp_path / "later.txt"
    lazy = LazyCountryResolver(str(missing))
    assert not lazy.is_open  # building it touches no file
    with pytest.raises(ConfigError) as info:
        lazy.country("133.0.0.1")
    assert str(missing) in str(info.value) and not lazy.is_open
    # A file installed afterwards is picked up on the next lookup, no restart.
    missing.write_text(delegated_file.read_text())
    assert lazy.country("133.0.0.1") == "JP" and lazy.is_open
    lazy.close()
    assert not lazy.is_open

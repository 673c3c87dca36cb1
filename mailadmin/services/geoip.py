"""Country of an IP address from an offline database, IPv4 and IPv6 (SPEC §9).

Two sources, one ``country(ip) -> "JP" | None`` interface:

- ``CountryResolver``: a MaxMind-format ``.mmdb`` read with ``maxminddb``
  (memory-mapped C reader, well under a microsecond per lookup).  It reads
  ``country_code`` (the ip-location-db / DB-IP Lite layout that
  ``scripts/fetch-geoip.sh`` installs) or ``country.iso_code`` (MaxMind
  GeoIP2/GeoLite2 layout); ``"auto"`` tries both.  The ``geoip2`` package is
  not used because its ``Reader.country()`` refuses databases whose type is
  not MaxMind's own (e.g. ``country ipvAll``).
- ``RirCountryResolver``: the RIRs' delegated-stats files
  (``registry|cc|type|start|value|date|status``, the NRO exchange format)
  loaded into sorted ranges searched with ``bisect``.

An address the data does not cover, or a string that is not an IP address,
gives None.  Private and loopback ranges get no special treatment here: the
overseas check decides what they mean.

``LazyCountryResolver`` opens the data on the first lookup: only the overseas
check (authenticated submissions from public addresses) needs it, so inbound
mail, the dry run of an inbound message, the web page and the jobs work on a
host without the database.  Daemon roles that may run the check call
``open()`` at startup, so a missing file still stops them at once.
"""

from __future__ import annotations

import bisect
import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import maxminddb

from mailadmin.errors import ConfigError, ServiceProtocolError, ServiceUnavailable

SERVICE = "geoip"
COUNTRY_FIELDS = ("auto", "country_code", "country.iso_code")
# Every MaxMind DB file carries this marker before its metadata, near the end.
MMDB_METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"


class CountryLookup(Protocol):
    def country(self, ip: str) -> str | None: ...

    def close(self) -> None: ...


def _address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    # Some MTAs log IPv4 clients of a dual-stack socket as ::ffff:a.b.c.d, and
    # the DB-IP tree does not alias that range to the IPv4 one.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _iso_code(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    code = value.strip().upper()
    return code if len(code) == 2 and code.isascii() and code.isalpha() else None


def country_from_record(record: object, country_field: str = "auto") -> str | None:
    """The country code of one mmdb record in the given layout."""
    if not isinstance(record, dict):
        return None
    if country_field in ("auto", "country_code"):
        code = _iso_code(record.get("country_code"))
        if code is not None or country_field == "country_code":
            return code
    # MaxMind leaves ``country`` out for some networks (satellite, anycast)
    # and gives only the country the block is registered to.
    for key in ("country", "registered_country"):
        section = record.get(key)
        if isinstance(section, dict):
            code = _iso_code(section.get("iso_code"))
            if code is not None:
                return code
    return None


class CountryResolver:
    """Country lookups in one MaxMind-format database file."""

    def __init__(self, database_path: str, country_field: str = "auto") -> None:
        if country_field not in COUNTRY_FIELDS:
            raise ConfigError(
                database_path, "country_field",
                f"{country_field!r}: choose one of {', '.join(COUNTRY_FIELDS)}",
            )
        self.database_path = database_path
        self.country_field = country_field
        try:
            self._reader = maxminddb.open_database(database_path, maxminddb.MODE_AUTO)
        except (OSError, maxminddb.InvalidDatabaseError, ValueError) as exc:
            raise ConfigError(
                database_path, None, f"cannot open the GeoIP database (mmdb): {exc}"
            ) from exc
        self._closed = False

    def country(self, ip: str) -> str | None:
        """Upper-case ISO 3166 code, or None when unknown or ``ip`` is not an address."""
        if self._closed:
            raise ServiceUnavailable(SERVICE, f"{self.database_path} is closed")
        address = _address(ip)
        if address is None:
            return None
        try:
            record = self._reader.get(address)
        except ValueError:
            # An IPv6 address asked of an IPv4-only database.
            return None
        except maxminddb.InvalidDatabaseError as exc:
            raise ServiceProtocolError(SERVICE, f"{self.database_path} is corrupt: {exc}") from exc
        return country_from_record(record, self.country_field)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._reader.close()

    def __enter__(self) -> CountryResolver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# ---------------------------------------------------------------- RIR delegated-stats

_RIR_STATUSES = ("allocated", "assigned")
Range = tuple[int, int, str]


def parse_rir_delegated(
    lines: Iterable[str], source: str = "<delegated>"
) -> tuple[list[Range], list[Range]]:
    """IPv4 and IPv6 ``(first, last, CC)`` ranges from delegated-stats lines.

    Version, summary, ASN and unallocated lines are skipped; a malformed
    address record raises ``ConfigError(source, line_number, reason)``.
    """
    v4: list[Range] = []
    v6: list[Range] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split("|")
        if len(fields) < 7 or fields[2] not in ("ipv4", "ipv6"):
            continue
        cc, kind, start, value, status = fields[1], fields[2], fields[3], fields[4], fields[6]
        if cc in ("", "*") or status not in _RIR_STATUSES:
            continue
        code = _iso_code(cc)
        if code is None:
            raise ConfigError(source, number, f"{cc!r} is not a two-letter country code")
        try:
            if kind == "ipv4":
                first = int(ipaddress.IPv4Address(start))
                count = int(value)
                if not 0 < count <= 2**32 - first:
                    raise ValueError(f"{value} addresses from {start} do not fit in IPv4")
                v4.append((first, first + count - 1, code))
            else:
                network = ipaddress.IPv6Network(f"{start}/{value}")
                v6.append((int(network.network_address), int(network.broadcast_address), code))
        except ValueError as exc:
            raise ConfigError(source, number, f"bad {kind} record: {exc}") from exc
    return v4, v6


class _RangeTable:
    def __init__(self, ranges: list[Range]) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.codes: list[str] = []
        # Registries do not overlap; if merged files ever do, the range that
        # starts first keeps the addresses, so one lookup stays one bisect.
        for first, last, code in sorted(ranges, key=lambda r: (r[0], -r[1])):
            if self.ends and first <= self.ends[-1]:
                first = self.ends[-1] + 1
                if first > last:
                    continue
            self.starts.append(first)
            self.ends.append(last)
            self.codes.append(code)

    def find(self, value: int) -> str | None:
        i = bisect.bisect_right(self.starts, value) - 1
        if i >= 0 and value <= self.ends[i]:
            return self.codes[i]
        return None

    def __len__(self) -> int:
        return len(self.starts)


class RirCountryResolver:
    """Country lookups in RIR delegated-stats data, held in memory."""

    def __init__(self, v4: list[Range], v6: list[Range]) -> None:
        self._v4 = _RangeTable(v4)
        self._v6 = _RangeTable(v6)

    def country(self, ip: str) -> str | None:
        address = _address(ip)
        if address is None:
            return None
        table = self._v4 if address.version == 4 else self._v6
        return table.find(int(address))

    def close(self) -> None:
        """Nothing to release; present so either resolver can be swapped in."""

    def __len__(self) -> int:
        return len(self._v4) + len(self._v6)


def load_rir_delegated(paths: Iterable[str | os.PathLike[str]]) -> RirCountryResolver:
    """One resolver from several delegated-stats files (e.g. the five RIRs')."""
    names = [os.fspath(path) for path in paths]
    v4: list[Range] = []
    v6: list[Range] = []
    for path in names:
        try:
            with open(path, encoding="utf-8", errors="replace") as lines:
                more4, more6 = parse_rir_delegated(lines, path)
        except OSError as exc:
            raise ConfigError(path, None, f"cannot read delegated-stats file: {exc}") from exc
        v4 += more4
        v6 += more6
    if not v4 and not v6:
        raise ConfigError(", ".join(names) or "(no files)", None,
                          "no allocated or assigned IPv4/IPv6 records")
    return RirCountryResolver(v4, v6)


def is_mmdb(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a MaxMind DB file (by its metadata marker)."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            # The metadata section is at most 128 KiB from the end (MaxMind DB spec).
            fh.seek(max(0, size - 128 * 1024))
            return MMDB_METADATA_MARKER in fh.read()
    except OSError:
        return False


class LazyCountryResolver:
    """The resolver ``[geoip] database_path`` names, opened when first needed.

    A database that cannot be opened raises ``ConfigError`` on each lookup (and
    on ``open()``), so a file installed later is picked up without a restart.
    """

    def __init__(self, database_path: str, country_field: str = "auto") -> None:
        self.database_path = database_path
        self.country_field = country_field
        self._resolver: CountryLookup | None = None

    @property
    def is_open(self) -> bool:
        return self._resolver is not None

    def open(self) -> CountryLookup:
        if self._resolver is None:
            self._resolver = open_country_resolver(self.database_path, self.country_field)
        return self._resolver

    def country(self, ip: str) -> str | None:
        return self.open().country(ip)

    def close(self) -> None:
        if self._resolver is not None:
            self._resolver.close()
            self._resolver = None


def open_country_resolver(database_path: str, country_field: str = "auto") -> CountryLookup:
    """The resolver ``[geoip] database_path`` names: an mmdb file, a delegated-stats
    file, or a directory of delegated-stats files."""
    path = Path(database_path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise ConfigError(database_path, None, "the directory holds no delegated-stats files")
        return load_rir_delegated(files)
    if path.exists() and not is_mmdb(path):
        return load_rir_delegated([path])
    return CountryResolver(database_path, country_field)

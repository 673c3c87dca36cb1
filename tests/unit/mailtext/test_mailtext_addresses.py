"""SPEC §4/§5 entry matching and addr-spec syntax (mailtext.addresses)."""

from __future__ import annotations

import pytest

from mailadmin.mailtext.addresses import (
    canonical_address,
    domain_of,
    first_matching_entry,
    header_addresses,
    is_valid_address,
    sender_entry_matches,
)

IDN = "例え.jp"
IDN_ASCII = IDN.encode("idna").decode("ascii")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"Yamada" <Yamada@Example.JP>', ["yamada@example.jp"]),
        ("=?UTF-8?B?5bGx55Sw?= <yamada@example.jp>", ["yamada@example.jp"]),
        ("=?ISO-2022-JP?B?GyRCRnxLXDhsGyhC?= <a@b.jp>, c@d.jp", ["a@b.jp", "c@d.jp"]),
        ("a@b.jp (Comment, with a comma)", ["a@b.jp"]),
        ("undisclosed-recipients:;", []),
        ("friends: a@b.jp, c@d.jp;", ["a@b.jp", "c@d.jp"]),
        ("<>", []),
        ("", []),
        ("   ", []),
        ('"boss@bank.example" <x@evil.example>', ["x@evil.example"]),
        ("Spammer spam@x.example", ["spam@x.example"]),
        ('"A" <a@b.jp>,\r\n "C" <c@d.jp>', ["a@b.jp", "c@d.jp"]),
        ('"A" <a@b.jp>,\n\t"C" <c@d.jp>', ["a@b.jp", "c@d.jp"]),
        ("<@relay.example:user@example.com>", ["user@example.com"]),
        ('"quoted local"@example.com', ['"quoted local"@example.com']),
        ("A@B.JP, a@b.jp", ["a@b.jp"]),
        ("MAILER-DAEMON@mx.example.com (Mail Delivery System)", ["mailer-daemon@mx.example.com"]),
        ("<a@b.jp>, garbage", ["a@b.jp"]),
        ("MAILER-DAEMON", []),
        ('"unbalanced <a@b.jp>', ["a@b.jp"]),
        ("a@b.jp, <<", ["a@b.jp"]),
    ],
)
def test_header_addresses(value: str, expected: list[str]) -> None:
    assert header_addresses(value) == expected


LOCAL_64 = "l" * 64
DOMAIN_189 = "a" * 63 + "." + "b" * 63 + "." + "c" * 58 + ".jp"
assert len(LOCAL_64 + "@" + DOMAIN_189) == 254


@pytest.mark.parametrize(
    "address",
    [
        "user@example.com",
        "first.last@example.co.jp",
        "user+tag@example.com",
        "o'brien@example.ie",
        "a_b-c@a-b.example",
        '"quoted local"@example.com',
        '"a\\"b"@example.com',
        '"a@b"@example.com',
        "USER@EXAMPLE.COM",
        f"user@{IDN}",
        f"user@{IDN_ASCII}",
        "x@123.example",
        f"{LOCAL_64}@{DOMAIN_189}",
    ],
)
def test_valid_addresses(address: str) -> None:
    assert is_valid_address(address)


@pytest.mark.parametrize(
    "address",
    [
        "",
        "user",
        "user@",
        "@example.com",
        "user@example",
        "user@-example.com",
        "user@example-.com",
        "user@exa_mple.com",
        ".user@example.com",
        "user.@example.com",
        "us..er@example.com",
        "us er@example.com",
        "user@example..com",
        "user@.example.com",
        "user@example.com.",
        "user@[192.0.2.1]",
        "user@192.0.2.1",
        "user@123.123",
        "user@@example.com",
        "<user@example.com>",
        "user@exa mple.com",
        " user@example.com",
        "ユーザー@example.com",
        '"unterminated@example.com',
        "user@" + "a" * 64 + ".com",
        "l" * 65 + "@example.com",
        f"{LOCAL_64}@{DOMAIN_189[:-3]}x.jp",  # 255 characters
        "Name <user@example.com>",
    ],
)
def test_invalid_addresses(address: str) -> None:
    assert not is_valid_address(address)


@pytest.mark.parametrize(
    ("address", "domain"),
    [
        ("user@Example.COM", "example.com"),
        ("<user@example.com>", "example.com"),
        ('"a@b"@example.com', "example.com"),
        ("mailer-daemon", ""),
        ("", ""),
    ],
)
def test_domain_of(address: str, domain: str) -> None:
    assert domain_of(address) == domain


# SPEC §4: "example.com matches a@example.com and a@mx.example.com but not
# a@badexample.com; @example.com matches that domain only; user@example.com
# that address only."
@pytest.mark.parametrize(
    ("entry", "address", "matches"),
    [
        ("example.com", "a@example.com", True),
        ("example.com", "a@mx.example.com", True),
        ("example.com", "a@deep.mx.example.com", True),
        ("example.com", "a@badexample.com", False),
        ("example.com", "a@xexample.com", False),
        ("example.com", "a@example.com.evil.org", False),
        ("example.com", "a@example.co", False),
        ("example.com", "a@example.community", False),
        ("example.com", "example.com", False),
        ("example.com", "a@example.com.", True),
        ("mx.example.com", "a@example.com", False),
        ("mx.example.com", "a@mx.example.com", True),
        ("co.jp", "a@foo.co.jp", True),
        ("@example.com", "a@example.com", True),
        ("@example.com", "a@mx.example.com", False),
        ("@example.com", "a@badexample.com", False),
        ("user@example.com", "user@example.com", True),
        ("user@example.com", "other@example.com", False),
        ("user@example.com", "user@mx.example.com", False),
        ("user@example.com", "xuser@example.com", False),
        ("user@example.com", "user+tag@example.com", False),
        # case-insensitive
        ("Example.COM", "A@EXAMPLE.com", True),
        ("@EXAMPLE.com", "a@Example.Com", True),
        ("USER@example.com", "user@EXAMPLE.COM", True),
        # angle brackets around an envelope address
        ("@example.com", "<a@example.com>", True),
        # internationalised domains compare in A-label form both ways
        (IDN, f"a@{IDN_ASCII}", True),
        (IDN_ASCII, f"a@mx.{IDN}", True),
        (f"@{IDN}", f"a@{IDN_ASCII.upper()}", True),
        (f"user@{IDN}", f"USER@{IDN_ASCII}", True),
        # empty address or entry never matches
        ("example.com", "", False),
        ("@example.com", "", False),
        ("user@example.com", "", False),
        ("", "a@example.com", False),
        ("   ", "a@example.com", False),
        ("@", "a@example.com", False),
        # a bare local part (refused at entry time) never matches a domain
        ("user", "user@example.com", False),
    ],
)
def test_sender_entry_matches(entry: str, address: str, matches: bool) -> None:
    assert sender_entry_matches(entry, address) is matches


def test_first_matching_entry_is_the_first_in_list_order() -> None:
    entries = ["other.example", "@example.com", "example.com"]
    assert first_matching_entry(entries, ["x@nowhere.example", "a@example.com"]) == "@example.com"
    assert first_matching_entry(entries, ["a@mx.example.com"]) == "example.com"
    assert first_matching_entry(entries, ["a@badexample.com"]) is None


def test_first_matching_entry_with_no_addresses() -> None:
    assert first_matching_entry(["example.com"], []) is None
    assert first_matching_entry(["example.com"], [""]) is None
    assert first_matching_entry([], ["a@example.com"]) is None


def test_first_matching_entry_accepts_one_shot_iterables() -> None:
    addresses = iter(["a@x.example", "b@example.com"])
    assert first_matching_entry(iter(["x.example", "example.com"]), addresses) == "x.example"


def test_canonical_address() -> None:
    assert canonical_address(" <User@Example.COM> ") == "user@example.com"
    assert canonical_address(f"a@{IDN}") == f"a@{IDN_ASCII}"

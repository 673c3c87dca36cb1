"""The one validator per entry type (mailtext.entries): SPEC §1 passwords,
§3 forwarding destinations, §4 From / Subject entries and header conditions."""

from __future__ import annotations

import pytest

from mailadmin.config.model import LimitsPolicy, PasswordPolicy
from mailadmin.errors import EntryError
from mailadmin.mailtext.entries import (
    HEADER_CONDITIONS,
    check_password,
    parse_forward_destination,
    parse_header_conditions,
    parse_sender_entry,
    parse_subject_entry,
    validate_entries,
)

POLICY = PasswordPolicy()
LIMITS = LimitsPolicy()


def codes(error: EntryError) -> list[str]:
    return [p.code for p in error.problems]


# ---------------------------------------------------------------- passwords (SPEC §1)


@pytest.mark.parametrize(
    "password",
    [
        "abc123",  # 6: the minimum
        "a1" * 16,  # 32: the maximum
        "Passw0rd",
        "A1%+-./:=@^_",  # every allowed symbol
        "ZZZZZ9",
        "0000a0",
    ],
)
def test_good_passwords(password: str) -> None:
    check_password(password, POLICY)


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("ab12", ["password_too_short"]),
        ("abc12", ["password_too_short"]),
        ("a1" * 16 + "x", ["password_too_long"]),
        ("abcdefgh", ["password_no_digit"]),
        ("12345678", ["password_no_letter"]),
        ("%+-./:=@", ["password_no_letter", "password_no_digit"]),
        ("abc 123", ["password_forbidden_characters"]),
        ("abc#123", ["password_forbidden_characters"]),
        ("abc123!", ["password_forbidden_characters"]),
        ("ｐａｓｓ１２３", ["password_forbidden_characters", "password_no_letter", "password_no_digit"]),
        ("パスワード12", ["password_forbidden_characters", "password_no_letter"]),
        ("", ["password_too_short", "password_no_letter", "password_no_digit"]),
        ("#", ["password_too_short", "password_forbidden_characters", "password_no_letter",
               "password_no_digit"]),
        ("#" * 40, ["password_too_long", "password_forbidden_characters", "password_no_letter",
                    "password_no_digit"]),
        ("a" * 33, ["password_too_long", "password_no_digit"]),
        ("abc\t123", ["password_forbidden_characters"]),
    ],
)
def test_each_broken_password_rule_is_its_own_problem(password: str, expected: list[str]) -> None:
    with pytest.raises(EntryError) as caught:
        check_password(password, POLICY)
    assert codes(caught.value) == expected
    assert len(caught.value.messages) == len(expected)


def test_forbidden_characters_are_named_once_each() -> None:
    with pytest.raises(EntryError) as caught:
        check_password("ab 1#2#3 ", POLICY)
    (problem,) = caught.value.problems
    assert problem.params["characters"] == "space, '#'"
    assert "space" in problem.text and "'#'" in problem.text


def test_password_length_limits_come_from_policy() -> None:
    strict = PasswordPolicy(min_length=10, max_length=12)
    with pytest.raises(EntryError) as caught:
        check_password("abc123", strict)
    assert caught.value.problems[0].params == {"min_length": 10, "length": 6}
    check_password("abcdef1234", strict)


# ---------------------------------------------------------------- From entries (SPEC §4)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("user@example.com", "user@example.com"),
        ("  User@Example.COM  ", "user@example.com"),
        ("example.com", "example.com"),
        ("EXAMPLE.COM", "example.com"),
        ("mx.example.com", "mx.example.com"),
        ("@example.com", "@example.com"),
        ("@Example.Com", "@example.com"),
        ("co.jp", "co.jp"),
        ("first.last+tag@example.co.jp", "first.last+tag@example.co.jp"),
        ('"quoted local"@example.com', '"quoted local"@example.com'),
        ("ｕｓｅｒ＠ｅｘａｍｐｌｅ．ｃｏｍ", "user@example.com"),  # typed with a Japanese IME
        ("例え.jp", "例え.jp"),
        ("@例え.jp", "@例え.jp"),
        ("u@" + "a" * 60 + "." + "b" * 60 + "." + "c" * 60 + "." + "d" * 60 + ".jp",
         "u@" + "a" * 60 + "." + "b" * 60 + "." + "c" * 60 + "." + "d" * 60 + ".jp"),
    ],
)
def test_good_sender_entries(raw: str, normalised: str) -> None:
    assert parse_sender_entry(raw) == normalised


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("user", "sender_bare_local_part"),
        ("user@", "sender_bare_local_part"),
        ("Yamada.Taro@", "sender_bare_local_part"),
        ("", "sender_empty"),
        ("   ", "sender_empty"),
        ("@", "sender_invalid"),
        ("user@example", "sender_invalid"),
        ("@example", "sender_invalid"),
        ("user@@example.com", "sender_invalid"),
        ("user name@example.com", "sender_invalid"),
        ("example .com", "sender_invalid"),
        ("-example.com", "sender_invalid"),
        ("example..com", "sender_invalid"),
        (".example.com", "sender_invalid"),
        ("example.com.", "sender_invalid"),
        ("exa_mple.com", "sender_invalid"),
        ("192.0.2.1", "sender_invalid"),
        ("<user@example.com>", "sender_invalid"),
        ("Name <user@example.com>", "sender_invalid"),
        ("user@[192.0.2.1]", "sender_invalid"),
        ("http://example.com/", "sender_invalid"),
        ("ユーザー@example.com", "sender_invalid"),
        ("*@example.com", "sender_wildcard"),
        ("*.example.com", "sender_wildcard"),
    ],
)
def test_bad_sender_entries(raw: str, code: str) -> None:
    with pytest.raises(EntryError) as caught:
        parse_sender_entry(raw)
    assert codes(caught.value) == [code]
    assert caught.value.problems[0].params["entry"] == raw.strip()


def test_bare_local_part_is_explained() -> None:
    with pytest.raises(EntryError) as caught:
        parse_sender_entry("user")
    text = caught.value.problems[0].text
    assert "a local part alone can't be matched reliably" in text
    assert "whole address" in text and "domain" in text


def _entry_of_length(length: int) -> str:
    """A syntactically valid domain entry of exactly ``length`` characters."""
    labels: list[str] = []
    remaining = length - 3  # ".jp"
    while remaining > 0:
        size = min(63, remaining)
        if remaining - size == 1:
            size -= 2  # leave room for a separator and a one-letter label
        labels.append("a" * size)
        remaining -= size + 1
    entry = ".".join(labels) + ".jp"
    assert len(entry) == length
    return entry


@pytest.mark.parametrize(
    ("length", "ok"), [(253, True), (300, False), (320, False), (321, False)]
)
def test_sender_entry_length_over_domain_limit(length: int, ok: bool) -> None:
    entry = _entry_of_length(length) if length <= 253 else "x" * length + ".jp"
    if ok:
        assert parse_sender_entry(entry) == entry
    else:
        with pytest.raises(EntryError):
            parse_sender_entry(entry)


@pytest.mark.parametrize(("length", "code"), [(320, "sender_invalid"), (321, "sender_too_long")])
def test_sender_entry_320_characters(length: int, code: str) -> None:
    # At 320 the length rule passes and the syntax rule speaks; at 321 the
    # length rule refuses first (an addr-spec can't be longer than 254 anyway).
    entry = "u" * 64 + "@" + "d" * (length - 65 - 3) + ".jp"
    assert len(entry) == length
    with pytest.raises(EntryError) as caught:
        parse_sender_entry(entry)
    assert codes(caught.value) == [code]


def test_sender_entry_max_length_is_a_parameter() -> None:
    with pytest.raises(EntryError) as caught:
        parse_sender_entry("user@example.com", max_length=10)
    assert codes(caught.value) == ["sender_too_long"]
    assert caught.value.problems[0].params["max_length"] == 10


# ---------------------------------------------------------------- Subject entries (SPEC §4)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ab", "ab"),
        ("  未承諾広告  ", "未承諾広告"),
        ("Hello", "Hello"),
        ("ＡＢＣ", "ＡＢＣ"),
        ("カタカナ", "カタカナ"),
        ("x" * 320, "x" * 320),
        ("件" * 320, "件" * 320),
        ("a b", "a b"),
    ],
)
def test_good_subject_entries(raw: str, expected: str) -> None:
    assert parse_subject_entry(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a", ["subject_too_short"]),
        ("件", ["subject_too_short"]),
        ("", ["subject_too_short"]),
        ("  a  ", ["subject_too_short"]),
        ("x" * 321, ["subject_too_long"]),
        ("件" * 321, ["subject_too_long"]),
        ("ｶﾀｶﾅ", ["subject_half_width_katakana"]),
        ("半角ｶﾅ入り", ["subject_half_width_katakana"]),
        ("ｱ", ["subject_too_short", "subject_half_width_katakana"]),
        ("ｱ" * 321, ["subject_too_long", "subject_half_width_katakana"]),
        ("a\x00b", ["subject_control_characters"]),
    ],
)
def test_bad_subject_entries(raw: str, expected: list[str]) -> None:
    with pytest.raises(EntryError) as caught:
        parse_subject_entry(raw)
    assert codes(caught.value) == expected


# ---------------------------------------------------------------- one submission (SPEC §4)


def test_sender_submission_normalises_and_skips_blank_lines() -> None:
    lines = ["User@Example.com", "", "  ", "example.org", "@Example.net"]
    assert validate_entries("sender", lines, [], LIMITS) == [
        "user@example.com", "example.org", "@example.net",
    ]


def test_a_whole_text_area_as_one_string() -> None:
    text = "a@example.com\r\n\r\nexample.org\nexample.net\n"
    assert validate_entries("sender", [text], [], LIMITS) == [
        "a@example.com", "example.org", "example.net",
    ]


def test_twenty_entries_accepted_twenty_one_refused() -> None:
    twenty = [f"user{i}@example.com" for i in range(20)]
    assert len(validate_entries("sender", twenty, [], LIMITS)) == 20
    with pytest.raises(EntryError) as caught:
        validate_entries("sender", twenty + ["user20@example.com"], [], LIMITS)
    assert codes(caught.value) == ["too_many_entries"]
    assert caught.value.problems[0].params == {"count": 21, "max_count": 20}


def test_twenty_one_subject_entries_refused() -> None:
    with pytest.raises(EntryError) as caught:
        validate_entries("subject", [f"件名{i}" for i in range(21)], [], LIMITS)
    assert codes(caught.value) == ["too_many_entries"]


def test_every_problem_is_reported_and_nothing_is_partial() -> None:
    lines = ["good@example.com", "user", "good.example", "bad@@x", "Good@Example.com", "old.example"]
    with pytest.raises(EntryError) as caught:
        validate_entries("sender", lines, ["OLD.example"], LIMITS)
    assert codes(caught.value) == [
        "sender_bare_local_part", "sender_invalid", "duplicate_in_submission", "duplicate_existing",
    ]
    lines_named = [p.params["line"] for p in caught.value.problems]
    assert lines_named == [2, 4, 5, 6]
    assert all(f"Line {n}:" in p.text for n, p in zip([2, 4], caught.value.problems))


def test_duplicates_are_refused_by_name() -> None:
    with pytest.raises(EntryError) as caught:
        validate_entries("sender", ["a@example.com", "A@EXAMPLE.COM"], [], LIMITS)
    (problem,) = caught.value.problems
    assert problem.code == "duplicate_in_submission"
    assert "a@example.com" in problem.text
    with pytest.raises(EntryError) as caught:
        validate_entries("sender", ["example.com"], ["Example.COM"], LIMITS)
    (problem,) = caught.value.problems
    assert problem.code == "duplicate_existing"
    assert "example.com" in problem.text


def test_idn_duplicates_in_either_form() -> None:
    ascii_form = "例え.jp".encode("idna").decode("ascii")
    with pytest.raises(EntryError) as caught:
        validate_entries("sender", ["例え.jp"], [ascii_form], LIMITS)
    assert codes(caught.value) == ["duplicate_existing"]


def test_domain_and_at_domain_are_different_entries() -> None:
    assert validate_entries("sender", ["example.com", "@example.com"], [], LIMITS) == [
        "example.com", "@example.com",
    ]


@pytest.mark.parametrize(
    ("new", "existing"),
    [
        ("ＶＩＡＧＲＡ", ["viagra"]),
        ("カタカナ", ["ｶﾀｶﾅ"]),  # a legacy entry from before the rule
        ("Hello  World", ["hello world"]),
    ],
)
def test_subject_duplicates_compare_normalised(new: str, existing: list[str]) -> None:
    with pytest.raises(EntryError) as caught:
        validate_entries("subject", [new], existing, LIMITS)
    assert codes(caught.value) == ["duplicate_existing"]


def test_subject_duplicates_within_submission() -> None:
    with pytest.raises(EntryError) as caught:
        validate_entries("subject", ["未承諾広告", "未承諾広告 "], [], LIMITS)
    assert codes(caught.value) == ["duplicate_in_submission"]


def test_subject_submission_keeps_entries_as_typed() -> None:
    assert validate_entries("subject", ["  ＶＩＡＧＲＡ ", "未承諾広告"], ["other"], LIMITS) == [
        "ＶＩＡＧＲＡ", "未承諾広告",
    ]


def test_list_cap() -> None:
    limits = LimitsPolicy(max_entries_per_list=5)
    existing = [f"e{i}.example" for i in range(4)]
    assert validate_entries("sender", ["new.example"], existing, limits) == ["new.example"]
    with pytest.raises(EntryError) as caught:
        validate_entries("sender", ["new.example", "new2.example"], existing, limits)
    assert codes(caught.value) == ["list_full"]


def test_empty_submission() -> None:
    with pytest.raises(EntryError) as caught:
        validate_entries("subject", ["", "   "], [], LIMITS)
    assert codes(caught.value) == ["no_entries"]


def test_entry_length_limit_comes_from_policy() -> None:
    limits = LimitsPolicy(entry_max_length=10, subject_entry_min_length=3)
    with pytest.raises(EntryError) as caught:
        validate_entries("subject", ["ab", "x" * 11], [], limits)
    assert codes(caught.value) == ["subject_too_short", "subject_too_long"]


# ---------------------------------------------------------------- forwarding (SPEC §3)

MAILBOX = "taro@example.jp"


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("hanako@example.com", "hanako@example.com"),
        ("  Hanako@Example.COM ", "Hanako@example.com"),
        ("first.last+tag@sub.example.co.jp", "first.last+tag@sub.example.co.jp"),
        ("ｈａｎａｋｏ＠ｅｘａｍｐｌｅ．ｃｏｍ", "hanako@example.com"),
        ("a@例え.jp", "a@" + "例え.jp".encode("idna").decode("ascii")),
    ],
)
def test_good_forward_destinations(raw: str, normalised: str) -> None:
    assert parse_forward_destination(raw, MAILBOX, [], LIMITS) == normalised


@pytest.mark.parametrize(
    ("raw", "existing", "expected"),
    [
        ("", [], ["forward_empty"]),
        ("hanako", [], ["forward_invalid"]),
        ("example.com", [], ["forward_invalid"]),
        ("@example.com", [], ["forward_invalid"]),
        ("hanako@example", [], ["forward_invalid"]),
        ("Hanako <hanako@example.com>", [], ["forward_invalid"]),
        ("taro@example.jp", [], ["forward_to_self"]),
        ("TARO@Example.JP", [], ["forward_to_self"]),
        ("hanako@example.com", ["HANAKO@example.com"], ["forward_duplicate"]),
        ("new@example.com", [f"d{i}@example.com" for i in range(10)], ["forward_limit"]),
        ("d1@example.com", [f"d{i}@example.com" for i in range(10)],
         ["forward_duplicate", "forward_limit"]),
    ],
)
def test_bad_forward_destinations(raw: str, existing: list[str], expected: list[str]) -> None:
    with pytest.raises(EntryError) as caught:
        parse_forward_destination(raw, MAILBOX, existing, LIMITS)
    assert codes(caught.value) == expected


def test_forward_limit_from_policy() -> None:
    limits = LimitsPolicy(max_forwarding_destinations=1)
    assert parse_forward_destination("a@example.com", MAILBOX, [], limits) == "a@example.com"
    with pytest.raises(EntryError) as caught:
        parse_forward_destination("b@example.com", MAILBOX, ["a@example.com"], limits)
    assert caught.value.problems[0].params["max_count"] == 1


# ---------------------------------------------------------------- header conditions (SPEC §4)


def test_header_conditions_known_names() -> None:
    assert parse_header_conditions(HEADER_CONDITIONS) == frozenset(HEADER_CONDITIONS)
    assert parse_header_conditions([" From_Missing ", "subject_empty", ""]) == frozenset(
        {"from_missing", "subject_empty"}
    )
    assert parse_header_conditions([]) == frozenset()


def test_header_conditions_unknown_names() -> None:
    with pytest.raises(EntryError) as caught:
        parse_header_conditions(["from_missing", "to_missing", "x"])
    assert codes(caught.value) == ["header_condition_unknown", "header_condition_unknown"]
    assert [p.params["name"] for p in caught.value.problems] == ["to_missing", "x"]

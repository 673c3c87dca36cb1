"""The compiled list matchers answer what the simple linear ones answer (SPEC §4, §5)."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailadmin.checks.reject_lists import matching_subject_entry
from mailadmin.mailtext.addresses import first_matching_entry
from mailadmin.mailtext.matchers import SenderMatcher, SubjectMatcher
from mailadmin.store.snapshots import MailboxRules

IDN = "例え.jp"
IDN_ASCII = "xn--r8jz45g.jp"


@pytest.mark.parametrize(
    ("entries", "addresses", "expected"),
    [
        # the SPEC §4 examples
        (["example.com"], ["a@example.com"], "example.com"),
        (["example.com"], ["a@mx.example.com"], "example.com"),
        (["example.com"], ["a@badexample.com"], None),
        (["example.com"], ["a@example.com.evil.org"], None),
        (["example.com"], ["example.com"], None),
        (["example.com"], ["a@example.com."], "example.com"),
        (["mx.example.com"], ["a@example.com"], None),
        (["@example.com"], ["a@example.com"], "@example.com"),
        (["@example.com"], ["a@mx.example.com"], None),
        (["user@example.com"], ["user@example.com"], "user@example.com"),
        (["user@example.com"], ["user@mx.example.com"], None),
        (["user@example.com"], ["user+tag@example.com"], None),
        # case, angle brackets, IDN in both directions
        (["Example.COM"], ["A@EXAMPLE.com"], "Example.COM"),
        (["USER@example.com"], ["user@EXAMPLE.COM"], "USER@example.com"),
        (["@example.com"], ["<a@example.com>"], "@example.com"),
        ([IDN], [f"a@{IDN_ASCII}"], IDN),
        ([IDN_ASCII], [f"a@mx.{IDN}"], IDN_ASCII),
        ([f"user@{IDN}"], [f"USER@{IDN_ASCII}"], f"user@{IDN}"),
        # nothing to match
        (["example.com"], [], None),
        (["example.com"], [""], None),
        ([], ["a@example.com"], None),
        (["", "   ", "@", "user"], ["user@example.com"], None),
        # the first entry in list order, not the first address or the longest key
        (["other.example", "@example.com", "example.com"], ["x@nowhere.example", "a@example.com"], "@example.com"),
        (["other.example", "@example.com", "example.com"], ["a@mx.example.com"], "example.com"),
        (["mx.example.com", "example.com"], ["a@mx.example.com"], "mx.example.com"),
        (["example.com", "mx.example.com"], ["a@mx.example.com"], "example.com"),
        (["b@x.example", "a@y.example"], ["a@y.example", "b@x.example"], "b@x.example"),
        # two spellings of one key: the earlier one is reported
        (["Example.com", "example.com"], ["a@example.com"], "Example.com"),
    ],
)
def test_sender_matcher(entries: list[str], addresses: list[str], expected: str | None) -> None:
    assert first_matching_entry(entries, addresses) == expected  # the table is the reference's too
    assert SenderMatcher(entries).first_match(addresses) == expected


def test_sender_matcher_long_forged_domain_is_cut_to_the_longest_entry() -> None:
    # A forged From with a domain of 100,000 labels: only suffixes as long as
    # an entry are looked up, so this is quick and still right.
    domain = "a." * 100_000 + "example.com"
    matcher = SenderMatcher(["example.com", "zzz.example"])
    assert matcher.first_match([f"x@{domain}"]) == "example.com"
    assert SenderMatcher(["zzz.example"]).first_match([f"x@{domain}"]) is None


@pytest.mark.parametrize(
    ("entries", "subject", "expected"),
    [
        (["sale"], "Big SALE today", "sale"),
        (["ｓａｌｅ"], "Big SALE today", "ｓａｌｅ"),  # full-width entry, half-width subject
        (["SALE"], "Ｂｉｇ ｓａｌｅ", "SALE"),
        (["カタカナ"], "ｶﾀｶﾅの件", "カタカナ"),  # half-width katakana in the subject
        (["未承諾広告"], "【未承諾広告】お得な情報", "未承諾広告"),
        (["big  sale"], "big\tsale", "big  sale"),  # runs of white space count as one space
        (["Straße"], "STRASSE", "Straße"),  # casefold, not lower
        (["none"], "Big SALE today", None),
        (["sale"], "", None),
        (["sale"], None, None),
        ([], "Big SALE today", None),
        (["  "], "a  b", None),  # an entry that normalises to nothing never matches
        # the first entry in list order, not the first occurrence in the subject
        (["today", "big"], "big sale today", "today"),
        (["big sale", "sale"], "big sale", "big sale"),
        (["sale", "big sale"], "big sale", "sale"),
        (["ＳＡＬＥ", "sale"], "sale", "ＳＡＬＥ"),
    ],
)
def test_subject_matcher(entries: list[str], subject: str | None, expected: str | None) -> None:
    assert matching_subject_entry(entries, subject) == expected
    assert SubjectMatcher(entries).first_match(subject) == expected


def test_snapshot_compiles_its_lists_once() -> None:
    rules = MailboxRules(address="taro@example.jp", domain="example.jp",
                         reject_sender=("spam.example",), reject_subject=("sale",),
                         allow_list=("friend@example.org",))
    assert rules.reject_sender_matcher is rules.reject_sender_matcher
    assert rules.reject_subject_matcher is rules.reject_subject_matcher
    assert rules.allow_list_matcher is rules.allow_list_matcher
    assert rules.reject_sender_matcher is not rules.allow_list_matcher
    assert rules.reject_sender_matcher.first_match(["a@mx.spam.example"]) == "spam.example"
    assert rules.allow_list_matcher.first_match(["friend@example.org"]) == "friend@example.org"
    assert rules.reject_subject_matcher.first_match("Big SALE") == "sale"
    # the compiled lists are no part of the snapshot's value
    assert rules == MailboxRules(address="taro@example.jp", domain="example.jp",
                                 reject_sender=("spam.example",), reject_subject=("sale",),
                                 allow_list=("friend@example.org",))


# ---------------------------------------------------------------- agreement by property

_LABELS = st.sampled_from(["example", "mx", "com", "jp", "co", "a", "xn--r8jz45g", "例え", "EXAMPLE", "b-c", ""])
_DOMAINS = st.lists(_LABELS, min_size=1, max_size=4).map(".".join)
_LOCALS = st.sampled_from(["user", "USER", "a", "x.y", "", "\"q r\""])
_ADDRESSES = st.one_of(
    st.builds(lambda l, d: f"{l}@{d}", _LOCALS, _DOMAINS),
    st.builds(lambda l, d: f"<{l}@{d}>", _LOCALS, _DOMAINS),
    _DOMAINS,
    st.text(max_size=12),
)
_SENDER_ENTRIES = st.one_of(
    _DOMAINS,
    _DOMAINS.map(lambda d: "@" + d),
    st.builds(lambda l, d: f"{l}@{d}", _LOCALS, _DOMAINS),
    _DOMAINS.map(lambda d: f" {d.upper()}. "),
    st.text(max_size=12),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_SENDER_ENTRIES, max_size=12), st.lists(_ADDRESSES, max_size=4))
@example(["..example.com"], ["a@x..example.com"])
@example([".example.com"], ["a@x..example.com"])
def test_sender_matcher_agrees_with_the_linear_match(entries: list[str], addresses: list[str]) -> None:
    assert SenderMatcher(entries).first_match(addresses) == first_matching_entry(entries, addresses)


_WORDS = st.sampled_from(["sale", "ＳＡＬＥ", "Sale", "未承諾", "広告", "ｶﾀｶﾅ", "カタカナ", "ß", "ss", " ", "\t", "ﬁ", "fi", "a", "aa"])
_SUBJECT_TEXT = st.lists(_WORDS, max_size=6).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_SUBJECT_TEXT, st.text(max_size=6)), max_size=12),
       st.one_of(st.none(), _SUBJECT_TEXT, st.text(max_size=20)))
def test_subject_matcher_agrees_with_the_linear_match(entries: list[str], subject: str | None) -> None:
    assert SubjectMatcher(entries).first_match(subject) == matching_subject_entry(entries, subject)

"""Fuzzing the header, address and MIME decoding of mailtext/ (SPEC §4, §7;
RFC 2047, RFC 5322, RFC 2045/2046): arbitrary text and mutated real
messages.  Decoders never raise; MIME functions return or raise the
documented MessageLimitExceeded or UnrenderableMessage; every input within 1 s (conftest)."""

from __future__ import annotations

import unicodedata

from hypothesis import given, strategies as st

from mailadmin.errors import MessageLimitExceeded, UnrenderableMessage
from mailadmin.mailtext.addresses import header_addresses, sender_entry_matches
from mailadmin.mailtext.rewrite import add_header, remove_headers, tag_spam
from mailadmin.mailtext.headers import decode_header_value, normalize_for_match
from mailadmin.mailtext.mime_parts import leaf_parts, strip_parts
from tests.fuzz.harness import COUNTS, NASTY, mutated_message

# Header values as they reach the decoder: text with surrogate-escaped 8-bit bytes.
raw_header_text = st.one_of(
    st.text(max_size=400),
    st.binary(max_size=400).map(lambda b: b.decode("ascii", "surrogateescape")),
    st.lists(st.sampled_from([n.decode("latin-1") for n in NASTY] + ["=?ISO-2022-JP?B?GyRCJEgbKEI=?=", " ",
                                                                     "=?shift_jis?q?=82=A0?=", "\u3042"]),
             max_size=30).map("".join),
)


@given(raw_header_text)
def test_header_decoding_never_raises_and_gives_printable_text(value: str) -> None:
    COUNTS["mailtext.decode_header"] += 1
    text = decode_header_value(value)
    assert isinstance(text, str)
    assert not any(unicodedata.category(c) in ("Cc", "Cs") and c != "\t" for c in text)
    assert isinstance(normalize_for_match(text), str)


@given(raw_header_text)
def test_address_extraction_never_raises(value: str) -> None:
    COUNTS["mailtext.addresses"] += 1
    found = header_addresses(value)
    assert len(found) == len(set(found))
    assert all("@" in a and a == a.lower() for a in found)
    for address in found[:5]:
        domain = address.rpartition("@")[2]
        # An entry that starts with "@" means a whole domain (SPEC §4): for an
        # address such as "@x@host" (empty local part) the entry is its domain.
        entry = domain if address.startswith("@") else address
        assert sender_entry_matches(entry, address) or not domain.strip(". ")


@given(mutated_message())
def test_mime_walk_and_removal_on_mutated_messages(raw: bytes) -> None:
    COUNTS["mailtext.mime"] += 1
    try:
        parts = leaf_parts(raw)
        stripped = strip_parts(raw, [path for path, _ in parts[:2]])
    except (MessageLimitExceeded, UnrenderableMessage):
        return
    assert isinstance(stripped, bytes)


@given(mutated_message(), st.text(max_size=20))
def test_header_rewrites_on_mutated_messages(raw: bytes, prefix: str) -> None:
    COUNTS["mailtext.compose"] += 1
    tagged = tag_spam(raw, prefix=prefix or "[spam] ", score=9.5, threshold=5.0, rules=("GTUBE", "X"))
    assert b"X-Spam-Flag: YES" in tagged
    assert isinstance(remove_headers(add_header(raw, "X-Mailadmin-Test", prefix), ["X-Mailadmin-Test"]), bytes)

"""SPEC §4 Subject decoding and matching (mailtext.headers): RFC 2047 in every
charset Japanese mail uses, folding, split multibyte characters, raw 8-bit
headers, NFKC + casefold."""

from __future__ import annotations

import base64
import email
import email.policy
import quopri

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailadmin.mailtext.headers import (
    contains_half_width_katakana,
    decode_header_value,
    normalize_for_match,
)

TEXT = "日本語の件名テスト"
# charset label -> Python codec the sender used
CHARSETS = {
    "ISO-2022-JP": "iso2022_jp",
    "iso-2022-jp": "iso2022_jp",
    "Shift_JIS": "cp932",
    "shift-jis": "cp932",
    "SJIS": "cp932",
    "Windows-31J": "cp932",
    "EUC-JP": "euc_jp",
    "euc-jp": "euc_jp",
    "UTF-8": "utf-8",
    "utf8": "utf-8",
}


def b_word(charset: str, data: bytes) -> str:
    return f"=?{charset}?B?{base64.b64encode(data).decode('ascii')}?="


def q_word(charset: str, data: bytes) -> str:
    encoded = quopri.encodestring(data, header=True).decode("ascii")
    encoded = encoded.replace("?", "=3F").replace("=\n", "")
    return f"=?{charset}?Q?{encoded}?="


@pytest.mark.parametrize("charset", sorted(CHARSETS))
@pytest.mark.parametrize("make_word", [b_word, q_word], ids=["B", "Q"])
def test_each_japanese_charset(charset: str, make_word: object) -> None:
    assert callable(make_word)
    word = make_word(charset, TEXT.encode(CHARSETS[charset]))
    assert decode_header_value(word) == TEXT


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # as written by real mailers
        ("=?ISO-2022-JP?B?GyRCRnxLXDhsGyhC?=", "日本語"),
        ("=?iso-2022-jp?b?GyRCJUYlOSVIGyhC?=", "テスト"),
        ("=?Shift_JIS?Q?=93=FA=96=7B?=", "日本"),
        ("=?UTF-8?B?5pel5pys6Kqe?=", "日本語"),
        ("=?utf-8?q?caf=C3=A9_au_lait?=", "café au lait"),
        ("=?ISO-8859-1?Q?Andr=E9?= Pirard", "André Pirard"),
        # RFC 2047 §8 examples
        ("(=?ISO-8859-1?Q?a?=)", "(a)"),
        ("(=?ISO-8859-1?Q?a?= b)", "(a b)"),
        ("(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)", "(ab)"),
        ("(=?ISO-8859-1?Q?a?=  =?ISO-8859-1?Q?b?=)", "(ab)"),
        ("(=?ISO-8859-1?Q?a?=\r\n    =?ISO-8859-1?Q?b?=)", "(ab)"),
        ("(=?ISO-8859-1?Q?a_b?=)", "(a b)"),
        ("(=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=)", "(a b)"),
        # RFC 2231 language tag
        ("=?UTF-8*ja?B?5pel5pys6Kqe?=", "日本語"),
        # plain text, folded
        ("Hello\r\n World", "Hello World"),
        ("Hello\n\tWorld", "Hello\tWorld"),
        ("", ""),
        ("   ", "   "),
        # text and encoded words mixed
        ("Re: =?UTF-8?B?5pel5pys6Kqe?= (2)", "Re: 日本語 (2)"),
        ("[spam] =?ISO-2022-JP?B?GyRCRnxLXDhsGyhC?=", "[spam] 日本語"),
    ],
)
def test_known_values(raw: str, expected: str) -> None:
    assert decode_header_value(raw) == expected


@pytest.mark.parametrize("charset", ["ISO-2022-JP", "Shift_JIS", "EUC-JP", "UTF-8"])
@pytest.mark.parametrize("separator", ["\r\n ", "\r\n\t", "\n ", " ", "", "\r\n  \t "])
def test_multibyte_character_split_across_folded_words(charset: str, separator: str) -> None:
    data = TEXT.encode(CHARSETS[charset])
    for cut in range(1, len(data)):
        raw = b_word(charset, data[:cut]) + separator + b_word(charset, data[cut:])
        assert decode_header_value(raw) == TEXT, (charset, cut)


@pytest.mark.parametrize("charset", ["ISO-2022-JP", "Shift_JIS", "EUC-JP", "UTF-8"])
def test_many_small_words_on_folded_lines(charset: str) -> None:
    data = ("長い件名" * 10).encode(CHARSETS[charset])
    words = [b_word(charset, data[i:i + 7]) for i in range(0, len(data), 7)]
    raw = "\r\n ".join(words)
    assert decode_header_value(raw) == "長い件名" * 10


def test_adjacent_words_in_different_charsets_are_joined_without_the_space() -> None:
    raw = b_word("ISO-2022-JP", "日本".encode("iso2022_jp")) + "\r\n " + b_word("UTF-8", "語".encode())
    assert decode_header_value(raw) == "日本語"


def test_space_between_word_and_text_is_kept() -> None:
    raw = b_word("UTF-8", "日本".encode()) + " text " + b_word("UTF-8", "語".encode())
    assert decode_header_value(raw) == "日本 text 語"


@pytest.mark.parametrize(
    ("label", "data", "expected"),
    [
        # NEC row-13 characters Windows mailers put in ISO-2022-JP (CP50220)
        ("ISO-2022-JP", b"\x1b$B-!-_-j\x1b(B", "①㍻㈱"),
        ("ISO-2022-JP", b"\x1b$B-5\x1b(B", "Ⅰ"),
        # half-width katakana in ISO-2022-JP (ESC ( I)
        ("ISO-2022-JP", b"\x1b(I6@6E\x1b(B", "ｶﾀｶﾅ"),
        # cp932 extensions labelled Shift_JIS
        ("Shift_JIS", "①㈱髙".encode("cp932"), "①㈱髙"),
        # UTF-8 text labelled Shift_JIS: the label is a hint only
        ("Shift_JIS", "日本語".encode("utf-8"), "日本語"),
        # Shift_JIS text labelled EUC-JP
        ("EUC-JP", "日本語です".encode("cp932"), "日本語です"),
        # an unknown charset name
        ("x-unknown", "日本語".encode("utf-8"), "日本語"),
        ("unknown-8bit", "件名です".encode("euc_jp"), "件名です"),
    ],
)
def test_mislabelled_and_extended_charsets(label: str, data: bytes, expected: str) -> None:
    assert decode_header_value(b_word(label, data)) == expected


@pytest.mark.parametrize("codec", ["utf-8", "cp932", "euc_jp"])
def test_raw_8bit_header_bytes(codec: str) -> None:
    raw = b"Subject: " + "テスト件名です".encode(codec) + b" ok\r\n\r\nbody\r\n"
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    value = next(v for k, v in message.raw_items() if k.lower() == "subject")
    assert isinstance(value, str)
    assert decode_header_value(value) == "テスト件名です ok"


def test_raw_iso_2022_jp_without_encoded_words() -> None:
    raw = "テスト件名".encode("iso2022_jp").decode("ascii") + " ok"
    assert decode_header_value(raw) == "テスト件名 ok"


@pytest.mark.parametrize(
    "raw",
    [
        "=?UTF-8?B?!!!?=",
        "=?UTF-8?B?5pel5pys6Kq?=",
        "=?UTF-8?B?5pel5pys6Kqe",
        "=?UTF-8?X?abc?=",
        "=??B?abc?=",
        "=?UTF-8?Q?=ZZ=?=",
        "=?no-such-charset?B?5pel5pys6Kqe?=",
        "=?zlib?B?eJwrSS0u0S0pLUpVBAA=?=",
        "=?hex?Q?41?=",
        "=?ISO-2022-JP?B?GyRCRnxLXDhs?=",
        "=?ISO-2022-JP?B?GyQoRCJpGyhC?=",
        "=?ISO-2022-JP?B?GyQ=?=",
        "=?utf-16?B?//4=?=",
        "\x1b$B\x1b(B\x1b",
        "\udcff\udcfe\udc80",
        "lone \ud800 surrogate \udcff",
        "=?UTF-8?B?5pel?= \ud800",
        "\x00\x01\x7f",
        "=?UTF-8?B?" + "A" * 10000 + "?=",
        "=?" * 500,
        "=?UTF-8?Q?a?=" * 300,
    ],
)
def test_garbage_never_raises(raw: str) -> None:
    decoded = decode_header_value(raw)
    assert isinstance(decoded, str)
    assert "\x00" not in decoded
    decoded.encode("utf-8")  # storable and printable: no lone surrogates


def test_decoded_control_characters_become_spaces() -> None:
    decoded = decode_header_value(b_word("UTF-8", b"a\r\nBcc: x@example.com\x00b"))
    assert "\r" not in decoded and "\n" not in decoded and "\x00" not in decoded
    assert decoded == "a  Bcc: x@example.com b"


def test_truncated_utf8_word_is_replaced_not_raised() -> None:
    data = "日本語".encode()
    assert decode_header_value(b_word("UTF-8", data[:-1])).startswith("日本")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("ＡＢＣ", "ABC"),
        ("ＡＢＣ", "abc"),
        ("ｶﾀｶﾅ", "カタカナ"),
        ("ｶﾞｷﾞｸﾞ", "ガギグ"),
        ("ﾊﾟﾋﾟﾌﾟ", "パピプ"),
        ("１２３", "123"),
        ("Ｈｅｌｌｏ　Ｗｏｒｌｄ", "hello world"),
        ("hello   world", "Hello World"),
        ("Straße", "STRASSE"),
        ("㈱", "(株)"),
        ("ＶＩＡＧＲＡ", "viagra"),
        ("！？", "!?"),
    ],
)
def test_normalize_for_match_equates(a: str, b: str) -> None:
    assert normalize_for_match(a) == normalize_for_match(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("カタカナ", "かたかな"),  # katakana and hiragana stay different
        ("日本", "日本語"),
        ("abc", "abd"),
    ],
)
def test_normalize_for_match_distinguishes(a: str, b: str) -> None:
    assert normalize_for_match(a) != normalize_for_match(b)


def test_substring_match_after_normalisation() -> None:
    subject = decode_header_value(b_word("ISO-2022-JP", "【重要】ＶＩＡＧＲＡ激安".encode("iso2022_jp")))
    assert normalize_for_match("viagra") in normalize_for_match(subject)
    assert normalize_for_match("ｹﾞｷﾔｽ") not in normalize_for_match(subject)
    assert normalize_for_match("激安") in normalize_for_match(subject)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ｶﾀｶﾅ", True),
        ("abcｱ", True),
        ("｡", True),  # U+FF61, first of the range
        ("ﾟ", True),  # U+FF9F, last of the range
        ("カタカナ", False),
        ("ＡＢＣ", False),  # full-width Latin is U+FF21..: not katakana
        ("ￂ", False),  # U+FFC2 half-width hangul, just above the range
        ("", False),
        ("hello", False),
    ],
)
def test_contains_half_width_katakana(text: str, expected: bool) -> None:
    assert contains_half_width_katakana(text) is expected


def _printable_by_category(text: str) -> str:
    """The per-character definition the regular expressions in headers.py stand for."""
    import unicodedata

    out = []
    for char in text:
        category = unicodedata.category(char)
        out.append(" " if category == "Cc" and char != "\t" else "\ufffd" if category == "Cs" else char)
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0xFFFF), max_size=40))
def test_printable_is_the_cc_and_cs_categories(text: str) -> None:
    from mailadmin.mailtext.headers import _printable

    assert _printable(text) == _printable_by_category(text)


def test_printable_covers_every_control_and_surrogate_code_point() -> None:
    from mailadmin.mailtext.headers import _printable

    every = "".join(chr(c) for c in range(0x110000))
    assert _printable(every) == _printable_by_category(every)

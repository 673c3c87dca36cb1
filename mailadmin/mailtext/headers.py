"""Header text as a person reads it: RFC 2047 decoding, unfolding and the
normalisation used for Subject matching (SPEC §4).

Japanese mail arrives as encoded words in ISO-2022-JP, Shift_JIS, EUC-JP or
UTF-8, as raw ISO-2022-JP escape sequences, or as raw 8-bit bytes that the
``email`` package hands over surrogate-escaped.  :func:`decode_header_value`
turns all of them into text and never raises: a header an attacker wrote is
decoded as well as it can be, with replacement characters where it cannot.

Adjacent encoded words in the same charset are decoded as one byte string
(RFC 2047 §6.2 joins them anyway), because mailers split a multibyte
character, or an ISO-2022-JP escape sequence, across two words.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata

from mailadmin.mailtext.memo import short_text_cache

_ENCODED_WORD = re.compile(
    r"=\?(?P<charset>[^?\s*]+)(?:\*[^?\s]*)?\?(?P<encoding>[bBqQ])\?(?P<text>[^?\s]*)\?="
)
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_ESCAPE = "\x1b"

# Names mail uses for the Windows forms of the Japanese charsets: Outlook and
# most Japanese mailers label cp932 text "Shift_JIS" (NEC and IBM extensions,
# ① and ㈱ included), so the superset is the one to decode with.
_CHARSET_ALIASES = {
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "s-jis": "cp932",
    "ms_kanji": "cp932",
    "csshiftjis": "cp932",
    "windows-31j": "cp932",
    "cp932": "cp932",
    "ms932": "cp932",
    "iso-2022-jp": "iso2022_jp",
    "iso2022-jp": "iso2022_jp",
    "csiso2022jp": "iso2022_jp",
    "iso-2022-jp-ms": "iso2022_jp",
    "cp50220": "iso2022_jp",
    "cp50221": "iso2022_jp",
    "cp50222": "iso2022_jp",
    "iso-2022-jp-1": "iso2022_jp",
    "iso-2022-jp-2": "iso2022_jp",
    "iso-2022-jp-3": "iso2022_jp",
    "iso-2022-jp-2004": "iso2022_jp",
    "euc-jp": "euc_jp",
    "eucjp": "euc_jp",
    "x-euc-jp": "euc_jp",
    "cseucpkdfmtjapanese": "euc_jp",
    "eucjp-ms": "euc_jp",
    "cp51932": "euc_jp",
    "euc-jis-2004": "euc_jp",
    "utf8": "utf-8",
    "utf-8": "utf-8",
    "us-ascii": "ascii",
    "ascii": "ascii",
    "gb2312": "gb18030",  # the superset: mislabelled GBK text is common
    "gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
}

# Only the start of a longer value is decoded: a Subject is matched and shown
# from its first few thousand characters, and decoding a 10 MB field (a few
# seconds of Python) would hold up every other message on the event loop.
MAX_DECODED_CHARS = 65_536

# Charsets whose text is 8-bit but carries no label; tried in this order and
# scored, the best-looking result wins.
_GUESSES = ("utf-8", "euc_jp", "cp932")


@short_text_cache
def decode_header_value(raw: str) -> str:
    """The text of one raw header value: unfolded, encoded words decoded.

    Never raises; undecodable bytes become U+FFFD.  Only the first
    :data:`MAX_DECODED_CHARS` characters of ``raw`` are read.
    """
    raw = raw[:MAX_DECODED_CHARS]
    try:
        return _decode(raw)
    except Exception:  # noqa: BLE001 - a header must never stop mail handling
        return _printable("".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in raw))


def _decode(raw: str) -> str:
    text = _undo_surrogates(raw)
    text = _FOLD.sub("", text).replace("\r", "").replace("\n", "")
    pieces: list[str] = []
    # Runs of adjacent encoded words in one charset, kept as bytes until the
    # run ends so that a character split across words is decoded whole.
    run_charset: str | None = None
    run_bytes = bytearray()
    position = 0
    previous_was_word = False

    def flush() -> None:
        nonlocal run_charset
        if run_charset is not None:
            pieces.append(_decode_bytes(bytes(run_bytes), run_charset))
        run_charset = None
        run_bytes.clear()

    for match in _ENCODED_WORD.finditer(text):
        between = text[position:match.start()]
        position = match.end()
        if not (previous_was_word and between.strip(" \t") == ""):
            flush()
            pieces.append(_decode_plain(between))
        payload = _word_bytes(match.group("encoding"), match.group("text"))
        if payload is None:
            flush()
            pieces.append(match.group(0))
            previous_was_word = False
            continue
        charset = _codec_name(match.group("charset"))
        if charset != run_charset:
            flush()
            run_charset = charset
        run_bytes.extend(payload)
        previous_was_word = True
    flush()
    pieces.append(_decode_plain(text[position:]))
    return _printable("".join(pieces))


# Searched by regular expression, not character by character in Python: a
# long subject costs microseconds, not milliseconds.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
# General category Cc is exactly U+0000-U+001F and U+007F-U+009F (fixed by
# Unicode's stability policy), Cs exactly U+D800-U+DFFF.
_CONTROL_BUT_TAB = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _undo_surrogates(raw: str) -> str:
    """Raw 8-bit header bytes arrive as lone surrogates (surrogateescape)."""
    if _ESCAPED_BYTE.search(raw) is None:
        return raw
    data = raw.encode("utf-8", "surrogateescape")
    return _guess_bytes(data)


def _decode_plain(text: str) -> str:
    """Text outside encoded words: may hold raw ISO-2022-JP escape sequences."""
    if _ESCAPE not in text:
        return text
    try:
        data = text.encode("latin-1")
    except UnicodeEncodeError:
        return text
    return _decode_iso2022jp(data)


def _word_bytes(encoding: str, text: str) -> bytes | None:
    if encoding in "bB":
        cleaned = re.sub(r"[^A-Za-z0-9+/]", "", text)
        cleaned += "=" * (-len(cleaned) % 4)
        if len(cleaned) % 4 == 1:
            cleaned = cleaned[:-1]  # a stray trailing character: drop it
        try:
            return base64.b64decode(cleaned)
        except (binascii.Error, ValueError):
            return None
    data = text.replace("_", " ").encode("ascii", "replace")
    return _QP_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), data)


def _codec_name(charset: str) -> str:
    name = charset.strip().lower()
    alias = _CHARSET_ALIASES.get(name)
    if alias is not None:
        return alias
    try:
        info = codecs.lookup(name)
    except LookupError:
        return "unknown"
    # bytes-to-bytes codecs (zlib, base64, hex) are not charsets
    return info.name if getattr(info, "_is_text_encoding", True) else "unknown"


def _decode_bytes(data: bytes, codec: str) -> str:
    if codec == "iso2022_jp" or (b"\x1b" in data and codec in ("ascii", "unknown")):
        return _decode_iso2022jp(data)
    if codec in ("cp932", "euc_jp", "utf-8", "ascii", "unknown"):
        try:
            return data.decode(codec if codec != "unknown" else "ascii")
        except UnicodeDecodeError:
            # Mislabelled Japanese text is common: the label is a hint only.
            return _guess_bytes(data, first=codec)
    try:
        return data.decode(codec, "replace")
    except (LookupError, UnicodeError, TypeError):
        return _guess_bytes(data)


def _guess_bytes(data: bytes, first: str | None = None) -> str:
    """Best-effort text of unlabelled 8-bit bytes."""
    if b"\x1b" in data:
        return _decode_iso2022jp(data)
    order = [first] if first in _GUESSES else []
    order += [c for c in _GUESSES if c not in order]
    candidates: list[tuple[int, int, str]] = []
    for rank, codec in enumerate(order):
        try:
            text = data.decode(codec)
        except UnicodeDecodeError as error:
            if codec == "utf-8" and error.start > 0 and error.reason == "unexpected end of data":
                # valid UTF-8 cut short (a word split badly by the sender)
                return data.decode("utf-8", "replace")
            continue
        if codec == "utf-8":
            return text  # valid multibyte UTF-8 is almost never an accident
        candidates.append((_plausibility(text), -rank, text))
    if candidates:
        return max(candidates)[2]
    return data.decode("utf-8", "replace")


def _plausibility(text: str) -> int:
    """Higher for text that looks like Japanese, lower for mojibake."""
    score = 0
    for char in text:
        code = ord(char)
        if code < 0x80:
            score += 1
        elif 0x3040 <= code <= 0x30FF or 0x4E00 <= code <= 0x9FFF or 0x3000 <= code <= 0x303F:
            score += 2
        elif 0xFF01 <= code <= 0xFF5E:
            score += 1
        elif 0xFF61 <= code <= 0xFF9F:
            score -= 1  # half-width katakana: what EUC-JP looks like read as Shift_JIS
        else:
            score -= 2
    return score


def _decode_iso2022jp(data: bytes) -> str:
    """ISO-2022-JP as Japanese mailers write it (in effect Microsoft's CP50220).

    Python's ``iso2022_jp`` refuses the NEC row-13 characters (①, ㈱, Ⅰ)
    and half-width katakana that Windows mailers put in it, so the JIS X 0208
    shifts are mapped to Shift_JIS and decoded as cp932, which has them.
    """
    try:
        return data.decode("iso2022_jp")
    except UnicodeDecodeError:
        pass
    out: list[str] = []
    mode = "ascii"
    i = 0
    length = len(data)
    while i < length:
        byte = data[i]
        if byte == 0x1B:
            sequence = data[i + 1:i + 4]
            if sequence[:2] in (b"$@", b"$B"):
                mode, i = "jis0208", i + 3
            elif sequence[:3] == b"$(D":
                mode, i = "jis0212", i + 4
            elif sequence[:3] in (b"$(O", b"$(Q", b"$(P"):
                mode, i = "jis0213", i + 4
            elif sequence[:2] in (b"(B", b"(J", b"(H"):
                mode, i = "ascii", i + 3
            elif sequence[:2] == b"(I":
                mode, i = "katakana", i + 3
            else:
                out.append("\ufffd")
                i += 1
            continue
        if byte == 0x0E:  # SO: half-width katakana (JIS7)
            mode, i = "katakana", i + 1
            continue
        if byte == 0x0F:  # SI
            mode, i = "ascii", i + 1
            continue
        if mode == "ascii" or byte in (0x0A, 0x0D):
            out.append(chr(byte) if byte < 0x80 else "\ufffd")
            i += 1
        elif mode == "katakana":
            out.append(bytes([byte | 0x80]).decode("cp932", "replace") if 0x21 <= byte <= 0x5F else "\ufffd")
            i += 1
        else:
            pair = data[i:i + 2]
            i += 2
            if len(pair) < 2:
                out.append("\ufffd")
            elif mode == "jis0208":
                out.append(_jis_to_sjis(pair).decode("cp932", "replace"))
            elif mode == "jis0212":
                out.append((b"\x8f" + bytes(b | 0x80 for b in pair)).decode("euc_jp", "replace"))
            else:
                out.append(bytes(b | 0x80 for b in pair).decode("euc_jis_2004", "replace"))
    return "".join(out)


def _jis_to_sjis(pair: bytes) -> bytes:
    first, second = pair[0], pair[1]
    if not (0x21 <= first <= 0x7E and 0x21 <= second <= 0x7E):
        return b"?"
    lead = ((first + 1) >> 1) + (0x70 if first <= 0x5E else 0xB0)
    if first & 1:
        trail = second + (0x1F if second <= 0x5F else 0x20)
    else:
        trail = second + 0x7E
    return bytes([lead, trail])


def _printable(text: str) -> str:
    """Control characters (an encoded word may carry CR, LF or NUL) become
    spaces; lone surrogates, which no codec can write, become U+FFFD."""
    return _SURROGATE.sub("\ufffd", _CONTROL_BUT_TAB.sub(" ", text))


def normalize_for_match(text: str) -> str:
    """The form Subject entries and subjects are compared in (SPEC §4).

    NFKC makes full-width and half-width forms equal (ＡＢＣ = ABC,
    ｶﾀｶﾅ = カタカナ), casefold ignores case, and runs of white space count
    as one space.
    """
    folded = unicodedata.normalize("NFKC", text)
    folded = unicodedata.normalize("NFKC", folded.casefold())
    return " ".join(folded.split())


def contains_half_width_katakana(text: str) -> bool:
    """Whether ``text`` has a half-width katakana character (U+FF61–U+FF9F)."""
    return any("\uff61" <= c <= "\uff9f" for c in text)

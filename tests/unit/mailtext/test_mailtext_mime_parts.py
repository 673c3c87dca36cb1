"""SPEC §7: leaf MIME parts and their removal (mailtext.mime_parts)."""

from __future__ import annotations

import base64
import email
import email.policy

import pytest

from mailadmin.mailtext.mime_parts import leaf_parts, strip_parts, strip_parts_found


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


SINGLE = crlf(
    "From: a@example.com\n"
    "To: b@example.jp\n"
    "Subject: single\n"
    "\n"
    "Just text.\n"
)


def mixed(attachment: bytes, filename: str = "eicar.com") -> bytes:
    encoded = base64.encodebytes(attachment).decode("ascii")
    return crlf(
        "From: a@example.com\n"
        "To: b@example.jp\n"
        "Subject: with attachment\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="outer"\n'
        "\n"
        "This is a multi-part message in MIME format.\n"
        "--outer\n"
        'Content-Type: multipart/alternative; boundary="alt"\n'
        "\n"
        "--alt\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: quoted-printable\n"
        "\n"
        "caf=C3=A9 =E6=97=A5=E6=9C=AC\n"
        "--alt\n"
        "Content-Type: text/html; charset=utf-8\n"
        "\n"
        "<p>cafe</p>\n"
        "--alt--\n"
        "--outer\n"
        f'Content-Type: application/octet-stream; name="{filename}"\n'
        f'Content-Disposition: attachment; filename="{filename}"\n'
        "Content-Transfer-Encoding: base64\n"
        "\n"
        f"{encoded}"
        "--outer\n"
        "Content-Type: message/rfc822\n"
        "\n"
        "From: c@example.com\n"
        "Subject: forwarded\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="inner"\n'
        "\n"
        "--inner\n"
        "Content-Type: text/plain\n"
        "\n"
        "inner text\n"
        "--inner\n"
        'Content-Type: application/zip; name="x.zip"\n'
        "Content-Transfer-Encoding: base64\n"
        "\n"
        "UEsDBA==\n"
        "--inner--\n"
        "--outer--\n"
        "epilogue text\n"
    )


def test_single_part_body_is_part_1() -> None:
    assert leaf_parts(SINGLE) == [("1", b"Just text.\r\n")]


def test_nested_parts_are_numbered_like_imap(eicar: bytes) -> None:
    parts = leaf_parts(mixed(eicar))
    assert [path for path, _ in parts] == ["1.1", "1.2", "2", "3.1", "3.2"]
    payloads = dict(parts)
    assert payloads["1.1"] == "café 日本".encode()  # the CRLF before a boundary is the boundary's
    assert payloads["1.2"] == b"<p>cafe</p>"
    assert payloads["2"] == eicar
    assert payloads["3.1"] == b"inner text"
    assert payloads["3.2"] == b"PK\x03\x04"


def test_single_part_rfc822_attachment_body_is_n_1() -> None:
    raw = crlf(
        "Subject: x\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n"
        "--b\nContent-Type: text/plain\n\nouter\n"
        "--b\nContent-Type: message/rfc822\n\nSubject: inner\n\ninner body\n"
        "--b--\n"
    )
    assert leaf_parts(raw) == [("1", b"outer"), ("2.1", b"inner body")]


def test_lf_only_message() -> None:
    raw = SINGLE.replace(b"\r\n", b"\n")
    assert leaf_parts(raw) == [("1", b"Just text.\n")]


def test_broken_multipart_without_boundary_is_one_leaf() -> None:
    raw = crlf("Subject: x\nContent-Type: multipart/mixed\n\nno parts here\n")
    assert [path for path, _ in leaf_parts(raw)] == ["1"]


def test_strip_removes_a_base64_attachment(eicar: bytes) -> None:
    raw = mixed(eicar)
    stripped = strip_parts(raw, ["2"])
    assert eicar not in stripped
    assert base64.encodebytes(eicar).strip() not in stripped
    assert base64.b64encode(eicar)[:40] not in stripped
    message = email.message_from_bytes(stripped, policy=email.policy.default)
    parts = list(message.iter_parts())
    notice = parts[1]
    assert notice.get_content_type() == "text/plain"
    text = notice.get_content()
    assert "eicar.com" in text and "application/octet-stream" in text
    assert "削除" in text and "removed" in text
    # every other part is still there, byte for byte
    payloads = dict(leaf_parts(stripped))
    assert payloads["1.1"] == "café 日本".encode()
    assert payloads["3.2"] == b"PK\x03\x04"
    assert message["Subject"] == "with attachment"


def test_strip_keeps_line_endings(eicar: bytes) -> None:
    stripped = strip_parts(mixed(eicar), ["2"])
    assert b"\n" not in stripped.replace(b"\r\n", b"")
    lf = strip_parts(mixed(eicar).replace(b"\r\n", b"\n"), ["2"])
    assert b"\r" not in lf
    assert eicar not in lf


def test_strip_drops_preamble_and_epilogue(eicar: bytes) -> None:
    stripped = strip_parts(mixed(eicar), ["2"])
    assert b"epilogue text" not in stripped
    assert b"This is a multi-part message" not in stripped


def test_strip_inside_an_attached_message(eicar: bytes) -> None:
    stripped, found = strip_parts_found(mixed(eicar), ["3.2"])
    assert found == {"3.2"}
    assert b"UEsDBA==" not in stripped
    payloads = dict(leaf_parts(stripped))
    assert b"x.zip" in payloads["3.2"] and b"application/zip" in payloads["3.2"]
    assert payloads["2"] == eicar


def test_strip_several_parts(eicar: bytes) -> None:
    stripped, found = strip_parts_found(mixed(eicar), ["2", "1.2", "9"])
    assert found == {"2", "1.2"}
    assert eicar not in stripped and b"<p>cafe</p>" not in stripped


def test_strip_the_body_of_a_single_part_message(eicar: bytes) -> None:
    raw = crlf("From: a@example.com\nSubject: bare\n\n") + eicar + b"\r\n"
    stripped = strip_parts(raw, ["1"])
    assert eicar not in stripped
    message = email.message_from_bytes(stripped, policy=email.policy.default)
    assert message["Subject"] == "bare"
    assert message["MIME-Version"] == "1.0"
    assert message.get_content_type() == "text/plain"
    assert "removed" in message.get_content()


def test_strip_nothing_keeps_the_message(eicar: bytes) -> None:
    raw = mixed(eicar)
    stripped = strip_parts(raw, [])
    assert dict(leaf_parts(stripped)) == dict(leaf_parts(raw))
    assert stripped.split(b"\r\n\r\n", 1)[0] == raw.split(b"\r\n\r\n", 1)[0]


@pytest.mark.parametrize(
    "filename", ["請求書.exe", "=?UTF-8?B?6KuL5rGC5pu4LmV4ZQ==?=", "=?ISO-2022-JP?B?GyRCQEE1YT1xGyhC?=.exe"]
)
def test_removal_notice_names_a_japanese_filename(eicar: bytes, filename: str) -> None:
    stripped = strip_parts(mixed(eicar, filename=filename), ["2"])
    message = email.message_from_bytes(stripped, policy=email.policy.default)
    notice = list(message.iter_parts())[1].get_content()
    assert "請求書.exe" in notice

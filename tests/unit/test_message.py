"""Message parses only the header block, whatever the line endings."""

from __future__ import annotations

import pytest

from mailadmin.message import Message, header_block


@pytest.mark.parametrize(
    "raw, block",
    [
        (b"Subject: a\r\nFrom: b@c.jp\r\n\r\nbody\r\n\r\nmore", b"Subject: a\r\nFrom: b@c.jp\r\n\r\n"),
        (b"Subject: a\nFrom: b@c.jp\n\nbody\n\nmore", b"Subject: a\nFrom: b@c.jp\n\n"),
        (b"Subject: a\r\n", b"Subject: a\r\n"),  # no body at all
        (b"Subject: a\n\nSubject: in body\n", b"Subject: a\n\n"),
        (b"Subject: a\n\r\nbody\r\n\r\nmore", b"Subject: a\n\r\n"),  # line ends mixed
        (b"\r\nSubject: in body\r\n\r\n", b"\r\n"),  # no fields at all
        (b"\nSubject: in body\n\n", b"\n"),
    ],
)
def test_header_block(raw: bytes, block: bytes) -> None:
    assert header_block(raw) == block


def test_body_lines_are_never_headers() -> None:
    m = Message(b"From: a@example.org\r\n\r\nSubject: not a header\r\nList-Id: <x>\r\n")
    assert m.subject is None
    assert not m.has_header("List-Id")
    assert m.from_addresses == ("a@example.org",)


def test_folded_header_kept_whole() -> None:
    m = Message(b"Subject: =?UTF-8?B?5pyq5om/?=\r\n =?UTF-8?B?6Ku+5bqD5ZGK?=\r\n\r\nx")
    assert m.subject == "未承諾広告"

"""Fixtures for the mailtext tests: test-virus bytes are assembled at run time
so that no file in the tree carries the signature."""

from __future__ import annotations

import pytest


@pytest.fixture
def eicar() -> bytes:
    pieces = [
        "X5O!P%@AP[4\\PZX54(P^)7CC)7}$",
        "EICAR-STANDARD-ANTIVIRUS",
        "-TEST-FILE!$H+H*",
    ]
    data = "".join(pieces).encode("ascii")
    assert len(data) == 68
    return data

"""Signed one-click links of the quarantine notice (SPEC §8): release or delete
one quarantined item without logging in.

A link is ``q/<action>/<item id>/<expiry>/<signature>`` under the admin
page's base URL.  The signature is HMAC-SHA256, with the server secret of
``[quarantine_links] secret_file``, over the action, the item id, the mailbox
the item belongs to and the expiry, which is the item's own end of retention
(Unix seconds).  The mailbox is not in the URL: the page verifies against the
mailbox that holds the item now, so a link works only for that one item of
that one mailbox.

What the page refuses (``verify``):

- altered: any part changed, or an item of another mailbox (signature mismatch);
- expired: past the expiry in the link, or the expiry no longer the item's;
- used: the item is gone (released, deleted or purged), so a link works once.

Opening a link never acts: it shows a confirm page whose POST does the work,
so mail scanners that fetch every URL in a message release nothing.

The secret file is created with 32 random bytes (mode 0600) when it does not
exist; every host serving the page or sending notices needs the same file.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from mailadmin.errors import ConfigError

ACTIONS = ("release", "delete")
SECRET_BYTES = 32
PATH_PREFIX = "q/"


class LinkState(enum.Enum):
    VALID = "valid"
    ALTERED = "altered"
    EXPIRED = "expired"
    USED = "used"


def load_secret(path: str) -> bytes:
    """The HMAC key in ``path``, created when the file does not exist."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        data = _create(file)
    except OSError as exc:
        raise ConfigError(path, "quarantine_links.secret_file", f"cannot read the link secret: {exc}") from exc
    secret = data.strip()
    if len(secret) < SECRET_BYTES:
        raise ConfigError(path, "quarantine_links.secret_file",
                          f"the link secret must hold at least {SECRET_BYTES} bytes")
    return secret


def _create(file: Path) -> bytes:
    data = secrets.token_hex(SECRET_BYTES).encode("ascii") + b"\n"
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process created it first: use theirs.
        return file.read_bytes()
    except OSError as exc:
        raise ConfigError(str(file), "quarantine_links.secret_file",
                          f"cannot create the link secret: {exc}") from exc
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return data


def expiry_of(expires_at: dt.datetime) -> int:
    return int(expires_at.timestamp())


def signature(secret: bytes, action: str, item_id: int, mailbox: str, expiry: int) -> str:
    message = f"quarantine-link\n{action}\n{item_id}\n{mailbox.lower()}\n{expiry}".encode("utf-8")
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def link_path(secret: bytes, action: str, item_id: int, mailbox: str, expires_at: dt.datetime) -> str:
    """The link's path relative to the page's base URL (no leading "/")."""
    if action not in ACTIONS:
        raise ValueError(action)
    expiry = expiry_of(expires_at)
    return f"{PATH_PREFIX}{action}/{item_id}/{expiry}/{signature(secret, action, item_id, mailbox, expiry)}"


def verify(
    secret: bytes,
    action: str,
    item_id: int,
    expiry: int,
    sig: str,
    *,
    item_mailbox: str | None,
    item_expires_at: dt.datetime | None,
    now: dt.datetime,
) -> LinkState:
    """What a link is worth now; ``item_*`` describe the item as it is (None: gone)."""
    if action not in ACTIONS:
        return LinkState.ALTERED
    if item_mailbox is None or item_expires_at is None:
        # Gone: used already, or purged after its retention.  Nothing tells
        # which without keeping the item, and neither may act again.
        return LinkState.USED
    expected = signature(secret, action, item_id, item_mailbox, expiry)
    if not hmac.compare_digest(expected, sig):
        return LinkState.ALTERED
    if expiry != expiry_of(item_expires_at) or now.timestamp() >= expiry:
        return LinkState.EXPIRED
    return LinkState.VALID

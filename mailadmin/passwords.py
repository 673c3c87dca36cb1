"""Password hashes that Dovecot's SQL passdb verifies as they are (SPEC §1).

The POP account password is also the SMTP AUTH / POP / IMAP password, so the
store keeps it as a Dovecot ``{SCHEME}hash`` string: Dovecot reads the same
column and needs no copy of its own.  New hashes are ``{ARGON2ID}`` with
Dovecot's own default parameters (m=64 MiB, t=3, p=1); ``{ARGON2I}``,
``{BLF-CRYPT}`` and ``{SHA512-CRYPT}`` hashes imported from an older system
still verify and are replaced by ARGON2ID at the next successful login
(:func:`needs_rehash`).  Nothing here is reversible and no password is ever
stored or logged in clear.
"""

from __future__ import annotations

import functools
import hmac
import secrets

import argon2
import bcrypt

from mailadmin.config.model import PasswordPolicy

ARGON2_TIME_COST = 3
ARGON2_MEMORY_COST_KIB = 65536
ARGON2_PARALLELISM = 1

TEMPORARY_PASSWORD_LENGTH = 12

# 0/O/o, 1/l/I and symbols are left out: a temporary password is read from a
# printed notice or over the phone and typed by hand.
_TEMPORARY_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz"
_TEMPORARY_DIGITS = "23456789"

_hasher = argon2.PasswordHasher(
    time_cost=ARGON2_TIME_COST,
    memory_cost=ARGON2_MEMORY_COST_KIB,
    parallelism=ARGON2_PARALLELISM,
    type=argon2.Type.ID,
)


def hash_password(password: str) -> str:
    """A new ``{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$…`` string for ``password``."""
    return "{ARGON2ID}" + _hasher.hash(password)


def _split(stored: str) -> tuple[str, str] | None:
    """``{SCHEME}hash`` → (upper-case scheme, hash); Dovecot's scheme names are case-insensitive."""
    if not stored.startswith("{"):
        return None
    scheme, brace, digest = stored[1:].partition("}")
    if not brace or not scheme or not digest:
        return None
    return scheme.upper(), digest


def verify_password(stored: str, password: str) -> bool:
    """Whether ``password`` matches ``stored``; ``False`` for a wrong password, an
    unknown scheme or a malformed hash (never raises for those)."""
    parts = _split(stored)
    if parts is None:
        return False
    scheme, digest = parts
    if scheme in ("ARGON2ID", "ARGON2I"):
        expected_prefix = "$argon2id$" if scheme == "ARGON2ID" else "$argon2i$"
        if not digest.startswith(expected_prefix):
            return False
        try:
            return _hasher.verify(digest, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False
    if scheme == "BLF-CRYPT":
        return _verify_bcrypt(digest, password)
    if scheme == "SHA512-CRYPT":
        return _verify_sha512_crypt(digest, password)
    return False


def _verify_bcrypt(digest: str, password: str) -> bool:
    # Dovecot writes $2y$ (the PHP/crypt_blowfish name); it is the same algorithm as $2b$.
    if digest.startswith("$2y$"):
        digest = "$2b$" + digest[4:]
    try:
        return bcrypt.checkpw(password.encode("utf-8"), digest.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        # bcrypt 5 refuses passwords over 72 bytes and malformed salts.
        return False


def _verify_sha512_crypt(digest: str, password: str) -> bool:
    if not digest.startswith("$6$"):
        return False
    try:
        computed = _crypt(password, digest)
    except (ValueError, OSError):
        return False
    if not computed:
        return False
    return hmac.compare_digest(computed.encode("ascii", "replace"), digest.encode("ascii", "replace"))


def _crypt(password: str, salt: str) -> str | None:
    # The stdlib crypt module is gone in Python 3.13; crypt-r is the same code kept alive.
    try:
        import crypt_r as crypt_module  # type: ignore[import-untyped, unused-ignore]
    except ImportError:  # pragma: no cover - Python <= 3.12 without crypt-r
        import crypt as crypt_module  # type: ignore[no-redef, unused-ignore]
    result: str | None = crypt_module.crypt(password, salt)
    return result


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` should be replaced by a fresh :func:`hash_password` hash:
    any scheme other than ARGON2ID, or ARGON2ID with other parameters."""
    parts = _split(stored)
    if parts is None or parts[0] != "ARGON2ID":
        return True
    try:
        return _hasher.check_needs_rehash(parts[1])
    except (argon2.exceptions.InvalidHashError, ValueError):
        return True


@functools.cache
def dummy_hash() -> str:
    """A hash no password matches, verified for unknown addresses so that a
    login attempt takes as long whether or not the mailbox exists (SPEC §1:
    no account enumeration)."""
    return hash_password(secrets.token_urlsafe(32))


def generate_temporary_password(policy: PasswordPolicy) -> str:
    """A random temporary password that satisfies the SPEC §1 rule under ``policy``:
    12 characters (within the policy's bounds), letters and digits only, at
    least one of each, no characters that are easily mistaken for each other."""
    length = min(max(TEMPORARY_PASSWORD_LENGTH, policy.min_length, 2), policy.max_length)
    alphabet = _TEMPORARY_LETTERS + _TEMPORARY_DIGITS
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(length))
        # Rejection sampling keeps every valid password equally likely.
        if any(c in _TEMPORARY_LETTERS for c in candidate) and any(
            c in _TEMPORARY_DIGITS for c in candidate
        ):
            return candidate

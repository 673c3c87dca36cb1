"""Password hashes (SPEC §1): stored in a scheme Dovecot's SQL passdb verifies as-is.

Dovecot's own ``doveadm pw`` is the referee both ways: it verifies our
hashes, and we verify the hashes it makes.  (doveadm runs as a subprocess;
no socket is opened.)
"""

from __future__ import annotations

import re
import subprocess

import argon2
import bcrypt
import pytest

from mailadmin import passwords
from mailadmin.config.model import PasswordPolicy
from mailadmin.errors import EntryError
from mailadmin.mailtext.entries import check_password

PASSWORD = "Secret-123"


def doveadm_hash(scheme: str, password: str) -> str:
    result = subprocess.run(["doveadm", "pw", "-s", scheme, "-p", password],
                            capture_output=True, text=True, check=True, timeout=60)
    return result.stdout.strip()


def doveadm_verifies(stored: str, password: str) -> bool:
    result = subprocess.run(["doveadm", "pw", "-t", stored, "-p", password],
                            capture_output=True, text=True, timeout=60)
    return result.returncode == 0 and "(verified)" in result.stdout


@pytest.fixture(scope="module")
def our_hash() -> str:
    return passwords.hash_password(PASSWORD)


def test_new_hashes_are_argon2id_with_dovecots_defaults(our_hash: str) -> None:
    assert our_hash.startswith("{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$")
    assert PASSWORD not in our_hash
    # a fresh salt every time
    assert passwords.hash_password(PASSWORD) != our_hash


def test_dovecot_accepts_our_hash(our_hash: str) -> None:
    assert doveadm_verifies(our_hash, PASSWORD)
    assert not doveadm_verifies(our_hash, "Secret-124")


def test_our_hash_verifies(our_hash: str) -> None:
    assert passwords.verify_password(our_hash, PASSWORD)
    assert not passwords.verify_password(our_hash, "secret-123")
    assert not passwords.verify_password(our_hash, "")
    assert not passwords.needs_rehash(our_hash)


@pytest.mark.parametrize("scheme", ["ARGON2ID", "ARGON2I", "BLF-CRYPT", "SHA512-CRYPT"])
def test_hashes_made_by_dovecot_verify(scheme: str) -> None:
    stored = doveadm_hash(scheme, PASSWORD)
    assert stored.startswith("{" + scheme + "}")
    assert passwords.verify_password(stored, PASSWORD)
    assert not passwords.verify_password(stored, PASSWORD + "x")


def test_dovecot_writes_2y_bcrypt_and_we_accept_it() -> None:
    stored = doveadm_hash("BLF-CRYPT", PASSWORD)
    assert stored.startswith("{BLF-CRYPT}$2y$")
    assert passwords.verify_password(stored, PASSWORD)


def test_library_made_legacy_hashes_verify() -> None:
    blf = "{BLF-CRYPT}" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    argon2i = "{ARGON2I}" + argon2.PasswordHasher(type=argon2.Type.I, memory_cost=1024).hash(PASSWORD)
    for stored in (blf, argon2i):
        assert passwords.verify_password(stored, PASSWORD)
        assert not passwords.verify_password(stored, "Secret-12")
        assert doveadm_verifies(stored, PASSWORD)


def test_scheme_names_are_case_insensitive(our_hash: str) -> None:
    assert passwords.verify_password("{argon2id}" + our_hash.removeprefix("{ARGON2ID}"), PASSWORD)


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "Secret-123",  # clear text without a scheme
        "{PLAIN}Secret-123",  # a scheme we never accept
        "{CRYPT}abcdefgh",
        "{ARGON2ID}",
        "{ARGON2ID}not-a-hash",
        "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$bad$bad",
        "{BLF-CRYPT}$2b$12$tooshort",
        "{BLF-CRYPT}",
        "{SHA512-CRYPT}$1$md5salt$abcdefghijklmnopqrstuv",  # MD5-crypt is not SHA512-CRYPT
        "{SHA512-CRYPT}$6$",
        "{SHA512-CRYPT}",
        "{ARGON2ID",
        "ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$aaaa$bbbb",
    ],
)
def test_unknown_or_malformed_hashes_never_verify_and_never_raise(stored: str) -> None:
    assert passwords.verify_password(stored, PASSWORD) is False
    assert passwords.needs_rehash(stored) is True


def test_argon2i_hash_under_the_argon2id_label_is_refused() -> None:
    argon2i = argon2.PasswordHasher(type=argon2.Type.I, memory_cost=1024).hash(PASSWORD)
    assert not passwords.verify_password("{ARGON2ID}" + argon2i, PASSWORD)


def test_overlong_password_against_bcrypt_is_false_not_an_error() -> None:
    blf = "{BLF-CRYPT}" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    assert passwords.verify_password(blf, "x" * 100) is False


def test_needs_rehash() -> None:
    weaker = "{ARGON2ID}" + argon2.PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1).hash(PASSWORD)
    assert passwords.verify_password(weaker, PASSWORD)
    assert passwords.needs_rehash(weaker)
    assert passwords.needs_rehash("{BLF-CRYPT}" + bcrypt.hashpw(b"x1", bcrypt.gensalt(4)).decode())
    assert not passwords.needs_rehash(passwords.hash_password(PASSWORD))


def test_dummy_hash_matches_nothing_and_is_reused() -> None:
    assert passwords.dummy_hash() is passwords.dummy_hash()
    assert passwords.dummy_hash().startswith("{ARGON2ID}")
    assert not passwords.verify_password(passwords.dummy_hash(), "")


AMBIGUOUS = set("0Oo1lI")


@pytest.mark.parametrize(
    ("policy", "length"),
    [
        (PasswordPolicy(), 12),
        (PasswordPolicy(min_length=16, max_length=32), 16),
        (PasswordPolicy(min_length=6, max_length=8), 8),
        (PasswordPolicy(allowed_symbols=""), 12),
    ],
)
def test_temporary_passwords_satisfy_the_rule(policy: PasswordPolicy, length: int) -> None:
    seen = set()
    for _ in range(200):
        password = passwords.generate_temporary_password(policy)
        check_password(password, policy)  # raises EntryError when a rule is broken
        assert len(password) == length
        assert re.search(r"[A-Za-z]", password) and re.search(r"[0-9]", password)
        assert not AMBIGUOUS & set(password)
        seen.add(password)
    assert len(seen) == 200


def test_check_password_refuses_what_the_generator_never_makes() -> None:
    # The generator's guarantee is only meaningful if the rule can fail.
    with pytest.raises(EntryError):
        check_password("abcdefghijkl", PasswordPolicy())

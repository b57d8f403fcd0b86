"""Pickup codes and courier credentials: generated with ``secrets``, stored only as hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets


class PickupCodes:
    """Pickup codes are short, so a bare hash would fall to a dictionary of every code: they are
    kept as an HMAC under the site's ``code_secret``, which never enters the database."""

    def __init__(self, secret: str, digits: int) -> None:
        self._key = secret.encode("utf-8")
        self.digits = digits

    def new_code(self) -> str:
        return f"{secrets.randbelow(10**self.digits):0{self.digits}d}"

    def hash(self, code: str) -> str:
        return hmac.new(self._key, code.strip().encode("utf-8"), hashlib.sha256).hexdigest()


_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_credential(credential: str) -> str:
    """Courier credentials are long-lived secrets: salted scrypt, like a password."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(credential.encode("utf-8"), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_credential(credential: str, stored: str) -> bool:
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(
        credential.encode("utf-8"), salt=bytes.fromhex(salt_hex), dklen=32, **_SCRYPT
    )
    return hmac.compare_digest(digest.hex(), digest_hex)

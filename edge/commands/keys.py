"""Ed25519 keys for signing commands.

The private key stays with whoever signs (the upstream service, an operator's laptop): a PKCS8
PEM file readable by its owner only. The site is given the public key as base64 of its 32 raw
bytes, which is what ``commands.trusted_keys[].public_key`` holds.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge.config.sync import CommandsConfig

PUBLIC_KEY_BYTES = 32


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_key_from_seed(seed: bytes) -> Ed25519PrivateKey:
    """The key of a fixed 32-byte seed (RFC 8032 test vectors, tests)."""
    if len(seed) != PUBLIC_KEY_BYTES:
        raise ValueError(f"an Ed25519 seed is 32 bytes, not {len(seed)}")
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """An unencrypted PKCS8 PEM Ed25519 private key; ``ValueError`` says what is wrong."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read private key {path}: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:  # encrypted, and no password given
        raise ValueError(f"{path} is an encrypted key; give an unencrypted PKCS8 PEM") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"{path} is not a PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
    return key


def load_public_key(b64: str) -> Ed25519PublicKey:
    """A public key given as base64 of its 32 raw bytes; ``ValueError`` says what is wrong."""
    try:
        raw = base64.b64decode(b64.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the public key is not valid base64") from exc
    if len(raw) != PUBLIC_KEY_BYTES:
        raise ValueError(
            f"the public key decodes to {len(raw)} bytes; an Ed25519 public key is "
            f"{PUBLIC_KEY_BYTES} raw bytes (base64 of 44 characters)"
        )
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise ValueError("the public key is not a valid Ed25519 key") from exc


def public_key_path(private_path: Path) -> Path:
    """Where ``write_key_pair`` puts the public key: the private key's path plus ``.pub``."""
    return private_path.with_name(private_path.name + ".pub")


def write_key_pair(path: Path, key: Ed25519PrivateKey, *, force: bool = False) -> Path:
    """Write ``path`` (private PEM, mode 0600) and ``path.pub`` (base64); returns the latter.

    Refuses (``FileExistsError``) to replace either file unless ``force``. Each file is written
    to a temporary name and renamed, so a key is never seen half-written or readable by others.
    """
    public_path = public_key_path(path)
    if not force:
        for existing in (path, public_path):
            if existing.exists():
                raise FileExistsError(f"{existing} already exists")
    _write_atomically(path, private_key_pem(key), 0o600)
    _write_atomically(public_path, (public_key_b64(key) + "\n").encode("ascii"), 0o644)
    return public_path


def _write_atomically(path: Path, content: bytes, mode: int) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # Created with its final mode: a private key is never readable by others, not even briefly.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)  # the umask may have taken bits away from 0644
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def load_trusted_keys(config: CommandsConfig) -> dict[str, Ed25519PublicKey]:
    """The upstream keys of ``commands.trusted_keys``, by id, each checked; a bad one is a
    ``ValueError`` naming its place in the configuration."""
    keys: dict[str, Ed25519PublicKey] = {}
    for index, trusted in enumerate(config.trusted_keys):
        where = f"commands.trusted_keys[{index}] ({trusted.id})"
        if trusted.id in keys:
            raise ValueError(f"{where}: the key id appears twice")
        try:
            keys[trusted.id] = load_public_key(trusted.public_key)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    return keys

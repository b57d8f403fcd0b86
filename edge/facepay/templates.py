"""Face templates encrypted at rest: AES-256-GCM with the member and the model bound in.

A template is sealed as its float32 little-endian bytes under a random 96-bit nonce. The
associated data names the member and the recognition model, so a row copied onto another
member (or relabelled as another model) fails to open instead of letting one face pay for
another. Neither a template nor a key ever appears in a repr, a str or a log line.

The key lives in a file of its own: 32 raw bytes, 64 hex characters or base64 of 32 bytes,
readable by its owner only. ``write_key_file`` makes a new one.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
# Versions the associated data, so a future layout can never be mistaken for this one.
_AAD_LABEL = b"edge-face-template:v1"
_KEY_ID_LABEL = b"edge-template-key:"


class TemplateKeyError(Exception):
    """The template key file is missing, malformed or readable by others."""


class TemplateDecryptError(Exception):
    """A sealed template cannot be opened: wrong key, tampered, or another member's or model's."""


@dataclass(frozen=True, slots=True)
class SealedTemplate:
    key_id: str
    nonce: bytes
    ciphertext: bytes

    def __repr__(self) -> str:
        return f"SealedTemplate(key_id={self.key_id!r}, ciphertext={len(self.ciphertext)} bytes)"


def key_id_of(key: bytes) -> str:
    """A short public name for a key: enough to tell keys apart, nothing about the key."""
    return hashlib.sha256(_KEY_ID_LABEL + key).hexdigest()[:16]


class TemplateCipher:
    """Seals and opens face templates with one AES-256-GCM key."""

    __slots__ = ("_aead", "key_id")
    key_id: str

    def __init__(self, key: bytes, *, key_id: str | None = None) -> None:
        if len(key) != KEY_BYTES:
            raise TemplateKeyError(
                f"a template key must be {KEY_BYTES} bytes, not {len(key)}: "
                "make one with write_key_file"
            )
        self._aead = AESGCM(key)
        self.key_id = key_id if key_id is not None else key_id_of(key)

    def __repr__(self) -> str:
        return f"TemplateCipher(key_id={self.key_id!r})"

    @classmethod
    def from_key_file(cls, path: Path) -> TemplateCipher:
        return cls(read_key_file(path))

    def seal(self, member_id: str, model: str, template: np.ndarray) -> SealedTemplate:
        values = np.asarray(template)
        if values.ndim != 1 or values.size == 0:
            raise ValueError(
                f"a template must be a non-empty 1-d vector, not shape {values.shape}: "
                "pass one embedding"
            )
        plaintext = values.astype("<f4").tobytes()
        nonce = secrets.token_bytes(NONCE_BYTES)
        ciphertext = self._aead.encrypt(nonce, plaintext, _associated_data(member_id, model))
        return SealedTemplate(self.key_id, nonce, ciphertext)

    def open(self, member_id: str, model: str, sealed: SealedTemplate) -> np.ndarray:
        if sealed.key_id != self.key_id:
            raise TemplateDecryptError(
                f"the template of {member_id} was sealed with key {sealed.key_id}, but this "
                f"site holds key {self.key_id}: install that key or enrol the member again"
            )
        try:
            plaintext = self._aead.decrypt(
                sealed.nonce, sealed.ciphertext, _associated_data(member_id, model)
            )
        except (InvalidTag, ValueError) as exc:
            raise TemplateDecryptError(
                f"the template stored for {member_id} ({model}) does not open with key "
                f"{self.key_id}: it was altered, copied from another member or model, or sealed "
                "with another key of the same id, so enrol the member again"
            ) from exc
        if len(plaintext) % 4:
            raise TemplateDecryptError(
                f"the template stored for {member_id} is not whole float32 values: "
                "enrol the member again"
            )
        return np.frombuffer(plaintext, dtype="<f4").astype(np.float32)


def _associated_data(member_id: str, model: str) -> bytes:
    """The label, member and model, each length-prefixed so no two pairs encode the same."""
    parts = [member_id.encode(), model.encode()]
    return _AAD_LABEL + b"".join(struct.pack(">I", len(p)) + p for p in parts)


def read_key_file(path: Path) -> bytes:
    """The 32-byte key in ``path``; refuses a missing, malformed or group/other-readable file."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise TemplateKeyError(
            f"template key file {path} does not exist: restore it from backup, or create a new "
            "one with write_key_file (then enrolled members must enrol again)"
        ) from None
    if not stat.S_ISREG(mode):
        raise TemplateKeyError(f"template key file {path} is not a regular file: point to the key")
    if mode & 0o077:
        raise TemplateKeyError(
            f"template key file {path} is open to group or others (mode "
            f"{stat.S_IMODE(mode):o}): run `chmod 600 {path}`"
        )
    data = path.read_bytes()
    key = _decode_key(data)
    if key is None:
        raise TemplateKeyError(
            f"template key file {path} holds {len(data)} bytes that are not a {KEY_BYTES}-byte "
            "key (raw, 64 hex characters or base64): restore the right file"
        )
    return key


def _decode_key(data: bytes) -> bytes | None:
    if len(data) == KEY_BYTES:
        return data
    text = b"".join(data.split())
    if len(text) == 2 * KEY_BYTES:
        with contextlib.suppress(ValueError):
            return bytes.fromhex(text.decode("ascii"))
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if len(key) == KEY_BYTES else None


def write_key_file(path: Path) -> str:
    """Create ``path`` holding a new random key (64 hex characters), mode 0600; its key id.

    The key is written to a private temporary file beside ``path`` and hard-linked into
    place, so ``path`` appears whole or not at all, and an existing file is never replaced.
    """
    key = secrets.token_bytes(KEY_BYTES)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileNotFoundError:
        raise TemplateKeyError(
            f"cannot create template key file {path}: directory {path.parent} does not exist, "
            "create it first"
        ) from None
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(key.hex().encode() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            raise TemplateKeyError(
                f"template key file {path} already exists: keep it (members are sealed with "
                "it), or move it away first if you really mean to replace it"
            ) from None
    finally:
        temporary.unlink(missing_ok=True)
    _sync_directory(path.parent)
    return key_id_of(key)


def _sync_directory(directory: Path) -> None:
    """Make the new name durable: a crash after return must not lose the key file."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)

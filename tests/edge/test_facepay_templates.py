"""Face templates at rest: AES-GCM sealing bound to member and model, and the key file."""

from __future__ import annotations

import base64
import dataclasses
import logging
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from edge.facepay.templates import (
    SealedTemplate,
    TemplateCipher,
    TemplateDecryptError,
    TemplateKeyError,
    key_id_of,
    write_key_file,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
MODEL = "sface-2021dec"


@pytest.fixture
def template() -> np.ndarray:
    rows = np.random.default_rng(0).standard_normal(128).astype(np.float32)
    return rows / np.linalg.norm(rows)


def key_file(tmp_path: Path, content: bytes, mode: int = 0o600) -> Path:
    path = tmp_path / "template.key"
    path.write_bytes(content)
    path.chmod(mode)
    return path


def test_round_trip_is_exact(template: np.ndarray) -> None:
    cipher = TemplateCipher(KEY)
    sealed = cipher.seal("member-1", MODEL, template)
    assert sealed.key_id == cipher.key_id
    assert len(sealed.nonce) == 12
    assert len(sealed.ciphertext) == 128 * 4 + 16  # float32 values and the GCM tag
    assert template.astype("<f4").tobytes() not in sealed.ciphertext
    opened = cipher.open("member-1", MODEL, sealed)
    assert opened.dtype == np.float32
    np.testing.assert_array_equal(opened, template)
    opened[0] = 5.0  # a writable copy, not a view of the plaintext buffer


def test_each_seal_uses_a_fresh_nonce(template: np.ndarray) -> None:
    cipher = TemplateCipher(KEY)
    first, second = (cipher.seal("member-1", MODEL, template) for _ in range(2))
    assert first.nonce != second.nonce
    assert first.ciphertext != second.ciphertext


def test_key_id_defaults_to_a_hash_of_the_key() -> None:
    import hashlib

    expected = hashlib.sha256(b"edge-template-key:" + KEY).hexdigest()[:16]
    assert TemplateCipher(KEY).key_id == expected == key_id_of(KEY)
    assert TemplateCipher(KEY, key_id="site-7").key_id == "site-7"
    with pytest.raises(TemplateKeyError, match="32 bytes"):
        TemplateCipher(KEY[:16])


def test_wrong_key_fails(template: np.ndarray) -> None:
    sealed = TemplateCipher(KEY).seal("member-1", MODEL, template)
    with pytest.raises(TemplateDecryptError, match="sealed with key"):
        TemplateCipher(OTHER_KEY).open("member-1", MODEL, sealed)
    # Another key presented under the same id still fails, at the tag check.
    impostor = TemplateCipher(OTHER_KEY, key_id=sealed.key_id)
    with pytest.raises(TemplateDecryptError, match="does not open"):
        impostor.open("member-1", MODEL, sealed)


@pytest.mark.parametrize("field", ["nonce", "ciphertext"])
def test_tampering_fails(template: np.ndarray, field: str) -> None:
    cipher = TemplateCipher(KEY)
    sealed = cipher.seal("member-1", MODEL, template)
    value = bytearray(getattr(sealed, field))
    value[3] ^= 0x01
    tampered = dataclasses.replace(sealed, **{field: bytes(value)})
    with pytest.raises(TemplateDecryptError, match="altered") as caught:
        cipher.open("member-1", MODEL, tampered)
    assert str(caught.value).count(".") <= 1  # one sentence
    truncated = dataclasses.replace(sealed, ciphertext=sealed.ciphertext[:-1])
    with pytest.raises(TemplateDecryptError):
        cipher.open("member-1", MODEL, truncated)


def test_a_row_copied_to_another_member_or_model_fails(template: np.ndarray) -> None:
    cipher = TemplateCipher(KEY)
    sealed = cipher.seal("member-1", MODEL, template)
    with pytest.raises(TemplateDecryptError, match="member-2"):
        cipher.open("member-2", MODEL, sealed)
    with pytest.raises(TemplateDecryptError):
        cipher.open("member-1", "arcface-r50", sealed)
    # The length prefixes keep ("ab", "c") and ("a", "bc") apart.
    split = cipher.seal("ab", "c", template)
    with pytest.raises(TemplateDecryptError):
        cipher.open("a", "bc", split)
    np.testing.assert_array_equal(cipher.open("ab", "c", split), template)


def test_nothing_secret_in_repr_str_or_logs(
    template: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    cipher = TemplateCipher(KEY)
    sealed = cipher.seal("member-1", MODEL, template)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("sealed %s with %s", sealed, cipher)
    for text in (repr(cipher), str(cipher), repr(sealed), str(sealed), caplog.text):
        assert KEY.hex() not in text and repr(KEY) not in text
        assert sealed.ciphertext.hex() not in text and repr(sealed.ciphertext) not in text
        assert repr(sealed.nonce) not in text
    assert cipher.key_id in repr(cipher)
    assert repr(sealed) == f"SealedTemplate(key_id={cipher.key_id!r}, ciphertext=528 bytes)"
    assert not hasattr(cipher, "__dict__")  # no stray attribute could hold the key


@pytest.mark.parametrize(
    "content",
    [
        KEY,
        KEY.hex().encode(),
        KEY.hex().upper().encode() + b"\n",
        base64.b64encode(KEY),
        b"  " + base64.b64encode(KEY) + b"\r\n",
    ],
    ids=["raw", "hex", "hex-upper-newline", "base64", "base64-whitespace"],
)
def test_key_file_formats(tmp_path: Path, content: bytes, template: np.ndarray) -> None:
    cipher = TemplateCipher.from_key_file(key_file(tmp_path, content))
    assert cipher.key_id == key_id_of(KEY)
    sealed = TemplateCipher(KEY).seal("member-1", MODEL, template)
    np.testing.assert_array_equal(cipher.open("member-1", MODEL, sealed), template)


@pytest.mark.parametrize(
    "content",
    [b"", KEY[:31], KEY.hex()[:-2].encode(), base64.b64encode(KEY[:16]), b"not a key at all!"],
    ids=["empty", "raw-31", "hex-31", "base64-16", "text"],
)
def test_key_file_of_the_wrong_length_is_refused(tmp_path: Path, content: bytes) -> None:
    path = key_file(tmp_path, content)
    with pytest.raises(TemplateKeyError, match=f"{path}.*not a 32-byte key"):
        TemplateCipher.from_key_file(path)


def test_missing_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "absent.key"
    with pytest.raises(TemplateKeyError, match="does not exist"):
        TemplateCipher.from_key_file(path)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o620])
def test_key_file_open_to_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = key_file(tmp_path, KEY, mode)
    with pytest.raises(TemplateKeyError, match=r"chmod 600") as caught:
        TemplateCipher.from_key_file(path)
    assert str(path) in str(caught.value)
    path.chmod(0o400)  # owner-only read is fine too
    assert TemplateCipher.from_key_file(path).key_id == key_id_of(KEY)


def test_write_key_file_creates_a_private_key_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "template.key"
    with pytest.raises(TemplateKeyError, match="does not exist"):
        write_key_file(path)
    path.parent.mkdir()
    key_id = write_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert TemplateCipher.from_key_file(path).key_id == key_id
    content = path.read_bytes()
    assert len(content.strip()) == 64
    with pytest.raises(TemplateKeyError, match="already exists"):
        write_key_file(path)
    assert path.read_bytes() == content
    assert os.listdir(path.parent) == ["template.key"]  # no temporary left behind
    assert write_key_file(tmp_path / "keys" / "second.key") != key_id


def test_sealed_template_is_a_plain_value() -> None:
    sealed = SealedTemplate("k", b"n" * 12, b"c" * 20)
    assert sealed == SealedTemplate("k", b"n" * 12, b"c" * 20)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sealed.key_id = "other"  # type: ignore[misc]

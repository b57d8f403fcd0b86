"""Signed commands: canonical JSON, keys, signing, and each reason the verifier rejects one."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.clock import ManualClock
from edge.commands.canonical import canonical_json
from edge.commands.envelope import sign_command, signing_input
from edge.commands.errors import CommandRejected
from edge.commands.keys import (
    generate_private_key,
    load_private_key,
    load_public_key,
    private_key_from_seed,
    private_key_pem,
    public_key_b64,
)
from edge.commands.verify import CommandVerifier
from edge.config.sync import CommandsConfig

SEED = bytes(range(32))
COMMAND_ID = "6f1c2a3e-8d4b-4f5a-9c7e-1b2d3e4f5a6b"


def trusting(*keys: tuple[str, Ed25519PrivateKey], **settings: Any) -> CommandsConfig:
    return CommandsConfig.model_validate(
        {
            "trusted_keys": [{"id": kid, "public_key": public_key_b64(key)} for kid, key in keys],
            **settings,
        }
    )


def encode(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope, ensure_ascii=False).encode("utf-8")


def rejection(verifier: CommandVerifier, payload: bytes) -> CommandRejected:
    with pytest.raises(CommandRejected) as caught:
        verifier.verify(payload)
    return caught.value


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return private_key_from_seed(SEED)


@pytest.fixture
def verifier(key: Ed25519PrivateKey, clock: ManualClock) -> CommandVerifier:
    return CommandVerifier(trusting(("upstream-1", key)), clock)


def signed(key: Ed25519PrivateKey, clock: ManualClock, **changes: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "type_": "compartment.disable",
        "data": {"compartment_id": "A01", "reason": "cleaning"},
        "ttl_s": 300,
        "issued_at": clock.now(),
        **changes,
    }
    return sign_command(key, **arguments)


# ---------------------------------------------------------------- canonical JSON


def test_canonical_json_sorts_keys_drops_spaces_and_keeps_non_ascii() -> None:
    value = {"b": [1, {"z": None, "a": True}], "a": "Tür 🚪", "c": {"y": -2, "x": "\n"}}
    expected = '{"a":"Tür 🚪","b":[1,{"a":true,"z":null}],"c":{"x":"\\n","y":-2}}'
    assert canonical_json(value) == expected.encode("utf-8")


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_canonical_json_refuses_nan_and_infinity(number: float) -> None:
    with pytest.raises(ValueError, match="canonical JSON"):
        canonical_json({"x": number})


# ---------------------------------------------------------------- keys


def test_rfc8032_vector_verifies_with_a_raw_base64_public_key() -> None:
    """RFC 8032 §7.1 test 1: the key format is the raw 32 bytes the standard defines."""
    public = load_public_key(
        base64.b64encode(
            bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        ).decode()
    )
    signature = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e3970"
        "1cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    public.verify(signature, b"")  # raises if it does not verify
    secret = private_key_from_seed(
        bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    )
    assert secret.sign(b"") == signature


def test_private_key_round_trips_through_pem(tmp_path: Path) -> None:
    key = generate_private_key()
    path = tmp_path / "key.pem"
    path.write_bytes(private_key_pem(key))
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert public_key_b64(load_private_key(path)) == public_key_b64(key)


def test_bad_keys_are_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read private key"):
        load_private_key(tmp_path / "missing.pem")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    with pytest.raises(ValueError, match="not a PEM private key"):
        load_private_key(junk)
    with pytest.raises(ValueError, match="not valid base64"):
        load_public_key("!!!")
    with pytest.raises(ValueError, match="decodes to 16 bytes"):
        load_public_key(base64.b64encode(bytes(16)).decode())


def test_verifier_names_a_misconfigured_trusted_key(clock: ManualClock) -> None:
    config = CommandsConfig.model_validate(
        {"trusted_keys": [{"id": "broken", "public_key": "c2hvcnQ="}]}
    )
    with pytest.raises(ValueError, match=r"commands.trusted_keys\[0\] \(broken\): .*5 bytes"):
        CommandVerifier(config, clock)


# ---------------------------------------------------------------- signing


def test_known_vector_signature_is_stable(key: Ed25519PrivateKey, clock: ManualClock) -> None:
    """Pinned: a change in canonical form or envelope layout would break every signer."""
    assert public_key_b64(key) == "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
    envelope = sign_command(
        key,
        "compartment.disable",
        {"reason": "Tür klemmt", "compartment_id": "A01"},
        ttl_s=300,
        kid="upstream-1",
        command_id=COMMAND_ID,
        issued_at=clock.now(),
    )
    assert (
        signing_input(envelope)
        == (
            '{"data":{"compartment_id":"A01","reason":"Tür klemmt"},'
            '"expires_at":"2026-01-01T12:05:00.000Z","id":"6f1c2a3e-8d4b-4f5a-9c7e-1b2d3e4f5a6b",'
            '"issued_at":"2026-01-01T12:00:00.000Z","kid":"upstream-1","type":"compartment.disable"}'
        ).encode()
    )
    assert envelope["sig"] == (
        "8ptJOUT2qEaao8CY8IRm+4Xs/Jw7CPS4pT/trl979OJImUiajjc0pErQe/DoJs3/nmDytH5jhXZ4SV5MxvLkDw=="
    )


def test_published_vector_verifies_whatever_its_layout(
    verifier: CommandVerifier, clock: ManualClock
) -> None:
    """As another implementation would publish it: other key order, spaces, escaped ü."""
    published = (
        b'{ "sig": "8ptJOUT2qEaao8CY8IRm+4Xs/Jw7CPS4pT/trl979OJImUiajjc0pErQe/DoJs3/nmDytH5jhXZ4'
        b'SV5MxvLkDw==",\n  "type": "compartment.disable", "kid": "upstream-1",\n'
        b'  "id": "6f1c2a3e-8d4b-4f5a-9c7e-1b2d3e4f5a6b",\n'
        b'  "issued_at": "2026-01-01T12:00:00.000Z", "expires_at": "2026-01-01T12:05:00.000Z",\n'
        b'  "data": { "reason": "T\\u00fcr klemmt", "compartment_id": "A01" } }'
    )
    clock.advance(60)
    command = verifier.verify(published)
    assert (command.id, command.type, command.key_id) == (
        COMMAND_ID,
        "compartment.disable",
        "upstream-1",
    )
    assert command.data == {"compartment_id": "A01", "reason": "Tür klemmt"}
    assert command.expires_at - command.issued_at == timedelta(seconds=300)


def test_sign_and_verify_round_trip(verifier: CommandVerifier, clock: ManualClock) -> None:
    key = private_key_from_seed(SEED)
    envelope = signed(key, clock, data={"parcel_code": "PKG-1", "recipient": "Zoë"})
    assert set(envelope) == {"id", "type", "issued_at", "expires_at", "data", "sig"}
    command = verifier.verify(encode(envelope))
    assert command.id == envelope["id"]
    assert command.data == {"parcel_code": "PKG-1", "recipient": "Zoë"}
    assert command.key_id == "upstream-1"


def test_upper_case_id_is_read_in_its_canonical_form(
    verifier: CommandVerifier, key: Ed25519PrivateKey, clock: ManualClock
) -> None:
    envelope = signed(key, clock, command_id=COMMAND_ID.upper())
    assert verifier.verify(encode(envelope)).id == COMMAND_ID


# ---------------------------------------------------------------- key rotation


def test_either_trusted_key_verifies_while_rotating(clock: ManualClock) -> None:
    old, new = private_key_from_seed(b"\x01" * 32), private_key_from_seed(b"\x02" * 32)
    rotating = CommandVerifier(trusting(("old", old), ("new", new)), clock)
    assert rotating.verify(encode(signed(old, clock))).key_id == "old"
    assert rotating.verify(encode(signed(new, clock))).key_id == "new"
    assert rotating.verify(encode(signed(new, clock, kid="new"))).key_id == "new"

    rotated = CommandVerifier(trusting(("new", new)), clock)
    assert rotated.verify(encode(signed(new, clock))).key_id == "new"
    assert rejection(rotated, encode(signed(old, clock))).code == "bad_signature"
    assert rejection(rotated, encode(signed(old, clock, kid="old"))).code == "unknown_key"


# ---------------------------------------------------------------- rejections


def test_too_large(key: Ed25519PrivateKey, clock: ManualClock) -> None:
    verifier = CommandVerifier(trusting(("k", key), max_payload_bytes=1024), clock)
    payload = encode(signed(key, clock, data={"reason": "x" * 1024}))
    assert len(payload) > 1024
    rejected = rejection(verifier, payload)
    assert (rejected.code, rejected.command_id, rejected.type) == ("too_large", None, None)


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        b"\xff\xfe{}",
        b"[1, 2]",
        b'"a string"',
        b'{"id": NaN}',
        b'{"id": "a", "id": "b"}',
        b'{"x": "\\ud800"}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=[
        "not-json",
        "not-utf8",
        "array",
        "string",
        "nan",
        "duplicate-key",
        "lone-surrogate",
        "deep",
    ],
)
def test_malformed(key: Ed25519PrivateKey, clock: ManualClock, payload: bytes) -> None:
    verifier = CommandVerifier(trusting(("k", key), max_payload_bytes=1024 * 1024), clock)
    assert rejection(verifier, payload).code == "malformed"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e.update(priority="high"), "unknown field(s): priority"),
        (lambda e: e.pop("expires_at"), "missing field(s): expires_at"),
        (lambda e: e.update(id="not-a-uuid"), "id must be a UUID"),
        (lambda e: e.update(id=42), "id must be a UUID"),
        (lambda e: e.update(type="Compartment.Disable"), "type must be"),
        (lambda e: e.update(type="disable"), "type must be"),
        (lambda e: e.update(issued_at="2026-01-01T12:00:00"), "issued_at must be"),
        (lambda e: e.update(issued_at="2026-01-01"), "issued_at must be"),
        (lambda e: e.update(expires_at=1767268800), "expires_at must be"),
        (lambda e: e.update(expires_at=e["issued_at"]), "expires_at must be after issued_at"),
        (lambda e: e.update(data=["A01"]), "data must be a JSON object"),
        (lambda e: e.update(sig=e["sig"][:-4]), "sig must be"),
        (lambda e: e.update(sig="not base64!"), "sig must be"),
        (lambda e: e.update(kid=7), "kid must be"),
        (lambda e: e.update(kid=""), "kid must be"),
        (lambda e: e.update(kid="upstream 1"), "kid must be"),
    ],
)
def test_invalid_envelope(
    verifier: CommandVerifier, key: Ed25519PrivateKey, clock: ManualClock, change: Any, message: str
) -> None:
    envelope = signed(key, clock)
    change(envelope)
    rejected = rejection(verifier, encode(envelope))
    assert rejected.code == "invalid_envelope"
    assert message in rejected.message


def test_invalid_envelope_still_names_what_it_could_read(
    verifier: CommandVerifier, key: Ed25519PrivateKey, clock: ManualClock
) -> None:
    envelope = signed(key, clock, command_id=COMMAND_ID)
    del envelope["sig"]
    rejected = rejection(verifier, encode(envelope))
    assert (rejected.command_id, rejected.type) == (COMMAND_ID, "compartment.disable")


def test_unknown_key(verifier: CommandVerifier, key: Ed25519PrivateKey, clock: ManualClock) -> None:
    rejected = rejection(verifier, encode(signed(key, clock, kid="retired")))
    assert rejected.code == "unknown_key"
    assert "'retired' is not a trusted key" in rejected.message


def test_no_trusted_keys_at_all_is_unknown_key(key: Ed25519PrivateKey, clock: ManualClock) -> None:
    rejected = rejection(CommandVerifier(CommandsConfig(), clock), encode(signed(key, clock)))
    assert rejected.code == "unknown_key"
    assert "no trusted keys are configured" in rejected.message


def test_bad_signature_from_an_untrusted_key(verifier: CommandVerifier, clock: ManualClock) -> None:
    stranger = generate_private_key()
    rejected = rejection(verifier, encode(signed(stranger, clock)))
    assert rejected.code == "bad_signature"
    stranger_claiming = rejection(verifier, encode(signed(stranger, clock, kid="upstream-1")))
    assert stranger_claiming.code == "bad_signature"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda e: e["data"].update(compartment_id="A02"),
        lambda e: e["data"].update(extra=1),
        lambda e: e.update(type="compartment.enable"),
        lambda e: e.update(expires_at="2026-01-02T11:00:00.000Z"),
        lambda e: e.update(kid="upstream-1"),
    ],
    ids=["data-field", "data-added", "type", "expiry", "kid-added"],
)
def test_bad_signature_when_anything_signed_is_changed(
    verifier: CommandVerifier, key: Ed25519PrivateKey, clock: ManualClock, tamper: Any
) -> None:
    envelope = signed(key, clock)
    tamper(envelope)
    assert rejection(verifier, encode(envelope)).code == "bad_signature"


def test_signature_is_checked_before_time(verifier: CommandVerifier, clock: ManualClock) -> None:
    stranger = generate_private_key()
    expired = signed(stranger, clock, issued_at=clock.now() - timedelta(days=3))
    assert rejection(verifier, encode(expired)).code == "bad_signature"


def test_expired(verifier: CommandVerifier, key: Ed25519PrivateKey, clock: ManualClock) -> None:
    envelope = signed(key, clock, ttl_s=60)
    assert verifier.verify(encode(envelope)).id == envelope["id"]
    clock.advance(59.999)
    assert verifier.verify(encode(envelope)).id == envelope["id"]
    clock.advance(0.001)  # expires_at <= now
    rejected = rejection(verifier, encode(envelope))
    assert (rejected.code, rejected.command_id) == ("expired", envelope["id"])


def test_not_yet_valid(
    verifier: CommandVerifier, key: Ed25519PrivateKey, clock: ManualClock
) -> None:
    skew = verifier.config.clock_skew_s
    within = signed(key, clock, issued_at=clock.now() + timedelta(seconds=skew))
    assert verifier.verify(encode(within)).id == within["id"]
    ahead = signed(key, clock, issued_at=clock.now() + timedelta(seconds=skew + 1))
    assert rejection(verifier, encode(ahead)).code == "not_yet_valid"


def test_lifetime_too_long(
    verifier: CommandVerifier, key: Ed25519PrivateKey, clock: ManualClock
) -> None:
    longest = verifier.config.max_lifetime_s
    assert verifier.verify(encode(signed(key, clock, ttl_s=longest))).key_id == "upstream-1"
    rejected = rejection(verifier, encode(signed(key, clock, ttl_s=longest + 1)))
    assert rejected.code == "lifetime_too_long"

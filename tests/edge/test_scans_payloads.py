"""Signed QR payloads for courier sign-in and pickup: issued, verified offline with the
command keys, every reason one is refused, and a payload shown as a QR to a camera."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from drivers.camera import CodeReader
from edge.commands.envelope import sign_command
from edge.commands.errors import CommandRejected
from edge.commands.keys import private_key_from_seed, public_key_b64
from edge.commands.verify import CommandVerifier
from edge.config.sync import CommandsConfig
from edge.scans import payloads
from edge.scans.payloads import (
    PayloadError,
    VerifiedPayload,
    issue_payload,
    trusted_payload_keys,
    verify_payload,
)
from tests.drivers.test_codes import camera_noise, qr_label, scene

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
SITE = "store-17"
PARCEL = "3f2b8c1e-5a47-4d0e-9b61-2c8e7f1a9d03"
OLD, NEW = private_key_from_seed(bytes(range(32))), private_key_from_seed(bytes(range(1, 33)))
STRANGER = private_key_from_seed(bytes(32))


def config(**keys: Ed25519PrivateKey) -> CommandsConfig:
    return CommandsConfig.model_validate(
        {"trusted_keys": [{"id": kid, "public_key": public_key_b64(k)} for kid, k in keys.items()]}
    )


@pytest.fixture
def trusted() -> dict[str, Ed25519PublicKey]:
    # Rotation: the new key listed beside the old one, as commands.trusted_keys documents.
    return trusted_payload_keys(config(**{"upstream-2025": OLD, "upstream-2026": NEW}))


def courier_qr(
    key: Ed25519PrivateKey = NEW,
    kid: str = "upstream-2026",
    site: str = "*",
    ttl_s: float = 300,
    now: datetime = NOW,
) -> str:
    return issue_payload(key, kid, "courier", {"courier_id": "c-0042"}, ttl_s, site, now)


def pickup_qr(site: str = SITE, ttl_s: float = 3 * 24 * 3600) -> str:
    return issue_payload(NEW, "upstream-2026", "pickup", {"parcel_id": PARCEL}, ttl_s, site, NOW)


def refusal(text: str, trusted: dict[str, Ed25519PublicKey], **options: Any) -> PayloadError:
    with pytest.raises(PayloadError) as caught:
        verify_payload(
            text, trusted, options.pop("site_id", SITE), options.pop("now", NOW), **options
        )
    assert caught.value.code in payloads.ERROR_CODES
    return caught.value


def parts(text: str) -> tuple[str, dict[str, Any], str]:
    prefix, claims, signature = text.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    return prefix, decoded, signature


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def with_claims(claims: dict[str, Any], key: Ed25519PrivateKey = NEW) -> str:
    """A payload of any claims at all, signed properly: for what the shape checks refuse."""
    signed = "EQ1." + b64url(json.dumps(claims).encode())
    return f"{signed}.{b64url(key.sign(signed.encode()))}"


def test_a_courier_payload_round_trips(trusted: dict[str, Ed25519PublicKey]) -> None:
    text = courier_qr()
    assert verify_payload(text, trusted, SITE, NOW + timedelta(seconds=10)) == VerifiedPayload(
        type="courier",
        key_id="upstream-2026",
        site="*",
        issued_at=NOW,
        expires_at=NOW + timedelta(seconds=300),
        courier_id="c-0042",
    )
    prefix, claims, signature = parts(text)
    assert prefix == "EQ1"
    assert claims == {
        "courier_id": "c-0042",
        "exp": int(NOW.timestamp()) + 300,
        "iat": int(NOW.timestamp()),
        "kid": "upstream-2026",
        "site": "*",
        "typ": "courier",
    }
    assert len(base64.urlsafe_b64decode(signature + "==")) == 64
    # QR-friendly: one line of URL-safe ASCII, 233 characters here; byte mode at error
    # correction level M holds 251 in a version 11 QR (61 x 61 modules).
    assert len(text) <= 251
    assert text.isascii() and " " not in text


def test_a_pickup_payload_names_one_parcel_at_one_site(
    trusted: dict[str, Ed25519PublicKey],
) -> None:
    verified = verify_payload(pickup_qr(), trusted, SITE, NOW, expected_type="pickup")
    assert (verified.type, verified.site, verified.parcel_id) == ("pickup", SITE, PARCEL)
    assert verified.courier_id is None
    # A UUID parcel id: 279 characters, within the 287 of a version 12 QR (65 x 65) at level M.
    assert len(pickup_qr()) <= 287
    with pytest.raises(ValueError, match="must name its site"):
        pickup_qr(site="*")


def test_key_rotation_accepts_either_trusted_key(trusted: dict[str, Ed25519PublicKey]) -> None:
    old = verify_payload(courier_qr(OLD, "upstream-2025"), trusted, SITE, NOW)
    new = verify_payload(courier_qr(NEW, "upstream-2026"), trusted, SITE, NOW)
    assert (old.key_id, new.key_id) == ("upstream-2025", "upstream-2026")
    # Once the old key is dropped from the configuration, its payloads are refused.
    only_new = trusted_payload_keys(config(**{"upstream-2026": NEW}))
    assert refusal(courier_qr(OLD, "upstream-2025"), only_new).code == "unknown_key"
    assert verify_payload(courier_qr(), only_new, SITE, NOW).courier_id == "c-0042"


@pytest.mark.parametrize(
    "text",
    ["", "1234567", "JJD0001234567890", "]C100157035381410375177", "EQUIPMENT-7", "eq1.abc"],
)
def test_what_is_not_ours_is_left_to_other_parsers(
    text: str, trusted: dict[str, Ed25519PublicKey]
) -> None:
    assert refusal(text, trusted).code == "not_ours"


def test_forged_courier_payloads_are_refused(trusted: dict[str, Ed25519PublicKey]) -> None:
    # Signed with a key upstream does not hold, claiming a trusted key's id.
    forged = courier_qr(STRANGER, "upstream-2026")
    error = refusal(forged, trusted)
    assert (error.code, error.message) == (
        "bad_signature",
        "the signature does not verify against key 'upstream-2026'",
    )
    # Signed with an untrusted key under its own id.
    assert refusal(courier_qr(STRANGER, "mallory"), trusted).code == "unknown_key"
    # A genuine payload with the courier changed: the claims no longer match the signature.
    prefix, claims, signature = parts(courier_qr())
    claims["courier_id"] = "c-0001"
    edited = f"{prefix}.{b64url(json.dumps(claims).encode())}.{signature}"
    assert refusal(edited, trusted).code == "bad_signature"
    # A genuine courier payload made to last a year.
    prefix, claims, signature = parts(courier_qr())
    claims["exp"] += 365 * 24 * 3600
    longer = f"{prefix}.{b64url(json.dumps(claims, sort_keys=True).encode())}.{signature}"
    assert refusal(longer, trusted).code == "bad_signature"


def test_every_single_bit_flip_is_refused(trusted: dict[str, Ed25519PublicKey]) -> None:
    text = courier_qr()
    for index in range(len(text)):
        for bit in range(7):  # ASCII: the eighth bit would not be ASCII at all
            flipped = text[:index] + chr(ord(text[index]) ^ (1 << bit)) + text[index + 1 :]
            if flipped.strip() == text:
                continue  # whitespace at an end: the same payload
            with pytest.raises(PayloadError):
                verify_payload(flipped, trusted, SITE, NOW)


def test_a_signature_from_the_wrong_place_is_refused(trusted: dict[str, Ed25519PublicKey]) -> None:
    # A command's signature, or a payload signature over the bare JSON, never verifies:
    # the signature covers "EQ1." and the base64url text.
    claims = json.dumps(parts(courier_qr())[1]).encode()
    encoded = b64url(claims)
    bare = NEW.sign(claims)
    assert refusal(f"EQ1.{encoded}.{b64url(bare)}", trusted).code == "bad_signature"


def test_a_command_signature_and_a_payload_signature_do_not_mix(
    trusted: dict[str, Ed25519PublicKey],
) -> None:
    # The same keys sign commands: a command's signature over its canonical JSON is useless
    # as a payload signature, and a payload's signature useless as a command's.
    command = sign_command(
        NEW, "courier.login", {"courier_id": "c-0042"}, ttl_s=300, kid="upstream-2026"
    )
    _, claims, _ = parts(courier_qr())
    encoded = b64url(json.dumps(claims).encode())
    command_sig = b64url(base64.b64decode(command["sig"]))
    assert refusal(f"EQ1.{encoded}.{command_sig}", trusted).code == "bad_signature"
    _, _, payload_sig = parts(courier_qr())
    command["sig"] = base64.b64encode(base64.urlsafe_b64decode(payload_sig + "==")).decode()
    verifier = CommandVerifier(config(**{"upstream-2026": NEW}))
    with pytest.raises(CommandRejected) as caught:
        verifier.verify(json.dumps(command).encode())
    assert caught.value.code == "bad_signature"


def test_expiry_and_clock_skew(trusted: dict[str, Ed25519PublicKey]) -> None:
    text = courier_qr(ttl_s=120)
    assert verify_payload(text, trusted, SITE, NOW + timedelta(seconds=119)).courier_id
    expired = refusal(text, trusted, now=NOW + timedelta(seconds=120))
    assert (expired.code, expired.message) == (
        "expired",
        "expired at 2026-03-01T09:32:00Z (this site's clock: 2026-03-01T09:32:00Z)",
    )
    # This site's clock 4 minutes behind upstream's: within the default 300 s of skew.
    behind = NOW - timedelta(seconds=240)
    assert verify_payload(text, trusted, SITE, behind).courier_id == "c-0042"
    error = refusal(text, trusted, now=behind, clock_skew_s=60)
    assert (error.code, error.message) == (
        "not_yet_valid",
        "issued at 2026-03-01T09:30:00Z, more than 60 s after this site's clock "
        "(2026-03-01T09:26:00Z)",
    )
    assert refusal(text, trusted, now=NOW - timedelta(seconds=301)).code == "not_yet_valid"
    # Skew forgives an early clock, never a late one: expiry stays where upstream put it.
    assert refusal(text, trusted, now=NOW + timedelta(seconds=121), clock_skew_s=600).code == (
        "expired"
    )


def test_a_payload_for_another_site_is_refused(trusted: dict[str, Ed25519PublicKey]) -> None:
    error = refusal(pickup_qr(site="store-18"), trusted)
    assert (error.code, error.message) == (
        "wrong_site",
        "issued for site 'store-18', this is 'store-17'",
    )
    assert refusal(courier_qr(site="store-18"), trusted).code == "wrong_site"
    assert verify_payload(courier_qr(site=SITE), trusted, SITE, NOW).site == SITE
    assert verify_payload(courier_qr(site="*"), trusted, "store-99", NOW).site == "*"


def test_a_payload_of_another_type_is_refused(trusted: dict[str, Ed25519PublicKey]) -> None:
    error = refusal(pickup_qr(), trusted, expected_type="courier")
    assert (error.code, error.message) == (
        "wrong_type",
        "a pickup payload, where a courier one is asked",
    )
    assert refusal(courier_qr(), trusted, expected_type="pickup").code == "wrong_type"
    # A type this controller does not know, properly signed (a newer upstream's).
    claims = {"typ": "operator", "kid": "upstream-2026", "site": SITE, "iat": 1, "exp": 2**33}
    error = refusal(with_claims({**claims, "operator_id": "op-1"}), trusted)
    assert (error.code, error.message) == (
        "wrong_type",
        "payload type 'operator' is not one this controller acts on",
    )


def good_claims() -> dict[str, Any]:
    return parts(courier_qr())[1]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("EQ1.", "expected EQ1.<claims>.<signature>"),
        ("EQ1.abc", "expected EQ1.<claims>.<signature>"),
        ("EQ1.a.b.c", "expected EQ1.<claims>.<signature>"),
        ("EQ2.abc.def", "payload version EQ2 is not one this controller reads"),
        ("EQ1.e30=.AAAA", "the claims are not base64url"),  # padding is not written
        ("EQ1.e3+.AAAA", "the claims are not base64url"),
        ("EQ1.e31.AAAA", "the claims are not base64url"),  # a second spelling of "{}"
        ("EQ1." + b64url(b"\xff\xfe") + ".AAAA", "the claims are not UTF-8 JSON"),
        ("EQ1." + b64url(b"[1, 2]") + ".AAAA", "the claims are not a JSON object"),
        ("EQ1." + b64url(b'{"a": NaN}') + ".AAAA", "the claims are not UTF-8 JSON"),
        ("EQ1." + b64url(b'{"typ": "x", "typ": "y"}') + ".AAAA", "duplicate key 'typ'"),
        ("EQ1." + "A" * 1100 + ".AAAA", "at most 1024"),
    ],
)
def test_malformed_payloads(text: str, reason: str, trusted: dict[str, Ed25519PublicKey]) -> None:
    error = refusal(text, trusted)
    assert error.code == "malformed"
    assert reason in error.message


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"typ": 7}, "typ must be a payload type name"),
        ({"typ": "Courier"}, "typ must be a payload type name"),
        ({"extra": 1}, "unknown field(s) for a courier payload: extra"),
        ({"parcel_id": PARCEL}, "unknown field(s) for a courier payload: parcel_id"),
        ({"courier_id": None}, "courier_id must be an id"),
        ({"courier_id": "c 42"}, "courier_id must be an id"),
        ({"kid": "key/1"}, "kid must be a key id"),
        ({"site": ""}, "site must be a site id or '*'"),
        ({"iat": 1.5}, "iat must be whole Unix seconds"),
        ({"iat": True}, "iat must be whole Unix seconds"),
        ({"exp": -1}, "exp must be whole Unix seconds"),
        ({"exp": 2**41}, "exp must be whole Unix seconds"),
        ({"exp": 1772357400}, "exp must be after iat"),  # = iat
    ],
)
def test_claims_of_the_wrong_shape(
    change: dict[str, Any], reason: str, trusted: dict[str, Ed25519PublicKey]
) -> None:
    claims = {**good_claims(), **change}
    error = refusal(with_claims(claims), trusted)
    assert (error.code, error.message[: len(reason)]) == ("malformed", reason)


def test_missing_claims_and_a_pickup_for_every_site(trusted: dict[str, Ed25519PublicKey]) -> None:
    claims = good_claims()
    del claims["exp"]
    assert refusal(with_claims(claims), trusted).message == "missing field(s): exp"
    pickup = {**good_claims(), "typ": "pickup", "site": "*", "parcel_id": PARCEL}
    del pickup["courier_id"]
    error = refusal(with_claims(pickup), trusted)
    assert error.message == "a pickup payload must name its site: a parcel is at one site"


def test_a_bad_signature_field_is_malformed(trusted: dict[str, Ed25519PublicKey]) -> None:
    signed = courier_qr().rpartition(".")[0]
    assert "not base64url of 64 bytes" in refusal(f"{signed}.AAAA", trusted).message
    assert refusal(f"{signed}.", trusted).code == "malformed"


def test_issuing_refuses_what_verifying_would(trusted: dict[str, Ed25519PublicKey]) -> None:
    with pytest.raises(ValueError, match="carries courier_id and nothing else"):
        issue_payload(NEW, "k", "courier", {"parcel_id": PARCEL}, 60, SITE, NOW)
    with pytest.raises(ValueError, match="unknown payload type"):
        issue_payload(NEW, "k", "operator", {}, 60, SITE, NOW)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="time to live must be positive"):
        courier_qr(ttl_s=0)
    with pytest.raises(ValueError, match="must carry a time zone"):
        courier_qr(now=datetime(2026, 3, 1, 9, 30))
    with pytest.raises(ValueError, match="courier_id must be an id"):
        issue_payload(NEW, "k", "courier", {"courier_id": "c 1"}, 60, SITE, NOW)


def test_trusted_keys_come_from_the_commands_configuration() -> None:
    keys = trusted_payload_keys(config(**{"a": OLD, "b": NEW}))
    assert list(keys) == ["a", "b"]
    bad = CommandsConfig.model_validate({"trusted_keys": [{"id": "a", "public_key": "AAAA"}]})
    with pytest.raises(ValueError, match=r"commands.trusted_keys\[0\] \(a\): the public key"):
        trusted_payload_keys(bad)


def test_scanner_line_ends_are_ignored(trusted: dict[str, Ed25519PublicKey]) -> None:
    assert verify_payload(f"  {courier_qr()}\r\n", trusted, SITE, NOW).courier_id == "c-0042"


def test_a_courier_qr_shown_to_the_camera_signs_in_that_courier(
    trusted: dict[str, Ed25519PublicKey],
) -> None:
    text = courier_qr(site=SITE)
    frame = camera_noise(scene([qr_label(text, module=3)], seed=4), seed=4)
    (code,) = CodeReader(qr=True, linear=()).read(frame)
    assert (code.symbology, code.text) == ("qr", text)
    verified = verify_payload(code.text, trusted, SITE, NOW, expected_type="courier")
    assert verified.courier_id == "c-0042"


def test_a_forged_qr_shown_to_the_camera_is_refused(trusted: dict[str, Ed25519PublicKey]) -> None:
    forged = courier_qr(STRANGER, "upstream-2026", site=SITE)
    frame = camera_noise(scene([qr_label(forged, module=3)], seed=5), seed=5)
    (code,) = CodeReader(qr=True, linear=()).read(frame)
    assert code.text == forged
    assert refusal(code.text, trusted).code == "bad_signature"

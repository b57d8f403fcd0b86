"""The project's own signed QR payloads: courier sign-in and parcel pickup, verified offline.

Upstream issues them (a courier's app, a recipient's pickup message) and signs them with the
same Ed25519 keys that sign commands: the site checks them against ``commands.trusted_keys``
without asking anyone, so a kiosk works through an uplink outage.

Format (ASCII, one line)::

    EQ1.<base64url(JSON)>.<base64url(Ed25519 signature)>

base64url without padding (RFC 4648 §5). The JSON is an object (written canonically by
:func:`issue_payload`: sorted keys, no spaces) with exactly these fields:

- ``typ``: ``"courier"``, ``"pickup"`` or ``"member"``;
- ``kid``: the id of the trusted key that signed it;
- ``site``: the site it is valid at, or ``"*"`` for every site (not for pickup payloads);
- ``iat``, ``exp``: issued at and expires at, integer Unix seconds, ``exp > iat``;
- courier: ``courier_id``, the courier to sign in;
- pickup: ``parcel_id``, the parcel to hand out: the id the site gave it (``parcel.deposited``
  carries it). Not the pickup code, which never leaves the site, nor the tracking code, which a
  re-sent parcel can share with an earlier one: a parcel id names exactly one parcel;
- member: ``member_id``, the shopper a cabinet opens for (a member's app shows it; a plain
  member id in a QR could be printed by anyone, so it is signed too).

The signature covers the ASCII bytes ``EQ1.<base64url(JSON)>``, exactly as they appear in the
payload: nothing is re-serialised before checking, and the ``EQ1.`` prefix keeps a payload
signature from ever verifying as a command signature (those cover JSON starting with ``{``)
under the same keys.

A verifier checks, in this order: the prefix (``not_ours``: let another parser try), the shape
(``malformed``), the key (``unknown_key``) and the signature (``bad_signature``); only then does
it believe what the payload says: its type (``wrong_type``), site (``wrong_site``) and validity
window (``not_yet_valid`` beyond the allowed clock skew; ``expired`` from ``exp`` on).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge.commands.canonical import canonical_json, strict_loads
from edge.commands.keys import load_trusted_keys
from edge.config.sync import CommandsConfig

PREFIX: Final = "EQ1."
# Far beyond any payload issued here (under 300 characters): refused before decoding.
MAX_PAYLOAD_CHARS: Final = 1024
SIGNATURE_BYTES: Final = 64

NOT_OURS: Final = "not_ours"
MALFORMED: Final = "malformed"
UNKNOWN_KEY: Final = "unknown_key"
BAD_SIGNATURE: Final = "bad_signature"
EXPIRED: Final = "expired"
NOT_YET_VALID: Final = "not_yet_valid"
WRONG_SITE: Final = "wrong_site"
WRONG_TYPE: Final = "wrong_type"
ERROR_CODES: Final = frozenset(
    {
        NOT_OURS,
        MALFORMED,
        UNKNOWN_KEY,
        BAD_SIGNATURE,
        EXPIRED,
        NOT_YET_VALID,
        WRONG_SITE,
        WRONG_TYPE,
    }
)

PayloadType = Literal["courier", "pickup", "member"]
ANY_SITE: Final = "*"
# The fields each type carries besides the common ones, and their form.
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
TYPE_FIELDS: Final[Mapping[str, str]] = {
    "courier": "courier_id",
    "pickup": "parcel_id",
    "member": "member_id",
}
_COMMON_FIELDS = frozenset({"typ", "kid", "site", "iat", "exp"})
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # as TrustedKey.id
_SITE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # as SiteConfig.id
_TYPE = re.compile(r"^[a-z][a-z_]{0,31}$")
_VERSIONED = re.compile(r"^EQ(\d{1,3})\.")
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")
# Unix seconds stay below this (year 36812): keeps datetime conversion in range.
_MAX_TIME = 2**40


class PayloadError(Exception):
    """Why a scanned payload is refused; ``code`` is one of :data:`ERROR_CODES`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True)
class VerifiedPayload:
    type: PayloadType
    key_id: str
    """The trusted key whose signature verified."""
    site: str
    """The site it names: this one, or ``"*"``."""
    issued_at: datetime
    expires_at: datetime
    courier_id: str | None = None
    """For ``courier``: who signs in."""
    parcel_id: str | None = None
    """For ``pickup``: the one parcel to open."""
    member_id: str | None = None
    """For ``member``: the shopper a cabinet opens for (their app shows the QR)."""


def trusted_payload_keys(config: CommandsConfig) -> dict[str, Ed25519PublicKey]:
    """The upstream keys of ``commands.trusted_keys``, by id: payloads trust what commands do."""
    return load_trusted_keys(config)


def issue_payload(
    private_key: Ed25519PrivateKey,
    kid: str,
    typ: PayloadType,
    data: Mapping[str, str],
    ttl_s: float,
    site: str,
    now: datetime,
) -> str:
    """A signed payload of type ``typ`` for ``site`` (``"*"``: any; never for pickup), valid from
    ``now`` (to the second, rounded down) for ``ttl_s`` seconds (rounded up). ``data`` holds
    the type's field: ``{"courier_id": ...}`` or ``{"parcel_id": ...}``."""
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    type_field = TYPE_FIELDS.get(typ)
    if type_field is None:
        raise ValueError(f"unknown payload type {typ!r}: one of {', '.join(TYPE_FIELDS)}")
    if set(data) != {type_field}:
        raise ValueError(f"a {typ} payload carries {type_field} and nothing else")
    if ttl_s <= 0:
        raise ValueError("the time to live must be positive")
    issued = math.floor(now.timestamp())
    claims: dict[str, Any] = {
        **data,
        "typ": typ,
        "kid": kid,
        "site": site,
        "iat": issued,
        "exp": issued + math.ceil(ttl_s),
    }
    problem = _shape_problem(claims)
    if problem is not None:
        raise ValueError(problem)
    signed = PREFIX + _b64url(canonical_json(claims))
    signature = private_key.sign(signed.encode("ascii"))
    return f"{signed}.{_b64url(signature)}"


def verify_payload(
    text: str,
    trusted_keys: Mapping[str, Ed25519PublicKey],
    site_id: str,
    now: datetime,
    clock_skew_s: float = 300,
    expected_type: PayloadType | None = None,
) -> VerifiedPayload:
    """The payload in ``text``, checked offline; :class:`PayloadError` with the first reason
    it is refused. ``clock_skew_s`` tolerates an ``iat`` ahead of this site's clock (as
    ``commands.clock_skew_s`` does for commands); ``expected_type``: what the kiosk screen
    asks for, any known type if ``None``."""
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    text = text.strip()
    if not text.startswith(PREFIX):
        version = _VERSIONED.match(text)
        if version is None:
            raise PayloadError(NOT_OURS, "not a signed payload of this system")
        raise PayloadError(
            MALFORMED, f"payload version EQ{version.group(1)} is not one this controller reads"
        )
    if len(text) > MAX_PAYLOAD_CHARS:
        raise PayloadError(MALFORMED, f"{len(text)} characters; at most {MAX_PAYLOAD_CHARS}")
    signed, _, signature_text = text.rpartition(".")
    encoded_claims = signed[len(PREFIX) :]
    if not encoded_claims or "." in encoded_claims:
        raise PayloadError(MALFORMED, "expected EQ1.<claims>.<signature>")
    claims = _decode_claims(encoded_claims)
    problem = _shape_problem(claims)
    if problem is not None:
        raise PayloadError(MALFORMED, problem)
    signature = _b64url_decode(signature_text)
    if signature is None or len(signature) != SIGNATURE_BYTES:
        raise PayloadError(MALFORMED, f"the signature is not base64url of {SIGNATURE_BYTES} bytes")
    key = trusted_keys.get(claims["kid"])
    if key is None:
        raise PayloadError(UNKNOWN_KEY, f"key {claims['kid']!r} is not a trusted key")
    try:
        key.verify(signature, signed.encode("ascii"))
    except InvalidSignature:
        raise PayloadError(
            BAD_SIGNATURE, f"the signature does not verify against key {claims['kid']!r}"
        ) from None
    return _believed(claims, site_id, now, clock_skew_s, expected_type)


def _believed(
    claims: dict[str, Any],
    site_id: str,
    now: datetime,
    clock_skew_s: float,
    expected_type: PayloadType | None,
) -> VerifiedPayload:
    """Signed claims, checked against this kiosk, this site and this moment."""
    typ = claims["typ"]
    if typ not in TYPE_FIELDS:
        raise PayloadError(WRONG_TYPE, f"payload type {typ!r} is not one this controller acts on")
    if expected_type is not None and typ != expected_type:
        raise PayloadError(WRONG_TYPE, f"a {typ} payload, where a {expected_type} one is asked")
    site = claims["site"]
    if site not in (site_id, ANY_SITE):
        raise PayloadError(WRONG_SITE, f"issued for site {site!r}, this is {site_id!r}")
    moment = now.timestamp()
    issued, expires = claims["iat"], claims["exp"]
    if issued - moment > clock_skew_s:
        raise PayloadError(
            NOT_YET_VALID,
            f"issued at {_utc(issued)}, more than {clock_skew_s:g} s after this site's clock "
            f"({_utc(moment)})",
        )
    if moment >= expires:
        raise PayloadError(
            EXPIRED, f"expired at {_utc(expires)} (this site's clock: {_utc(moment)})"
        )
    return VerifiedPayload(
        type=typ,
        key_id=claims["kid"],
        site=site,
        issued_at=datetime.fromtimestamp(issued, UTC),
        expires_at=datetime.fromtimestamp(expires, UTC),
        courier_id=claims.get("courier_id"),
        parcel_id=claims.get("parcel_id"),
        member_id=claims.get("member_id"),
    )


def _decode_claims(encoded: str) -> dict[str, Any]:
    raw = _b64url_decode(encoded)
    if raw is None:
        raise PayloadError(MALFORMED, "the claims are not base64url")
    try:
        claims = strict_loads(raw.decode("utf-8"))
    except RecursionError:
        raise PayloadError(MALFORMED, "the claims are not UTF-8 JSON: nested too deeply") from None
    except ValueError as exc:  # UnicodeDecodeError and json.JSONDecodeError among them
        detail = str(exc).splitlines()[0][:100]
        raise PayloadError(MALFORMED, f"the claims are not UTF-8 JSON: {detail}") from None
    if not isinstance(claims, dict):
        raise PayloadError(MALFORMED, "the claims are not a JSON object")
    return claims


def _shape_problem(claims: dict[str, Any]) -> str | None:
    """What is wrong with the form of ``claims``, or ``None``; says nothing of their truth."""
    typ = claims.get("typ")
    if not isinstance(typ, str) or not _TYPE.match(typ):
        return "typ must be a payload type name"
    type_field = TYPE_FIELDS.get(typ)
    allowed = _COMMON_FIELDS | ({type_field} if type_field else set())
    unknown = sorted(set(claims) - allowed)
    if unknown and type_field is not None:  # an unknown type's fields are its own business
        return f"unknown field(s) for a {typ} payload: {', '.join(unknown)}"
    missing = sorted(allowed - set(claims))
    if missing:
        return f"missing field(s): {', '.join(missing)}"
    if not isinstance(claims["kid"], str) or not _KEY_ID.match(claims["kid"]):
        return "kid must be a key id (letters, digits, '_', '.', '-'; at most 64)"
    site = claims["site"]
    if not isinstance(site, str) or not (site == ANY_SITE or _SITE.match(site)):
        return "site must be a site id or '*'"
    if typ == "pickup" and site == ANY_SITE:
        return "a pickup payload must name its site: a parcel is at one site"
    for name in ("iat", "exp"):
        value = claims[name]
        if type(value) is not int or not 0 <= value < _MAX_TIME:
            return f"{name} must be whole Unix seconds"
    if claims["exp"] <= claims["iat"]:
        return "exp must be after iat"
    if type_field is not None:
        value = claims[type_field]
        if not isinstance(value, str) or not _ID.match(value):
            return f"{type_field} must be an id (letters, digits, '_', '.', ':', '-'; at most 64)"
    return None


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes | None:
    """The bytes of unpadded base64url ``text``; ``None`` unless it is their only spelling."""
    if not _BASE64URL.match(text) or len(text) % 4 == 1:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    # Unused low bits set would give a second spelling of the same bytes.
    return raw if _b64url(raw) == text else None


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

"""Verifying a downlink command: size, JSON, envelope shape, signature, then validity window.

The signature is checked before anything the envelope says about time or type is trusted; the
shape checks before it only make sure there is something well-formed to check.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.clock import Clock, rfc3339
from edge.commands import errors
from edge.commands.canonical import canonical_json, strict_loads
from edge.commands.envelope import (
    OPTIONAL_FIELDS,
    REQUIRED_FIELDS,
    SIGNATURE_BYTES,
    TYPE_PATTERN,
    signing_input,
)
from edge.commands.errors import CommandRejected
from edge.commands.keys import load_trusted_keys
from edge.config.sync import CommandsConfig

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# As ``TrustedKey.id``: a kid of any other form can name no trusted key.
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True)
class VerifiedCommand:
    id: str
    """The UUID in its canonical (lower-case) form; receipts and results use this."""
    type: str
    issued_at: datetime
    expires_at: datetime
    data: dict[str, Any]
    key_id: str
    """The trusted key whose signature verified."""


class CommandVerifier:
    def __init__(
        self, config: CommandsConfig, clock: Clock | None = None, site: str | None = None
    ) -> None:
        self.config = config
        self.clock = clock or Clock()
        self.site = site
        """This site's id: a command naming another ``site`` is rejected."""
        self._keys: dict[str, Ed25519PublicKey] = load_trusted_keys(config)

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def verify(self, payload: bytes) -> VerifiedCommand:
        """The verified command, or ``CommandRejected`` with the first reason it fails."""
        limit = self.config.max_payload_bytes
        if len(payload) > limit:
            raise CommandRejected(
                errors.TOO_LARGE, f"the message is {len(payload)} bytes; at most {limit} are read"
            )
        envelope = _parse(payload)
        command_id = _uuid(envelope.get("id"))
        type_ = envelope.get("type")
        known_type = type_ if isinstance(type_, str) and TYPE_PATTERN.match(type_) else None

        def invalid(message: str) -> CommandRejected:
            return CommandRejected(errors.INVALID_ENVELOPE, message, command_id, known_type)

        unknown = sorted(set(envelope) - REQUIRED_FIELDS - OPTIONAL_FIELDS)
        if unknown:
            raise invalid(f"unknown field(s): {', '.join(unknown)}")
        missing = sorted(REQUIRED_FIELDS - set(envelope))
        if missing:
            raise invalid(f"missing field(s): {', '.join(missing)}")
        if command_id is None:
            raise invalid("id must be a UUID string")
        if known_type is None:
            raise invalid("type must be a string of the form domain.verb (lower case)")
        issued_at = _timestamp(envelope["issued_at"])
        if issued_at is None:
            raise invalid("issued_at must be an RFC 3339 timestamp with a time zone")
        expires_at = _timestamp(envelope["expires_at"])
        if expires_at is None:
            raise invalid("expires_at must be an RFC 3339 timestamp with a time zone")
        if expires_at <= issued_at:
            raise invalid("expires_at must be after issued_at")
        data = envelope["data"]
        if not isinstance(data, dict):
            raise invalid("data must be a JSON object")
        signature = _signature(envelope["sig"])
        if signature is None:
            raise invalid(f"sig must be standard base64 of {SIGNATURE_BYTES} bytes")
        kid = envelope.get("kid")
        if "kid" in envelope and (not isinstance(kid, str) or not _KEY_ID.match(kid)):
            raise invalid("kid must be a key id (letters, digits, '_', '.', '-'; at most 64)")

        site = envelope.get("site")
        if "site" in envelope and not isinstance(site, str):
            raise invalid("site must be a string")

        key_id = self._check_signature(
            signing_input(envelope), signature, kid, command_id, known_type
        )

        def rejected(code: str, message: str) -> CommandRejected:
            return CommandRejected(code, message, command_id, known_type)

        if site is not None and self.site is not None and site != self.site:
            raise rejected(errors.WRONG_SITE, f"addressed to site {site!r}, this is {self.site!r}")

        now = self.clock.now()
        if expires_at <= now:
            raise rejected(
                errors.EXPIRED, f"expired at {rfc3339(expires_at)} (site clock {rfc3339(now)})"
            )
        skew = self.config.clock_skew_s
        if (issued_at - now).total_seconds() > skew:
            raise rejected(
                errors.NOT_YET_VALID,
                f"issued at {rfc3339(issued_at)}, more than {skew:g} s after the site clock "
                f"({rfc3339(now)})",
            )
        lifetime = (expires_at - issued_at).total_seconds()
        if lifetime > self.config.max_lifetime_s:
            raise rejected(
                errors.LIFETIME_TOO_LONG,
                f"valid for {lifetime:g} s; at most {self.config.max_lifetime_s:g} s are accepted",
            )
        return VerifiedCommand(command_id, known_type, issued_at, expires_at, data, key_id)

    def _check_signature(
        self, message: bytes, signature: bytes, kid: str | None, command_id: str, type_: str
    ) -> str:
        """The id of the trusted key that made ``signature``."""
        if not self._keys:
            raise CommandRejected(
                errors.UNKNOWN_KEY,
                "no trusted keys are configured (commands.trusted_keys)",
                command_id,
                type_,
            )
        if kid is not None:
            key = self._keys.get(kid)
            if key is None:
                raise CommandRejected(
                    errors.UNKNOWN_KEY, f"key {kid!r} is not a trusted key", command_id, type_
                )
            candidates = {kid: key}
        else:
            candidates = self._keys
        for key_id, key in candidates.items():
            try:
                key.verify(signature, message)
            except InvalidSignature:
                continue
            return key_id
        against = f"key {kid!r}" if kid is not None else "any trusted key"
        raise CommandRejected(
            errors.BAD_SIGNATURE,
            f"the signature does not verify against {against}",
            command_id,
            type_,
        )


def _parse(payload: bytes) -> dict[str, Any]:
    try:
        envelope = strict_loads(payload.decode("utf-8"))
        # Every string must have a UTF-8 form (no lone surrogates) for the signature check.
        canonical_json(envelope)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CommandRejected(errors.MALFORMED, f"not UTF-8 JSON: {_short(exc)}") from None
    if not isinstance(envelope, dict):
        raise CommandRejected(errors.MALFORMED, "the message is not a JSON object")
    return envelope


def _short(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc).splitlines()[0][:200]


def _uuid(value: Any) -> str | None:
    if not isinstance(value, str) or not _UUID.match(value):
        return None
    return str(uuid.UUID(value))


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not _RFC3339.match(value):
        return None
    try:
        moment = datetime.fromisoformat(value.upper())
    except ValueError:
        return None
    return moment.astimezone(UTC)


def _signature(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == SIGNATURE_BYTES else None

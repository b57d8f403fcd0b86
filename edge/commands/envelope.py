"""Building and signing a command envelope (CONTRACT.md §3 "Downlink").

``{"id", "type", "issued_at", "expires_at", "data", "sig"}`` plus, optionally, ``"kid"``: the id
of the trusted key that signed it. ``kid`` is covered by the signature like every other field;
with it the site can tell "signed by a key I do not trust" from "bad signature", and it needs
to try only one key. The signature is Ed25519 over the canonical JSON of the envelope without
``sig``, in standard base64.
"""

from __future__ import annotations

import base64
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.clock import rfc3339
from edge.commands.canonical import canonical_json

TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
REQUIRED_FIELDS = frozenset({"id", "type", "issued_at", "expires_at", "data", "sig"})
OPTIONAL_FIELDS = frozenset({"kid", "site"})
SIGNATURE_BYTES = 64


def signing_input(envelope: dict[str, Any]) -> bytes:
    """The bytes a signature covers: the canonical JSON of every field but ``sig``."""
    return canonical_json({k: v for k, v in envelope.items() if k != "sig"})


def sign_command(
    private_key: Ed25519PrivateKey,
    type_: str,
    data: dict[str, Any],
    *,
    ttl_s: float,
    kid: str | None = None,
    site: str | None = None,
    command_id: str | None = None,
    issued_at: datetime | None = None,
) -> dict[str, Any]:
    """A signed envelope, valid from ``issued_at`` (default now) for ``ttl_s`` seconds.

    ``site`` binds the command to one site: another site rejects it (``wrong_site``), so a
    command captured at one site cannot be replayed at the next.
    """
    if not TYPE_PATTERN.match(type_):
        raise ValueError(f"command type {type_!r} is not of the form domain.verb")
    if not isinstance(data, dict):
        raise ValueError("command data must be a JSON object")
    if ttl_s <= 0:
        raise ValueError("the time to live must be positive")
    if issued_at is not None and issued_at.tzinfo is None:
        raise ValueError("issued_at must carry a time zone")
    issued = (issued_at or datetime.now(UTC)).astimezone(UTC)
    # Both times are written to the millisecond; the expiry is computed from the written start,
    # so the lifetime the site sees is exactly ttl_s (to the millisecond).
    issued_text = rfc3339(issued)
    issued = datetime.fromisoformat(issued_text)
    envelope: dict[str, Any] = {
        "id": command_id or str(uuid.uuid4()),
        "type": type_,
        "issued_at": issued_text,
        "expires_at": rfc3339(issued + timedelta(seconds=ttl_s)),
        "data": data,
    }
    if kid is not None:
        envelope["kid"] = kid
    if site is not None:
        envelope["site"] = site
    signature = private_key.sign(signing_input(envelope))
    envelope["sig"] = base64.b64encode(signature).decode("ascii")
    return envelope

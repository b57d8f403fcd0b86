"""Enrolled members: ``member.enroll`` and ``member.remove``, and the gallery built from them.

A template arrives from upstream (made with the same recognizer model), is sealed with AES-GCM
under the site's template key and only then written; it is opened only in memory, to fill the
gallery. Removal deletes the row (``secure_delete`` overwrites it), takes the member out of the
gallery before the transaction commits, and checkpoints the WAL, so the template is gone from
every file on disk when ``member.removed`` is announced.

The phone-digit hash is ``sha256("edge-phone4:" + member_id + ":" + last_four_digits)``, hex:
salted by the member, so the 1:1 check after a shopper types four digits compares per candidate.
Four digits are few: the hash only narrows candidates, and typing them is rate-limited.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import AwareDatetime, Field, field_validator
from sqlmodel import Session, select

from edge.clock import Clock, rfc3339
from edge.commands.dispatcher import CommandDispatcher
from edge.commands.errors import CommandFailed
from edge.commands.schema import CommandData
from edge.commands.verify import VerifiedCommand
from edge.db import Database, Transaction
from edge.db.tables import Member
from edge.facepay.gallery import Gallery
from edge.facepay.templates import SealedTemplate, TemplateCipher, TemplateDecryptError

log = logging.getLogger(__name__)

MEMBER_ID = r"^[A-Za-z0-9_.:-]{1,64}$"
ENROLLED, REMOVED = "member.enrolled", "member.removed"


def phone_digits_hash(member_id: str, last_four: str) -> str:
    return hashlib.sha256(f"edge-phone4:{member_id}:{last_four}".encode()).hexdigest()


def digits_match(member_id: str, typed: str, stored_hash: str | None) -> bool:
    if stored_hash is None:
        return False
    return hmac.compare_digest(phone_digits_hash(member_id, typed), stored_hash)


class Consent(CommandData):
    """What the member agreed to, as upstream recorded it (no biometric data here)."""

    version: str = Field(min_length=1, max_length=64)
    """The consent text's version (the text itself lives upstream)."""
    given_at: AwareDatetime
    channel: str = Field(min_length=1, max_length=64)
    """Where consent was given: ``app``, ``kiosk``, ``counter``…"""


class MemberEnroll(CommandData):
    member_id: str = Field(pattern=MEMBER_ID)
    model: str = Field(min_length=1, max_length=100)
    """The recognizer that made the template; must be the one this site runs."""
    template: str = Field(min_length=1, max_length=16_384, repr=False)
    """Base64 of the embedding as little-endian float32."""
    consent: Consent
    phone_digits_hash: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    offline_limit: int | None = Field(default=None, ge=0)

    @field_validator("template")
    @classmethod
    def _base64(cls, value: str) -> str:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            # Never echo the value: it is biometric data.
            raise ValueError("template is not valid base64") from None
        if len(raw) % 4 or not raw:
            raise ValueError("template is not a whole number of float32 values") from None
        return value

    def vector(self) -> np.ndarray:
        return np.frombuffer(base64.b64decode(self.template), dtype="<f4").astype(np.float32)


class MemberRemove(CommandData):
    member_id: str = Field(pattern=MEMBER_ID)
    reason: str = Field(default="", max_length=500)


def encode_template(vector: np.ndarray) -> str:
    """The wire form of a template in ``member.enroll`` (for upstream tools and tests)."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


class MemberRegistry:
    """The members table and the in-memory gallery, kept in step."""

    def __init__(
        self,
        db: Database,
        cipher: TemplateCipher,
        gallery: Gallery,
        model: str,
        dim: int,
        clock: Clock,
    ) -> None:
        self.db = db
        self.cipher = cipher
        self.gallery = gallery
        self.model = model
        self.dim = dim
        self.clock = clock
        self.phone_hashes: dict[str, str] = {}
        """Member → phone-digit hash, for the 1:1 check (no digits themselves are kept)."""
        self.skipped: dict[str, str] = {}
        """Members not loaded at start, and why (another model, another key, tampered)."""

    def register_commands(self, dispatcher: CommandDispatcher) -> None:
        dispatcher.register("member.enroll", MemberEnroll, self._enroll)
        dispatcher.register("member.remove", MemberRemove, self._remove)

    def load(self) -> int:
        """Fill the gallery from the database (start-up, before the loop serves shoppers)."""

        def rows(tx: Transaction) -> list[Member]:
            return list(tx.session.exec(select(Member)).all())

        ids: list[str] = []
        vectors: list[np.ndarray] = []
        for row in self.db.transact_sync(rows):
            vector = self._open(row)
            if vector is not None:
                ids.append(row.id)
                vectors.append(vector)
        if ids:
            self.gallery.bulk_load(ids, np.stack(vectors))
        log.info(
            "face gallery loaded",
            extra={"members": len(ids), "skipped": len(self.skipped), "model": self.model},
        )
        return len(ids)

    def _open(self, row: Member) -> np.ndarray | None:
        if row.model != self.model:
            self.skipped[row.id] = "model_mismatch"
            return None
        try:
            vector = self.cipher.open(
                row.id, row.model, SealedTemplate(row.key_id, row.nonce, row.template)
            )
        except TemplateDecryptError as exc:
            self.skipped[row.id] = "undecryptable"
            log.error("face template cannot be opened", extra={"member": row.id, "why": str(exc)})
            return None
        if vector.shape != (self.dim,):
            self.skipped[row.id] = "wrong_dimension"
            return None
        self.skipped.pop(row.id, None)
        if row.phone_digits_hash is not None:
            self.phone_hashes[row.id] = row.phone_digits_hash
        else:
            self.phone_hashes.pop(row.id, None)
        return vector

    async def refresh(self, member_ids: Sequence[str]) -> None:
        """After a committed enrolment: (re)load those members' templates into the gallery."""

        def rows(s: Session) -> list[Member]:
            return [row for member in member_ids if (row := s.get(Member, member)) is not None]

        for row in await self.db.read(rows):
            vector = self._open(row)
            if vector is not None:
                self.gallery.upsert(row.id, vector)

    async def get(self, member_id: str) -> Member | None:
        return await self.db.read(lambda s: s.get(Member, member_id))

    def _enroll(
        self, tx: Transaction, data: MemberEnroll, command: VerifiedCommand
    ) -> dict[str, Any]:
        if data.model != self.model:
            raise CommandFailed(
                "model_mismatch",
                f"the template was made with {data.model}; this site recognises with "
                f"{self.model}: enrol again with that model",
            )
        vector = data.vector()
        if vector.shape != (self.dim,):
            raise CommandFailed(
                "wrong_dimension",
                f"the template has {vector.shape[0]} values; {self.model} makes {self.dim}",
            )
        norm = float(np.linalg.norm(vector))
        if not np.isfinite(norm) or norm < 1e-6:
            raise CommandFailed("invalid_template", "the template is empty or not finite")
        sealed = self.cipher.seal(data.member_id, self.model, vector / norm)
        now = self.clock.now()
        s = tx.session
        row = s.get(Member, data.member_id)
        replaced = row is not None
        consent = data.consent.model_dump(mode="json")
        values: dict[str, Any] = {
            "model": self.model,
            "key_id": sealed.key_id,
            "nonce": sealed.nonce,
            "template": sealed.ciphertext,
            "phone_digits_hash": data.phone_digits_hash,
            "offline_limit": data.offline_limit,
            "consent": consent,
            "updated_at": now,
        }
        if row is None:
            row = Member(id=data.member_id, enrolled_at=now, **values)
        else:
            for name, value in values.items():
                setattr(row, name, value)
        s.add(row)
        # The gallery learns of it after the commit (``refresh``): never before it is durable.
        tx.emit(
            ENROLLED,
            {
                "member_id": data.member_id,
                "model": self.model,
                "replaced": replaced,
                "consent": consent,
                "phone_digits": data.phone_digits_hash is not None,
                "enrolled_at": rfc3339(now),
                "command_id": command.id,
            },
        )
        return {"member_id": data.member_id, "replaced": replaced}

    def _remove(
        self, tx: Transaction, data: MemberRemove, command: VerifiedCommand
    ) -> dict[str, Any]:
        s = tx.session
        row = s.get(Member, data.member_id)
        # Out of the gallery first: from this instant the face pays for nothing, even if the
        # commit below were to fail (then the member is re-enrolled by a retry of the command).
        in_gallery = self.gallery.remove(data.member_id)
        self.phone_hashes.pop(data.member_id, None)
        if row is None and not in_gallery:
            return {"member_id": data.member_id, "removed": False}
        if row is not None:
            s.delete(row)
        tx.emit(
            REMOVED,
            {
                "member_id": data.member_id,
                "reason": data.reason,
                "template_erased": True,
                "gallery_size": len(self.gallery),
                "command_id": command.id,
            },
        )
        log.info("member removed", extra={"member": data.member_id, "reason": data.reason})
        return {"member_id": data.member_id, "removed": True}

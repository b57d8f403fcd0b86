"""The locker's downlink commands: their data schemas and how each is applied.

Everything but ``locker.open`` changes only the database, so it runs inside the transaction that
records the command (``CommandDispatcher.register``). ``locker.open`` unlocks a door, so it runs
after an ``applying`` receipt is committed, through the operator's remote-open path.

Applying the same data twice leaves the same state as applying it once: a second disable of a
disabled compartment changes nothing and emits no second ``compartment.disabled``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC
from typing import Any, TypeVar

from pydantic import AwareDatetime, BaseModel, Field, SecretStr, field_validator

from edge.clock import as_utc
from edge.commands.dispatcher import CommandDispatcher
from edge.commands.errors import CommandFailed
from edge.commands.schema import CommandData
from edge.commands.verify import VerifiedCommand
from edge.config.models import Zone
from edge.db import Transaction
from edge.db.tables import Courier, Parcel
from edge.lockers import queries
from edge.lockers.codes import hash_credential, verify_credential
from edge.lockers.errors import AlreadyDeposited, InvalidState, LockerError, UnknownSize
from edge.lockers.service import LockerService
from edge.lockers.states import ParcelState

# Who the locker's own events name as the actor of a command's change.
ACTOR = "upstream"
COURIER_SOURCE = "upstream"

ModelT = TypeVar("ModelT", bound=BaseModel)


def _not_blank(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    return value


class CompartmentChange(CommandData):
    compartment_id: str = Field(min_length=1, max_length=32)
    reason: str = Field(min_length=1, max_length=500)

    _reason = field_validator("reason")(_not_blank)


class CourierUpsert(CommandData):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    name: str = Field(max_length=200)
    credential: SecretStr = Field(min_length=1, max_length=256)
    """Stored only as a salted scrypt hash, like the configured couriers' credentials."""

    @field_validator("credential")
    @classmethod
    def _credential_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be blank")
        return value


class CourierRevoke(CommandData):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")


class ParcelExpect(CommandData):
    parcel_code: str = Field(min_length=1, max_length=128)
    recipient: str | None = Field(default=None, max_length=200)
    size: str | None = Field(default=None, min_length=1, max_length=16)
    """Fixes the compartment size at deposit; without it the courier chooses."""
    zone: Zone = Zone.AMBIENT
    expected_at: AwareDatetime | None = None
    """When the parcel is due; default: when the announcement arrives."""

    _code = field_validator("parcel_code")(_not_blank)


class LockerOpen(CommandData):
    compartment_id: str = Field(min_length=1, max_length=32)
    reason: str = Field(min_length=1, max_length=500)

    _reason = field_validator("reason")(_not_blank)


def register_locker_commands(dispatcher: CommandDispatcher, lockers: LockerService) -> None:
    commands = LockerCommands(lockers)
    dispatcher.register("compartment.disable", CompartmentChange, _in_tx(commands.disable))
    dispatcher.register("compartment.enable", CompartmentChange, _in_tx(commands.enable))
    dispatcher.register("courier.upsert", CourierUpsert, _in_tx(commands.upsert_courier))
    dispatcher.register("courier.revoke", CourierRevoke, _in_tx(commands.revoke_courier))
    dispatcher.register("parcel.expect", ParcelExpect, _in_tx(commands.expect_parcel))
    dispatcher.register_async("locker.open", LockerOpen, commands.open)


def _in_tx(
    apply: Callable[[Transaction, ModelT, VerifiedCommand], dict[str, Any]],
) -> Callable[[Transaction, ModelT, VerifiedCommand], dict[str, Any]]:
    """A locker refusal (unknown compartment, door open...) answers with its own code."""

    def run(tx: Transaction, data: ModelT, command: VerifiedCommand) -> dict[str, Any]:
        try:
            return apply(tx, data, command)
        except LockerError as exc:
            raise CommandFailed(exc.code, exc.message) from exc

    return run


class LockerCommands:
    """Transaction-level versions of the locker operations that upstream may command."""

    def __init__(self, lockers: LockerService) -> None:
        self.lockers = lockers
        self.rules = lockers.rules

    # ----------------------------------------------------------------- compartments

    def disable(
        self, tx: Transaction, data: CompartmentChange, command: VerifiedCommand
    ) -> dict[str, Any]:
        return self._set_enabled(tx, data, command, enabled=False)

    def enable(
        self, tx: Transaction, data: CompartmentChange, command: VerifiedCommand
    ) -> dict[str, Any]:
        return self._set_enabled(tx, data, command, enabled=True)

    def _set_enabled(
        self, tx: Transaction, data: CompartmentChange, command: VerifiedCommand, *, enabled: bool
    ) -> dict[str, Any]:
        details = {"reason": data.reason, "command_id": command.id}
        comp, changed = self.lockers.change_enabled(
            tx, data.compartment_id, enabled, ACTOR, details
        )
        return {
            "compartment_id": comp.id,
            "enabled": comp.enabled,
            "state": comp.state,
            "changed": changed,
        }

    # ----------------------------------------------------------------- couriers

    def upsert_courier(
        self, tx: Transaction, data: CourierUpsert, _command: VerifiedCommand
    ) -> dict[str, Any]:
        s, now = tx.session, self.lockers.clock.now()
        credential = data.credential.get_secret_value()
        courier = s.get(Courier, data.id)
        _not_configured(courier)
        created = courier is None
        if courier is None:
            courier = Courier(
                id=data.id, credential_hash=hash_credential(credential), updated_at=now
            )
        elif not verify_credential(credential, courier.credential_hash):
            courier.credential_hash = hash_credential(credential)
        courier.name, courier.active, courier.source, courier.updated_at = (
            data.name,
            True,
            COURIER_SOURCE,
            now,
        )
        s.add(courier)
        return {"courier_id": courier.id, "created": created}

    def revoke_courier(
        self, tx: Transaction, data: CourierRevoke, _command: VerifiedCommand
    ) -> dict[str, Any]:
        s = tx.session
        courier = s.get(Courier, data.id)
        _not_configured(courier)
        if courier is None:
            # Nothing to revoke is the state revoking aims for: not an error.
            return {"courier_id": data.id, "found": False, "changed": False}
        changed = courier.active
        if changed:
            courier.active, courier.updated_at = False, self.lockers.clock.now()
            s.add(courier)
        return {"courier_id": courier.id, "found": True, "changed": changed}

    # ----------------------------------------------------------------- parcels

    def expect_parcel(
        self, tx: Transaction, data: ParcelExpect, _command: VerifiedCommand
    ) -> dict[str, Any]:
        """As ``LockerService.expect_parcel``: the announced size and zone hold at deposit."""
        if data.size is not None and data.size not in self.rules.sizes:
            raise UnknownSize(f"Unknown size {data.size!r}.", sizes=self.rules.sizes)
        if data.zone not in self.rules.zones:
            raise InvalidState(f"Zone {data.zone.value!r} is not configured.")
        s, now = tx.session, self.lockers.clock.now()
        if queries.live_parcel_with_code(s, data.parcel_code) is not None:
            raise AlreadyDeposited(f"Parcel {data.parcel_code} is already in the locker.")
        parcel = queries.expected_parcel(s, data.parcel_code)
        created = parcel is None
        if parcel is None:
            parcel = Parcel(
                id=str(uuid.uuid4()),
                code=data.parcel_code,
                state=ParcelState.EXPECTED,
                zone=data.zone.value,
                updated_at=now,
            )
        parcel.size, parcel.zone, parcel.recipient = data.size, data.zone.value, data.recipient
        expected_at = data.expected_at.astimezone(UTC) if data.expected_at else None
        parcel.expected_at = expected_at or as_utc(parcel.expected_at) or now
        parcel.updated_at = now
        s.add(parcel)
        return {"parcel_id": parcel.id, "parcel_code": parcel.code, "created": created}

    # ----------------------------------------------------------------- doors

    async def open(self, data: LockerOpen, _command: VerifiedCommand) -> dict[str, Any]:
        """Remote open through the operator's path: recorded, unlocked, seen open."""
        try:
            door = await self.lockers.operator_open(data.compartment_id, data.reason, ACTOR)
        except LockerError as exc:
            raise CommandFailed(exc.code, exc.message) from exc
        return {"compartment_id": door.compartment_id, "operation_id": door.operation_id}


def _not_configured(courier: Courier | None) -> None:
    # The configuration is re-applied at every start: an upstream change to one of its couriers
    # would silently come undone, so it is refused instead.
    if courier is not None and courier.source == "config":
        raise InvalidState(
            f"Courier {courier.id} is defined in the site configuration; change it there."
        )


__all__ = [
    "CommandData",
    "CompartmentChange",
    "CourierRevoke",
    "CourierUpsert",
    "LockerCommands",
    "LockerOpen",
    "ParcelExpect",
    "register_locker_commands",
]

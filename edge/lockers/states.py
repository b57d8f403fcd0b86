"""The states the database holds for compartments, parcels and door operations."""

from __future__ import annotations

from enum import StrEnum


class CompartmentState(StrEnum):
    FREE = "free"
    RESERVED = "reserved"
    """Chosen for a deposit and unlock commanded; the door has not been seen open yet."""
    OPEN_FOR_DEPOSIT = "open_for_deposit"
    OCCUPIED = "occupied"
    OPEN_FOR_PICKUP = "open_for_pickup"
    FAULTED = "faulted"
    DISABLED = "disabled"


class ParcelState(StrEnum):
    EXPECTED = "expected"
    DEPOSITING = "depositing"
    STORED = "stored"
    EXPIRED = "expired"
    PICKED_UP = "picked_up"
    RETURNED = "returned"
    INTERRUPTED = "interrupted"
    """A deposit cut short (power cut between unlock and close): an operator checks the door."""


# A parcel in one of these states is inside a compartment, and its pickup code is live.
PARCEL_INSIDE = (ParcelState.STORED, ParcelState.EXPIRED)


class OperationKind(StrEnum):
    DEPOSIT = "deposit"
    PICKUP = "pickup"
    RETURN = "return"
    OPERATOR_OPEN = "operator_open"


class OperationState(StrEnum):
    COMMANDED = "commanded"
    OPENED = "opened"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    NOT_OPENED = "not_opened"
    """``open_not_detected``: acknowledged (or not) but the door was never seen open."""
    INTERRUPTED = "interrupted"
    """The controller stopped (power cut, crash) before the operation finished."""


# An operation in one of these states, not yet closed, owns its compartment's door.
DOOR_OWNING_OPERATIONS = (
    OperationState.COMMANDED,
    OperationState.OPENED,
    OperationState.CANCELLED,
)

"""Database look-ups the locker flows share. All run inside a caller's session."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from edge.db.tables import Compartment, DoorOperation, Parcel
from edge.lockers.states import (
    DOOR_OWNING_OPERATIONS,
    PARCEL_INSIDE,
    CompartmentState,
    ParcelState,
)


def active_operation(session: Session, compartment_id: str) -> DoorOperation | None:
    """The operation that owns the door right now: commanded, open, or cancelled but still open."""
    return session.exec(
        select(DoorOperation)
        .where(DoorOperation.compartment_id == compartment_id)
        .where(col(DoorOperation.closed_at).is_(None))
        .where(col(DoorOperation.state).in_(DOOR_OWNING_OPERATIONS))
        .order_by(col(DoorOperation.commanded_at).desc())
    ).first()


def live_parcel_with_code(session: Session, code: str) -> Parcel | None:
    """A parcel with this tracking code that is on its way in, or inside a compartment."""
    return session.exec(
        select(Parcel).where(
            Parcel.code == code,
            col(Parcel.state).in_(
                [
                    ParcelState.DEPOSITING,
                    ParcelState.STORED,
                    ParcelState.EXPIRED,
                    ParcelState.INTERRUPTED,
                ]
            ),
        )
    ).first()


def expected_parcel(session: Session, code: str) -> Parcel | None:
    return session.exec(
        select(Parcel).where(Parcel.code == code, Parcel.state == ParcelState.EXPECTED)
    ).first()


def free_compartments(session: Session, zone: str) -> Sequence[Compartment]:
    return session.exec(
        select(Compartment).where(
            Compartment.state == CompartmentState.FREE,
            Compartment.zone == zone,
            Compartment.enabled == True,  # noqa: E712  (SQL expression, not a comparison)
        )
    ).all()


def parcels_in(session: Session, compartment_ids: Sequence[str]) -> Sequence[Parcel]:
    return session.exec(
        select(Parcel).where(
            col(Parcel.compartment_id).in_(list(compartment_ids)),
            col(Parcel.state).in_(PARCEL_INSIDE),
        )
    ).all()


def interrupted_candidates(session: Session) -> Sequence[DoorOperation]:
    """Operations a previous run left unfinished."""
    return session.exec(
        select(DoorOperation).where(
            col(DoorOperation.closed_at).is_(None),
            col(DoorOperation.state).in_(DOOR_OWNING_OPERATIONS),
        )
    ).all()

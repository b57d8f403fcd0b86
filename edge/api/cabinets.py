"""Cabinet routes: a kiosk starts a shopper's session; an operator restocks and reviews."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field, model_validator
from sqlalchemy.exc import IntegrityError

from edge.api.auth import Operator, Terminal
from edge.api.facepay import facepay_service
from edge.cabinet.errors import UnknownCabinet
from edge.cabinet.service import Cabinet, SessionKind, SessionView
from edge.facepay.service import FacePayError

if TYPE_CHECKING:
    from edge.app import EdgeApp


class CabinetSessionRequest(BaseModel):
    member_source: Literal["face", "qr"]
    member_id: str | None = Field(default=None, min_length=1, max_length=64)
    """``qr``: the member the scanned code names. ``face``: not given (the check says who)."""
    face_check_id: str | None = Field(default=None, min_length=1, max_length=64)
    """``face``: a verified face check of this kiosk, used once."""

    @model_validator(mode="after")
    def _identity(self) -> CabinetSessionRequest:
        if self.member_source == "face":
            if self.face_check_id is None or self.member_id is not None:
                raise ValueError("a face purchase names face_check_id, not member_id")
        elif self.member_id is None:
            raise ValueError("a qr purchase names member_id")
        return self


class RestockRequest(BaseModel):
    reason: str = Field(default="restock", min_length=1, max_length=500)


class VoidRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class CabinetSessionOut(BaseModel):
    id: str
    cabinet_id: str
    kind: str
    state: str
    """``unlocking``, ``open``, ``settling``, then ``closed``, ``held`` or ``cancelled``."""
    member_id: str | None
    hold_reason: str | None
    order_id: str | None
    total: int | None
    """Minor units (fen)."""
    currency: str | None
    lines: list[dict[str, Any]]


class CabinetOut(BaseModel):
    id: str
    name: str
    available: bool
    """A session could start now: reader up, inventory counted, no session, door shut."""
    reader_available: bool
    door_open: bool | None
    session_id: str | None
    held: bool
    items: int


def cabinet_out(cab: Cabinet) -> CabinetOut:
    return CabinetOut(
        id=cab.id,
        name=cab.config.name,
        available=cab.open_for_shoppers,
        reader_available=cab.reader_available,
        door_open=cab.door_open,
        session_id=cab.session_id,
        held=cab.held,
        items=len(cab.stock),
    )


def _out(view: SessionView) -> CabinetSessionOut:
    return CabinetSessionOut(**asdict(view))


def cabinet_kiosk_routes(edge: EdgeApp) -> APIRouter:
    router = APIRouter()
    service = edge.cabinets

    @router.get("/cabinets")
    async def cabinets(_terminal: Terminal) -> list[CabinetOut]:
        return [cabinet_out(cab) for cab in service.cabinets.values()]

    @router.post("/cabinets/{cabinet_id}/sessions", status_code=201)
    async def start(
        cabinet_id: str, body: CabinetSessionRequest, terminal: Terminal
    ) -> CabinetSessionOut:
        """Unlock the cabinet for an identified shopper; charged for what they take."""
        member_id = body.member_id
        verification_id = None
        evidence = None
        if body.face_check_id is not None:
            facepay = facepay_service(edge)
            verified, evidence = facepay.verified(body.face_check_id, terminal)
            member_id, verification_id = verified.member_id, verified.id
        try:
            view = await service.start_session(
                cabinet_id,
                kind=SessionKind.PURCHASE,
                actor=f"terminal:{terminal}",
                member_id=member_id,
                member_source=body.member_source,
                verification_id=verification_id,
                evidence=evidence,
            )
        except IntegrityError as exc:
            if verification_id is None:
                raise
            raise FacePayError("verification_used", "This face check was already used.") from exc
        if body.face_check_id is not None:
            facepay_service(edge).consume(body.face_check_id)
        return _out(view)

    @router.get("/cabinet-sessions/{session_id}")
    async def session(session_id: str, _terminal: Terminal) -> CabinetSessionOut:
        return _out(await service.get_session(session_id))

    return router


def cabinet_operator_routes(edge: EdgeApp) -> APIRouter:
    router = APIRouter()
    service = edge.cabinets

    @router.post("/cabinets/{cabinet_id}/restock", status_code=201)
    async def restock(cabinet_id: str, body: RestockRequest, actor: Operator) -> CabinetSessionOut:
        """Open the cabinet to fill it: what is added or removed becomes stock, never an order."""
        view = await service.start_session(cabinet_id, kind=SessionKind.RESTOCK, actor=actor)
        return _out(view)

    @router.get("/cabinet-sessions/{session_id}")
    async def session(session_id: str, _op: Operator) -> CabinetSessionOut:
        return _out(await service.get_session(session_id))

    @router.post("/cabinet-sessions/{session_id}/settle")
    async def resettle(session_id: str, actor: Operator) -> CabinetSessionOut:
        """Settle a held session again from a fresh inventory (once the reader is back)."""
        return _out(await service.resettle(session_id, actor))

    @router.post("/cabinet-sessions/{session_id}/void")
    async def void(session_id: str, body: VoidRequest, actor: Operator) -> CabinetSessionOut:
        """Close a held session without charging; the cabinet's live inventory becomes stock."""
        return _out(await service.void(session_id, actor, body.reason))

    @router.get("/cabinets/{cabinet_id}/stock")
    async def stock(cabinet_id: str, _op: Operator) -> dict[str, Any]:
        report = service.stock_report()
        if cabinet_id not in report:
            raise UnknownCabinet(f"No cabinet {cabinet_id}.")
        return {"cabinet": cabinet_id, **report[cabinet_id]}

    return router

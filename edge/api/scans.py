"""Scan routes: a kiosk screen reads the codes scanned at it (a member QR shown to its camera)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query
from pydantic import BaseModel

from edge.api.auth import Terminal
from edge.clock import rfc3339
from edge.scans.flows import FLOW_TTL_S, Flow
from edge.scans.hub import Outcome, Scan

if TYPE_CHECKING:
    from edge.app import EdgeApp

# Longest a kiosk's poll may wait for a scan (long polling).
MAX_WAIT_S = 10.0


class OutcomeOut(BaseModel):
    flow: str | None
    status: str
    """``accepted``, ``refused`` (the code was not right for the flow) or ``ignored``."""
    code: str | None
    message: str | None
    result: dict[str, Any]


class ScanOut(BaseModel):
    seq: int
    device: str
    symbology: str | None
    text: str
    at: str
    outcome: OutcomeOut | None
    """What the kiosk flow made of it; None while it is being handled."""


class FlowRequest(BaseModel):
    flow: Flow
    cabinet: str | None = None
    """``cabinet_member``: the cabinet the shopper stands at."""


class FlowOut(BaseModel):
    flow: str
    cabinet: str | None
    expires_in_s: float


class ScansOut(BaseModel):
    scans: list[ScanOut]
    last_seq: int
    """Ask again with ``after`` set to this for the scans that follow."""


def scan_kiosk_routes(edge: EdgeApp) -> APIRouter:
    router = APIRouter()

    @router.get("/scans")
    async def scans(
        terminal: Terminal,
        after: Annotated[int, Query(ge=0)] = 0,
        wait: Annotated[float, Query(ge=0, le=MAX_WAIT_S)] = 0.0,
    ) -> ScansOut:
        """Codes scanned at this kiosk after ``after``, from the last few seconds only (a code
        shown to a screen that was not listening is never acted on later); with ``wait``,
        waits that long for one."""
        hub = edge.scans
        found = await hub.wait(terminal, after, wait) if wait else hub.fresh(terminal, after)
        return ScansOut(
            scans=[_scan_out(s, hub.outcomes.get(s.seq)) for s in found],
            last_seq=max([after, *(s.seq for s in found)]),
        )

    @router.put("/scan-flow")
    async def set_flow(
        body: FlowRequest,
        terminal: Terminal,
        x_courier_session: Annotated[str | None, Header()] = None,
    ) -> FlowOut:
        """What the next code scanned at this kiosk is for. ``parcel_code`` is a courier's step
        (``X-Courier-Session``); ``cabinet_member`` names the cabinet."""
        token = None
        if body.flow is Flow.PARCEL_CODE:
            token = courier_session(edge, terminal, x_courier_session).token
        if body.flow is Flow.CABINET_MEMBER and body.cabinet not in edge.cabinets.cabinets:
            raise HTTPException(
                404, detail={"code": "unknown_cabinet", "message": "Name a cabinet of this site."}
            )
        active = edge.scan_router.set_flow(
            terminal, body.flow, cabinet=body.cabinet, courier_token=token
        )
        return FlowOut(flow=active.flow.value, cabinet=active.cabinet, expires_in_s=FLOW_TTL_S)

    @router.delete("/scan-flow", status_code=204)
    async def clear_flow(terminal: Terminal) -> None:
        """The screen left the step: scans here are ignored again."""
        edge.scan_router.clear_flow(terminal)

    return router


def courier_session(edge: EdgeApp, terminal: str, token: str | None) -> Any:
    session = edge.lockers.courier_session(token or "")
    if session.terminal != terminal:
        raise HTTPException(
            401, detail={"code": "not_authenticated", "message": "Sign in at this kiosk."}
        )
    return session


def _scan_out(scan: Scan, outcome: Outcome | None) -> ScanOut:
    return ScanOut(
        seq=scan.seq,
        device=scan.device,
        symbology=scan.symbology,
        text=scan.text,
        at=rfc3339(scan.at),
        outcome=None
        if outcome is None
        else OutcomeOut(
            flow=outcome.flow,
            status=outcome.status,
            code=outcome.code,
            message=outcome.message,
            result=outcome.result,
        ),
    )

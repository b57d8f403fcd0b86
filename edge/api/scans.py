"""Scan routes: a kiosk screen reads the codes scanned at it (a member QR shown to its camera)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from edge.api.auth import Terminal
from edge.clock import rfc3339

if TYPE_CHECKING:
    from edge.app import EdgeApp

# Longest a kiosk's poll may wait for a scan (long polling).
MAX_WAIT_S = 10.0


class ScanOut(BaseModel):
    seq: int
    device: str
    symbology: str | None
    text: str
    at: str


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
            scans=[
                ScanOut(
                    seq=s.seq, device=s.device, symbology=s.symbology, text=s.text, at=rfc3339(s.at)
                )
                for s in found
            ],
            last_seq=max([after, *(s.seq for s in found)]),
        )

    return router

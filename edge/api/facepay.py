"""Face payment routes: a kiosk runs a face check; an operator sees members and the gallery."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from edge.api.auth import Operator, Terminal
from edge.clock import rfc3339
from edge.facepay.service import FacePayError, FacePayService

if TYPE_CHECKING:
    from edge.app import EdgeApp

# Longest a kiosk's poll may wait for the check to change (long polling).
MAX_WAIT_S = 10.0


class FaceCheckOut(BaseModel):
    id: str
    terminal: str
    state: str
    """``looking``, ``challenge``, ``needs_phone_digits``, then ``verified`` or ``failed``."""
    prompt: str | None
    """What to ask of the shopper now: ``blink``, ``turn_left``, ``turn_right``,
    ``phone_digits``."""
    hint: str | None
    """Why frames are not usable right now (``no_face``, ``too_dark``, ``blurry``…)."""
    reason: str | None
    """Why the check failed (``not_recognised``, ``challenge_timeout``, ``replayed_frames``…)."""
    member_id: str | None = None
    method: str | None = None
    score: float | None = None
    digit_attempts_left: int | None = None


class DigitsRequest(BaseModel):
    digits: str = Field(pattern=r"^[0-9]{4}$")
    """The last four digits of the member's phone number."""


def facepay_service(edge: EdgeApp) -> FacePayService:
    """The site's face payment, or a clear 503 where it is not set up."""
    if edge.facepay is None:
        raise FacePayError(
            "facepay_disabled", "Face payment is not set up at this site.", status=503
        )
    return edge.facepay


def facepay_kiosk_routes(edge: EdgeApp) -> APIRouter:
    router = APIRouter()

    @router.post("/face/checks", status_code=201)
    async def start(terminal: Terminal) -> FaceCheckOut:
        """Start a face check on this kiosk's camera (cancels one already running here)."""
        check = facepay_service(edge).start_check(terminal)
        return FaceCheckOut(**check.view())

    @router.get("/face/checks/{check_id}")
    async def get(
        check_id: str,
        terminal: Terminal,
        wait: Annotated[float, Query(ge=0, le=MAX_WAIT_S)] = 0,
    ) -> FaceCheckOut:
        """The check's state; with ``wait``, answers as soon as it changes (long polling)."""
        check = facepay_service(edge).get_check(check_id, terminal)
        if wait > 0 and not check.finished:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(check.changed.wait(), wait)
        return FaceCheckOut(**check.view())

    @router.post("/face/checks/{check_id}/digits")
    async def digits(check_id: str, body: DigitsRequest, terminal: Terminal) -> FaceCheckOut:
        """The last four phone digits, when the check asks for them (rate-limited)."""
        check = await facepay_service(edge).submit_digits(check_id, terminal, body.digits)
        return FaceCheckOut(**check.view())

    @router.delete("/face/checks/{check_id}")
    async def cancel(check_id: str, terminal: Terminal) -> FaceCheckOut:
        """The shopper chose another way to pay, or walked away."""
        check = facepay_service(edge).get_check(check_id, terminal)
        check.cancel("cancelled")
        return FaceCheckOut(**check.view())

    return router


def facepay_operator_routes(edge: EdgeApp) -> APIRouter:
    router = APIRouter()

    @router.get("/facepay")
    async def status(_op: Operator) -> dict[str, Any]:
        """Gallery size, model, cameras, and whether payments are being decided offline."""
        return facepay_service(edge).status()

    @router.get("/members/{member_id}")
    async def member(member_id: str, _op: Operator) -> dict[str, Any]:
        """Whether a member is enrolled (after ``member.remove``: 404, and not in the gallery)."""
        service = facepay_service(edge)
        row = await service.members.get(member_id)
        in_gallery = member_id in service.gallery
        if row is None and not in_gallery:
            raise FacePayError("unknown_member", f"No member {member_id} is enrolled.", 404)
        return {
            "member_id": member_id,
            "enrolled": row is not None,
            "in_gallery": in_gallery,
            "model": row.model if row else None,
            "consent": row.consent if row else None,
            "phone_digits": bool(row and row.phone_digits_hash),
            "offline_limit": row.offline_limit if row else None,
            "enrolled_at": rfc3339(row.enrolled_at) if row else None,
        }

    return router

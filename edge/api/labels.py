"""Shelf label routes (operator): how far the labels are, and what one label shows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException

from edge.api.auth import Operator
from edge.clock import as_utc, rfc3339
from edge.db.tables import Label, LabelPush
from edge.labels.commands import label_address

if TYPE_CHECKING:
    from edge.app import EdgeApp


def label_operator_routes(edge: EdgeApp) -> APIRouter:
    router = APIRouter()

    def service() -> Any:
        if edge.labels is None:
            raise HTTPException(
                503,
                detail={"code": "labels_disabled", "message": "No shelf labels at this site."},
            )
        return edge.labels

    @router.get("/labels")
    async def labels(_op: Operator) -> dict[str, Any]:
        """Pushes by state, and each access point's availability and counts."""
        status: dict[str, Any] = await service().status()
        return status

    @router.get("/labels/{label_id}")
    async def label(label_id: str, _op: Operator) -> dict[str, Any]:
        """What a label is bound to, what it should show, and what it confirmed it shows."""
        service()
        try:
            mac = label_address(label_id)
        except ValueError as exc:
            raise HTTPException(422, detail={"code": "bad_label_id", "message": str(exc)}) from exc

        def read(s: Any) -> tuple[Label | None, LabelPush | None]:
            return s.get(Label, mac), s.get(LabelPush, mac)

        row, push = await edge.db.read(read)
        if row is None:
            raise HTTPException(
                404, detail={"code": "unknown_label", "message": f"No label {mac} is bound."}
            )
        return {
            "label_id": row.id,
            "gtin": row.gtin,
            "template": row.template,
            "access_point": row.access_point,
            "state": push.state if push else None,
            "attempts": push.attempts if push else 0,
            "last_error": push.last_error if push else None,
            "content": push.content if push else None,
            "shown": push.shown if push else None,
            "confirmed_at": rfc3339(as_utc(push.confirmed_at))
            if push and push.confirmed_at
            else None,
        }

    return router

"""Server-sent event streams: live updates for kiosk screens and the operator console.

Each SSE message is one committed event: ``event:`` its type, ``id:`` its ``seq``, ``data:`` its
JSON. A screen that reconnects sends ``Last-Event-ID`` (browsers do) or ``?after=SEQ`` and first
gets what it missed from the outbox. When it missed more than ``REPLAY_LIMIT`` events it gets one
``resync`` message instead: reload the state, then carry on from the stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlmodel import Session, col, select

from edge.api.auth import Operator, Terminal
from edge.api.feed import EventFeed, FeedEnded, for_kiosk
from edge.db.tables import OutboxEvent
from edge.outbox.store import Envelope, envelope_of

if TYPE_CHECKING:
    from edge.app import EdgeApp

REPLAY_LIMIT = 500

Project = Callable[[Envelope], dict[str, Any] | None]


def stream_routes(edge: EdgeApp) -> tuple[APIRouter, APIRouter]:
    """The kiosk stream (``/api/v1/kiosk/stream``) and the operator's (``/api/v1/stream``)."""
    kiosk, operator = APIRouter(), APIRouter()

    @kiosk.get("/stream", response_class=EventSourceResponse)
    async def kiosk_stream(
        _terminal: Terminal,
        after: Annotated[int | None, Query(ge=0)] = None,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> AsyncIterator[ServerSentEvent]:
        """Door, parcel, cabinet and payment events, without codes or personal data."""
        async for message in _stream(edge, for_kiosk, _resume_point(after, last_event_id)):
            yield message

    @operator.get("/stream", response_class=EventSourceResponse)
    async def operator_stream(
        _op: Operator,
        after: Annotated[int | None, Query(ge=0)] = None,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> AsyncIterator[ServerSentEvent]:
        """Every committed event, as its envelope."""
        async for message in _stream(edge, _whole, _resume_point(after, last_event_id)):
            yield message

    return kiosk, operator


def _whole(event: Envelope) -> dict[str, Any]:
    return event.as_dict()


def _resume_point(after: int | None, last_event_id: str | None) -> int | None:
    if after is not None:
        return after
    if last_event_id is not None and last_event_id.strip().isdigit():
        return int(last_event_id)
    return None


async def _stream(
    edge: EdgeApp, project: Project, after: int | None
) -> AsyncIterator[ServerSentEvent]:
    feed: EventFeed = edge.feed
    with feed.watch() as watcher:
        # Watch first, then read the missed events: nothing committed in between is lost,
        # and what arrives twice is skipped by its seq.
        last = after
        if after is not None:
            missed, more = await edge.db.read(lambda s: _missed(s, after, edge.config.site.id))
            if more:
                yield ServerSentEvent(event="resync", data={"reason": "missed_too_many"})
                last = None
            else:
                for event in missed:
                    message = _message(event, project)
                    if message is not None:
                        yield message
                    last = event.seq
        yield ServerSentEvent(event="ready", data={"site": edge.config.site.id})
        while True:
            try:
                event = await watcher.next()
            except FeedEnded:
                return  # stopping, or too far behind: the screen reconnects and catches up
            if last is not None and event.seq <= last:
                continue
            message = _message(event, project)
            if message is not None:
                yield message


def _missed(s: Session, after: int, site: str) -> tuple[list[Envelope], bool]:
    rows = s.exec(
        select(OutboxEvent)
        .where(OutboxEvent.seq > after)
        .order_by(col(OutboxEvent.seq))
        .limit(REPLAY_LIMIT + 1)
    ).all()
    return [envelope_of(r, site) for r in rows[:REPLAY_LIMIT]], len(rows) > REPLAY_LIMIT


def _message(event: Envelope, project: Project) -> ServerSentEvent | None:
    shown = project(event)
    if shown is None:
        return None
    return ServerSentEvent(event=event.type, id=str(event.seq), data=shown)

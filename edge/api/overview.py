"""The operator console's data: one overview of the site, and the temperature history.

The overview answers "is this site all right, and if not, what needs a person": alarms first,
then every part's state. It is read whole on page load and again after events arrive.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlmodel import Session, col, select

from edge.api.auth import Operator
from edge.api.cabinets import CabinetOut, cabinet_out
from edge.api.schemas import CompartmentOut, DeviceOut, EventOut
from edge.clock import as_utc, rfc3339
from edge.db.tables import CabinetSession, Compartment, OutboxEvent
from edge.outbox.cursor import oldest_pending_ts
from edge.outbox.cursor import position as outbox_position
from edge.outbox.store import envelope_of

if TYPE_CHECKING:
    from edge.app import EdgeApp

RECENT_EVENTS = 40
# The upstream link counts as an alarm once it has been down this long (short drops are normal).
UPSTREAM_DOWN_ALARM_S = 300.0


class Alarm(BaseModel):
    severity: str
    """``critical`` (goods or money at risk, act now) or ``warning``."""
    kind: str
    target: str
    message: str


class HeldSession(BaseModel):
    id: str
    cabinet_id: str
    kind: str
    member_id: str | None
    hold_reason: str | None
    created_at: datetime
    door_closed_at: datetime | None


class TemperatureNow(BaseModel):
    sensor: str
    zone: str
    celsius: float | None
    min_c: float | None
    max_c: float | None
    alarmed: bool
    available: bool | None


class SyncState(BaseModel):
    configured: bool
    connected: bool
    down_for_s: float | None
    last_error: str | None
    pending_events: int
    acked_seq: int
    last_seq: int
    oldest_pending_at: str | None
    backlog_bytes: int
    cap_bytes: int
    backlog_alarm: bool


class Overview(BaseModel):
    site: str
    version: str
    ready: bool
    at: str
    alarms: list[Alarm]
    compartments: list[CompartmentOut]
    cabinets: list[CabinetOut]
    held_sessions: list[HeldSession]
    devices: list[DeviceOut]
    temperatures: list[TemperatureNow]
    sync: SyncState
    recent_events: list[EventOut]


class TemperatureSeries(BaseModel):
    sensor: str
    zone: str
    min_c: float | None
    max_c: float | None
    points: list[dict[str, Any]]
    """``{"t", "mean_c", "min_c", "max_c"}`` per minute, oldest first."""


def overview_routes(edge: EdgeApp) -> APIRouter:
    router = APIRouter()

    @router.get("/overview")
    async def overview(_op: Operator) -> Overview:
        """The whole site at a glance, alarms first."""
        return await build_overview(edge)

    @router.get("/temperatures")
    async def temperatures(
        _op: Operator, hours: Annotated[float, Query(gt=0, le=168)] = 24
    ) -> list[TemperatureSeries]:
        """Each sensor's readings, one point per minute, over the last ``hours``."""
        series = await edge.temperature.history.since(hours)
        out = []
        for sensor in edge.config.temperature_sensors:
            rule = edge.config.lockers.zones[sensor.zone]
            out.append(
                TemperatureSeries(
                    sensor=sensor.name,
                    zone=sensor.zone.value,
                    min_c=rule.min_c,
                    max_c=rule.max_c,
                    points=series.get(sensor.name, []),
                )
            )
        return out

    @router.get("/cabinet-sessions")
    async def cabinet_sessions(
        _op: Operator, state: str = "held", limit: Annotated[int, Query(ge=1, le=500)] = 100
    ) -> list[HeldSession]:
        """Cabinet sessions in one state, newest first (``held``: waiting for an operator)."""
        return await edge.db.read(lambda s: _sessions(s, state, limit))

    return router


async def build_overview(edge: EdgeApp) -> Overview:
    site = edge.config.site.id

    def load(s: Session) -> tuple[Any, ...]:
        compartments = s.exec(select(Compartment).order_by(col(Compartment.id))).all()
        held = _sessions(s, "held", 100)
        pos = outbox_position(s)
        oldest = oldest_pending_ts(s, pos.acked)
        recent = s.exec(
            select(OutboxEvent).order_by(col(OutboxEvent.seq).desc()).limit(RECENT_EVENTS)
        ).all()
        events = [
            EventOut(**envelope_of(r, site).as_dict(), delivered=r.seq <= pos.acked) for r in recent
        ]
        comps = [CompartmentOut.model_validate(c, from_attributes=True) for c in compartments]
        return comps, held, pos, oldest, events

    compartments, held, pos, oldest, events = await edge.db.read(load)
    devices = [
        DeviceOut(name=d.name, kind=d.kind, available=d.available, reason=d.reason, since=d.since)
        for d in edge.health.devices.values()
    ]
    cabinets = [cabinet_out(cab) for cab in edge.cabinets.cabinets.values()]
    temperatures = []
    for sensor in edge.config.temperature_sensors:
        rule = edge.config.lockers.zones[sensor.zone]
        watch = edge.temperature.watches[sensor.name]
        device = edge.health.devices.get(sensor.name)
        temperatures.append(
            TemperatureNow(
                sensor=sensor.name,
                zone=sensor.zone.value,
                celsius=watch.last_celsius,
                min_c=rule.min_c,
                max_c=rule.max_c,
                alarmed=watch.alarmed,
                available=device.available if device is not None else None,
            )
        )
    sync = _sync_state(edge, pos.acked, pos.last, oldest)
    return Overview(
        site=site,
        version=edge.version,
        ready=edge.started.is_set(),
        at=rfc3339(edge.db.clock.now()),
        alarms=_alarms(compartments, cabinets, held, devices, temperatures, sync),
        compartments=compartments,
        cabinets=cabinets,
        held_sessions=held,
        devices=devices,
        temperatures=temperatures,
        sync=sync,
        recent_events=events,
    )


def _sessions(s: Session, state: str, limit: int) -> list[HeldSession]:
    rows = s.exec(
        select(CabinetSession)
        .where(CabinetSession.state == state)
        .order_by(col(CabinetSession.created_at).desc())
        .limit(limit)
    ).all()
    return [
        HeldSession(
            id=r.id,
            cabinet_id=r.cabinet_id,
            kind=r.kind,
            member_id=r.member_id,
            hold_reason=r.hold_reason,
            created_at=as_utc(r.created_at),
            door_closed_at=as_utc(r.door_closed_at),
        )
        for r in rows
    ]


def _sync_state(edge: EdgeApp, acked: int, last: int, oldest: str | None) -> SyncState:
    backlog = edge.keeper.backlog
    link = edge.sync.state if edge.sync is not None else None
    return SyncState(
        configured=edge.sync is not None,
        connected=bool(link and link.connected),
        down_for_s=round(down, 1) if link and (down := link.down_for()) is not None else None,
        last_error=link.last_error if link else None,
        pending_events=max(0, last - acked),
        acked_seq=acked,
        last_seq=last,
        oldest_pending_at=oldest,
        backlog_bytes=backlog.bytes,
        cap_bytes=edge.keeper.cap_bytes,
        backlog_alarm=backlog.alarmed,
    )


def _alarms(
    compartments: list[CompartmentOut],
    cabinets: list[CabinetOut],
    held: list[HeldSession],
    devices: list[DeviceOut],
    temperatures: list[TemperatureNow],
    sync: SyncState,
) -> list[Alarm]:
    alarms: list[Alarm] = []
    for t in temperatures:
        if t.alarmed:
            alarms.append(
                Alarm(
                    severity="critical",
                    kind="temperature_excursion",
                    target=t.sensor,
                    message=f"{t.zone} zone at {t.celsius} °C, outside {t.min_c}…{t.max_c} °C",
                )
            )
    for c in compartments:
        if c.fault:
            alarms.append(
                Alarm(severity="critical", kind="compartment_fault", target=c.id, message=c.fault)
            )
    for session in held:
        alarms.append(
            Alarm(
                severity="critical",
                kind="session_held",
                target=session.cabinet_id,
                message=f"session {session.id} held: {session.hold_reason or 'for review'}",
            )
        )
    for d in devices:
        if d.available is False:
            alarms.append(
                Alarm(
                    severity="warning",
                    kind="device_offline",
                    target=d.name,
                    message=d.reason or f"{d.kind} does not answer",
                )
            )
    if sync.backlog_alarm:
        alarms.append(
            Alarm(
                severity="critical",
                kind="outbox_backlog",
                target="outbox",
                message=f"{sync.pending_events} events wait for the upstream link",
            )
        )
    if sync.configured and not sync.connected and (sync.down_for_s or 0) >= UPSTREAM_DOWN_ALARM_S:
        alarms.append(
            Alarm(
                severity="warning",
                kind="upstream_down",
                target="mqtt",
                message=f"upstream link down for {int(sync.down_for_s or 0)} s"
                + (f": {sync.last_error}" if sync.last_error else ""),
            )
        )
    for cab in cabinets:
        if cab.held and not any(h.cabinet_id == cab.id for h in held):
            alarms.append(
                Alarm(
                    severity="critical",
                    kind="cabinet_held",
                    target=cab.id,
                    message="cabinet closed to shoppers until an operator settles it",
                )
            )
    return alarms

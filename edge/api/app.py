"""The FastAPI application: kiosk routes, operator routes, health and metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import and_, case, func
from sqlmodel import Session, col, select

from edge.api.auth import Courier, Operator, Terminal
from edge.api.cabinets import cabinet_kiosk_routes, cabinet_operator_routes
from edge.api.facepay import facepay_kiosk_routes, facepay_operator_routes
from edge.api.labels import label_operator_routes
from edge.api.overview import overview_routes
from edge.api.pages import mount_pages
from edge.api.request_metrics import count_requests
from edge.api.scans import scan_kiosk_routes
from edge.api.schemas import (
    CompartmentOut,
    CourierLogin,
    CourierSessionOut,
    DepositRequest,
    DeviceOut,
    ErrorResponse,
    EventOut,
    ExpectRequest,
    OpenedOut,
    OpenRequest,
    OperationOut,
    ParcelOut,
    PickupRequest,
    ReturnRequest,
    SizeAvailability,
)
from edge.api.stream import stream_routes
from edge.cabinet.errors import CabinetError
from edge.db.tables import Compartment, OutboxEvent, Parcel
from edge.facepay.service import FacePayError
from edge.labels.pushes import counts as label_counts
from edge.lockers.errors import LockerError
from edge.lockers.service import OpenedDoor
from edge.lockers.states import CompartmentState
from edge.outbox.cursor import position as outbox_position
from edge.outbox.store import OutboxFull, envelope_of

if TYPE_CHECKING:
    from edge.app import EdgeApp

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 410, 422, 429, 503, 504)
}


def _opened(door: OpenedDoor) -> OpenedOut:
    return OpenedOut(
        operation_id=door.operation_id, compartment=door.compartment_id, kind=door.kind
    )


def create_api(edge: EdgeApp) -> FastAPI:
    api = FastAPI(
        title="Edge controller local API",
        version=edge.version,
        description="Kiosk and operator API of one site. Kiosk routes take `X-Kiosk-Token` "
        "(and `X-Courier-Session` for courier actions); operator routes take "
        "`Authorization: Bearer <operator token>`.",
    )
    api.state.edge = edge

    @api.exception_handler(LockerError)
    async def locker_error(_request: Request, exc: LockerError) -> JSONResponse:
        retry_after = exc.details.get("retry_after_s")
        return JSONResponse(
            status_code=exc.status,
            content={"error": {"code": exc.code, "message": exc.message, "details": exc.details}},
            headers={"Retry-After": str(retry_after)} if retry_after is not None else None,
        )

    @api.exception_handler(OutboxFull)
    async def outbox_full(_request: Request, exc: OutboxFull) -> JSONResponse:
        # refuse_new policy: the change was rolled back, nothing was recorded or done.
        return JSONResponse(
            status_code=503,
            content={"error": {"code": "outbox_full", "message": str(exc), "details": {}}},
        )

    @api.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        detail = (
            exc.detail
            if isinstance(exc.detail, dict)
            else {"code": "http_error", "message": str(exc.detail)}
        )
        return JSONResponse(
            status_code=exc.status_code, content={"error": detail}, headers=exc.headers
        )

    @api.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"path": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]
        return JSONResponse(
            status_code=422,
            content={
                "error": {
                    "code": "invalid_request",
                    "message": "The request body is not valid.",
                    "details": {"problems": problems},
                }
            },
        )

    @api.exception_handler(CabinetError)
    async def cabinet_error(_request: Request, exc: CabinetError) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status,
            content={"error": {"code": exc.code, "message": exc.message, "details": exc.details}},
        )

    @api.exception_handler(FacePayError)
    async def facepay_error(_request: Request, exc: FacePayError) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status, content={"error": {"code": exc.code, "message": exc.message}}
        )

    api.include_router(kiosk_routes(edge), prefix="/api/v1/kiosk", tags=["kiosk"])
    api.include_router(operator_routes(edge), prefix="/api/v1", tags=["operator"])
    api.include_router(
        cabinet_kiosk_routes(edge), prefix="/api/v1/kiosk", tags=["kiosk"], responses=ERRORS
    )
    api.include_router(
        cabinet_operator_routes(edge), prefix="/api/v1", tags=["operator"], responses=ERRORS
    )
    api.include_router(
        facepay_kiosk_routes(edge), prefix="/api/v1/kiosk", tags=["kiosk"], responses=ERRORS
    )
    api.include_router(
        label_operator_routes(edge), prefix="/api/v1", tags=["operator"], responses=ERRORS
    )
    api.include_router(
        scan_kiosk_routes(edge), prefix="/api/v1/kiosk", tags=["kiosk"], responses=ERRORS
    )
    api.include_router(
        facepay_operator_routes(edge), prefix="/api/v1", tags=["operator"], responses=ERRORS
    )

    api.include_router(overview_routes(edge), prefix="/api/v1", tags=["operator"], responses=ERRORS)
    kiosk_stream, operator_stream = stream_routes(edge)
    api.include_router(kiosk_stream, prefix="/api/v1/kiosk", tags=["kiosk"], responses=ERRORS)
    api.include_router(operator_stream, prefix="/api/v1", tags=["operator"], responses=ERRORS)

    @api.get("/api/v1/health", tags=["health"])
    async def health() -> JSONResponse:
        """``ok`` once the boot check of the doors is done; ``starting`` (503) before."""
        ready = edge.started.is_set()
        return JSONResponse(
            status_code=200 if ready else 503,
            content={
                "status": "ok" if ready else "starting",
                "site": edge.config.site.id,
                "version": edge.version,
            },
        )

    @api.get("/metrics", tags=["health"], response_class=Response)
    async def metrics() -> Response:
        await edge.db.read(lambda s: edge.metrics.read_database(s, edge.db.clock))
        edge.metrics.build.info({"version": edge.version, "site": edge.config.site.id})
        edge.metrics.ready.set(1 if edge.started.is_set() else 0)
        edge.metrics.screens.set(edge.feed.watchers)
        down = edge.sync.state.down_for() if edge.sync is not None else None
        edge.metrics.sync_down.set(down or 0.0)
        for device in edge.health.devices.values():
            edge.metrics.device_up.labels(device.name, device.kind).set(
                1 if device.available else 0
            )
        for name, bus in edge.locks.buses.items():
            edge.metrics.bus_requests.labels(name).set(bus.metrics.requests)
            edge.metrics.bus_timeouts.labels(name).set(bus.metrics.timeouts)
            edge.metrics.bus_corrupt.labels(name).set(bus.metrics.corrupt_frames)
        for sensor in edge.config.temperature_sensors:
            last = edge.temperature.watches[sensor.name].last_celsius
            if last is not None:
                edge.metrics.temperature.labels(sensor.name, sensor.zone.value).set(last)
            alarmed = edge.temperature.watches[sensor.name].alarmed
            edge.metrics.temperature_alarm.labels(sensor.name, sensor.zone.value).set(int(alarmed))
        for name, reader in edge.readers.readers.items():
            edge.metrics.rfid_tag_reads.labels(name).set(reader.metrics.tag_reads)
            edge.metrics.rfid_rounds.labels(name).set(reader.metrics.rounds)
            edge.metrics.rfid_corrupt.labels(name).set(reader.metrics.corrupt_frames)
            edge.metrics.rfid_timeouts.labels(name).set(reader.metrics.timeouts)
        for cab in edge.cabinets.cabinets.values():
            edge.metrics.cabinet_items.labels(cab.id).set(len(cab.stock))
            edge.metrics.cabinet_ready.labels(cab.id).set(1 if cab.open_for_shoppers else 0)
            edge.metrics.cabinet_held.labels(cab.id).set(1 if cab.held else 0)
        if edge.cabinets.settle_times:
            edge.metrics.cabinet_counting.set(edge.cabinets.settle_times[-1][0])
        edge.metrics.read_sync(edge.sync, edge.keeper)
        edge.metrics.read_commands(edge.commands)
        edge.metrics.read_facepay(edge.facepay)
        edge.metrics.read_scans(edge.scans)
        if edge.labels is not None:
            edge.metrics.read_labels(edge.labels, await edge.db.read(label_counts))
        return Response(edge.metrics.render(), media_type="text/plain; version=0.0.4")

    mount_pages(api)
    count_requests(api, edge.metrics)
    return api


def kiosk_routes(edge: EdgeApp) -> APIRouter:
    router = APIRouter(responses=ERRORS)
    lockers = edge.lockers

    @router.post("/courier/sessions", status_code=201)
    async def courier_sign_in(body: CourierLogin, terminal: Terminal) -> CourierSessionOut:
        session = await lockers.courier_login(terminal, body.courier_id, body.credential)
        return CourierSessionOut(
            token=session.token,
            courier_id=session.courier_id,
            courier_name=session.courier_name,
            expires_in_s=lockers.rules.courier_session_s,
        )

    @router.delete("/courier/sessions/current", status_code=204)
    async def courier_sign_out(courier: Courier) -> None:
        lockers.courier_logout(courier.token)

    @router.get("/sizes")
    async def sizes(_terminal: Terminal) -> list[SizeAvailability]:
        def count(s: Session) -> list[SizeAvailability]:
            # Every size the site has, with 0 where none is free: the screen shows it as full.
            offered = and_(
                col(Compartment.state) == CompartmentState.FREE,
                col(Compartment.enabled).is_(True),
            )
            rows = s.exec(
                select(
                    Compartment.zone,
                    Compartment.size,
                    func.sum(case((offered, 1), else_=0)),
                )
                .group_by(Compartment.zone, Compartment.size)
                .order_by(Compartment.zone, Compartment.size)
            ).all()
            return [SizeAvailability(zone=z, size=sz, free=int(n or 0)) for z, sz, n in rows]

        return await edge.db.read(count)

    @router.post("/deposits", status_code=201)
    async def deposit(body: DepositRequest, courier: Courier) -> OpenedOut:
        """Unlock the smallest free compartment that fits; answers once the door is open."""
        door = await lockers.start_deposit(
            courier.courier_id, body.parcel_code, body.size, body.zone
        )
        return _opened(door)

    @router.post("/deposits/{operation_id}/cancel", status_code=204)
    async def cancel_deposit(operation_id: str, courier: Courier) -> None:
        await lockers.cancel_deposit(operation_id, courier.courier_id)

    @router.get("/operations/{operation_id}")
    async def operation(
        operation_id: str,
        _terminal: Terminal,
        wait: Annotated[float, Query(ge=0, le=60)] = 0,
    ) -> OperationOut:
        """An operation's state; ``wait`` long-polls until it completes. A completed deposit
        carries its pickup code for a short while, for the kiosk to show."""
        view = await lockers.wait_operation(operation_id, wait_s=wait)
        return OperationOut(
            id=view.id,
            kind=view.kind,
            state=view.state,
            compartment=view.compartment_id,
            parcel_id=view.parcel_id,
            pickup_code=view.pickup_code,
        )

    @router.post("/pickups", status_code=201)
    async def pickup(body: PickupRequest, terminal: Terminal) -> OpenedOut:
        return _opened(await lockers.start_pickup(terminal, body.code))

    @router.get("/returns")
    async def returns(_courier: Courier) -> list[ParcelOut]:
        return [
            ParcelOut.model_validate(p, from_attributes=True)
            for p in await lockers.expired_parcels()
        ]

    @router.post("/returns", status_code=201)
    async def collect_return(body: ReturnRequest, courier: Courier) -> OpenedOut:
        return _opened(await lockers.start_return(courier.courier_id, body.parcel_id))

    return router


def operator_routes(edge: EdgeApp) -> APIRouter:
    router = APIRouter(responses=ERRORS)
    lockers = edge.lockers

    @router.get("/compartments")
    async def compartments(_op: Operator) -> list[CompartmentOut]:
        rows = await edge.db.read(
            lambda s: s.exec(select(Compartment).order_by(col(Compartment.id))).all()
        )
        return [CompartmentOut.model_validate(r, from_attributes=True) for r in rows]

    @router.post("/compartments/{compartment_id}/open", status_code=201)
    async def open_compartment(
        compartment_id: str, body: OpenRequest, actor: Operator
    ) -> OpenedOut:
        return _opened(await lockers.operator_open(compartment_id, body.reason, actor))

    @router.post("/compartments/{compartment_id}/disable")
    async def disable(compartment_id: str, actor: Operator) -> CompartmentOut:
        comp = await lockers.set_enabled(compartment_id, False, actor)
        return CompartmentOut.model_validate(comp, from_attributes=True)

    @router.post("/compartments/{compartment_id}/enable")
    async def enable(compartment_id: str, actor: Operator) -> CompartmentOut:
        comp = await lockers.set_enabled(compartment_id, True, actor)
        return CompartmentOut.model_validate(comp, from_attributes=True)

    @router.get("/parcels")
    async def parcels(
        _op: Operator, state: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 200
    ) -> list[ParcelOut]:
        def load(s: Session) -> list[ParcelOut]:
            query = select(Parcel).order_by(col(Parcel.updated_at).desc()).limit(limit)
            if state:
                query = query.where(Parcel.state == state)
            return [ParcelOut.model_validate(p, from_attributes=True) for p in s.exec(query)]

        return await edge.db.read(load)

    @router.post("/parcels/expected", status_code=201)
    async def expect(body: ExpectRequest, _op: Operator) -> ParcelOut:
        parcel = await lockers.expect_parcel(body.code, body.size, body.zone, body.recipient)
        return ParcelOut.model_validate(parcel, from_attributes=True)

    @router.get("/events")
    async def events(
        _op: Operator, after_seq: int = 0, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[EventOut]:
        site = edge.config.site.id

        def load(s: Session) -> list[EventOut]:
            acked = outbox_position(s).acked
            rows = s.exec(
                select(OutboxEvent)
                .where(OutboxEvent.seq > after_seq)
                .order_by(col(OutboxEvent.seq))
                .limit(limit)
            ).all()
            return [
                EventOut(**envelope_of(r, site).as_dict(), delivered=r.seq <= acked) for r in rows
            ]

        return await edge.db.read(load)

    @router.get("/devices")
    async def devices(_op: Operator) -> list[DeviceOut]:
        return [
            DeviceOut(
                name=d.name, kind=d.kind, available=d.available, reason=d.reason, since=d.since
            )
            for d in edge.health.devices.values()
        ]

    return router

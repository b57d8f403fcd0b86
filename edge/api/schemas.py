"""Request and response bodies of the local HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = {}


class ErrorResponse(BaseModel):
    error: ErrorBody


class CourierLogin(BaseModel):
    courier_id: str = Field(min_length=1, max_length=64)
    credential: str = Field(min_length=1, max_length=256)


class CourierSessionOut(BaseModel):
    token: str
    courier_id: str
    courier_name: str
    expires_in_s: float


class DepositRequest(BaseModel):
    parcel_code: str = Field(min_length=1, max_length=128)
    size: str | None = None
    """Needed unless upstream announced the parcel with ``parcel.expect``."""
    zone: str | None = None


class PickupRequest(BaseModel):
    code: str = Field(min_length=1, max_length=32)


class ReturnRequest(BaseModel):
    parcel_id: str


class OpenedOut(BaseModel):
    operation_id: str
    compartment: str
    kind: str
    state: str = "open"


class OperationOut(BaseModel):
    id: str
    kind: str
    state: str
    compartment: str
    parcel_id: str | None
    pickup_code: str | None = None


class SizeAvailability(BaseModel):
    zone: str
    size: str
    free: int


class CompartmentOut(BaseModel):
    id: str
    bus: str
    board: int
    lock: int
    size: str
    zone: str
    enabled: bool
    state: str
    fault: str | None
    door_open: bool | None
    parcel_id: str | None


class ParcelOut(BaseModel):
    id: str
    code: str
    state: str
    size: str | None
    zone: str
    compartment_id: str | None
    courier_id: str | None
    deposited_at: datetime | None
    expires_at: datetime | None


class OpenRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class ExpectRequest(BaseModel):
    code: str = Field(min_length=1, max_length=128)
    size: str | None = None
    zone: str = "ambient"
    recipient: str | None = Field(default=None, max_length=200)


class DeviceOut(BaseModel):
    name: str
    kind: str
    available: bool | None
    reason: str | None
    since: str | None


class EventOut(BaseModel):
    id: str
    seq: int
    type: str
    ts: str
    site: str
    data: dict[str, Any]
    delivered: bool

"""The tables the controller keeps. Schema changes go through a migration in ``migrations/``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, UniqueConstraint
from sqlalchemy.types import JSON
from sqlmodel import Field, SQLModel


class Compartment(SQLModel, table=True):
    """One locker door. Hardware placement comes from the configuration; state lives here."""

    __table_args__ = (UniqueConstraint("bus", "board", "lock"),)

    id: str = Field(primary_key=True)
    bus: str
    board: int
    lock: int
    size: str
    zone: str
    enabled: bool = True
    state: str = Field(index=True)
    parcel_id: str | None = Field(default=None, foreign_key="parcel.id")
    fault: str | None = None
    door_open: bool | None = None
    """Last door state seen from the board; None until the board was read."""
    updated_at: datetime


class Parcel(SQLModel, table=True):
    __table_args__ = (Index("ix_parcel_code_state", "code", "state"),)

    id: str = Field(primary_key=True)
    code: str
    """The carrier's tracking code, as scanned."""
    state: str = Field(index=True)
    size: str | None = None
    zone: str
    courier_id: str | None = None
    compartment_id: str | None = None
    pickup_code_hash: str | None = Field(default=None, unique=True)
    recipient: str | None = None
    expected_at: datetime | None = None
    deposited_at: datetime | None = None
    expires_at: datetime | None = Field(default=None, index=True)
    picked_up_at: datetime | None = None
    returned_at: datetime | None = None
    updated_at: datetime


class Courier(SQLModel, table=True):
    id: str = Field(primary_key=True)
    name: str = ""
    credential_hash: str
    active: bool = True
    source: str = "config"
    updated_at: datetime


class DoorOperation(SQLModel, table=True):
    """An unlock the controller commanded, from the command to the door closing again."""

    id: str = Field(primary_key=True)
    compartment_id: str = Field(foreign_key="compartment.id", index=True)
    kind: str
    state: str = Field(index=True)
    parcel_id: str | None = Field(default=None, foreign_key="parcel.id")
    actor: str
    reason: str | None = None
    prior_state: str
    commanded_at: datetime
    opened_at: datetime | None = None
    closed_at: datetime | None = None


class OutboxEvent(SQLModel, table=True):
    """An event waiting for (or past) upstream delivery; written with the change it reports.

    Delivery is a cursor, not a column: events go upstream in ``seq`` order, so the counter
    ``outbox_acked`` (the highest ``seq`` the broker acknowledged) says which are delivered.
    """

    __tablename__ = "outbox_event"

    seq: int = Field(primary_key=True)
    id: str = Field(unique=True)
    type: str
    ts: str
    data: dict[str, object] = Field(sa_column=Column(JSON, nullable=False))


class Counter(SQLModel, table=True):
    """Named monotonic counters: the outbox ``seq`` (incremented inside the writing transaction)
    and ``outbox_acked``, the delivery cursor."""

    name: str = Field(primary_key=True)
    value: int


class CodeAttempts(SQLModel, table=True):
    """Wrong-code bookkeeping per terminal and kind of code: a restart does not lift a lockout."""

    __tablename__ = "code_attempts"

    key: str = Field(primary_key=True)
    failures: int = 0
    window_started_at: datetime | None = None
    locked_until: datetime | None = None
    lockouts: int = 0


class CommandReceipt(SQLModel, table=True):
    """A verified downlink command: remembered until it expires, so a replay is recognised, and
    written in the same transaction as its effect, so a restart never applies it twice."""

    __tablename__ = "command_receipt"

    id: str = Field(primary_key=True)
    type: str
    key_id: str
    received_at: datetime
    expires_at: datetime = Field(index=True)
    status: str
    """``applying`` while a command with effects outside the database runs; then its result."""
    error_code: str | None = None
    error_message: str | None = None
    finished_at: datetime | None = None


class Product(SQLModel, table=True):
    """A product the site sells, by GTIN-14; maintained upstream through ``catalog.upsert``."""

    gtin: str = Field(primary_key=True)
    name: str
    name_en: str | None = None
    unit: str | None = None
    size: str | None = None
    updated_at: datetime


class Price(SQLModel, table=True):
    """One version of a product's price. The price in force at an instant is the version with
    the latest ``effective_at`` not after it (the higher version on a tie)."""

    __table_args__ = (Index("ix_price_gtin_effective", "gtin", "effective_at"),)

    gtin: str = Field(primary_key=True)
    version: int = Field(primary_key=True)
    amount: int
    """Minor units (fen, cents)."""
    currency: str
    effective_at: datetime
    updated_at: datetime


class CabinetStock(SQLModel, table=True):
    """The tags a cabinet held after its last settled session (or restock)."""

    __tablename__ = "cabinet_stock"

    cabinet_id: str = Field(primary_key=True)
    epc: str = Field(primary_key=True)
    gtin: str | None = None
    since: datetime


class CabinetSession(SQLModel, table=True):
    """One opening of a cabinet door, from authorisation to a settled (or held) result."""

    __tablename__ = "cabinet_session"

    id: str = Field(primary_key=True)
    cabinet_id: str = Field(index=True)
    kind: str
    """``purchase`` (a shopper) or ``restock`` (an operator filling the cabinet)."""
    state: str = Field(index=True)
    member_id: str | None = None
    member_source: str | None = None
    actor: str
    created_at: datetime
    door_opened_at: datetime | None = None
    door_closed_at: datetime | None = None
    price_at: datetime | None = None
    """The instant whose prices apply: when the door opened (authorisation if it never did)."""
    before: list[str] = Field(sa_column=Column(JSON, nullable=False))
    """EPCs present before the door opened."""
    after: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    order_id: str | None = None
    hold_reason: str | None = None
    settled_at: datetime | None = None
    verification_id: str | None = None
    """The face verification that identified the shopper (``member_source`` face)."""
    updated_at: datetime


class SalesOrder(SQLModel, table=True):
    __tablename__ = "sales_order"

    id: str = Field(primary_key=True)
    session_id: str = Field(unique=True)
    """One order per session at most: a session settled twice cannot charge twice."""
    cabinet_id: str
    member_id: str | None = None
    state: str
    currency: str
    total: int
    created_at: datetime


class OrderLine(SQLModel, table=True):
    __tablename__ = "order_line"

    order_id: str = Field(primary_key=True, foreign_key="sales_order.id")
    line: int = Field(primary_key=True)
    epc: str = Field(index=True)
    gtin: str
    name: str
    price_version: int
    amount: int
    """What was charged: the lower of the price in force and any price a label still showed."""
    regular_amount: int | None = None
    """The price version's amount, where a promotion or a label's older price made it lower."""
    promotion_id: str | None = None
    promotion_version: int | None = None
    price_source: str = "catalog"
    """``catalog`` (the price in force) or ``label`` (a lower price a shelf label still showed)."""


class PaymentRequest(SQLModel, table=True):
    __tablename__ = "payment_request"
    # The offline caps sum a member's payments of the day.
    __table_args__ = (Index("ix_payment_request_member_decided", "member_id", "decided_at"),)

    id: str = Field(primary_key=True)
    order_id: str = Field(unique=True, foreign_key="sales_order.id")
    member_id: str | None = None
    method: str
    amount: int
    currency: str
    state: str
    """``pending``, then ``authorized`` or ``declined`` (face payments decide on the device)."""
    created_at: datetime
    verification_id: str | None = None
    mode: str | None = None
    """``online`` or ``offline``: whether upstream was reachable when the payment was decided."""
    decline_reason: str | None = None
    decided_at: datetime | None = None


class Member(SQLModel, table=True):
    """An enrolled face-payment member: the template only ever encrypted (AES-GCM), never a face
    image. Deleting the row erases the template (``secure_delete`` overwrites its pages)."""

    __tablename__ = "member"

    id: str = Field(primary_key=True)
    model: str
    """The recognizer the template was made with: templates of another model never match."""
    key_id: str
    nonce: bytes
    template: bytes
    """The sealed (encrypted and authenticated) embedding."""
    phone_digits_hash: str | None = None
    offline_limit: int | None = None
    """Largest single payment authorised for this member while upstream is unreachable."""
    consent: dict[str, object] = Field(sa_column=Column(JSON, nullable=False))
    enrolled_at: datetime
    updated_at: datetime


class FaceVerification(SQLModel, table=True):
    """The outcome of one face check at a terminal: who, how sure, and the liveness evidence.
    Scores and codes only: no frame, crop or template is kept."""

    __tablename__ = "face_verification"

    id: str = Field(primary_key=True)
    terminal: str
    member_id: str
    method: str
    """``1:N`` (the gallery alone) or ``1:1`` (after the shopper typed phone digits)."""
    score: float
    second_score: float | None = None
    liveness: dict[str, object] = Field(sa_column=Column(JSON, nullable=False))
    verified_at: datetime
    expires_at: datetime
    used_by: str | None = Field(default=None, unique=True)
    """The cabinet session it opened: one verification, one session."""


class Promotion(SQLModel, table=True):
    """One version of a promotion: a product's price lowered for a window. The latest version
    of an ``id`` is the one that counts (a later version may cancel it)."""

    __table_args__ = (Index("ix_promotion_gtin", "gtin"),)

    id: str = Field(primary_key=True)
    version: int = Field(primary_key=True)
    gtin: str
    amount: int
    """The promotional price (minor units); never above the regular price."""
    currency: str
    starts_at: datetime
    ends_at: datetime
    text: str | None = None
    """What the label says about it, e.g. 限时特价."""
    cancelled: bool = False
    updated_at: datetime


class Label(SQLModel, table=True):
    """An electronic shelf label bound (``label.bind``) to a product and a template."""

    id: str = Field(primary_key=True)
    """The label's address at its access point (its MAC, upper-case hex)."""
    gtin: str | None = Field(default=None, index=True)
    """None once unbound: the label is cleared and left alone."""
    template: str
    access_point: str
    bound_at: datetime
    updated_at: datetime


class LabelPush(SQLModel, table=True):
    """What a label should show, and how far delivering it has got. One row per label: a newer
    content replaces a push not yet delivered, so a label never shows an older price last."""

    __tablename__ = "label_push"
    __table_args__ = (Index("ix_label_push_due", "state", "effective_at"),)

    label_id: str = Field(primary_key=True)
    content_key: str
    """Hash of what the label shows: an unchanged content is never pushed again."""
    content: dict[str, object] = Field(sa_column=Column(JSON, nullable=False))
    effective_at: datetime
    """From when this content is right (the price change it shows); pushes go in this order."""
    state: str = Field(index=True)
    """``queued``, ``uploaded`` (waiting for the tag to fetch it), ``confirmed`` or ``failed``."""
    attempts: int = 0
    next_try_at: datetime | None = None
    upload_receipt: dict[str, object] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True)
    )
    """What the access point answered to the upload: how to tell when the label shows it."""
    uploaded_at: datetime | None = None
    deadline_at: datetime | None = None
    """No confirmation by then: ``label.failed``."""
    confirmed_at: datetime | None = None
    last_error: str | None = None
    shown: dict[str, object] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """The last content the label confirmed (its price), which may lag behind ``content``."""
    updated_at: datetime


class TemperatureMinute(SQLModel, table=True):
    """One sensor's readings over one minute, kept for the operator console's chart."""

    __tablename__ = "temperature_minute"

    sensor: str = Field(primary_key=True)
    minute: datetime = Field(primary_key=True, index=True)
    """The minute's start, UTC."""
    zone: str
    min_c: float
    max_c: float
    mean_c: float
    readings: int

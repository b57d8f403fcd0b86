"""The label push queue in the database: what each label should show, and how far it has got.

Every transition is one transaction, with its event where it has one (``label.updated`` when a
label confirmed its content, ``label.failed`` when it never did), so a restart resumes exactly
where the last run stopped: queued pushes are sent, uploaded ones are confirmed, and a label
that already confirmed is never sent again.

A transition names the content it is about (its key): a push replaced by newer content while it
was being sent is not marked delivered with the old one.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, func, select

from edge.catalog.prices import PriceBook, Quote
from edge.clock import as_utc
from edge.db import Transaction
from edge.db.tables import Label, LabelPush, Product
from edge.labels.content import content_key, content_record, label_content, shown_quote

QUEUED = "queued"
UPLOADED = "uploaded"
CONFIRMED = "confirmed"
FAILED = "failed"


@dataclass(frozen=True, slots=True)
class DuePush:
    label_id: str
    content_key: str
    content: dict[str, Any]
    template: str
    attempts: int
    deadline_at: datetime | None
    """Set by the first upload of this content: past it, the push fails instead of going."""


def plan(
    tx: Transaction,
    labels: Iterable[Label],
    prices: PriceBook,
    at: datetime,
    *,
    force: bool = False,
) -> int:
    """Queue a push for every label whose content at ``at`` differs from its last push (all of
    them with ``force``). Returns how many were queued.

    A push is ordered by the instant its price took effect, so price changes reach the labels
    in the order they happened."""
    s = tx.session
    labels = [label for label in labels if label.gtin is not None]
    if not labels:
        return 0
    ids = [label.id for label in labels]
    gtins = {label.gtin for label in labels}
    products = {
        p.gtin: p for p in s.exec(select(Product).where(col(Product.gtin).in_(gtins))).all()
    }
    pushes = {
        p.label_id: p
        for p in s.exec(select(LabelPush).where(col(LabelPush.label_id).in_(ids))).all()
    }
    queued = 0
    for label in labels:
        assert label.gtin is not None
        product = products.get(label.gtin)
        quote = prices.catalogue_quote(label.gtin, at)
        if product is None or quote is None:
            continue  # nothing to show yet: the label keeps what it shows
        record = content_record(label_content(product, quote), quote, label.template)
        key = content_key(record)
        push = pushes.get(label.id)
        if push is not None and push.content_key == key and not force:
            continue
        if push is None:
            push = LabelPush(
                label_id=label.id,
                content_key=key,
                content=record,
                effective_at=quote.effective_at,
                state=QUEUED,
                updated_at=at,
            )
        else:
            push.content_key, push.content = key, record
            push.effective_at = quote.effective_at
            push.state, push.attempts = QUEUED, 0
            push.next_try_at = push.upload_receipt = push.uploaded_at = None
            push.deadline_at = push.last_error = None
            push.updated_at = at
        s.add(push)
        queued += 1
    return queued


def due(session: Session, access_point: str, now: datetime, limit: int) -> list[DuePush]:
    """Queued pushes of one access point that may be sent now, earliest effective first."""
    rows = session.exec(
        select(LabelPush, Label.template)
        .join(Label, col(Label.id) == col(LabelPush.label_id))
        .where(
            Label.access_point == access_point,
            LabelPush.state == QUEUED,
            (col(LabelPush.next_try_at).is_(None)) | (col(LabelPush.next_try_at) <= now),
        )
        .order_by(col(LabelPush.effective_at), col(LabelPush.label_id))
        .limit(limit)
    ).all()
    return [
        DuePush(
            p.label_id, p.content_key, dict(p.content), template, p.attempts, as_utc(p.deadline_at)
        )
        for p, template in rows
    ]


def next_retry(session: Session, access_point: str) -> datetime | None:
    """When the earliest queued push held back by a retry delay may go."""
    value = session.exec(
        select(func.min(LabelPush.next_try_at))
        .join(Label, col(Label.id) == col(LabelPush.label_id))
        .where(Label.access_point == access_point, LabelPush.state == QUEUED)
    ).one()
    return as_utc(value)


def awaiting(session: Session, access_point: str) -> list[LabelPush]:
    """Uploaded pushes of one access point waiting for their label to show them."""
    return list(
        session.exec(
            select(LabelPush)
            .join(Label, col(Label.id) == col(LabelPush.label_id))
            .where(Label.access_point == access_point, LabelPush.state == UPLOADED)
        ).all()
    )


def _current(tx: Transaction, label_id: str, key: str) -> LabelPush | None:
    push = tx.session.get(LabelPush, label_id)
    return push if push is not None and push.content_key == key else None


def mark_uploaded(  # before the upload itself: see Deliverer._send
    tx: Transaction,
    label_id: str,
    key: str,
    receipt: dict[str, object],
    now: datetime,
    deadline: datetime,
) -> bool:
    push = _current(tx, label_id, key)
    if push is None or push.state != QUEUED:
        return False  # replaced by newer content meanwhile: that one goes next
    push.state, push.upload_receipt = UPLOADED, receipt
    push.uploaded_at, push.updated_at = now, now
    push.deadline_at = push.deadline_at or deadline  # from the first upload of this content
    push.attempts += 1
    push.last_error = None
    tx.session.add(push)
    return True


def retry_later(
    tx: Transaction, label_id: str, key: str, now: datetime, at: datetime, error: str
) -> None:
    """The access point did not take the push (busy, unreachable): send it again at ``at``."""
    push = _current(tx, label_id, key)
    if push is not None and push.state in (QUEUED, UPLOADED):
        push.state, push.next_try_at, push.last_error, push.updated_at = QUEUED, at, error, now
        push.upload_receipt = push.uploaded_at = None
        tx.session.add(push)


def requeue(
    tx: Transaction, label_id: str, key: str, now: datetime, retry_at: datetime, error: str
) -> bool:
    """The access point dropped an upload (it never became a transfer: paused, rebooted, or it
    could not convert it): send it again at ``retry_at``, within the same deadline."""
    push = _current(tx, label_id, key)
    if push is None or push.state != UPLOADED:
        return False
    push.state, push.last_error, push.updated_at = QUEUED, error, now
    push.next_try_at = retry_at
    push.upload_receipt = push.uploaded_at = None
    tx.session.add(push)
    return True


def mark_confirmed(tx: Transaction, label_id: str, key: str, now: datetime) -> Quote | None:
    """The label shows the push's content: ``label.updated``; returns the price it shows."""
    push = _current(tx, label_id, key)
    if push is None or push.state != UPLOADED:
        return None
    push.state, push.confirmed_at, push.updated_at = CONFIRMED, now, now
    push.shown = dict(push.content)
    tx.session.add(push)
    content = push.content
    tx.emit(
        "label.updated",
        {
            "label_id": label_id,
            "gtin": content["gtin"],
            "template": content["template"],
            "price_version": content["price_version"],
            "amount": content["price"],
            "currency": content["currency"],
            "promotion_id": content.get("promotion_id"),
            "content_key": key,
            "attempts": push.attempts,
        },
    )
    return shown_quote(push.shown)


def mark_failed(tx: Transaction, label_id: str, key: str, now: datetime, reason: str) -> bool:
    """The label never showed the push's content: ``label.failed`` (it shows what it showed)."""
    push = _current(tx, label_id, key)
    if push is None or push.state not in (QUEUED, UPLOADED):
        return False
    push.state, push.last_error, push.updated_at = FAILED, reason, now
    tx.session.add(push)
    tx.emit(
        "label.failed",
        {
            "label_id": label_id,
            "gtin": push.content["gtin"],
            "price_version": push.content["price_version"],
            "amount": push.content["price"],
            "reason": reason,
            "attempts": push.attempts,
            "shown_price_version": (push.shown or {}).get("price_version"),
        },
    )
    return True


def shown_prices(session: Session, gtins: Collection[str] | None = None) -> dict[str, list[Quote]]:
    """What each product's bound labels confirmed they show (the price book charges no more);
    of ``gtins`` only, if given."""
    query = (
        select(LabelPush.shown, Label.gtin)
        .join(Label, col(Label.id) == col(LabelPush.label_id))
        .where(col(LabelPush.shown).is_not(None), col(Label.gtin).is_not(None))
    )
    if gtins is not None:
        query = query.where(col(Label.gtin).in_(gtins))
    rows = session.exec(query).all()
    shown: dict[str, list[Quote]] = {}
    for record, gtin in rows:
        if record is not None and gtin is not None and record.get("gtin") == gtin:
            shown.setdefault(gtin, []).append(shown_quote(dict(record)))
    return shown


def counts(session: Session) -> dict[str, int]:
    """Pushes by state, of labels still bound."""
    rows = session.exec(
        select(LabelPush.state, func.count())
        .join(Label, col(Label.id) == col(LabelPush.label_id))
        .where(col(Label.gtin).is_not(None))
        .group_by(LabelPush.state)
    ).all()
    found = {QUEUED: 0, UPLOADED: 0, CONFIRMED: 0, FAILED: 0}
    found.update({state: n for state, n in rows})
    return found

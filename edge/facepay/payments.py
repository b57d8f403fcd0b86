"""Deciding face payments on the device: authorised or declined, online or offline.

An order paid by face leaves its payment request ``pending`` in the order's transaction. The
decision follows in a transaction of its own, which also writes ``payment.authorized`` or
``payment.declined``; it re-reads the request inside the transaction, so deciding twice (a
listener and the start-up sweep racing, or a restart after a power cut) decides once.

While upstream is reachable the device authorises within ``online_per_payment`` and upstream
captures. While it is not, money is at risk until the link returns, so a member's offline
payments are bounded one by one and per day, and the whole site per day.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from edge.clock import Clock, rfc3339
from edge.config.facepay import FacePayConfig
from edge.db import Database, Transaction
from edge.db.tables import FaceVerification, Member, PaymentRequest, SalesOrder

log = logging.getLogger(__name__)

FACE = "face"
PENDING, AUTHORIZED, DECLINED = "pending", "authorized", "declined"
ONLINE, OFFLINE = "online", "offline"

# Seconds the upstream link has been down, or None while it is up.
LinkDownFor = Callable[[], float | None]


@dataclass(frozen=True)
class Verdict:
    authorized: bool
    mode: str
    reason: str | None = None
    """Why declined: a stable code the kiosk and upstream both understand."""


@dataclass(frozen=True)
class OfflineUsage:
    member_today: int
    site_today: int


def judge(
    amount: int,
    *,
    member: Member | None,
    verified: bool,
    offline: bool,
    usage: OfflineUsage,
    config: FacePayConfig,
) -> Verdict:
    """The rules, free of I/O: which limit, if any, stops this payment."""
    mode = OFFLINE if offline else ONLINE
    if not verified:
        return Verdict(False, mode, "not_verified")
    if member is None:
        return Verdict(False, mode, "member_not_enrolled")  # removed since the face check
    if not offline:
        if amount > config.online_per_payment:
            return Verdict(False, mode, "over_payment_limit")
        return Verdict(True, mode)
    limits = config.offline
    per_payment = limits.per_payment
    if member.offline_limit is not None:
        per_payment = min(per_payment, member.offline_limit)
    if amount > per_payment:
        return Verdict(False, mode, "over_offline_limit")
    if usage.member_today + amount > limits.member_daily:
        return Verdict(False, mode, "member_daily_cap")
    if usage.site_today + amount > limits.site_daily:
        return Verdict(False, mode, "site_daily_cap")
    return Verdict(True, mode)


class PaymentDecider:
    def __init__(
        self,
        config: FacePayConfig,
        db: Database,
        clock: Clock,
        link_down_for: LinkDownFor,
    ) -> None:
        self.config = config
        self.db = db
        self.clock = clock
        self.link_down_for = link_down_for
        self.decided: dict[str, int] = {}
        """Counts by ``authorized|declined:mode`` (metrics)."""

    def upstream_unreachable(self) -> bool:
        down = self.link_down_for()
        return down is not None and down >= self.config.offline.unreachable_after_s

    async def decide_pending(self) -> int:
        """Decide every pending face payment (after an order, and at start-up)."""

        def pending(s: Session) -> list[str]:
            rows = s.exec(
                select(PaymentRequest.id).where(
                    PaymentRequest.state == PENDING, PaymentRequest.method == FACE
                )
            ).all()
            return list(rows)

        decided = 0
        for payment_id in await self.db.read(pending):
            if await self.decide(payment_id) is not None:
                decided += 1
        return decided

    async def decide(self, payment_id: str) -> Verdict | None:
        offline = self.upstream_unreachable()
        now = self.clock.now()
        day_start = self._day_start(now)
        outcome = await self.db.transact(
            lambda tx: self._decide_in_tx(tx, payment_id, offline, now, day_start)
        )
        if outcome is not None:
            key = f"{'authorized' if outcome.authorized else 'declined'}:{outcome.mode}"
            self.decided[key] = self.decided.get(key, 0) + 1
        return outcome

    def _decide_in_tx(
        self,
        tx: Transaction,
        payment_id: str,
        offline: bool,
        now: datetime,
        day_start: datetime,
    ) -> Verdict | None:
        s = tx.session
        request = s.get(PaymentRequest, payment_id)
        if request is None or request.state != PENDING or request.method != FACE:
            return None  # already decided (or not ours to decide)
        member = s.get(Member, request.member_id) if request.member_id else None
        verification = (
            s.get(FaceVerification, request.verification_id) if request.verification_id else None
        )
        order = s.get(SalesOrder, request.order_id)
        # The verification that opened this order's own session, for this member: no other.
        verified = (
            verification is not None
            and order is not None
            and verification.member_id == request.member_id
            and verification.used_by == order.session_id
        )
        usage = _offline_usage(s, request.member_id, day_start)
        verdict = judge(
            request.amount,
            member=member,
            verified=verified,
            offline=offline,
            usage=usage,
            config=self.config,
        )
        request.state = AUTHORIZED if verdict.authorized else DECLINED
        request.mode = verdict.mode
        request.decline_reason = verdict.reason
        request.decided_at = now
        s.add(request)
        if order is not None:
            order.state = "payment_authorized" if verdict.authorized else "payment_declined"
            s.add(order)
        data: dict[str, Any] = {
            "payment_id": request.id,
            "order_id": request.order_id,
            "member_id": request.member_id,
            "method": FACE,
            "amount": request.amount,
            "currency": request.currency,
            "mode": verdict.mode,
            "decided_at": rfc3339(now),
            "verification": _evidence(verification),
        }
        if verdict.mode == OFFLINE:
            data["offline_usage"] = {
                "member_today": usage.member_today + (request.amount if verdict.authorized else 0),
                "site_today": usage.site_today + (request.amount if verdict.authorized else 0),
            }
        if verdict.authorized:
            tx.emit("payment.authorized", data)
        else:
            # Face payment is never the only way to pay: the order stays payable otherwise.
            tx.emit("payment.declined", {**data, "reason": verdict.reason, "fallback": ["qr"]})
        log.info(
            "face payment authorized" if verdict.authorized else "face payment declined",
            extra={
                "payment": request.id,
                "order": request.order_id,
                "member": request.member_id,
                "amount": request.amount,
                "mode": verdict.mode,
                "reason": verdict.reason,
            },
        )
        return verdict

    def _day_start(self, now: datetime) -> datetime:
        """The last midnight (local or UTC, as configured) that resets the daily caps, in UTC."""
        if self.config.day_boundary == "utc":
            return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        local = now.astimezone()
        # A naive local midnight, then its own offset: on a DST change day midnight's offset
        # differs from now's.
        return datetime(local.year, local.month, local.day).astimezone().astimezone(UTC)


def _offline_usage(s: Session, member_id: str | None, day_start: datetime) -> OfflineUsage:
    since = day_start  # aware UTC, as every stored instant
    authorized_offline = (
        (col(PaymentRequest.state) == AUTHORIZED)
        & (col(PaymentRequest.mode) == OFFLINE)
        & (col(PaymentRequest.decided_at) >= since)
    )
    site = s.exec(
        select(func.coalesce(func.sum(PaymentRequest.amount), 0)).where(authorized_offline)
    ).one()
    member = 0
    if member_id is not None:
        member = s.exec(
            select(func.coalesce(func.sum(PaymentRequest.amount), 0)).where(
                authorized_offline & (col(PaymentRequest.member_id) == member_id)
            )
        ).one()
    return OfflineUsage(member_today=int(member), site_today=int(site))


def _evidence(verification: FaceVerification | None) -> dict[str, Any] | None:
    """What the face check found: scores and liveness codes, never an image or a template."""
    if verification is None:
        return None
    return {
        "id": verification.id,
        "terminal": verification.terminal,
        "method": verification.method,
        "score": round(verification.score, 4),
        "second_score": (
            round(verification.second_score, 4) if verification.second_score is not None else None
        ),
        "liveness": verification.liveness,
    }

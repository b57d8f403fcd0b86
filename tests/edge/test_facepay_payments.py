"""Face payments decided on the device: the pure rules (``judge``) and ``PaymentDecider`` on a
real SQLite database, with its events read back from the outbox.

The upstream link is the one input faked here: a callable saying how long it has been down,
which is exactly what the decider is given in production.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from edge.clock import ManualClock, rfc3339
from edge.config.facepay import FacePayConfig, OfflineLimits
from edge.db import Database, Transaction, upgrade_to_head
from edge.db.tables import FaceVerification, Member, OutboxEvent, PaymentRequest, SalesOrder
from edge.facepay.payments import OfflineUsage, PaymentDecider, Verdict, judge

SITE = "facepay-site"
START = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
DAY = 24 * 3600.0
LIMITS = OfflineLimits(
    per_payment=1_000, member_daily=2_500, site_daily=4_000, unreachable_after_s=10.0
)
ONLINE_LIMIT = 5_000
# What the member row holds instead of a template: it must never reach an event.
SEALED = b"SEALED-TEMPLATE-CIPHERTEXT"
LIVENESS: dict[str, object] = {"steps": ["blink", "turn_left"], "reaction_s": [0.41, 0.52]}
DOWN_LONG = 60.0  # well past LIMITS.unreachable_after_s


def facepay_config(**changes: Any) -> FacePayConfig:
    settings: dict[str, Any] = {
        # The decider never opens the key file: any path will do.
        "template_key_file": Path("unused-template.key"),
        "offline": LIMITS,
        "online_per_payment": ONLINE_LIMIT,
        "day_boundary": "utc",  # deterministic whatever the test machine's time zone
        **changes,
    }
    return FacePayConfig(**settings)


def member_row(member_id: str = "alice", offline_limit: int | None = None) -> Member:
    return Member(
        id=member_id,
        model="sface-2021dec-int8bq",
        key_id="key-1",
        nonce=b"0123456789ab",
        template=SEALED,
        phone_digits_hash=None,
        offline_limit=offline_limit,
        consent={"version": "1", "accepted_at": "2025-12-01T00:00:00Z"},
        enrolled_at=START - timedelta(days=30),
        updated_at=START - timedelta(days=30),
    )


# -- judge: the rules alone -------------------------------------------------------------------

NO_USAGE = OfflineUsage(member_today=0, site_today=0)


def judged(
    amount: int,
    *,
    member: Member | None = None,
    verified: bool = True,
    offline: bool = False,
    usage: OfflineUsage = NO_USAGE,
    unenrolled: bool = False,
) -> Verdict:
    return judge(
        amount,
        member=None if unenrolled else (member or member_row()),
        verified=verified,
        offline=offline,
        usage=usage,
        config=facepay_config(),
    )


@pytest.mark.parametrize("offline", [False, True])
def test_judge_declines_an_unverified_face_before_anything_else(offline: bool) -> None:
    mode = "offline" if offline else "online"
    assert judged(1, verified=False, offline=offline) == Verdict(False, mode, "not_verified")
    # Even a removed member: the face check itself failed first.
    assert judged(1, verified=False, offline=offline, unenrolled=True).reason == "not_verified"


@pytest.mark.parametrize("offline", [False, True])
def test_judge_declines_a_member_no_longer_enrolled(offline: bool) -> None:
    mode = "offline" if offline else "online"
    verdict = judged(1, offline=offline, unenrolled=True)
    assert verdict == Verdict(False, mode, "member_not_enrolled")


def test_judge_online_authorises_up_to_the_online_limit_inclusive() -> None:
    assert judged(ONLINE_LIMIT) == Verdict(True, "online", None)
    assert judged(ONLINE_LIMIT + 1) == Verdict(False, "online", "over_payment_limit")


def test_judge_online_ignores_every_offline_limit() -> None:
    spent = OfflineUsage(member_today=LIMITS.member_daily, site_today=LIMITS.site_daily)
    frugal = member_row(offline_limit=1)
    verdict = judged(LIMITS.per_payment + 1, member=frugal, usage=spent)
    assert verdict == Verdict(True, "online", None)


def test_judge_offline_authorises_up_to_the_per_payment_limit_inclusive() -> None:
    assert judged(LIMITS.per_payment, offline=True) == Verdict(True, "offline", None)
    over = judged(LIMITS.per_payment + 1, offline=True)
    assert over == Verdict(False, "offline", "over_offline_limit")


def test_judge_offline_applies_the_members_own_lower_limit() -> None:
    frugal = member_row(offline_limit=600)
    assert judged(600, member=frugal, offline=True) == Verdict(True, "offline", None)
    assert judged(601, member=frugal, offline=True).reason == "over_offline_limit"


def test_judge_offline_a_members_higher_limit_does_not_raise_the_sites() -> None:
    generous = member_row(offline_limit=LIMITS.per_payment * 10)
    verdict = judged(LIMITS.per_payment + 1, member=generous, offline=True)
    assert verdict.reason == "over_offline_limit"


def test_judge_offline_member_daily_cap_inclusive() -> None:
    room = LIMITS.member_daily - 400
    up_to = judged(400, offline=True, usage=OfflineUsage(member_today=room, site_today=room))
    assert up_to == Verdict(True, "offline", None)
    over = judged(401, offline=True, usage=OfflineUsage(member_today=room, site_today=room))
    assert over == Verdict(False, "offline", "member_daily_cap")


def test_judge_offline_site_daily_cap_inclusive() -> None:
    room = LIMITS.site_daily - 400
    up_to = judged(400, offline=True, usage=OfflineUsage(member_today=0, site_today=room))
    assert up_to == Verdict(True, "offline", None)
    over = judged(401, offline=True, usage=OfflineUsage(member_today=0, site_today=room))
    assert over == Verdict(False, "offline", "site_daily_cap")


def test_judge_offline_checks_per_payment_then_member_then_site() -> None:
    spent = OfflineUsage(member_today=LIMITS.member_daily, site_today=LIMITS.site_daily)
    assert judged(LIMITS.per_payment + 1, offline=True, usage=spent).reason == (
        "over_offline_limit"
    )
    assert judged(1, offline=True, usage=spent).reason == "member_daily_cap"


# -- PaymentDecider on a real database --------------------------------------------------------


class Link:
    """The broker link as the decider sees it: None while up, else seconds it has been down."""

    def __init__(self) -> None:
        self.down_for: float | None = None

    def __call__(self) -> float | None:
        return self.down_for


@dataclass(frozen=True)
class Placed:
    order_id: str
    payment_id: str
    verification_id: str | None


class Shop:
    """Seeds what a closed cabinet session leaves behind, and reads back what was decided."""

    def __init__(self, db: Database, clock: ManualClock) -> None:
        self.db = db
        self.clock = clock
        self._orders = 0

    async def enrol(self, member_id: str, *, offline_limit: int | None = None) -> None:
        def add(tx: Transaction) -> None:
            tx.session.add(member_row(member_id, offline_limit))

        await self.db.transact(add)

    async def remove(self, member_id: str) -> None:
        def delete(tx: Transaction) -> None:
            row = tx.session.get(Member, member_id)
            assert row is not None
            tx.session.delete(row)

        await self.db.transact(delete)

    async def order(
        self,
        member_id: str,
        amount: int,
        *,
        method: str = "face",
        verified_as: str | None = "",
        score: float = 0.81234567,
    ) -> Placed:
        """An order with its pending payment; ``verified_as`` is whom the face check found
        (the paying member by default, None for no verification at all)."""
        self._orders += 1
        n = self._orders
        order_id, payment_id, session_id = f"order-{n}", f"pay-{n}", f"session-{n}"
        verified = member_id if verified_as == "" else verified_as
        verification_id = f"ver-{n}" if verified is not None else None
        now = self.clock.now()

        def add(tx: Transaction) -> None:
            s = tx.session
            s.add(
                SalesOrder(
                    id=order_id,
                    session_id=session_id,
                    cabinet_id="cab-1",
                    member_id=member_id,
                    state="created",
                    currency="EUR",
                    total=amount,
                    created_at=now,
                )
            )
            if verified is not None:
                s.add(
                    FaceVerification(
                        id=f"ver-{n}",
                        terminal="term-1",
                        member_id=verified,
                        method="1:N",
                        score=score,
                        second_score=0.3,
                        liveness=LIVENESS,
                        verified_at=now,
                        expires_at=now + timedelta(seconds=120),
                        used_by=session_id,
                    )
                )
            s.flush()  # the payment refers to the order
            s.add(
                PaymentRequest(
                    id=payment_id,
                    order_id=order_id,
                    member_id=member_id,
                    method=method,
                    amount=amount,
                    currency="EUR",
                    state="pending",
                    created_at=now,
                    verification_id=verification_id,
                )
            )

        await self.db.transact(add)
        return Placed(order_id, payment_id, verification_id)

    async def payment(self, payment_id: str) -> PaymentRequest:
        row = await self.db.read(lambda s: s.get(PaymentRequest, payment_id))
        assert row is not None
        return row

    async def order_state(self, order_id: str) -> str:
        row = await self.db.read(lambda s: s.get(SalesOrder, order_id))
        assert row is not None
        return row.state

    async def payment_events(self) -> list[OutboxEvent]:
        def read(s: Any) -> list[OutboxEvent]:
            query = (
                select(OutboxEvent)
                .where(col(OutboxEvent.type).startswith("payment."))
                .order_by(col(OutboxEvent.seq))
            )
            return list(s.exec(query).all())

        return await self.db.read(read)

    async def event_for(self, payment_id: str) -> OutboxEvent:
        events = [e for e in await self.payment_events() if e.data["payment_id"] == payment_id]
        assert len(events) == 1, f"expected one event for {payment_id}, got {events}"
        return events[0]


def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite keeps the UTC wall time and drops the zone: put it back to compare."""
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def keys_everywhere(value: object) -> Iterator[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield str(key)
            yield from keys_everywhere(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from keys_everywhere(inner)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def db(tmp_path: Path, clock: ManualClock) -> Iterator[Database]:
    database = Database(tmp_path / "edge.db", SITE, clock)
    upgrade_to_head(database.engine)
    yield database
    database.close()


@pytest.fixture
def link() -> Link:
    return Link()


@pytest.fixture
def decider(db: Database, clock: ManualClock, link: Link) -> PaymentDecider:
    return PaymentDecider(facepay_config(), db, clock, link)


@pytest.fixture
async def shop(db: Database, clock: ManualClock) -> Shop:
    seeded = Shop(db, clock)
    for member in ("alice", "bob", "carol", "dave"):
        await seeded.enrol(member)
    return seeded


async def test_link_up_authorises_online_with_the_verification_as_evidence(
    shop: Shop, decider: PaymentDecider, clock: ManualClock
) -> None:
    placed = await shop.order("alice", 2_345)
    clock.advance(5)  # decided a little after the order was written

    verdict = await decider.decide(placed.payment_id)

    assert verdict == Verdict(True, "online", None)
    payment = await shop.payment(placed.payment_id)
    assert (payment.state, payment.mode, payment.decline_reason) == ("authorized", "online", None)
    assert as_utc(payment.decided_at) == START + timedelta(seconds=5)
    assert await shop.order_state(placed.order_id) == "payment_authorized"

    event = await shop.event_for(placed.payment_id)
    assert event.type == "payment.authorized"
    assert event.data == {
        "payment_id": placed.payment_id,
        "order_id": placed.order_id,
        "member_id": "alice",
        "method": "face",
        "amount": 2_345,
        "currency": "EUR",
        "mode": "online",
        "decided_at": rfc3339(START + timedelta(seconds=5)),
        "verification": {
            "id": placed.verification_id,
            "terminal": "term-1",
            "method": "1:N",
            "score": 0.8123,  # rounded: evidence, not a fingerprint of the embedding
            "second_score": 0.3,
            "liveness": LIVENESS,
        },
    }
    assert decider.decided == {"authorized:online": 1}


async def test_no_template_reaches_the_payment_event(shop: Shop, decider: PaymentDecider) -> None:
    placed = await shop.order("alice", 100)
    await decider.decide(placed.payment_id)

    event = await shop.event_for(placed.payment_id)
    assert not [k for k in keys_everywhere(event.data) if "template" in k or "nonce" in k]
    text = json.dumps(event.data)
    for encoded in (SEALED.decode(), SEALED.hex(), base64.b64encode(SEALED).decode()):
        assert encoded not in text


async def test_online_over_the_online_limit_is_declined_with_a_fallback(
    shop: Shop, decider: PaymentDecider
) -> None:
    at_limit = await shop.order("alice", ONLINE_LIMIT)
    over = await shop.order("bob", ONLINE_LIMIT + 1)

    assert await decider.decide(at_limit.payment_id) == Verdict(True, "online", None)
    assert await decider.decide(over.payment_id) == Verdict(False, "online", "over_payment_limit")

    payment = await shop.payment(over.payment_id)
    assert (payment.state, payment.decline_reason) == ("declined", "over_payment_limit")
    assert await shop.order_state(over.order_id) == "payment_declined"
    event = await shop.event_for(over.payment_id)
    assert event.type == "payment.declined"
    assert event.data["reason"] == "over_payment_limit"
    assert event.data["fallback"] == ["qr"]  # face payment is never the only way to pay
    assert "offline_usage" not in event.data
    assert decider.decided == {"authorized:online": 1, "declined:online": 1}


@pytest.mark.parametrize(
    ("down_for", "unreachable"),
    [(None, False), (0.0, False), (9.9, False), (10.0, True), (DOWN_LONG, True)],
)
async def test_upstream_counts_as_unreachable_once_down_for_unreachable_after_s(
    shop: Shop, decider: PaymentDecider, link: Link, down_for: float | None, unreachable: bool
) -> None:
    link.down_for = down_for
    assert decider.upstream_unreachable() is unreachable

    placed = await shop.order("alice", 500)
    verdict = await decider.decide(placed.payment_id)
    assert verdict is not None
    assert verdict.mode == ("offline" if unreachable else "online")
    assert (await shop.payment(placed.payment_id)).mode == verdict.mode


async def test_link_down_long_authorises_offline_and_reports_the_days_usage(
    shop: Shop, decider: PaymentDecider, link: Link
) -> None:
    link.down_for = DOWN_LONG
    placed = await shop.order("alice", 700)

    assert await decider.decide(placed.payment_id) == Verdict(True, "offline", None)

    payment = await shop.payment(placed.payment_id)
    assert (payment.state, payment.mode) == ("authorized", "offline")
    event = await shop.event_for(placed.payment_id)
    assert event.type == "payment.authorized"
    assert event.data["mode"] == "offline"
    assert event.data["offline_usage"] == {"member_today": 700, "site_today": 700}
    evidence = event.data["verification"]
    assert isinstance(evidence, dict)
    assert evidence["id"] == placed.verification_id
    assert decider.decided == {"authorized:offline": 1}


async def test_offline_a_members_own_limit_declines_what_the_site_limit_allows(
    shop: Shop, decider: PaymentDecider, link: Link
) -> None:
    await shop.enrol("erin", offline_limit=600)
    link.down_for = DOWN_LONG
    over = await shop.order("erin", 601)
    at_limit = await shop.order("erin", 600)

    assert await decider.decide(over.payment_id) == Verdict(False, "offline", "over_offline_limit")
    assert await decider.decide(at_limit.payment_id) == Verdict(True, "offline", None)


async def test_offline_member_daily_cap_holds_across_orders_and_resets_the_next_day(
    shop: Shop, decider: PaymentDecider, link: Link, clock: ManualClock
) -> None:
    # Authorised online before the link dropped: upstream captured it, so it is no offline risk.
    online = await shop.order("alice", 3_000)
    assert await decider.decide(online.payment_id) == Verdict(True, "online", None)

    link.down_for = DOWN_LONG

    async def pay(amount: int) -> Verdict | None:
        clock.advance(60)
        return await decider.decide((await shop.order("alice", amount)).payment_id)

    assert await pay(1_000) == Verdict(True, "offline", None)  # 1,000 today
    assert await pay(1_000) == Verdict(True, "offline", None)  # 2,000
    assert await pay(600) == Verdict(False, "offline", "member_daily_cap")  # would be 2,600
    assert await pay(500) == Verdict(True, "offline", None)  # exactly 2,500: the cap, allowed
    assert await pay(1) == Verdict(False, "offline", "member_daily_cap")
    declined = (await shop.payment_events())[-1]
    assert declined.data["offline_usage"] == {"member_today": 2_500, "site_today": 2_500}

    # Another member is not held by alice's cap.
    clock.advance(60)
    bob = await shop.order("bob", 1_000)
    assert await decider.decide(bob.payment_id) == Verdict(True, "offline", None)

    clock.advance(DAY)
    assert await pay(1_000) == Verdict(True, "offline", None)
    fresh = (await shop.payment_events())[-1]
    assert fresh.data["offline_usage"] == {"member_today": 1_000, "site_today": 1_000}


async def test_offline_daily_caps_reset_at_midnight_utc(
    db: Database, link: Link, shop: Shop
) -> None:
    late = ManualClock(datetime(2026, 1, 1, 23, 59, 0, tzinfo=UTC))
    decider = PaymentDecider(facepay_config(), db, late, link)
    shop.clock = late
    link.down_for = DOWN_LONG

    async def pay(amount: int) -> Verdict | None:
        return await decider.decide((await shop.order("alice", amount)).payment_id)

    for _ in range(2):
        assert await pay(1_000) == Verdict(True, "offline", None)
    late.advance(59)  # 23:59:59, still the same day
    assert await pay(1_000) == Verdict(False, "offline", "member_daily_cap")
    late.advance(1)  # midnight
    assert await pay(1_000) == Verdict(True, "offline", None)


async def test_offline_site_daily_cap_holds_across_members(
    shop: Shop, decider: PaymentDecider, link: Link, clock: ManualClock
) -> None:
    link.down_for = DOWN_LONG

    async def pay(member: str, amount: int) -> Verdict | None:
        clock.advance(60)
        return await decider.decide((await shop.order(member, amount)).payment_id)

    for member in ("alice", "bob"):
        for _ in range(2):
            assert await pay(member, 1_000) == Verdict(True, "offline", None)
    # The site has 4,000 of 4,000 offline today; carol has spent nothing.
    assert await pay("carol", 1) == Verdict(False, "offline", "site_daily_cap")
    declined = (await shop.payment_events())[-1]
    assert declined.data["offline_usage"] == {"member_today": 0, "site_today": 4_000}

    # Online the site cap does not apply: upstream captures those payments itself.
    link.down_for = None
    assert await pay("carol", 1_000) == Verdict(True, "online", None)

    link.down_for = DOWN_LONG
    clock.advance(DAY)
    assert await pay("carol", 1_000) == Verdict(True, "offline", None)


async def test_the_same_payment_decided_twice_at_once_is_decided_once(
    shop: Shop, decider: PaymentDecider, clock: ManualClock
) -> None:
    placed = await shop.order("alice", 1_200)

    verdicts = await asyncio.gather(
        decider.decide(placed.payment_id), decider.decide(placed.payment_id)
    )
    assert sorted(verdicts, key=lambda v: v is None) == [Verdict(True, "online", None), None]
    decided_at = (await shop.payment(placed.payment_id)).decided_at

    clock.advance(30)
    assert await decider.decide_pending() == 0  # the start-up sweep finds nothing left
    assert await decider.decide(placed.payment_id) is None

    events = await shop.payment_events()
    assert [(e.type, e.data["payment_id"]) for e in events] == [
        ("payment.authorized", placed.payment_id)
    ]
    assert (await shop.payment(placed.payment_id)).decided_at == decided_at
    assert decider.decided == {"authorized:online": 1}


async def test_a_listener_and_the_sweep_racing_decide_each_payment_once(
    shop: Shop, decider: PaymentDecider
) -> None:
    placed = [await shop.order(member, 300) for member in ("alice", "bob", "carol")]

    swept, single = await asyncio.gather(
        decider.decide_pending(), decider.decide(placed[1].payment_id)
    )

    assert swept + (single is not None) == 3
    events = await shop.payment_events()
    assert sorted(str(e.data["payment_id"]) for e in events) == sorted(p.payment_id for p in placed)
    assert decider.decided == {"authorized:online": 3}


async def test_a_verification_of_another_member_is_declined_not_verified(
    shop: Shop, decider: PaymentDecider
) -> None:
    placed = await shop.order("alice", 500, verified_as="bob")

    assert await decider.decide(placed.payment_id) == Verdict(False, "online", "not_verified")

    assert (await shop.payment(placed.payment_id)).decline_reason == "not_verified"
    assert await shop.order_state(placed.order_id) == "payment_declined"
    event = await shop.event_for(placed.payment_id)
    assert event.type == "payment.declined"
    assert event.data["reason"] == "not_verified"


async def test_a_face_payment_without_a_verification_is_declined_not_verified(
    shop: Shop, decider: PaymentDecider
) -> None:
    placed = await shop.order("alice", 500, verified_as=None)

    assert await decider.decide(placed.payment_id) == Verdict(False, "online", "not_verified")
    event = await shop.event_for(placed.payment_id)
    assert event.data["verification"] is None


async def test_a_payment_by_another_method_is_left_pending(
    shop: Shop, decider: PaymentDecider
) -> None:
    qr = await shop.order("alice", 500, method="qr", verified_as=None)
    face = await shop.order("bob", 500)

    assert await decider.decide(qr.payment_id) is None
    assert await decider.decide_pending() == 1  # bob's face payment only

    payment = await shop.payment(qr.payment_id)
    assert (payment.state, payment.mode, payment.decided_at) == ("pending", None, None)
    assert await shop.order_state(qr.order_id) == "created"
    events = await shop.payment_events()
    assert [e.data["payment_id"] for e in events] == [face.payment_id]


async def test_an_unknown_payment_is_not_decided(shop: Shop, decider: PaymentDecider) -> None:
    assert await decider.decide("no-such-payment") is None
    assert await shop.payment_events() == []
    assert decider.decided == {}


async def test_a_member_removed_before_the_decision_is_declined_not_enrolled(
    shop: Shop, decider: PaymentDecider, link: Link
) -> None:
    placed = await shop.order("alice", 500)
    await shop.remove("alice")
    link.down_for = DOWN_LONG

    assert await decider.decide(placed.payment_id) == Verdict(
        False, "offline", "member_not_enrolled"
    )
    assert await shop.order_state(placed.order_id) == "payment_declined"
    event = await shop.event_for(placed.payment_id)
    assert event.type == "payment.declined"
    assert event.data["reason"] == "member_not_enrolled"
    assert event.data["offline_usage"] == {"member_today": 0, "site_today": 0}
    assert decider.decided == {"declined:offline": 1}


async def test_decide_pending_decides_every_pending_face_payment(
    shop: Shop, decider: PaymentDecider
) -> None:
    small = await shop.order("alice", 100)
    large = await shop.order("bob", ONLINE_LIMIT + 1)
    await shop.order("carol", 100, method="qr", verified_as=None)

    assert await decider.decide_pending() == 2

    assert await shop.order_state(small.order_id) == "payment_authorized"
    assert await shop.order_state(large.order_id) == "payment_declined"
    assert await decider.decide_pending() == 0

"""Presence over rounds, the settlement diff and EPC decoding, without hardware."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.rfid.epc import decode_epc, encode_sgtin96
from edge.cabinet.presence import PresenceTracker
from edge.cabinet.settlement import settle
from edge.catalog.prices import PriceBook
from edge.db import Database, Transaction
from edge.db.migrate import upgrade_to_head
from edge.db.tables import Price, Product

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
WATER, CHIPS, MYSTERY = "06901234567892", "06901234567885", "06901234567878"


def rounds(tracker: PresenceTracker, *reads: set[str]) -> None:
    for seen in reads:
        tracker.seen.update(seen)
        tracker.end_round()


def test_one_missed_read_is_not_a_departure() -> None:
    tracker = PresenceTracker(k=2, m=4)
    rounds(tracker, {"a", "b"}, {"a", "b"}, {"a"}, {"a", "b"})
    assert tracker.ready
    assert tracker.present == {"a", "b"}


def test_one_ghost_read_is_not_stock() -> None:
    tracker = PresenceTracker(k=2, m=4)
    rounds(tracker, {"a"}, {"a", "ghost"}, {"a"}, {"a"})
    assert tracker.present == {"a"}
    assert tracker.recently_seen("ghost")  # remembered for m rounds, never decided present


def test_a_tag_unseen_for_m_rounds_is_forgotten() -> None:
    tracker = PresenceTracker(k=1, m=3)
    rounds(tracker, {"a", "b"}, {"a"}, {"a"}, {"a"})
    assert not tracker.recently_seen("b")
    assert tracker.present == {"a"}


def test_not_ready_until_a_full_window_and_reset_forgets_everything() -> None:
    tracker = PresenceTracker(k=1, m=3)
    rounds(tracker, {"a"}, {"a"})
    assert not tracker.ready
    rounds(tracker, {"a"})
    assert tracker.ready
    tracker.reset()
    assert not tracker.ready and tracker.present == frozenset()


def test_k_must_fit_in_m() -> None:
    with pytest.raises(ValueError, match="k <= m"):
        PresenceTracker(k=5, m=4)


@pytest.mark.parametrize("seed", range(40))
def test_500_items_with_5_percent_misses_are_all_present(seed: int) -> None:
    # A tag is lost only if missed in 5 or 6 of 6 rounds: about 1.8e-7 per tag, so about one
    # 500-item count in 11,000 loses a tag. Fixed seeds keep this test deterministic (a search
    # over seeds, as hypothesis does, finds such a count sooner or later; it exists).
    rng = random.Random(seed)
    tags = {f"{i:024x}" for i in range(500)}
    tracker = PresenceTracker(k=2, m=6)
    for _ in range(6):
        tracker.seen.update(t for t in tags if rng.random() >= 0.05)
        tracker.end_round()
    assert tracker.present == tags


@pytest.fixture
def book(tmp_path: Path) -> PriceBook:
    db = Database(tmp_path / "prices.db", "site")
    upgrade_to_head(db.engine)

    def work(tx: Transaction) -> None:
        for gtin, name in ((WATER, "矿泉水"), (CHIPS, "薯片")):
            tx.session.add(Product(gtin=gtin, name=name, updated_at=T0))
        tx.session.flush()
        tx.session.add(
            Price(gtin=WATER, version=1, amount=200, currency="CNY", effective_at=T0, updated_at=T0)
        )
        tx.session.add(
            Price(
                gtin=WATER,
                version=2,
                amount=250,
                currency="CNY",
                effective_at=T0 + timedelta(hours=1),
                updated_at=T0,
            )
        )
        tx.session.add(
            Price(gtin=CHIPS, version=7, amount=890, currency="CNY", effective_at=T0, updated_at=T0)
        )

    db.transact_sync(work)
    prices = PriceBook(db)
    prices.load_sync()
    yield prices
    db.close()


def test_settle_charges_what_left_at_the_price_when_the_door_opened(book: PriceBook) -> None:
    water = [encode_sgtin96(WATER, n) for n in range(1, 4)]
    chips = encode_sgtin96(CHIPS, 1)
    before = {*water, chips}
    after = {water[0], water[2]}
    opened = T0 + timedelta(minutes=59)  # version 2 takes effect a minute later
    result = settle(before, after, book, opened, "CNY")
    assert result.taken == tuple(sorted({water[1], chips}))
    assert {(line.gtin, line.price_version, line.amount) for line in result.lines} == {
        (WATER, 1, 200),
        (CHIPS, 7, 890),
    }
    assert result.total == 1090 and result.complete
    later = settle(before, after, book, T0 + timedelta(hours=2), "CNY")
    assert later.total == 250 + 890


def test_put_back_items_are_not_charged_and_foreign_tags_are_reported(book: PriceBook) -> None:
    water = encode_sgtin96(WATER, 9)
    stranger = encode_sgtin96(CHIPS, 99)
    result = settle({water}, {water, stranger}, book, T0, "CNY")
    assert result.lines == () and result.total == 0
    assert result.added == (stranger,)


def test_items_without_a_price_are_not_guessed(book: PriceBook) -> None:
    raw = "e200301666130121155074ef"  # a TID-style EPC no scheme decodes
    unknown = encode_sgtin96(MYSTERY, 1)
    water = encode_sgtin96(WATER, 1)
    result = settle({raw, unknown, water}, set(), book, T0, "CNY")
    assert not result.complete
    assert {(u.epc, u.reason) for u in result.unpriced} == {
        (raw, "undecodable"),
        (unknown, "no_price"),
    }
    usd = settle({water}, set(), book, T0, "USD")
    assert [u.reason for u in usd.unpriced] == ["currency"]


def test_sgtin96_worked_example_from_the_protocol_notes() -> None:
    decoded = decode_epc("3074257BF7194E4000001A85")
    assert decoded.scheme == "sgtin"
    assert decoded.uri == "urn:epc:id:sgtin:0614141.812345.6789"
    assert decoded.gtin == "80614141123458" and decoded.serial == "6789"
    assert decoded.element_string == "(01)80614141123458(21)6789"


def test_encoding_round_trips() -> None:
    epc = encode_sgtin96(WATER, 123456)
    decoded = decode_epc(epc)
    assert (decoded.gtin, decoded.serial) == (WATER, "123456")


@given(st.binary(min_size=0, max_size=64))
def test_any_epc_decodes_or_is_kept_raw(raw: bytes) -> None:
    decoded = decode_epc(raw.hex())
    assert decoded.epc == raw.hex()
    assert decoded.decoded == (decoded.scheme is not None)

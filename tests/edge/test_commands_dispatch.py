"""Dispatching signed commands on a running controller: every command is answered with one
``command.result``, applied at most once, and never half-applied."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict
from sqlmodel import Session, col, select

from edge.app import EdgeApp
from edge.clock import ManualClock
from edge.commands.dispatcher import CommandDispatcher, CommandOutcome
from edge.commands.envelope import sign_command
from edge.commands.errors import CommandFailed
from edge.commands.keys import generate_private_key, private_key_from_seed, public_key_b64
from edge.commands.verify import CommandVerifier, VerifiedCommand
from edge.config.sync import CommandsConfig
from edge.db import Transaction
from edge.db.tables import (
    CommandReceipt,
    Compartment,
    Courier,
    DoorOperation,
    OutboxEvent,
    Parcel,
)
from edge.demo.site import COURIER_ID, SimulatedSite
from edge.lockers.commands import register_locker_commands
from edge.lockers.errors import NotAuthenticated
from edge.outbox.store import Envelope

KEY = private_key_from_seed(b"\x07" * 32)
KEY_ID = "upstream-1"
DISABLE_A01 = {"compartment_id": "A01", "reason": "door sticks"}


@pytest.fixture
async def commands(app: EdgeApp, clock: ManualClock) -> CommandDispatcher:
    config = CommandsConfig.model_validate(
        {"trusted_keys": [{"id": KEY_ID, "public_key": public_key_b64(KEY)}]}
    )
    dispatcher = CommandDispatcher(CommandVerifier(config, clock), app.db, clock)
    register_locker_commands(dispatcher, app.lockers)
    assert await dispatcher.recover() == []
    return dispatcher


def envelope(
    clock: ManualClock, type_: str, data: dict[str, Any], **options: Any
) -> dict[str, Any]:
    key: Ed25519PrivateKey = options.pop("key", KEY)
    options.setdefault("ttl_s", 300)
    options.setdefault("issued_at", clock.now())
    return sign_command(key, type_, data, **options)


def payload(clock: ManualClock, type_: str, data: dict[str, Any], **options: Any) -> bytes:
    return json.dumps(envelope(clock, type_, data, **options)).encode()


async def send(
    commands: CommandDispatcher,
    clock: ManualClock,
    type_: str,
    data: dict[str, Any],
    **options: Any,
) -> CommandOutcome:
    return await commands.handle(payload(clock, type_, data, **options))


async def results(app: EdgeApp) -> list[dict[str, Any]]:
    """The ``command.result`` events, as committed to the outbox."""
    rows = await app.db.read(
        lambda s: s.exec(
            select(OutboxEvent)
            .where(OutboxEvent.type == "command.result")
            .order_by(col(OutboxEvent.seq))
        ).all()
    )
    return [row.data for row in rows]


async def receipts(app: EdgeApp) -> list[CommandReceipt]:
    return list(
        await app.db.read(
            lambda s: s.exec(select(CommandReceipt).order_by(col(CommandReceipt.received_at))).all()
        )
    )


async def state(app: EdgeApp) -> dict[str, list[dict[str, Any]]]:
    """Everything a locker command could change."""

    def read(s: Session) -> dict[str, list[dict[str, Any]]]:
        tables: list[Any] = [Compartment, Courier, Parcel, DoorOperation]
        return {
            table.__name__: [row.model_dump() for row in s.exec(select(table)).all()]
            for table in tables
        }

    return await app.db.read(read)


async def compartment(app: EdgeApp, cid: str) -> Compartment:
    row = await app.db.read(lambda s: s.get(Compartment, cid))
    assert row is not None
    return row


def events(app: EdgeApp, type_: str) -> list[Envelope]:
    found: list[Envelope] = app.events.of_type(type_)  # type: ignore[attr-defined]
    return found


def assert_gap_free(app: EdgeApp) -> None:
    seqs = [e.seq for e in app.events.events]  # type: ignore[attr-defined]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


# ---------------------------------------------------------------- accepted


async def test_disable_is_applied_with_its_receipt_and_result(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock
) -> None:
    sent = envelope(clock, "compartment.disable", DISABLE_A01)
    outcome = await commands.handle(json.dumps(sent).encode())

    assert outcome.ok
    assert await results(app) == [
        {
            "command_id": sent["id"],
            "status": "ok",
            "type": "compartment.disable",
            "key_id": KEY_ID,
            "result": {
                "compartment_id": "A01",
                "enabled": False,
                "state": "disabled",
                "changed": True,
            },
        }
    ]
    comp = await compartment(app, "A01")
    assert (comp.enabled, comp.state) == (False, "disabled")
    [disabled] = events(app, "compartment.disabled")
    assert disabled.data == {
        "compartment": "A01",
        "actor": "upstream",
        "state": "disabled",
        "reason": "door sticks",
        "command_id": sent["id"],
    }
    # The change, its event, the receipt and the result: one transaction, consecutive seqs.
    [result] = events(app, "command.result")
    assert result.seq == disabled.seq + 1
    [receipt] = await receipts(app)
    assert (receipt.id, receipt.status, receipt.key_id) == (sent["id"], "ok", KEY_ID)
    assert commands.accepted == 1

    clock.advance(1)
    enabled = await send(commands, clock, "compartment.enable", DISABLE_A01)
    assert enabled.result == {
        "compartment_id": "A01",
        "enabled": True,
        "state": "free",
        "changed": True,
    }
    assert (await compartment(app, "A01")).state == "free"


# ---------------------------------------------------------------- one test per rejection


def _tampered(clock: ManualClock) -> bytes:
    sent = envelope(clock, "compartment.disable", {"compartment_id": "A02", "reason": "x"})
    sent["data"]["compartment_id"] = "A01"
    return json.dumps(sent).encode()


REJECTIONS: dict[str, tuple[str, Callable[[ManualClock], bytes], bool]] = {
    # name: (code, payload, whether the command was verified and so has a receipt)
    "too_large": (
        "too_large",
        lambda c: payload(c, "compartment.disable", {**DISABLE_A01, "pad": "x" * 70_000}),
        False,
    ),
    "malformed": ("malformed", lambda c: b'{"id": "' + b"\xff" * 4 + b'"}', False),
    "invalid_envelope": (
        "invalid_envelope",
        lambda c: json.dumps(
            {**envelope(c, "compartment.disable", DISABLE_A01), "priority": 1}
        ).encode(),
        False,
    ),
    "unknown_key": (
        "unknown_key",
        lambda c: payload(c, "compartment.disable", DISABLE_A01, kid="retired"),
        False,
    ),
    "bad_signature_tampered_data": ("bad_signature", _tampered, False),
    "bad_signature_untrusted_key": (
        "bad_signature",
        lambda c: payload(c, "compartment.disable", DISABLE_A01, key=generate_private_key()),
        False,
    ),
    "expired": (
        "expired",
        lambda c: payload(
            c, "compartment.disable", DISABLE_A01, issued_at=c.now() - timedelta(seconds=301)
        ),
        False,
    ),
    "not_yet_valid": (
        "not_yet_valid",
        lambda c: payload(
            c, "compartment.disable", DISABLE_A01, issued_at=c.now() + timedelta(seconds=301)
        ),
        False,
    ),
    "lifetime_too_long": (
        "lifetime_too_long",
        lambda c: payload(c, "compartment.disable", DISABLE_A01, ttl_s=24 * 3600 + 1),
        False,
    ),
    "unknown_type": (
        "unknown_type",
        lambda c: payload(c, "compartment.paint", DISABLE_A01),
        True,
    ),
    "invalid_data_extra_field": (
        "invalid_data",
        lambda c: payload(c, "compartment.disable", {**DISABLE_A01, "force": True}),
        True,
    ),
    "invalid_data_missing_field": (
        "invalid_data",
        lambda c: payload(c, "compartment.disable", {"compartment_id": "A01"}),
        True,
    ),
}


@pytest.mark.parametrize("name", list(REJECTIONS))
async def test_rejected_command_is_answered_and_nothing_is_applied(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock, name: str
) -> None:
    code, build, verified = REJECTIONS[name]
    before = await state(app)
    message = build(clock)

    outcome = await commands.handle(message)

    assert (outcome.status, outcome.error_code) == ("rejected", code)
    [result] = await results(app)
    assert result["status"] == "rejected"
    assert result["error"]["code"] == code
    assert result["error"]["message"]
    assert set(result) <= {"command_id", "status", "type", "key_id", "error"}
    assert await state(app) == before
    assert events(app, "compartment.disabled") == []
    assert commands.rejected[code] == 1 and commands.accepted == 0
    stored = await receipts(app)
    if verified:
        # A verified command's id is spent: a resend of it is a replay.
        assert [(r.status, r.error_code) for r in stored] == [("rejected", code)]
        assert result["command_id"] == stored[0].id
        assert result["key_id"] == KEY_ID
    else:
        # An unverified message must not be able to burn a real command's id.
        assert stored == []
        assert "key_id" not in result


async def test_rejection_names_the_command_when_it_could_be_read(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock
) -> None:
    tampered = _tampered(clock)
    await commands.handle(tampered)
    await commands.handle(b"not json")
    named, anonymous = await results(app)
    assert named["command_id"] == json.loads(tampered)["id"]
    assert named["type"] == "compartment.disable"
    assert anonymous == {
        "command_id": None,
        "status": "rejected",
        "error": {"code": "malformed", "message": anonymous["error"]["message"]},
    }


async def test_invalid_data_message_is_short_and_does_not_echo_values(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock
) -> None:
    data = {"id": "c-9", "name": "New Courier", "credential": "", "phone": "+49 170 1234567"}
    outcome = await send(commands, clock, "courier.upsert", data)
    assert outcome.error_code == "invalid_data"
    message = outcome.error_message or ""
    assert "data.credential:" in message
    assert "data.phone: Extra inputs are not permitted" in message
    assert "1234567" not in message


# ---------------------------------------------------------------- replay and idempotency


async def test_replayed_id_is_answered_but_applied_once(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock
) -> None:
    message = payload(clock, "compartment.disable", DISABLE_A01)
    first = await commands.handle(message)
    clock.advance(5)
    second = await commands.handle(message)

    assert first.ok
    assert (second.status, second.error_code) == ("rejected", "replayed")
    assert "first received at 2026-01-01T12:00:00.000Z (status ok)" in (second.error_message or "")
    assert len(events(app, "compartment.disabled")) == 1
    assert [r["status"] for r in await results(app)] == ["ok", "rejected"]
    assert [r.status for r in await receipts(app)] == ["ok"]


async def test_same_data_under_two_ids_leaves_the_same_state(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock
) -> None:
    first = await send(commands, clock, "compartment.disable", DISABLE_A01)
    after_first = await state(app)
    second = await send(commands, clock, "compartment.disable", DISABLE_A01)

    assert first.ok and second.ok
    assert first.command_id != second.command_id
    assert first.result is not None and second.result is not None
    assert (first.result["changed"], second.result["changed"]) == (True, False)
    assert await state(app) == after_first
    assert len(events(app, "compartment.disabled")) == 1
    assert [r["status"] for r in await results(app)] == ["ok", "ok"]

    for _ in range(2):
        assert (await send(commands, clock, "compartment.enable", DISABLE_A01)).ok
    assert (await compartment(app, "A01")).state == "free"
    assert len(events(app, "compartment.enabled")) == 1


async def test_enable_clears_a_fault(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock
) -> None:
    def fault(tx: Transaction) -> None:
        comp = tx.session.get(Compartment, "A02")
        assert comp is not None
        comp.state, comp.fault = "faulted", "door_forced"
        tx.session.add(comp)

    await app.db.transact(fault)
    outcome = await send(
        commands, clock, "compartment.enable", {**DISABLE_A01, "compartment_id": "A02"}
    )
    assert outcome.ok
    comp = await compartment(app, "A02")
    assert (comp.state, comp.fault, comp.enabled) == ("free", None, True)


async def test_unknown_compartment_fails_with_the_lockers_code(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock
) -> None:
    before = await state(app)
    outcome = await send(
        commands, clock, "compartment.disable", {"compartment_id": "Z99", "reason": "x"}
    )
    assert (outcome.status, outcome.error_code) == ("failed", "not_found")
    [result] = await results(app)
    assert result["error"] == {"code": "not_found", "message": outcome.error_message}
    assert [(r.status, r.error_code) for r in await receipts(app)] == [("failed", "not_found")]
    assert await state(app) == before


# ---------------------------------------------------------------- couriers and parcels


async def test_courier_upsert_then_revoke(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock
) -> None:
    upsert = {"id": "courier-9", "name": "Night Courier", "credential": "97531"}
    created = await send(commands, clock, "courier.upsert", upsert)
    assert created.result == {"courier_id": "courier-9", "created": True}
    courier = await app.db.read(lambda s: s.get(Courier, "courier-9"))
    assert courier is not None
    assert (courier.name, courier.active, courier.source) == ("Night Courier", True, "upstream")
    assert "97531" not in courier.credential_hash
    session = await app.lockers.courier_login("kiosk-1", "courier-9", "97531")
    assert session.courier_name == "Night Courier"

    again = await send(commands, clock, "courier.upsert", upsert)
    assert again.result == {"courier_id": "courier-9", "created": False}
    unchanged = await app.db.read(lambda s: s.get(Courier, "courier-9"))
    assert unchanged is not None and unchanged.credential_hash == courier.credential_hash

    revoked = await send(commands, clock, "courier.revoke", {"id": "courier-9"})
    assert revoked.result == {"courier_id": "courier-9", "found": True, "changed": True}
    with pytest.raises(NotAuthenticated):
        await app.lockers.courier_login("kiosk-1", "courier-9", "97531")
    twice = await send(commands, clock, "courier.revoke", {"id": "courier-9"})
    assert twice.result == {"courier_id": "courier-9", "found": True, "changed": False}
    unknown = await send(commands, clock, "courier.revoke", {"id": "nobody"})
    assert unknown.ok and unknown.result == {
        "courier_id": "nobody",
        "found": False,
        "changed": False,
    }


async def test_couriers_from_the_configuration_are_not_changed_upstream(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock
) -> None:
    before = await state(app)
    revoke = await send(commands, clock, "courier.revoke", {"id": COURIER_ID})
    upsert = await send(
        commands, clock, "courier.upsert", {"id": COURIER_ID, "name": "X", "credential": "1"}
    )
    for outcome in (revoke, upsert):
        assert (outcome.status, outcome.error_code) == ("failed", "invalid_state")
        assert "defined in the site configuration" in (outcome.error_message or "")
    assert await state(app) == before


async def test_parcel_expect_announces_once_and_fixes_size_and_zone(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock
) -> None:
    data = {"parcel_code": " FRESH-7 ", "size": "M", "zone": "chilled", "recipient": "Flat 4"}
    first = await send(commands, clock, "parcel.expect", data)
    second = await send(commands, clock, "parcel.expect", data)
    assert first.result is not None and second.result is not None
    assert (first.result["created"], second.result["created"]) == (True, False)
    assert first.result["parcel_id"] == second.result["parcel_id"]

    parcels = await app.db.read(lambda s: s.exec(select(Parcel)).all())
    assert [(p.code, p.state, p.size, p.zone, p.recipient) for p in parcels] == [
        ("FRESH-7", "expected", "M", "chilled", "Flat 4")
    ]
    door = await app.lockers.start_deposit(COURIER_ID, "FRESH-7", "S", "ambient")
    assert door.compartment_id == "C04"  # the announced M, chilled, not the courier's choice

    bad = await send(commands, clock, "parcel.expect", {"parcel_code": "P-2", "size": "XXL"})
    assert (bad.status, bad.error_code) == ("failed", "unknown_size")
    late = await send(commands, clock, "parcel.expect", {"parcel_code": "FRESH-7"})
    assert (late.status, late.error_code) == ("failed", "already_deposited")


# ---------------------------------------------------------------- remote open (async handler)


async def test_locker_open_unlocks_through_the_operator_path(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock, site: SimulatedSite
) -> None:
    sent = envelope(clock, "locker.open", {"compartment_id": "A03", "reason": "stuck parcel"})
    outcome = await commands.handle(json.dumps(sent).encode())

    assert outcome.ok and outcome.result is not None
    [commanded] = events(app, "door.commanded")
    assert commanded.data["actor"] == "upstream"
    assert commanded.data["reason"] == "stuck parcel"
    assert outcome.result == {"compartment_id": "A03", "operation_id": commanded.data["operation"]}
    assert site.boards is not None and site.boards.unlock_log == [(1, 3)]
    [receipt] = await receipts(app)
    assert (receipt.status, receipt.finished_at is not None) == ("ok", True)

    again = await commands.handle(json.dumps(sent).encode())
    assert again.error_code == "replayed"
    assert site.boards.unlock_log == [(1, 3)]  # never opened twice by one command

    site.close_door("A03")
    await app.events.wait_for("compartment.operator_closed")  # type: ignore[attr-defined]


async def test_locker_open_refused_by_the_locker_is_a_failure(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock, site: SimulatedSite
) -> None:
    outcome = await send(commands, clock, "locker.open", {"compartment_id": "Z9", "reason": "x"})
    assert (outcome.status, outcome.error_code) == ("failed", "not_found")
    assert [(r.status, r.error_code) for r in await receipts(app)] == [("failed", "not_found")]
    assert site.boards is not None and site.boards.unlock_log == []


# ---------------------------------------------------------------- failures and crash safety


class Anything(BaseModel):
    model_config = ConfigDict(extra="forbid")
    compartment_id: str = "A01"


async def test_failing_handler_leaves_nothing_half_applied(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    def half_then_crash(tx: Transaction, data: Anything, _c: VerifiedCommand) -> None:
        comp = tx.session.get(Compartment, data.compartment_id)
        assert comp is not None
        comp.enabled, comp.state = False, "disabled"
        tx.session.add(comp)
        tx.emit("compartment.disabled", {"compartment": comp.id})
        raise RuntimeError("disk on fire")

    commands.register("test.crash", Anything, half_then_crash)
    before = await state(app)
    message = payload(clock, "test.crash", {})

    with caplog.at_level(logging.ERROR, logger="edge.commands"):
        outcome = await commands.handle(message)

    assert (outcome.status, outcome.error_code) == ("failed", "apply_failed")
    assert "RuntimeError" in (outcome.error_message or "")
    assert "disk on fire" not in (outcome.error_message or "")  # details stay in the log
    assert "disk on fire" in caplog.text
    assert await state(app) == before
    assert events(app, "compartment.disabled") == []
    [result] = await results(app)
    assert (result["status"], result["error"]["code"]) == ("failed", "apply_failed")
    assert [(r.status, r.error_code) for r in await receipts(app)] == [("failed", "apply_failed")]
    assert_gap_free(app)  # the rolled-back event took its seq back with it

    replay = await commands.handle(message)
    assert replay.error_code == "replayed"
    assert commands.failed["apply_failed"] == 1 and commands.rejected["replayed"] == 1


async def test_handler_refusal_keeps_its_code_and_rolls_back(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock
) -> None:
    def refuse(tx: Transaction, data: Anything, _c: VerifiedCommand) -> None:
        comp = tx.session.get(Compartment, data.compartment_id)
        assert comp is not None
        comp.zone = "frozen"
        tx.session.add(comp)
        raise CommandFailed("too_warm", "the zone cannot change while parcels are inside")

    commands.register("test.refuse", Anything, refuse)
    outcome = await send(commands, clock, "test.refuse", {})
    assert (outcome.status, outcome.error_code) == ("failed", "too_warm")
    assert outcome.error_message == "the zone cannot change while parcels are inside"
    assert (await compartment(app, "A01")).zone == "ambient"


async def test_async_command_is_recorded_as_applying_before_it_runs(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock
) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def hardware(_data: Anything, command: VerifiedCommand) -> dict[str, Any]:
        started.set()
        await release.wait()
        return {"done": command.id}

    commands.register_async("test.hardware", Anything, hardware)
    task = asyncio.create_task(send(commands, clock, "test.hardware", {}))
    await asyncio.wait_for(started.wait(), 5)
    [receipt] = await receipts(app)
    assert (receipt.status, receipt.finished_at) == ("applying", None)
    assert await results(app) == []
    release.set()
    outcome = await asyncio.wait_for(task, 5)
    assert outcome.result == {"done": outcome.command_id}
    [receipt] = await receipts(app)
    assert receipt.status == "ok"


async def test_recover_answers_interrupted_commands_and_never_reapplies_them(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock
) -> None:
    calls: list[str] = []

    async def hardware(_data: Anything, command: VerifiedCommand) -> None:
        calls.append(command.id)

    commands.register_async("test.hardware", Anything, hardware)
    sent = envelope(clock, "test.hardware", {}, kid=KEY_ID)

    def crashed_mid_apply(tx: Transaction) -> None:
        # What a SIGKILL between the "applying" commit and the outcome commit leaves behind.
        tx.session.add(
            CommandReceipt(
                id=sent["id"],
                type="test.hardware",
                key_id=KEY_ID,
                received_at=clock.now(),
                expires_at=clock.now() + timedelta(seconds=300),
                status="applying",
            )
        )

    await app.db.transact(crashed_mid_apply)
    clock.advance(10)

    recovered = await commands.recover()

    assert [(o.command_id, o.status, o.error_code) for o in recovered] == [
        (sent["id"], "failed", "interrupted")
    ]
    [result] = await results(app)
    assert result == {
        "command_id": sent["id"],
        "status": "failed",
        "type": "test.hardware",
        "key_id": KEY_ID,
        "error": {"code": "interrupted", "message": recovered[0].error_message},
    }
    [receipt] = await receipts(app)
    assert (receipt.status, receipt.error_code) == ("failed", "interrupted")
    assert await commands.recover() == []  # answered once

    resent = await commands.handle(json.dumps(sent).encode())
    assert resent.error_code == "replayed"
    assert calls == []


async def test_cancelled_async_command_is_answered_interrupted(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock
) -> None:
    started = asyncio.Event()

    async def never_ends(_data: Anything, _command: VerifiedCommand) -> None:
        started.set()
        await asyncio.Event().wait()

    commands.register_async("test.slow", Anything, never_ends)
    task = asyncio.create_task(send(commands, clock, "test.slow", {}))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [result] = await results(app)
    assert (result["status"], result["error"]["code"]) == ("failed", "interrupted")
    [receipt] = await receipts(app)
    assert receipt.status == "failed"
    assert await commands.recover() == []


async def test_async_handler_error_is_a_failure_with_a_receipt(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock
) -> None:
    async def broken(_data: Anything, _command: VerifiedCommand) -> None:
        raise OSError("serial port gone")

    commands.register_async("test.broken", Anything, broken)
    outcome = await send(commands, clock, "test.broken", {})
    assert (outcome.status, outcome.error_code) == ("failed", "apply_failed")
    assert [(r.status, r.error_code) for r in await receipts(app)] == [("failed", "apply_failed")]


# ---------------------------------------------------------------- upkeep, registration, logs


async def test_prune_forgets_receipts_only_after_expiry_and_skew(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock
) -> None:
    short = await send(commands, clock, "compartment.disable", DISABLE_A01, ttl_s=60)
    long = await send(commands, clock, "compartment.enable", DISABLE_A01, ttl_s=3600)
    skew = commands.verifier.config.clock_skew_s

    clock.advance(60 + skew)
    assert await commands.prune() == 0
    clock.advance(1)
    assert await commands.prune() == 1
    assert [r.id for r in await receipts(app)] == [long.command_id]
    assert short.command_id != long.command_id


def test_registering_a_type_twice_is_a_programming_error(commands: CommandDispatcher) -> None:
    assert "compartment.disable" in commands.types
    with pytest.raises(ValueError, match="registered twice"):
        commands.register("compartment.disable", Anything, lambda tx, d, c: None)

    class Lenient(BaseModel):
        name: str = ""

    with pytest.raises(ValueError, match="must forbid extra fields"):
        commands.register("test.lenient", Lenient, lambda tx, d, c: None)


async def test_logs_name_the_command_but_never_its_data(
    app: EdgeApp, commands: CommandDispatcher, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[CommandOutcome] = []
    commands.add_listener(seen.append)
    data = {"id": "courier-8", "name": "Erika Mustermann", "credential": "s3cret-8642"}
    with caplog.at_level(logging.DEBUG, logger="edge.commands"):
        outcome = await send(commands, clock, "courier.upsert", data)
        await commands.handle(b"junk")
    assert outcome.ok
    applied = next(r for r in caplog.records if r.getMessage() == "command applied")
    assert applied.command_id == outcome.command_id  # type: ignore[attr-defined]
    assert applied.key_id == KEY_ID  # type: ignore[attr-defined]
    assert "s3cret-8642" not in caplog.text and "Mustermann" not in caplog.text
    assert [o.status for o in seen] == ["ok", "rejected"]
    assert (commands.accepted, commands.rejected["malformed"]) == (1, 1)


def test_new_ids_each_time() -> None:
    # sign_command chooses a fresh UUID unless told one.
    clock = ManualClock()
    first = envelope(clock, "compartment.disable", DISABLE_A01)
    second = envelope(clock, "compartment.disable", DISABLE_A01)
    assert first["id"] != second["id"]
    assert str(uuid.UUID(first["id"])) == first["id"]

"""Applying verified commands, each exactly once, each answered with a ``command.result``.

A command's receipt (its id, remembered until it expires) is committed in the same transaction
as its effect and its result event, so a crash can neither apply a command without recording it
nor record it without applying it. Handlers come in two kinds:

- ``register``: the whole effect is in the database. It runs inside that one transaction.
- ``register_async``: the effect is outside the database (a door unlocks). The receipt is
  committed as ``applying`` first, then the handler runs, then the outcome is committed. A crash
  in between leaves ``applying``; ``recover`` at the next start reports those as failed
  (``interrupted``) and never runs them again: a door is not opened twice by one command.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import delete
from sqlmodel import col, select

from edge.clock import Clock, as_utc, rfc3339
from edge.commands import errors
from edge.commands.canonical import canonical_json
from edge.commands.envelope import TYPE_PATTERN
from edge.commands.errors import CommandFailed, CommandRejected
from edge.commands.verify import CommandVerifier, VerifiedCommand
from edge.db import Database, Transaction
from edge.db.tables import CommandReceipt

log = logging.getLogger(__name__)

RESULT_EVENT = "command.result"
OK, REJECTED, FAILED, APPLYING = "ok", "rejected", "failed", "applying"

ModelT = TypeVar("ModelT", bound=BaseModel)
Result = dict[str, Any] | None
ApplyInTx = Callable[[Transaction, ModelT, VerifiedCommand], Result]
ApplyAsync = Callable[[ModelT, VerifiedCommand], Awaitable[Result]]
OutcomeListener = Callable[["CommandOutcome"], None]

# At most this many pydantic errors are spelled out in an ``invalid_data`` message.
MAX_DATA_ERRORS = 5


@dataclass(frozen=True)
class CommandOutcome:
    """How a command was answered: what its ``command.result`` event says."""

    command_id: str | None
    type: str | None
    status: str
    """``ok``, ``rejected`` or ``failed``."""
    error_code: str | None = None
    error_message: str | None = None
    result: dict[str, Any] | None = None
    key_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK

    def event_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"command_id": self.command_id, "status": self.status}
        if self.type is not None:
            data["type"] = self.type
        if self.key_id is not None:
            data["key_id"] = self.key_id
        if self.error_code is not None:
            data["error"] = {"code": self.error_code, "message": self.error_message or ""}
        if self.result is not None:
            data["result"] = self.result
        return data


@dataclass(frozen=True)
class _Handler:
    schema: type[BaseModel]
    in_tx: ApplyInTx[Any] | None = None
    async_apply: ApplyAsync[Any] | None = None


class _ApplyFailed(Exception):
    """Raised out of the apply transaction so that it rolls back; carries the outcome."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class CommandDispatcher:
    def __init__(self, verifier: CommandVerifier, db: Database, clock: Clock | None = None) -> None:
        self.verifier = verifier
        self.db = db
        self.clock = clock or db.clock
        self._handlers: dict[str, _Handler] = {}
        self._listeners: list[OutcomeListener] = []
        # For metrics: commands applied, and the others by error code.
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()

    # ----------------------------------------------------------------- registration

    def register(self, type_: str, schema: type[ModelT], apply_in_tx: ApplyInTx[ModelT]) -> None:
        """A handler whose whole effect is in the database, applied in the receipt's transaction.

        It may ``tx.emit`` events; it raises ``CommandFailed`` to refuse (nothing it did is kept).
        """
        self._add(type_, _Handler(schema, in_tx=apply_in_tx))

    def register_async(self, type_: str, schema: type[ModelT], apply: ApplyAsync[ModelT]) -> None:
        """A handler with effects outside the database; run after an ``applying`` receipt."""
        self._add(type_, _Handler(schema, async_apply=apply))

    def _add(self, type_: str, handler: _Handler) -> None:
        if not TYPE_PATTERN.match(type_):
            raise ValueError(f"command type {type_!r} is not of the form domain.verb")
        if type_ in self._handlers:
            raise ValueError(f"command type {type_!r} is registered twice")
        if handler.schema.model_config.get("extra") != "forbid":
            # An unknown field is a mistake upstream; ignoring it would hide the mistake.
            raise ValueError(f"the schema of {type_!r} must forbid extra fields")
        self._handlers[type_] = handler

    @property
    def types(self) -> list[str]:
        return sorted(self._handlers)

    def add_listener(self, listener: OutcomeListener) -> None:
        """Called with every outcome, after it is committed (metrics, tests)."""
        self._listeners.append(listener)

    # ----------------------------------------------------------------- handling

    async def handle(self, payload: bytes) -> CommandOutcome:
        """Verify and apply one message from the commands topic; answer it in every case.

        Never raises for a bad message: every one ends in a committed ``command.result``.
        (A database that cannot commit still raises.)
        """
        try:
            command = self.verifier.verify(payload)
        except CommandRejected as exc:
            outcome = CommandOutcome(exc.command_id, exc.type, REJECTED, exc.code, exc.message)
            # No receipt: an unverified message must not be able to burn a real command's id.
            await self.db.transact(lambda tx: self._emit(tx, outcome))
            return self._finish(outcome)
        handler = self._handlers.get(command.type)
        if handler is not None and handler.async_apply is not None:
            return await self._handle_async(command, handler)
        return await self._handle_in_tx(command, handler)

    async def _handle_in_tx(
        self, command: VerifiedCommand, handler: _Handler | None
    ) -> CommandOutcome:
        def apply(tx: Transaction) -> CommandOutcome:
            prepared = self._prepare(tx, command, handler)
            if isinstance(prepared, CommandOutcome):
                return prepared
            assert handler is not None and handler.in_tx is not None
            try:
                result = handler.in_tx(tx, prepared, command)
                tx.session.flush()  # a constraint the handler broke fails here, as its failure
                _check_result(result)
            except CommandFailed as exc:
                raise _ApplyFailed(exc.code, exc.message) from exc
            except Exception as exc:
                raise _ApplyFailed(errors.APPLY_FAILED, _apply_failed_message(exc)) from exc
            outcome = _outcome(command, OK, result=result)
            self._add_receipt(tx, command, outcome)
            self._emit(tx, outcome)
            return outcome

        try:
            outcome = await self.db.transact(apply)
        except _ApplyFailed as failed:
            # The transaction rolled back with everything the handler did; the receipt and the
            # result are committed on their own, so a resend is still a replay.
            self._log_failure(command, failed)
            outcome = _outcome(command, FAILED, failed.code, failed.message)
            outcome = await self.db.transact(lambda tx: self._record_failure(tx, command, outcome))
        return self._finish(outcome)

    async def _handle_async(self, command: VerifiedCommand, handler: _Handler) -> CommandOutcome:
        assert handler.async_apply is not None

        def begin(tx: Transaction) -> CommandOutcome | BaseModel:
            prepared = self._prepare(tx, command, handler)
            if not isinstance(prepared, CommandOutcome):
                self._add_receipt(tx, command, _outcome(command, APPLYING))
            return prepared

        prepared = await self.db.transact(begin)
        if isinstance(prepared, CommandOutcome):
            return self._finish(prepared)
        try:
            result = await handler.async_apply(prepared, command)
            _check_result(result)
            outcome = _outcome(command, OK, result=result)
        except CommandFailed as exc:
            outcome = _outcome(command, FAILED, exc.code, exc.message)
        except asyncio.CancelledError:
            # Stopping mid-way: whatever happened outside is unknown, as after a crash.
            interrupted = _outcome(command, FAILED, errors.INTERRUPTED, _INTERRUPTED_MESSAGE)
            try:
                await asyncio.shield(self.db.transact(lambda tx: self._complete(tx, interrupted)))
            except Exception:
                log.exception("could not record an interrupted command; recover() will")
            else:
                self._finish(interrupted)
            raise
        except Exception as exc:
            failed = _ApplyFailed(errors.APPLY_FAILED, _apply_failed_message(exc))
            failed.__cause__ = exc
            self._log_failure(command, failed)
            outcome = _outcome(command, FAILED, failed.code, failed.message)
        await self.db.transact(lambda tx: self._complete(tx, outcome))
        return self._finish(outcome)

    def _prepare(
        self, tx: Transaction, command: VerifiedCommand, handler: _Handler | None
    ) -> CommandOutcome | BaseModel:
        """The checks after verification; a rejection is recorded and answered right here."""
        seen = tx.session.get(CommandReceipt, command.id)
        if seen is not None:
            received = rfc3339(as_utc(seen.received_at))
            outcome = _outcome(
                command,
                REJECTED,
                errors.REPLAYED,
                f"command {command.id} was first received at {received} (status {seen.status})",
            )
            self._emit(tx, outcome)  # the first receipt stands; nothing is applied again
            return outcome
        if handler is None:
            outcome = _outcome(
                command,
                REJECTED,
                errors.UNKNOWN_TYPE,
                f"this site does not handle {command.type!r} commands",
            )
        else:
            try:
                return handler.schema.model_validate(command.data)
            except ValidationError as exc:
                outcome = _outcome(command, REJECTED, errors.INVALID_DATA, summarize(exc))
        self._add_receipt(tx, command, outcome)
        self._emit(tx, outcome)
        return outcome

    def _add_receipt(
        self, tx: Transaction, command: VerifiedCommand, outcome: CommandOutcome
    ) -> None:
        now = self.clock.now()
        tx.session.add(
            CommandReceipt(
                id=command.id,
                type=command.type,
                key_id=command.key_id,
                received_at=now,
                expires_at=command.expires_at.astimezone(UTC),
                status=outcome.status,
                error_code=outcome.error_code,
                error_message=outcome.error_message,
                finished_at=None if outcome.status == APPLYING else now,
            )
        )

    def _record_failure(
        self, tx: Transaction, command: VerifiedCommand, outcome: CommandOutcome
    ) -> CommandOutcome:
        if tx.session.get(CommandReceipt, command.id) is not None:
            # Between the rolled-back attempt and now, a resend of the same id committed.
            replay = self._prepare(tx, command, None)
            assert isinstance(replay, CommandOutcome)
            return replay
        self._add_receipt(tx, command, outcome)
        self._emit(tx, outcome)
        return outcome

    def _complete(self, tx: Transaction, outcome: CommandOutcome) -> None:
        receipt = tx.session.get(CommandReceipt, outcome.command_id)
        if receipt is not None:
            receipt.status = outcome.status
            receipt.error_code, receipt.error_message = outcome.error_code, outcome.error_message
            receipt.finished_at = self.clock.now()
            tx.session.add(receipt)
        self._emit(tx, outcome)

    def _emit(self, tx: Transaction, outcome: CommandOutcome) -> None:
        tx.emit(RESULT_EVENT, outcome.event_data())

    def _finish(self, outcome: CommandOutcome) -> CommandOutcome:
        """Count and log a committed outcome, and tell the listeners."""
        fields = {"command_id": outcome.command_id, "type": outcome.type, "key_id": outcome.key_id}
        if outcome.status == OK:
            self.accepted += 1
            log.info("command applied", extra=fields)
        elif outcome.status == REJECTED:
            self.rejected[outcome.error_code or ""] += 1
            log.warning(
                "command rejected",
                extra={**fields, "code": outcome.error_code, "reason": outcome.error_message},
            )
        else:
            self.failed[outcome.error_code or ""] += 1
            log.warning(
                "command failed",
                extra={**fields, "code": outcome.error_code, "reason": outcome.error_message},
            )
        for listener in self._listeners:
            try:
                listener(outcome)
            except Exception:
                log.exception("command outcome listener failed")
        return outcome

    def _log_failure(self, command: VerifiedCommand, failed: _ApplyFailed) -> None:
        if failed.code == errors.APPLY_FAILED:
            # The traceback goes to the log (never to upstream); the data is not logged.
            log.error(
                "command handler raised",
                exc_info=failed.__cause__,
                extra={"command_id": command.id, "type": command.type},
            )

    # ----------------------------------------------------------------- start-up, upkeep

    async def recover(self) -> list[CommandOutcome]:
        """At start: commands a crash left ``applying`` are answered ``failed``/``interrupted``.

        They are never applied again: what happened outside the database is unknown, and
        upstream decides whether to send a new command.
        """

        def work(tx: Transaction) -> list[CommandOutcome]:
            stuck = tx.session.exec(
                select(CommandReceipt)
                .where(CommandReceipt.status == APPLYING)
                .order_by(col(CommandReceipt.received_at))
            ).all()
            outcomes = []
            for receipt in stuck:
                outcome = CommandOutcome(
                    receipt.id,
                    receipt.type,
                    FAILED,
                    errors.INTERRUPTED,
                    _INTERRUPTED_MESSAGE,
                    key_id=receipt.key_id,
                )
                self._complete(tx, outcome)
                outcomes.append(outcome)
            return outcomes

        outcomes = await self.db.transact(work)
        for outcome in outcomes:
            self._finish(outcome)
        return outcomes

    async def prune(self) -> int:
        """Forget receipts of commands past their expiry (plus the clock skew); returns how many.

        A resend of such a command is rejected as ``expired`` anyway, so its id no longer needs
        remembering. Receipts still ``applying`` belong to a running handler and are kept.
        """
        cutoff = self.clock.now() - timedelta(seconds=self.verifier.config.clock_skew_s)

        def work(tx: Transaction) -> int:
            result = tx.session.execute(
                delete(CommandReceipt).where(
                    col(CommandReceipt.expires_at) < cutoff,
                    col(CommandReceipt.status) != APPLYING,
                )
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

        pruned = await self.db.transact(work)
        if pruned:
            log.info("command receipts pruned", extra={"count": pruned})
        return pruned


_INTERRUPTED_MESSAGE = (
    "the controller stopped while the command was being applied; it was not retried"
)


def _outcome(
    command: VerifiedCommand,
    status: str,
    code: str | None = None,
    message: str | None = None,
    result: dict[str, Any] | None = None,
) -> CommandOutcome:
    return CommandOutcome(command.id, command.type, status, code, message, result, command.key_id)


def _check_result(result: object) -> None:
    if result is None:
        return
    if not isinstance(result, dict):
        raise TypeError(f"a handler returns a dict or None, not {type(result).__name__}")
    canonical_json(result)  # the result goes into an event: it must be plain JSON


def _apply_failed_message(exc: Exception) -> str:
    # The exception text may name internals or personal data; the site log has the details.
    return f"the command could not be applied ({type(exc).__name__}); see the site log"


def summarize(exc: ValidationError) -> str:
    """A short readable account of what is wrong with the data, without echoing its values."""
    problems = exc.errors(include_url=False, include_input=False, include_context=False)
    parts = []
    for problem in problems[:MAX_DATA_ERRORS]:
        where = ".".join(str(part) for part in ("data", *problem["loc"]))
        parts.append(f"{where}: {problem['msg']}")
    if len(problems) > MAX_DATA_ERRORS:
        parts.append(f"and {len(problems) - MAX_DATA_ERRORS} more")
    return "; ".join(parts)

"""Rate limits on codes people type: wrong codes per terminal, escalating lockouts.

``max_failures`` wrong codes are allowed within ``window_s``; the next wrong one locks input for
``lockout_s``, doubling with each further lockout up to ``lockout_max_s``. The bookkeeping lives
in the database, inside the same transactions as the lookups, so a restart does not lift a lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from edge.config.models import CodeAttemptConfig
from edge.db.tables import CodeAttempts


@dataclass(frozen=True)
class AttemptVerdict:
    locked_for_s: float
    """Seconds input stays locked; 0 when input is open."""
    attempts_left: int


class CodeAttemptLimiter:
    def __init__(self, rules: CodeAttemptConfig) -> None:
        self.rules = rules

    def check(self, session: Session, key: str, now: datetime) -> AttemptVerdict:
        row = session.get(CodeAttempts, key)
        if row is None:
            return AttemptVerdict(0.0, self.rules.max_failures)
        if row.locked_until is not None and row.locked_until > now:
            return AttemptVerdict((row.locked_until - now).total_seconds(), 0)
        failures = self._failures_in_window(row, now)
        return AttemptVerdict(0.0, max(self.rules.max_failures - failures, 0))

    def record_failure(self, session: Session, key: str, now: datetime) -> AttemptVerdict:
        row = session.get(CodeAttempts, key) or CodeAttempts(key=key)
        failures = self._failures_in_window(row, now)
        if failures == 0:
            row.window_started_at = now
        row.failures = failures + 1
        verdict = AttemptVerdict(0.0, self.rules.max_failures - row.failures)
        if row.failures > self.rules.max_failures:
            lockout = min(self.rules.lockout_s * 2**row.lockouts, self.rules.lockout_max_s)
            row.lockouts += 1
            row.locked_until = now + timedelta(seconds=lockout)
            row.failures = 0
            row.window_started_at = None
            verdict = AttemptVerdict(lockout, 0)
        session.add(row)
        return verdict

    def record_success(self, session: Session, key: str) -> None:
        # A right code clears the window but not the escalation: lockouts keep doubling
        # for a terminal that is being probed between genuine pickups.
        row = session.get(CodeAttempts, key)
        if row is not None:
            row.failures = 0
            row.window_started_at = None
            session.add(row)

    def _failures_in_window(self, row: CodeAttempts, now: datetime) -> int:
        if row.window_started_at is None:
            return 0
        if (now - row.window_started_at).total_seconds() > self.rules.window_s:
            return 0
        return row.failures

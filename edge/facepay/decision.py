"""Who is this? From gallery scores to match, no match, or "type your phone digits".

1:N alone pays only when the best member clears ``match`` and beats the runner-up by ``margin``:
a face that resembles two members pays from neither. A weaker or ambiguous result, and any
result from a gallery too large for 1:N alone, asks for the last four phone digits, then
decides 1:1 among the candidates those digits select, at the lower ``candidate`` floor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from edge.facepay.gallery import Candidate, SearchResult


class Outcome(StrEnum):
    MATCH = "match"
    NO_MATCH = "no_match"
    NEEDS_DIGITS = "needs_digits"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True, slots=True)
class Thresholds:
    match: float
    margin: float
    candidate: float
    phone_digits_above: int


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    member_id: str | None = None
    score: float | None = None
    second_score: float | None = None
    method: str = "1:N"
    candidates: tuple[Candidate, ...] = ()
    """For ``needs_digits``: the members the digits choose among (in memory only)."""


def decide(result: SearchResult, thresholds: Thresholds) -> Decision:
    ranked = result.candidates
    if not ranked:
        return Decision(Outcome.NO_MATCH)
    best = ranked[0]
    second = ranked[1].score if len(ranked) > 1 else None
    plausible = tuple(c for c in ranked if c.score >= thresholds.candidate)
    if not plausible:
        return Decision(Outcome.NO_MATCH, score=best.score, second_score=second)
    clear = best.score >= thresholds.match and (
        second is None or best.score - second >= thresholds.margin
    )
    if clear and result.gallery_size <= thresholds.phone_digits_above:
        return Decision(Outcome.MATCH, best.member_id, best.score, second)
    return Decision(
        Outcome.NEEDS_DIGITS, score=best.score, second_score=second, candidates=plausible
    )


def decide_with_digits(
    candidates: Sequence[Candidate],
    digits_match: Callable[[str], bool],
    thresholds: Thresholds,
) -> Decision:
    """1:1 among the candidates whose stored phone-digit hash matches what was typed."""
    chosen = [
        c for c in candidates if c.score >= thresholds.candidate and digits_match(c.member_id)
    ]
    if not chosen:
        return Decision(Outcome.NO_MATCH, method="1:1")
    chosen.sort(key=lambda c: c.score, reverse=True)
    best = chosen[0]
    second = chosen[1].score if len(chosen) > 1 else None
    if second is not None and best.score - second < thresholds.margin:
        # Two look-alikes who also share the last four digits: pay from neither.
        return Decision(Outcome.AMBIGUOUS, score=best.score, second_score=second, method="1:1")
    return Decision(Outcome.MATCH, best.member_id, best.score, second, method="1:1")

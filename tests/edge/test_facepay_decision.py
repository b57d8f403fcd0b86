"""Who is this? ``decide`` (1:N alone) and ``decide_with_digits`` (1:1 after phone digits).

Scores are binary fractions (0.75, 0.375, ...) so that a gap equal to the margin is exactly the
margin: the boundaries below test the rule, not float rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.facepay.decision import Decision, Outcome, Thresholds, decide, decide_with_digits
from edge.facepay.gallery import Candidate, SearchResult

THRESHOLDS = Thresholds(match=0.5, margin=0.25, candidate=0.25, phone_digits_above=100)


def ranked(*scores: tuple[str, float], gallery_size: int = 10) -> SearchResult:
    """A search result as the gallery returns it: best first."""
    candidates = tuple(Candidate(member, score) for member, score in scores)
    assert list(candidates) == sorted(candidates, key=lambda c: c.score, reverse=True)
    return SearchResult(candidates, gallery_size)


def digits_of(*members: str) -> Callable[[str], bool]:
    """The members whose stored phone-digit hash matches what the shopper typed."""
    matching = frozenset(members)
    return lambda member_id: member_id in matching


def cands(*scores: tuple[str, float]) -> tuple[Candidate, ...]:
    return tuple(Candidate(member, score) for member, score in scores)


# -- decide: 1:N ------------------------------------------------------------------------------


def test_a_clear_best_match_pays_from_that_member() -> None:
    decision = decide(ranked(("alice", 0.75), ("bob", 0.25)), THRESHOLDS)
    assert decision == Decision(Outcome.MATCH, "alice", 0.75, 0.25, method="1:N")
    assert decision.candidates == ()


def test_a_lone_member_above_match_is_a_match_with_no_runner_up() -> None:
    decision = decide(ranked(("alice", 0.75), gallery_size=1), THRESHOLDS)
    assert decision.outcome is Outcome.MATCH
    assert decision.member_id == "alice"
    assert decision.second_score is None


def test_match_and_margin_boundaries_are_inclusive() -> None:
    # best == match and best - second == margin, both exactly.
    decision = decide(ranked(("alice", 0.5), ("bob", 0.25)), THRESHOLDS)
    assert decision.outcome is Outcome.MATCH
    assert decision.member_id == "alice"


def test_two_members_within_the_margin_ask_for_digits_among_the_plausible_ones() -> None:
    result = ranked(("alice", 0.75), ("bob", 0.625), ("carol", 0.25), ("dave", 0.125))
    decision = decide(result, THRESHOLDS)
    assert decision.outcome is Outcome.NEEDS_DIGITS
    assert decision.member_id is None  # a face that resembles two members pays from neither
    assert (decision.score, decision.second_score) == (0.75, 0.625)
    # carol sits exactly on the candidate floor (inclusive); dave is below it.
    assert decision.candidates == cands(("alice", 0.75), ("bob", 0.625), ("carol", 0.25))


def test_a_best_score_between_candidate_and_match_asks_for_digits() -> None:
    decision = decide(ranked(("alice", 0.375), ("bob", 0.0)), THRESHOLDS)
    assert decision.outcome is Outcome.NEEDS_DIGITS
    assert decision.member_id is None
    assert decision.candidates == cands(("alice", 0.375))


def test_nothing_above_the_candidate_floor_is_no_match() -> None:
    decision = decide(ranked(("alice", 0.125), ("bob", 0.0625)), THRESHOLDS)
    assert decision.outcome is Outcome.NO_MATCH
    assert decision.member_id is None
    assert decision.candidates == ()
    assert (decision.score, decision.second_score) == (0.125, 0.0625)  # kept for the record


def test_an_empty_gallery_is_no_match() -> None:
    decision = decide(SearchResult((), 0), THRESHOLDS)
    assert decision == Decision(Outcome.NO_MATCH)


def test_a_gallery_larger_than_phone_digits_above_always_asks_for_digits() -> None:
    clear = (("alice", 0.75), ("bob", 0.25))
    at_limit = decide(ranked(*clear, gallery_size=100), THRESHOLDS)
    assert at_limit.outcome is Outcome.MATCH

    above = decide(ranked(*clear, gallery_size=101), THRESHOLDS)
    assert above.outcome is Outcome.NEEDS_DIGITS
    assert above.member_id is None
    assert above.candidates == cands(("alice", 0.75), ("bob", 0.25))


def test_phone_digits_above_zero_asks_for_digits_for_any_member() -> None:
    always = Thresholds(match=0.5, margin=0.25, candidate=0.25, phone_digits_above=0)
    decision = decide(ranked(("alice", 0.75), gallery_size=1), always)
    assert decision.outcome is Outcome.NEEDS_DIGITS
    assert decision.candidates == cands(("alice", 0.75))


# -- decide_with_digits: 1:1 among the candidates the digits select ----------------------------


def test_exactly_one_candidate_with_matching_digits_is_a_one_to_one_match() -> None:
    candidates = cands(("alice", 0.75), ("bob", 0.375), ("carol", 0.3125))
    decision = decide_with_digits(candidates, digits_of("bob"), THRESHOLDS)
    assert decision == Decision(Outcome.MATCH, "bob", 0.375, None, method="1:1")


def test_digits_choose_a_member_the_face_alone_could_not() -> None:
    # Two look-alikes: 1:N asks for digits, and the digits tell them apart.
    first = decide(ranked(("alice", 0.75), ("bob", 0.6875)), THRESHOLDS)
    assert first.outcome is Outcome.NEEDS_DIGITS
    decision = decide_with_digits(first.candidates, digits_of("bob"), THRESHOLDS)
    assert decision.outcome is Outcome.MATCH
    assert decision.member_id == "bob"
    assert decision.method == "1:1"


def test_two_matching_candidates_within_the_margin_are_ambiguous() -> None:
    candidates = cands(("alice", 0.75), ("bob", 0.625), ("carol", 0.5))
    decision = decide_with_digits(candidates, digits_of("alice", "bob"), THRESHOLDS)
    assert decision.outcome is Outcome.AMBIGUOUS
    assert decision.member_id is None
    assert (decision.score, decision.second_score) == (0.75, 0.625)
    assert decision.method == "1:1"


def test_two_matching_candidates_a_margin_apart_pick_the_better_one() -> None:
    # Given out of order: the best is chosen by score, not by position.
    candidates = cands(("bob", 0.5), ("alice", 0.75))
    decision = decide_with_digits(candidates, digits_of("alice", "bob"), THRESHOLDS)
    assert decision == Decision(Outcome.MATCH, "alice", 0.75, 0.5, method="1:1")


def test_no_candidate_with_matching_digits_is_no_match() -> None:
    candidates = cands(("alice", 0.75), ("bob", 0.375))
    decision = decide_with_digits(candidates, digits_of("mallory"), THRESHOLDS)
    assert decision == Decision(Outcome.NO_MATCH, method="1:1")


def test_no_candidates_at_all_is_no_match() -> None:
    decision = decide_with_digits((), digits_of("alice"), THRESHOLDS)
    assert decision == Decision(Outcome.NO_MATCH, method="1:1")


def test_a_matching_candidate_below_the_floor_is_not_chosen() -> None:
    candidates = cands(("alice", 0.75), ("bob", 0.125))
    decision = decide_with_digits(candidates, digits_of("bob"), THRESHOLDS)
    assert decision.outcome is Outcome.NO_MATCH
    assert decision.member_id is None


def test_a_matching_candidate_below_the_floor_does_not_make_a_match_ambiguous() -> None:
    # 0.3125 - 0.125 is under the margin: were bob counted, this would be ambiguous.
    candidates = cands(("alice", 0.3125), ("bob", 0.125))
    decision = decide_with_digits(candidates, digits_of("alice", "bob"), THRESHOLDS)
    assert decision == Decision(Outcome.MATCH, "alice", 0.3125, None, method="1:1")


def test_a_candidate_exactly_on_the_floor_is_chosen() -> None:
    decision = decide_with_digits(cands(("alice", 0.25)), digits_of("alice"), THRESHOLDS)
    assert decision.outcome is Outcome.MATCH
    assert decision.member_id == "alice"


# -- the rule as a whole ----------------------------------------------------------------------

# Multiples of 1/64 in [0, 1]: exact in binary, so every comparison is the intended one.
_SCORE = st.integers(min_value=0, max_value=64).map(lambda n: n / 64)


def _result(scores: Iterable[float], extra_members: int) -> SearchResult:
    best_first = sorted(scores, reverse=True)
    candidates = tuple(Candidate(f"m{i}", s) for i, s in enumerate(best_first))
    return SearchResult(candidates, len(candidates) + extra_members)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    scores=st.lists(_SCORE, max_size=6),
    extra_members=st.integers(min_value=0, max_value=200),
)
def test_decide_matches_only_a_clear_winner_in_a_small_enough_gallery(
    scores: list[float], extra_members: int
) -> None:
    result = _result(scores, extra_members)
    decision = decide(result, THRESHOLDS)
    ranked_scores = [c.score for c in result.candidates]
    plausible = tuple(c for c in result.candidates if c.score >= THRESHOLDS.candidate)
    clear_winner = bool(ranked_scores) and (
        ranked_scores[0] >= THRESHOLDS.match
        and all(ranked_scores[0] - s >= THRESHOLDS.margin for s in ranked_scores[1:])
    )
    small_gallery = result.gallery_size <= THRESHOLDS.phone_digits_above

    assert decision.outcome is not Outcome.AMBIGUOUS  # only the digits can be ambiguous
    assert (decision.outcome is Outcome.MATCH) == (clear_winner and small_gallery)
    if decision.outcome is Outcome.MATCH:
        assert decision.member_id == result.candidates[0].member_id
        assert decision.candidates == ()
    elif decision.outcome is Outcome.NEEDS_DIGITS:
        assert decision.member_id is None
        assert decision.candidates == plausible != ()
    else:
        assert decision.outcome is Outcome.NO_MATCH
        assert decision.member_id is None
        assert plausible == ()

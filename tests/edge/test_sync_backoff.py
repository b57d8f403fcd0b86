"""Reconnect waits: exponential, capped, jittered, and reset after a good connection."""

from __future__ import annotations

from edge.runtime.backoff import Backoff


def test_waits_double_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    lowest = Backoff(1.0, 8.0, rand=lambda: 0.0)
    highest = Backoff(1.0, 8.0, rand=lambda: 1.0)
    assert [lowest.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert [highest.next_delay() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_a_fleet_does_not_retry_in_lock_step() -> None:
    delays = {round(Backoff(1.0, 60.0).next_delay(), 6) for _ in range(50)}
    assert len(delays) > 40  # spread over [0.5, 1.0)
    assert all(0.5 <= d <= 1.0 for d in delays)


def test_reset_starts_from_the_initial_wait_again() -> None:
    backoff = Backoff(0.1, 10.0, rand=lambda: 1.0)
    for _ in range(20):  # "never give up": the attempt count stays bounded
        backoff.next_delay()
    assert backoff.next_delay() == 10.0
    backoff.reset()
    assert backoff.next_delay() == 0.1

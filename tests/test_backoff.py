"""Backoff (spec §1.3): the delay formula and field validation."""

from __future__ import annotations

import attrs
import pytest

import trexec


def test_delays_grow_geometrically_up_to_max():
    backoff = trexec.Backoff(initial=0.5, factor=3, max=10)
    assert [backoff.delay(n) for n in range(1, 6)] == [0.5, 1.5, 4.5, 10, 10]


def test_default_backoff():
    backoff = trexec.Backoff()
    assert (backoff.initial, backoff.factor, backoff.max, backoff.jitter) == (0.1, 2.0, 10.0, 0.0)
    assert backoff.delay(1) == 0.1


def test_huge_retry_numbers_stay_at_max():
    assert trexec.Backoff(initial=1, factor=10, max=60).delay(10_000) == 60


def test_a_zero_initial_stays_zero_past_the_float_range():
    assert trexec.Backoff(initial=0.0, factor=2.0).delay(5000) == 0


def test_jitter_only_shortens_delays():
    backoff = trexec.Backoff(initial=2, factor=1, max=2, jitter=0.5)
    delays = [backoff.delay(1) for _ in range(200)]
    assert all(1 <= d <= 2 for d in delays)
    assert len(set(delays)) > 1


def test_backoff_is_frozen():
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        trexec.Backoff().initial = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial": -1}, r"initial=-1: expected a number of seconds >= 0"),
        ({"max": float("inf")}, r"max=inf: expected"),
        ({"factor": 0.5}, r"factor=0\.5: expected a finite number >= 1"),
        ({"factor": "2"}, r"factor='2': expected"),
        ({"jitter": 1.5}, r"jitter=1\.5: expected a number between 0 and 1"),
        ({"initial": 5, "max": 1}, r"max=1: expected a number of seconds >= initial \(5\)"),
    ],
)
def test_bad_fields_raise_invalid_argument(kwargs, message):
    with pytest.raises(trexec.InvalidArgument, match=message):
        trexec.Backoff(**kwargs)


@pytest.mark.parametrize("retry", [0, -1, 1.0, True])
def test_bad_retry_numbers_raise_invalid_argument(retry):
    with pytest.raises(trexec.InvalidArgument, match="retry="):
        trexec.Backoff().delay(retry)

"""Retry delay maths: pure, no event loop."""

from __future__ import annotations

import pytest

from actors import Retry
from actors.errors import InvalidOption


def test_default_policy_makes_a_single_attempt() -> None:
    retry = Retry()
    assert retry.attempts == 1
    assert not retry.should_retry(1)


def test_attempts_counts_the_first_try() -> None:
    retry = Retry(attempts=3)
    assert [retry.should_retry(n) for n in (1, 2, 3)] == [True, True, False]


def test_delay_grows_by_the_backoff_factor() -> None:
    retry = Retry(attempts=5, delay=0.5, backoff=2.0)
    assert [retry.delay_after(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]


def test_max_delay_caps_the_backoff() -> None:
    retry = Retry(attempts=10, delay=1.0, backoff=3.0, max_delay=5.0)
    assert [retry.delay_after(n) for n in (1, 2, 3, 4)] == [1.0, 3.0, 5.0, 5.0]


def test_jitter_spreads_the_delay_symmetrically() -> None:
    retry = Retry(attempts=2, delay=2.0, jitter=0.25)
    assert retry.delay_after(1, rand=lambda: 0.0) == pytest.approx(1.5)
    assert retry.delay_after(1, rand=lambda: 0.5) == pytest.approx(2.0)
    assert retry.delay_after(1, rand=lambda: 0.999999) == pytest.approx(2.5, rel=1e-5)


def test_jitter_is_applied_after_the_cap() -> None:
    retry = Retry(attempts=5, delay=10.0, max_delay=4.0, jitter=0.5)
    assert retry.delay_after(3, rand=lambda: 1.0) == pytest.approx(6.0)


def test_no_jitter_never_calls_the_random_source() -> None:
    def boom() -> float:
        raise AssertionError("rand called")

    assert Retry(attempts=2, delay=1.0).delay_after(1, rand=boom) == 1.0


def test_attempt_numbers_start_at_one() -> None:
    with pytest.raises(ValueError):
        Retry(attempts=2).delay_after(0)


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"attempts": 0}, "attempts"),
        ({"attempts": 1.5}, "attempts"),
        ({"attempts": True}, "attempts"),
        ({"delay": -1}, "delay"),
        ({"delay": "1"}, "delay"),
        ({"backoff": 0.5}, "backoff"),
        ({"max_delay": -0.1}, "max_delay"),
        ({"jitter": 1.5}, "jitter"),
        ({"jitter": None}, "jitter"),
    ],
)
def test_bad_options_are_named(kwargs: dict[str, object], option: str) -> None:
    with pytest.raises(InvalidOption) as info:
        Retry(**kwargs)  # type: ignore[arg-type]
    assert info.value.option == option


def test_round_trips_through_plain_data() -> None:
    retry = Retry(attempts=3, delay=0.1, backoff=2.0, max_delay=1.0, jitter=0.1)
    assert Retry.from_dict(retry.to_dict()) == retry
    assert "max_delay" not in Retry(attempts=2).to_dict()


def test_unknown_retry_keys_are_rejected() -> None:
    with pytest.raises(InvalidOption) as info:
        Retry.from_dict({"attempts": 2, "delays": 1})
    assert info.value.option == "delays"

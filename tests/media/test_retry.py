"""media.retry: the one retry policy (tenacity) of the fetcher, the Reddit scans and the worker's
database calls: backoff, jitter, Retry-After within the cap, giving up with the failure itself."""

from __future__ import annotations

import logging
import random

import pytest

from media.retry import RetryBudget, RetryLater, RetryPolicy, parse_retry_after


def test_backoff_doubles_to_the_cap_and_retry_after_wins_within_it() -> None:
    policy = RetryPolicy(tries=8, base=0.5, cap=3.0, jitter=False)
    assert [policy.wait_for(n) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.wait_for(0, retry_after=2.5) == 2.5
    assert policy.wait_for(4, retry_after=0.0) == 0.0
    assert policy.wait_for(0, retry_after=3600) == 3.0
    jittered = RetryPolicy(tries=8, base=1.0, cap=30.0, rng=random.Random(7))
    waits = [jittered.wait_for(3) for _ in range(200)]
    assert min(waits) >= 4.0 and max(waits) <= 8.0 and len(set(waits)) > 100


def test_parse_retry_after() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past


def test_gives_up_after_its_tries_with_the_last_failure(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="media.retry")
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        raise RetryLater(ValueError(f"try {len(calls)} failed"), retry_after=0.0)

    with pytest.raises(RetryLater) as caught:
        RetryPolicy(tries=3, base=0.01, cap=0.01).synchronous("the thing")(flaky)
    assert len(calls) == 3 and str(caught.value.error) == "try 3 failed"
    assert [r.getMessage() for r in caplog.records] == [
        "retrying the thing in 0.00 s after try 1 failed",
        "retrying the thing in 0.00 s after try 2 failed",
    ]


def test_only_what_may_heal_is_retried() -> None:
    calls: list[int] = []

    def verdict() -> None:
        calls.append(1)
        raise KeyError("a final answer")

    with pytest.raises(KeyError):
        RetryPolicy(tries=5, base=0.0, cap=0.0).synchronous("x")(verdict)
    assert len(calls) == 1


async def test_asynchronous_attempts_until_one_succeeds() -> None:
    answers = iter([RetryLater(OSError("reset")), RetryLater(OSError("reset")), "bytes"])

    async def fetch() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async for attempt in RetryPolicy(tries=3, base=0.0, cap=0.0).asynchronous("fetch"):
        with attempt:
            got = await fetch()
    assert got == "bytes"


def test_patience_stops_retrying_however_many_tries_are_left() -> None:
    calls: list[int] = []

    def down() -> None:
        calls.append(1)
        raise RetryLater(ConnectionError("refused"))

    with pytest.raises(RetryLater):
        RetryPolicy(tries=None, base=10.0, cap=10.0, patience=0.0).synchronous("db")(down)
    assert len(calls) == 1


def test_a_budget_bounds_the_retrying_of_every_call_that_shares_it() -> None:
    """Issue 15 item 10: one scrape run's Reddit calls share a budget of failure and back-off
    seconds; once a retry would pass it, no call of the run retries any more."""
    budget = RetryBudget(seconds=2.5)
    policy = RetryPolicy(tries=10, base=1.0, cap=1.0, jitter=False, budget=budget)
    slept: list[float] = []
    calls: list[str] = []

    def down(name: str) -> None:
        calls.append(name)
        raise RetryLater(ConnectionError("503"))

    for name in ("first", "second"):
        retrying = policy.synchronous(name)
        retrying.sleep = slept.append  # the waits are recorded, not slept
        with pytest.raises(RetryLater):
            retrying(down, name)
    # Two waits of 1 s fit in 2.5 s, a third would not: the first call stops after three tries,
    # the second after its first.
    assert calls == ["first"] * 3 + ["second"]
    assert slept == [1.0, 1.0] and budget.ran_out and budget.spent >= 2.0

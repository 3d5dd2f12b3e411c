"""The one retry policy for calls to something that may be away for a moment: the safe fetcher
(429, 5xx, dropped connections), the Reddit scans (asyncpraw's 429, 5xx and timeouts) and the
worker's database calls (a restarted PostgreSQL).

Built on tenacity (sync and asyncio alike, stop and wait rules that compose, a replaceable sleep):
exponential backoff from `base`, doubling up to `cap`, with jitter where many clients may retry in
step; a server's Retry-After wins over the backoff, within `cap`; a policy gives up after `tries`
attempts, with `patience` once that long has passed since the first, and with a `RetryBudget`
once the failures and waits of every call sharing it would pass its seconds. Each wait is logged
("retrying <what> in <s> s after <reason>") before it is slept.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    stop_never,
)
from tenacity.stop import stop_base

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """An attempt failed in a way that may heal: `error` is what to report if no attempt succeeds,
    `retry_after` the server's own wait in seconds (a Retry-After header), when it sent one."""

    def __init__(self, error: BaseException, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass
class RetryBudget:
    """Seconds that a group of calls under a policy (one scrape run's Reddit requests) may spend
    failing and waiting to try again, all together: a retry whose wait would pass it is not made,
    and once that happened none is (`ran_out`)."""

    seconds: float
    spent: float = 0.0
    ran_out: bool = False

    def stop_rule(self) -> stop_base:
        """A tenacity stop for one call (it remembers what that call has charged)."""
        return _OverBudget(self)


class _OverBudget(stop_base):
    """Charges each retry (the failed attempts' time since the last charge, and the wait tenacity
    has chosen, already in `upcoming_sleep`) to the budget, or stops when it would pass it."""

    def __init__(self, budget: RetryBudget) -> None:
        self.budget = budget
        self.charged = 0.0  # this call's failed attempts already counted

    def __call__(self, state: RetryCallState) -> bool:
        lost = max(0.0, (state.seconds_since_start or 0.0) - state.idle_for - self.charged)
        budget = self.budget
        if budget.ran_out or budget.spent + lost + state.upcoming_sleep > budget.seconds:
            budget.ran_out = True
            return True
        self.charged += lost
        budget.spent += lost + state.upcoming_sleep
        return False


@dataclass(frozen=True)
class RetryPolicy:
    tries: int | None  # attempts in all, the first included; None: until `patience` runs out
    base: float  # the first wait, seconds
    cap: float  # the longest wait, Retry-After included
    jitter: bool = True  # waits drawn from [0.5, 1] x the backoff, so clients do not retry in step
    patience: float | None = None  # give up once this many seconds have passed since the first try
    budget: RetryBudget | None = field(default=None, compare=False)  # shared by several calls
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def wait_for(self, retries_so_far: int, retry_after: float | None = None) -> float:
        """The wait before the next attempt, after `retries_so_far` waits already."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.cap)
        ceiling = min(self.cap, max(self.base, 0.0) * (2**retries_so_far))
        return ceiling * self.rng.uniform(0.5, 1.0) if self.jitter else ceiling

    def _stop(self) -> stop_base:
        stop: stop_base = stop_never if self.tries is None else stop_after_attempt(max(1, self.tries))
        if self.patience is not None:
            stop = stop | stop_after_delay(self.patience)
        if self.budget is not None:
            stop = stop | self.budget.stop_rule()
        return stop

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        retry_after = error.retry_after if isinstance(error, RetryLater) else None
        return self.wait_for(state.attempt_number - 1, retry_after)

    def _arguments(self, what: str, retry_on: Callable[[BaseException], bool]) -> dict:
        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            # The failure itself: what a RetryLater was raised from, or else what it reports.
            reason = (error.__cause__ or error.error) if isinstance(error, RetryLater) else error
            wait = state.upcoming_sleep
            log.info("retrying %s in %.2f s after %s", what, wait, _first_line(reason))

        return {
            "stop": self._stop(),
            "wait": self._wait,
            "retry": retry_if_exception(retry_on),
            "before_sleep": before_sleep,
            "reraise": True,  # the last failure itself, not tenacity's RetryError
        }

    def asynchronous(
        self, what: str, retry_on: Callable[[BaseException], bool] = lambda e: isinstance(e, RetryLater)
    ) -> AsyncRetrying:
        """`async for attempt in policy.asynchronous(...): with attempt: ...`"""
        return AsyncRetrying(**self._arguments(what, retry_on))

    def synchronous(
        self, what: str, retry_on: Callable[[BaseException], bool] = lambda e: isinstance(e, RetryLater)
    ) -> Retrying:
        """`policy.synchronous(...)(function)` calls `function` under the policy."""
        return Retrying(**self._arguments(what, retry_on))


def _first_line(error: BaseException | None) -> str:
    text = str(error).strip() if error is not None else ""
    return text.splitlines()[0] if text else type(error).__name__

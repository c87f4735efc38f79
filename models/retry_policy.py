"""When an async job is tried again (seed 002): transient answers, full-jitter backoff, a window.

Pure functions of the policy's settings, the job's history and the clock, so
the schedule can be tested without waiting for it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

# Seed 002's transient statuses: retried. Any other status completes the job.
TRANSIENT_STATUSES = frozenset(
    {408, 429, 500, 502, 503, 504, 507, 509, *range(520, 527), 530, 598, 599}
)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 10
    window_s: float = 15 * 60  # from acceptance (or replay) to the last retry
    base_s: float = 2.0
    cap_s: float = 300.0

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^(retry-1))] for retry 1, 2, ..."""
        return rng.uniform(0, min(self.cap_s, self.base_s * 2 ** (retry - 1)))

    def next_attempt(
        self,
        *,
        attempts_in_round: int,
        deadline_at: float,
        now: float,
        retry_after_s: float | None,
        rng: random.Random,
    ) -> float | None:
        """When to try again after a transient failure, or None: out of retries or time.

        `attempts_in_round` counts the attempt that just failed. A Retry-After is
        honoured when it fits before the deadline; one that does not ends the job
        rather than calling the target earlier than it asked.
        """
        retry = attempts_in_round  # the first retry follows the first attempt
        if retry > self.max_retries or now >= deadline_at:
            return None
        if retry_after_s is not None and now + retry_after_s > deadline_at:
            return None
        delay = max(self.backoff(retry, rng), retry_after_s or 0.0)
        return min(now + delay, deadline_at)


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """A Retry-After header (delta seconds or an HTTP date) as seconds from `now`."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - now)

"""When a pod launch may send its next create: the rate limit all launches share, and the wait between attempts.

:class:`RateLimiter` is a token bucket with a pause (a 429's Retry-After holds every sender);
:class:`wait_retry_after` is a tenacity wait that is never shorter than the error's Retry-After.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tenacity import RetryCallState
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from hybrid_executor.kubernetes.errors import KubeApiError, RefusalKind


class RateLimiter:
    """A token bucket (``qps`` per second, up to ``burst`` at once) shared by threads, plus a pause.

    :meth:`reserve` hands out send times in order (GCRA: no thread starves, none is woken for
    nothing); :meth:`pause_until` holds every sender until a moment (a 429's Retry-After), after
    which sending resumes at ``qps`` without a burst. ``qps <= 0`` means no rate limit (the pause
    still holds).
    """

    def __init__(self, qps: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / qps if qps > 0 else 0.0
        self._tolerance = (max(1, burst) - 1) * self._interval
        self._clock = clock
        self._lock = threading.Lock()
        self._next = clock()  # the theoretical time of the next send at the steady rate
        self._not_before = float("-inf")

    @property
    def paused_until(self) -> float:
        with self._lock:
            return self._not_before

    def pause_until(self, moment: float) -> None:
        """Nobody sends before ``moment``; after it, one send per interval (no burst)."""
        with self._lock:
            if moment <= self._not_before:
                return
            self._not_before = moment
            self._next = max(self._next, moment + self._tolerance)

    def reserve(self) -> float:
        """Take the next turn: the clock time at which the caller may send."""
        with self._lock:
            now = self._clock()
            turn = max(now, self._next - self._tolerance, self._not_before)
            self._next = max(self._next, turn) + self._interval
            return turn

    def acquire(self, wait: Callable[[float], bool]) -> bool:
        """Wait for a turn with ``wait(seconds)`` (True when interrupted); False if interrupted.

        A turn taken before a pause began and falling inside it is given up for a new one after it.
        """
        while True:
            turn = self.reserve()
            while (delay := turn - self._clock()) > 0:
                if wait(delay):
                    return False
            with self._lock:
                if turn >= self._not_before:
                    return True


class wait_retry_after(wait_base):
    """The larger of ``backoff`` and the Retry-After the failed attempt's error asked for."""

    def __init__(self, backoff: wait_base) -> None:
        self.backoff = backoff

    def __call__(self, retry_state: RetryCallState) -> float:
        wait = self.backoff(retry_state)
        outcome = retry_state.outcome
        if outcome is not None and outcome.failed:
            error = outcome.exception()
            if isinstance(error, KubeApiError) and error.retry_after is not None:
                wait = max(wait, error.retry_after)
        return wait


def waits_for_quota(error: KubeApiError | None) -> bool:
    """Whether ``error`` refused a create for a full quota: pods that end make room."""
    return error is not None and error.refusal is not None and error.refusal.kind is RefusalKind.QUOTA_FULL


class stop_at(stop_base):
    """Stop when the next attempt would come after ``deadline``: nothing may be created after it."""

    def __init__(self, deadline: float, clock: Callable[[], float]) -> None:
        self.deadline = deadline
        self.clock = clock
        self.fired = False  # it, not another stop, ended the retries

    def __call__(self, retry_state: RetryCallState) -> bool:
        self.fired = self.clock() + retry_state.upcoming_sleep >= self.deadline
        return self.fired


__all__ = ["RateLimiter", "stop_at", "wait_retry_after", "waits_for_quota"]

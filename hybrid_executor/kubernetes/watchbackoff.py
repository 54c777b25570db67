"""How long a pod watcher waits after a failed list or watch connection before the next.

Full jitter, growing exponentially (tenacity's ``wait_random_exponential``) while connections keep
failing, starting over once one succeeds; a Retry-After the error carries is honoured, up to the
maximum.
"""

from __future__ import annotations

import tenacity


class ReconnectBackoff:
    """The failures in a row, and the wait each one earns."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._maximum = maximum
        self._wait = tenacity.wait_random_exponential(multiplier=initial, max=maximum)
        self._retrying = tenacity.Retrying()  # only to give the wait strategy its attempt numbers
        self.failures = 0  # connections (lists or watches) failed in a row

    def failed(self, error: BaseException | None = None) -> float:
        """Count one more failure in a row and return the backoff before the next attempt.

        A Retry-After the error carries (``KubeApiError.retry_after``) is honoured, up to
        ``maximum``.
        """
        self.failures += 1
        state = tenacity.RetryCallState(self._retrying, None, (), {})
        state.attempt_number = self.failures
        delay = float(self._wait(state))
        retry_after = getattr(error, "retry_after", None)
        if isinstance(retry_after, (int, float)) and retry_after > 0:
            delay = max(delay, min(float(retry_after), self._maximum))
        return delay

    def succeeded(self) -> None:
        """A connection succeeded: the backoff starts over."""
        self.failures = 0


__all__ = ["ReconnectBackoff"]

"""Deletes worker pods off the scheduler's thread: concurrently, each pod at most once at a time, retried.

A deletion that meets a retryable error (a reset connection, a timeout, 429, 5xx) is tried again
with full-jitter exponential backoff, never sooner than the error's Retry-After, within a time
budget: left undone, a finished pod would stay for ever, holding its quota. 404 means done. A
deletion may name the pod's uid: then only that pod goes, never another one that has taken its
name since (the API answers 409 Conflict to the precondition, which means: nothing of ours left).

Several threads delete at once, so deletes keep up with many pods finishing at a time on a slow
API server (each request waits for its answer).
"""

from __future__ import annotations

import logging
import queue
import threading

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from hybrid_executor.kubernetes.api import KubeApi, KubeApiError
from hybrid_executor.kubernetes.errors import is_retryable
from hybrid_executor.kubernetes.pacing import wait_retry_after
from hybrid_executor.metrics import PodMetrics

log = logging.getLogger(__name__)

_Item = tuple[str, str, str | None]  # namespace, name, uid


class _Stopping(Exception):
    """The deleter is stopping: no more attempts."""


def _is_retryable(error: BaseException) -> bool:
    # A 409 answers a uid precondition: that pod is gone, another one has the name. Not retried.
    return is_retryable(error) and getattr(error, "code", None) != 409


class PodDeleter:
    """Deletes the pods asked for on ``concurrency`` threads, each retried for ``retry_timeout`` seconds."""

    def __init__(
        self,
        api: KubeApi,
        *,
        concurrency: int = 8,
        retry_timeout: float = 300.0,
        backoff_multiplier: float = 0.5,
        backoff_max: float = 30.0,
        metrics: PodMetrics | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self._api = api
        self._metrics = metrics or PodMetrics()
        self._concurrency = concurrency
        self._retry_timeout = retry_timeout
        self._wait = wait_retry_after(wait_random_exponential(multiplier=backoff_multiplier, max=backoff_max))
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._asked: set[_Item] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for number in range(self._concurrency):
            thread = threading.Thread(target=self._run, name=f"pod-deleter-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def delete(self, namespace: str, name: str, uid: str | None = None) -> None:
        """Ask for a deletion (of pod ``uid`` only, if given); never blocks; a pending one is not asked again."""
        item = (namespace, name, uid)
        with self._lock:
            if item in self._asked:
                return
            self._asked.add(item)
        self._queue.put(item)

    def pending(self) -> int:
        """Deletions asked for and not yet done or given up."""
        with self._lock:
            return len(self._asked)

    def stop(self, timeout: float) -> None:
        """Stop retrying; deletions still queued are not sent (workers are daemon threads)."""
        self._stopping.set()
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self._stopping.is_set():
                return
            try:
                self._delete(item)
            except Exception:  # a bug here must not take a worker (and the deletions it would do) down
                log.exception("Unexpected error deleting worker pod %s/%s", item[0], item[1])
            finally:
                with self._lock:
                    self._asked.discard(item)  # kept only while pending: the set never grows with history

    def _delete(self, item: _Item) -> None:
        namespace, name, uid = item
        retrying = Retrying(
            stop=stop_after_delay(self._retry_timeout),
            wait=self._wait,
            retry=retry_if_exception(_is_retryable),
            sleep=self._sleep,
            before_sleep=lambda state: self._log_retry(item, state),
            reraise=True,
        )
        try:
            retrying(self._api.delete_pod, namespace, name, uid=uid)  # a 404 is done, not an error
        except _Stopping:
            return
        except KubeApiError as error:
            if uid is not None and error.code == 409:
                self._metrics.deleted()
                return  # the name now belongs to another pod: the one asked for is gone
            attempts = retrying.statistics.get("attempt_number", 1)
            log.warning("Could not delete worker pod %s/%s (%d attempts): %s", namespace, name, attempts, error)
            self._metrics.delete_failed(error)
        else:
            self._metrics.deleted()

    def _sleep(self, seconds: float) -> None:
        if self._stopping.wait(seconds):
            raise _Stopping

    def _log_retry(self, item: _Item, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        self._metrics.delete_retried(error)
        log.info(
            "Deleting worker pod %s/%s failed (attempt %d): %s; next attempt in %.2fs",
            item[0],
            item[1],
            state.attempt_number,
            error,
            state.upcoming_sleep,
        )


__all__ = ["PodDeleter"]

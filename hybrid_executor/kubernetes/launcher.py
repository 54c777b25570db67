"""Creates pods off the scheduler thread: worker threads, a shared rate limit, retries, cancellation.

The scheduler thread only calls :meth:`PodLauncher.submit`, :meth:`~PodLauncher.cancel` and
:meth:`~PodLauncher.results`, which touch in-memory queues and never the network. A pool of worker
threads takes each :class:`LaunchRequest` and creates its pod:

- under one client-side rate limit shared by all workers (:class:`RateLimiter`, a token bucket of
  ``qps`` and ``burst``), which a 429 also pauses until its Retry-After, so that a throttled API
  server hears nothing from any worker until it asked to;
- retrying with tenacity what :func:`~hybrid_executor.kubernetes.errors.classify` calls RETRYABLE
  (exponential backoff with full jitter, never sooner than the error's Retry-After), within a time
  budget per task; anything else (400, 422, a missing namespace) fails at once with the API's message;
- 409 AlreadyExists counts as launched: a pod's name is unique to one queueing of its task (see
  ``pods.pod_name_for``), so the pod that exists is the one an earlier attempt of this launch
  created (its answer lost on the way back);
- launches are known by their pod's name (one per queueing), so a task queued again while an
  older queueing's launch is still retrying gets a launch of its own;
- a cancelled launch sends nothing more: checked before each attempt, and every wait (for the
  rate limit, between attempts) ends as soon as it is cancelled or the launcher stops. The
  executor cancels a launch when its task is revoked, and when the watch shows that the pod
  exists (an attempt stored it though its answer was lost), so a later attempt can never make a
  second pod of that name once the first is deleted.
- pods are built one at a time (creates still go out concurrently): building is CPU work under
  the GIL, so concurrent builds finish no sooner; they only contend with the scheduler's thread.
  A build is a JSON merge from the queue's template (``pods.worker_pod_body``), tens of
  microseconds, unless a mutation hook or an odd pod_override needs the provider's model merge.

Every request gets exactly one :class:`LaunchResult`. Nothing here logs a pod: its args carry the
workload JSON with a token; logs name the task key, pod name, namespace, attempt and error.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_delay, wait_random_exponential
from tenacity.stop import stop_base

from hybrid_executor.kubernetes.api import KubeApi
from hybrid_executor.kubernetes.errors import ApiErrorKind, KubeApiError, classify, is_retryable
from hybrid_executor.kubernetes.identity import field_of
from hybrid_executor.kubernetes.interrupts import QuotaWaits
from hybrid_executor.kubernetes.launches import LaunchRequest, LaunchResult, PodBody
from hybrid_executor.kubernetes.launchjob import Expired, Interrupted, Job, OperatorWarnings, Stale, job_result
from hybrid_executor.kubernetes.pacing import RateLimiter, stop_at, wait_retry_after, waits_for_quota
from hybrid_executor.kubernetes.podbuilderror import PodBuildError
from hybrid_executor.kubernetes.staleness import FRESH_FOR
from hybrid_executor.metrics import BUILD, EXPIRED, OTHER, PodMetrics

log = logging.getLogger(__name__)

# How long a 429 without a Retry-After pauses creation (the API server's priority and fairness
# answers 429 with Retry-After: 1, so this is only for proxies that leave it out).
DEFAULT_THROTTLE_PAUSE = 1.0

# The longest backoff between creates refused for a full quota (pods ending wake them sooner).
QUOTA_BACKOFF_MAX = 5.0


class PodLauncher:
    """Creates the pods of submitted requests on ``concurrency`` worker threads.

    ``retry_timeout`` is each task's budget for retrying, from its first attempt (time spent queued
    behind other tasks does not count); the last attempt may end up to one backoff later.
    ``backoff_multiplier``, ``backoff_min`` and ``backoff_max`` shape the waits between attempts: the
    n-th wait is drawn uniformly from [backoff_min, min(backoff_max, backoff_multiplier * 2**(n-1))]
    seconds (``quota_backoff_max`` instead of ``backoff_max`` after a full quota's refusal, which a pod
    ending in the namespace also cuts short: :meth:`quota_freed`), and is never
    shorter than the error's Retry-After. ``clock`` drives the rate limit and the 429 pause (the
    budget is measured by tenacity, on ``time.monotonic``).
    """

    def __init__(
        self,
        api: KubeApi,
        concurrency: int,
        qps: float,
        burst: int,
        retry_timeout: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        backoff_multiplier: float = 0.5,
        backoff_max: float = 30.0,
        backoff_min: float = 0.0,
        quota_backoff_max: float = QUOTA_BACKOFF_MAX,
        metrics: PodMetrics | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self._api = api
        self._metrics = metrics or PodMetrics()
        self._concurrency = concurrency
        self._retry_timeout = retry_timeout
        self._clock = clock
        self._wait = wait_retry_after(
            wait_random_exponential(multiplier=backoff_multiplier, max=backoff_max, min=backoff_min)
        )
        # A full quota also wakes its waiters when a pod of the namespace ends (quota_freed): the backoff
        # is only for room freed by pods this executor does not follow, so it stays short.
        self._quota_wait = wait_retry_after(
            wait_random_exponential(multiplier=backoff_multiplier, max=quota_backoff_max, min=backoff_min)
        )
        self._quota_waits = QuotaWaits()
        self.limiter = RateLimiter(qps, burst, clock)
        self._lock = threading.Lock()
        self._pending: dict[str, Job] = {}  # by pod name: one launch per queueing
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[LaunchResult] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._build_lock = threading.Lock()
        self._warnings = OperatorWarnings()

    # --- called from the scheduler thread: never blocks on the network -------------------------

    def start(self) -> None:
        if self._threads:
            raise RuntimeError("the pod launcher is already started")
        for number in range(self._concurrency):
            thread = threading.Thread(target=self._work, name=f"pod-launcher-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, request: LaunchRequest) -> None:
        """Queue a pod creation. A pod name already pending is not queued twice."""
        if callable(request.pod):
            job = Job(request, pod_name=request.pod_name, namespace=request.namespace)
        else:
            metadata = field_of(request.pod, "metadata")
            job = Job(request, field_of(metadata, "name"), field_of(metadata, "namespace"), pod=request.pod)
        job.submitted = self._clock()
        with self._lock:
            if job.pod_name in self._pending:
                log.warning("Pod %s for %s is already being launched; not queued again", job.pod_name, request.key)
                return
            self._pending[job.pod_name] = job
        if self._stopping.is_set():
            self._finish(job, self._abandoned(job))
            return
        self._queue.put(job)

    def cancel(self, pod_name: str) -> None:
        """Send no more create requests for ``pod_name`` (one on the wire cannot be taken back)."""
        with self._lock:
            job = self._pending.get(pod_name)
            if job is None:
                return
            job.cancelled = True
        job.interrupt.set()

    def quota_freed(self, namespace: str, pods: int = 1) -> None:
        """``pods`` pods of ``namespace`` ended: launches waiting for its quota try again now."""
        self._quota_waits.freed(namespace, pods)

    def results(self) -> list[LaunchResult]:
        """Every result that came since the last call."""
        drained = []
        while True:
            try:
                drained.append(self._results.get_nowait())
            except queue.Empty:
                return drained

    def pending(self) -> int:
        """Requests submitted whose result has not come yet."""
        with self._lock:
            return len(self._pending)

    def waiting_for_quota(self) -> int:
        """Launches refused for a full quota, waiting for a pod of their namespace to end."""
        return len(self._quota_waits)

    def stop(self, timeout: float) -> None:
        """Interrupt every wait, give queued requests a cancelled result, and join the workers.

        A request already on the wire cannot be taken back: its worker ends when it is answered
        (workers are daemon threads, so one still waiting after ``timeout`` does not hold the process).
        """
        self._stopping.set()
        with self._lock:
            jobs = list(self._pending.values())
        for job in jobs:
            job.interrupt.set()
        while True:
            try:
                queued = self._queue.get_nowait()
            except queue.Empty:
                break
            if queued is not None:
                self._finish(queued, self._abandoned(queued))
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        still = [thread.name for thread in self._threads if thread.is_alive()]
        if still:
            log.warning("Pod launcher workers still waiting for the API after %.1fs: %s", timeout, ", ".join(still))

    # --- the workers ---------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                result = self._launch(job)
            except Exception as error:  # a bug here must not take a worker (and its tasks) down
                message = f"unexpected error while creating the pod: {classify(error).message}"
                log.error("Pod %s in %s for %s: %s", job.pod_name, job.namespace, job.request.key, message)
                self._metrics.create_failed(error, reason=OTHER)
                result = job_result(job, ok=False, error=message)
            self._finish(job, result)

    def _finish(self, job: Job, result: LaunchResult) -> None:
        with self._lock:  # cancel() sets job.cancelled under this lock, and only while the job is pending
            self._pending.pop(job.pod_name, None)
            if job.cancelled and not result.cancelled:  # cancelled after the create was answered
                result = dataclasses.replace(result, cancelled=True)
        self._results.put(result)

    def _launch(self, job: Job) -> LaunchResult:
        if job.interrupt.is_set():
            return self._abandoned(job)
        if job.pod is None:
            try:
                with self._build_lock:  # one build at a time: see the module docstring
                    job.pod = self._build(job)
            except PodBuildError as error:
                log.error("Pod for %s could not be built: %s", job.request.key, error)
                self._metrics.create_failed(error, reason=BUILD)
                return job_result(job, ok=False, error=f"pod could not be built: {error}")
        stop: stop_base = stop_after_delay(self._retry_timeout)
        deadline = stop_at(job.request.deadline, self._clock) if job.request.deadline is not None else None
        if deadline is not None:
            stop = stop | deadline
        retrying = Retrying(
            stop=stop,
            wait=self._backoff,
            retry=retry_if_exception(is_retryable),
            sleep=lambda seconds: self._sleep(job, seconds),
            before_sleep=lambda state: self._log_retry(job, state),
            reraise=True,
        )
        started = self._clock()
        try:
            created = retrying(self._attempt, job)
        except Interrupted:
            return self._abandoned(job)
        except Stale:
            log.info(
                "Pod %s in %s for %s not created: the task instance is no longer queued for it",
                job.pod_name,
                job.namespace,
                job.request.key,
            )
            result = job_result(job, ok=False, error="the task instance is no longer queued", cancelled=True)
            return dataclasses.replace(result, stale=True, gave_up=job.attempts > 0)
        except (Expired, KubeApiError) as error:
            if isinstance(error, KubeApiError) and not (deadline is not None and deadline.fired):
                return self._failed(job, error, started)
            last_error = error if isinstance(error, KubeApiError) else job.last_error
            last = f"; last error: {last_error}" if last_error is not None else ""
            message = (
                f"not created: its workload's token expires before the pod could run the task (the scheduler "
                f"gives it [scheduler] task_queued_timeout from queueing; {job.attempts} attempts){last}"
            )
            log.error("Pod %s in %s for %s was %s", job.pod_name, job.namespace, job.request.key, message)
            self._metrics.create_failed(last_error, reason=EXPIRED)
            return dataclasses.replace(job_result(job, ok=False, error=f"pod {message}"), gave_up=job.attempts > 0)
        if created:
            log.info(
                "Created pod %s in %s for %s (attempt %d)", job.pod_name, job.namespace, job.request.key, job.attempts
            )
        else:
            log.info(
                "Pod %s in %s for %s already existed: an earlier attempt created it",
                job.pod_name,
                job.namespace,
                job.request.key,
            )
        self._metrics.created(job.request.queued_at)
        return job_result(job, ok=True, error=None)

    def _failed(self, job: Job, error: KubeApiError, started: float) -> LaunchResult:
        if error.kind is ApiErrorKind.RETRYABLE:
            elapsed = self._clock() - started
            message = (
                f"gave up creating the pod after {job.attempts} attempts in {elapsed:.1f}s "
                f"(retry budget {self._retry_timeout:g}s); last error: {error}"
            )
        else:
            message = str(error)
        log.error("Pod %s in %s for %s was not created: %s", job.pod_name, job.namespace, job.request.key, message)
        self._metrics.create_failed(error)
        result = job_result(job, ok=False, error=message)
        return dataclasses.replace(result, gave_up=error.kind is ApiErrorKind.RETRYABLE)

    @staticmethod
    def _build(job: Job) -> PodBody:
        assert callable(job.request.pod)
        pod = job.request.pod()
        # pod_override may move the pod to another watched namespace: report where it really is.
        # (Its name is the one asked for: the pod's identity is applied after any override.)
        job.namespace = field_of(field_of(pod, "metadata"), "namespace")
        return pod

    def _attempt(self, job: Job) -> bool:
        """One create request, when the rate limit allows; True if created, False if it already existed."""
        if job.interrupt.is_set() or not self.limiter.acquire(job.interrupt.wait) or job.interrupt.is_set():
            raise Interrupted
        if job.request.deadline is not None and self._clock() >= job.request.deadline:
            raise Expired
        wanted = job.request.still_wanted
        fresh = not job.attempts and not job.request.ask_first and self._clock() - job.submitted <= FRESH_FOR
        if wanted is not None and not fresh and not wanted():
            raise Stale
        job.attempts += 1
        try:
            assert job.pod is not None
            with self._metrics.create_request():
                created = self._api.create_pod(job.pod)
        except KubeApiError as error:
            if error.kind is ApiErrorKind.ALREADY_EXISTS:
                return False
            if error.code == 429:
                pause = error.retry_after if error.retry_after is not None else DEFAULT_THROTTLE_PAUSE
                self.limiter.pause_until(self._clock() + pause)
                log.warning("The API server throttles pod creation (429): every launch waits %.1fs", pause)
            raise
        job.uid = (created.get("metadata") or {}).get("uid")
        self._warnings.cleared(job.namespace)
        return True

    def _sleep(self, job: Job, seconds: float) -> None:
        if waits_for_quota(job.last_error):
            interrupted = self._quota_waits.wait(job.namespace, job.interrupt, seconds)
        else:
            interrupted = job.interrupt.wait(seconds)
        if interrupted:
            raise Interrupted

    def _backoff(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, KubeApiError) and waits_for_quota(error):
            return self._quota_wait(state)
        return self._wait(state)

    def _log_retry(self, job: Job, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        self._metrics.create_retried(error)
        if isinstance(error, KubeApiError):
            job.last_error = error
            self._warnings.warn(job.namespace, error)
        log.warning(
            "Creating pod %s in %s for %s failed (attempt %d): %s; next attempt in %.2fs",
            job.pod_name,
            job.namespace,
            job.request.key,
            job.attempts,
            error,
            state.upcoming_sleep,
        )

    def _abandoned(self, job: Job) -> LaunchResult:
        why = "the pod launcher stopped" if self._stopping.is_set() and not job.cancelled else "cancelled"
        return job_result(job, ok=False, error=f"{why} before the pod was created", cancelled=True)


__all__ = ["DEFAULT_THROTTLE_PAUSE", "LaunchRequest", "LaunchResult", "PodLauncher", "RateLimiter", "wait_retry_after"]

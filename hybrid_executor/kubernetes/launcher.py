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
  the GIL, so concurrent builds finish no sooner; they only contend, for the GIL with the
  scheduler's thread (stretching its heartbeat) and for the logging module's lock, which the
  kubernetes client takes whenever one of its models creates or copies a ``Configuration``
  (dozens of times per pod). Measured with ``benchmarks/executor_kubernetes.py`` on 2 cores:
  2,000 pods created at about 165 a second instead of 100.

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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from hybrid_executor.kubernetes.api import KubeApi
from hybrid_executor.kubernetes.errors import ApiErrorKind, KubeApiError, RefusalKind, classify, is_retryable
from hybrid_executor.kubernetes.pacing import RateLimiter, wait_retry_after
from hybrid_executor.kubernetes.pods import PodBuildError

if TYPE_CHECKING:
    from airflow.models.taskinstancekey import TaskInstanceKey
    from kubernetes.client import V1Pod

log = logging.getLogger(__name__)

# Refusals an operator clears (a Role, a ServiceAccount): retried, and said at once, once, with the fix.
_OPERATOR_REFUSALS = frozenset({RefusalKind.RBAC, RefusalKind.SERVICE_ACCOUNT_MISSING})

# How long a 429 without a Retry-After pauses creation (the API server's priority and fairness
# answers 429 with Retry-After: 1, so this is only for proxies that leave it out).
DEFAULT_THROTTLE_PAUSE = 1.0


@dataclass(frozen=True)
class LaunchRequest:
    """A pod to create for ``key``: the pod itself, or how to build it.

    Building a worker pod (template, pod_override merge, mutation hook) costs milliseconds; a
    builder runs on a launcher thread so the scheduler's thread never pays it. A builder needs
    ``pod_name`` and ``namespace`` up front (the pod's name is derived from the task key and the
    queueing anyway). The launch is known by ``pod_name``.
    """

    key: TaskInstanceKey
    pod: V1Pod | Callable[[], V1Pod]  # with metadata.name and metadata.namespace set
    pod_name: str = ""
    namespace: str = ""


@dataclass(frozen=True)
class LaunchResult:
    """How a launch ended.

    ``ok``: the pod exists (created, or it already existed: an earlier attempt of this launch).
    ``uid``: the uid of the pod this launch's last attempt created (None if it answered 409 or
    created nothing); a pod of this name with another uid is not the one this attempt made.
    ``cancelled``: :meth:`PodLauncher.cancel` (or ``stop``) came before the result. With ``ok``
    True the create was already on its way when the cancel came.
    ``error``: why it failed, with the API's own message, for the task's event log.
    ``attempts``: how many create requests were sent.
    """

    key: TaskInstanceKey
    ok: bool
    pod_name: str
    namespace: str
    error: str | None
    attempts: int
    cancelled: bool = False
    uid: str | None = None
    gave_up: bool = False  # retryable errors until the budget ran out: an attempt may have been stored


class _Interrupted(Exception):
    """The key was cancelled, or the launcher is stopping: stop waiting, send nothing more."""


_INTERRUPT_LOCK = threading.Lock()


class _Interrupt:
    """A job's "stop waiting" flag: a :class:`threading.Event` made only once a worker waits on it.

    :meth:`PodLauncher.submit` runs on the scheduler's thread, once per task; an Event (a Condition
    and its lock) made there cost about a tenth of a heartbeat's time in
    ``benchmarks/executor_kubernetes.py``. Most jobs never wait, so most never need one.
    """

    __slots__ = ("_event", "_set")

    def __init__(self) -> None:
        self._set = False
        self._event: threading.Event | None = None

    def set(self) -> None:
        with _INTERRUPT_LOCK:
            self._set = True
            event = self._event
        if event is not None:
            event.set()

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float) -> bool:
        """Wait until set or ``timeout`` seconds have passed; True if set."""
        with _INTERRUPT_LOCK:
            if self._set:
                return True
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        return event.wait(timeout)


@dataclass(eq=False)
class _Job:
    request: LaunchRequest
    pod_name: str
    namespace: str
    interrupt: _Interrupt = field(default_factory=_Interrupt)  # set by cancel() and stop()
    cancelled: bool = False
    attempts: int = 0
    pod: V1Pod | None = None  # once built
    uid: str | None = None  # of the pod the last attempt created


class PodLauncher:
    """Creates the pods of submitted requests on ``concurrency`` worker threads.

    ``retry_timeout`` is each task's budget for retrying, from its first attempt (time spent queued
    behind other tasks does not count); the last attempt may end up to one backoff later.
    ``backoff_multiplier`` and ``backoff_max`` shape the waits between attempts: the n-th wait is
    drawn uniformly from [0, min(backoff_max, backoff_multiplier * 2**(n-1))] seconds, and is never
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
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self._api = api
        self._concurrency = concurrency
        self._retry_timeout = retry_timeout
        self._clock = clock
        self._wait = wait_retry_after(wait_random_exponential(multiplier=backoff_multiplier, max=backoff_max))
        self.limiter = RateLimiter(qps, burst, clock)
        self._lock = threading.Lock()
        self._pending: dict[str, _Job] = {}  # by pod name: one launch per queueing
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[LaunchResult] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._build_lock = threading.Lock()
        self._warned: set[tuple[str, str]] = set()  # (namespace, refusal detail) said since the last create there

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
            job = _Job(request, pod_name=request.pod_name, namespace=request.namespace)
        else:
            job = _Job(request, request.pod.metadata.name, request.pod.metadata.namespace, pod=request.pod)
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
                result = self._result(job, ok=False, error=message)
            self._finish(job, result)

    def _finish(self, job: _Job, result: LaunchResult) -> None:
        with self._lock:  # cancel() sets job.cancelled under this lock, and only while the job is pending
            self._pending.pop(job.pod_name, None)
            if job.cancelled and not result.cancelled:  # cancelled after the create was answered
                result = dataclasses.replace(result, cancelled=True)
        self._results.put(result)

    def _launch(self, job: _Job) -> LaunchResult:
        if job.interrupt.is_set():
            return self._abandoned(job)
        if job.pod is None:
            try:
                with self._build_lock:  # one build at a time: see the module docstring
                    job.pod = self._build(job)
            except PodBuildError as error:
                log.error("Pod for %s could not be built: %s", job.request.key, error)
                return self._result(job, ok=False, error=f"pod could not be built: {error}")
        retrying = Retrying(
            stop=stop_after_delay(self._retry_timeout),
            wait=self._wait,
            retry=retry_if_exception(is_retryable),
            sleep=lambda seconds: self._sleep(job, seconds),
            before_sleep=lambda state: self._log_retry(job, state),
            reraise=True,
        )
        started = self._clock()
        try:
            created = retrying(self._attempt, job)
        except _Interrupted:
            return self._abandoned(job)
        except KubeApiError as error:
            if error.kind is ApiErrorKind.RETRYABLE:
                elapsed = self._clock() - started
                message = (
                    f"gave up creating the pod after {job.attempts} attempts in {elapsed:.1f}s "
                    f"(retry budget {self._retry_timeout:g}s); last error: {error}"
                )
            else:
                message = str(error)
            log.error("Pod %s in %s for %s was not created: %s", job.pod_name, job.namespace, job.request.key, message)
            result = self._result(job, ok=False, error=message)
            return dataclasses.replace(result, gave_up=error.kind is ApiErrorKind.RETRYABLE)
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
        return self._result(job, ok=True, error=None)

    @staticmethod
    def _build(job: _Job) -> V1Pod:
        assert callable(job.request.pod)
        pod = job.request.pod()
        # pod_override may move the pod to another watched namespace: report where it really is.
        # (Its name is the one asked for: the pod's identity is applied after any override.)
        job.namespace = pod.metadata.namespace
        return pod

    def _attempt(self, job: _Job) -> bool:
        """One create request, when the rate limit allows; True if created, False if it already existed."""
        if job.interrupt.is_set() or not self.limiter.acquire(job.interrupt.wait) or job.interrupt.is_set():
            raise _Interrupted
        job.attempts += 1
        try:
            assert job.pod is not None
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
        self._cleared(job.namespace)
        return True

    def _sleep(self, job: _Job, seconds: float) -> None:
        if job.interrupt.wait(seconds):
            raise _Interrupted

    def _warn_operator(self, job: _Job, error: KubeApiError) -> None:
        """An RBAC or ServiceAccount refusal: one warning with the fix, not one per task and retry."""
        refusal = error.refusal
        if refusal is None or refusal.kind not in _OPERATOR_REFUSALS:
            return
        said = (job.namespace, refusal.detail)
        with self._lock:
            if said in self._warned:
                return
            self._warned.add(said)
        log.warning(
            "Pods in namespace %s cannot be created until an operator acts: %s. Fix: %s. Every launch there "
            "retries with backoff meanwhile (within [hybrid_executor] pod_creation_retry_timeout)",
            job.namespace,
            error.message,
            refusal.hint,
        )

    def _cleared(self, namespace: str) -> None:
        if not self._warned:
            return
        with self._lock:
            self._warned = {said for said in self._warned if said[0] != namespace}

    def _log_retry(self, job: _Job, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, KubeApiError):
            self._warn_operator(job, error)
        log.warning(
            "Creating pod %s in %s for %s failed (attempt %d): %s; next attempt in %.2fs",
            job.pod_name,
            job.namespace,
            job.request.key,
            job.attempts,
            error,
            state.upcoming_sleep,
        )

    def _abandoned(self, job: _Job) -> LaunchResult:
        why = "the pod launcher stopped" if self._stopping.is_set() and not job.cancelled else "cancelled"
        return self._result(job, ok=False, error=f"{why} before the pod was created", cancelled=True)

    def _result(self, job: _Job, *, ok: bool, error: str | None, cancelled: bool | None = None) -> LaunchResult:
        return LaunchResult(
            key=job.request.key,
            ok=ok,
            pod_name=job.pod_name,
            namespace=job.namespace,
            error=error,
            attempts=job.attempts,
            cancelled=job.cancelled if cancelled is None else cancelled,
            uid=job.uid if ok else None,
        )


__all__ = ["DEFAULT_THROTTLE_PAUSE", "LaunchRequest", "LaunchResult", "PodLauncher", "RateLimiter", "wait_retry_after"]

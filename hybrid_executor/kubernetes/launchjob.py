"""One launch as the launcher's workers carry it (:class:`Job`), how it can end early, and its result.

Also :class:`OperatorWarnings`: an RBAC or ServiceAccount refusal, which only an operator clears,
is said once per namespace with its fix, not once per task and retry.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from hybrid_executor.kubernetes.errors import KubeApiError, RefusalKind
from hybrid_executor.kubernetes.interrupts import Interrupt
from hybrid_executor.kubernetes.launches import LaunchRequest, LaunchResult, PodBody

log = logging.getLogger("hybrid_executor.kubernetes.launcher")  # what operators (and tests) have always read

# Refusals an operator clears (a Role, a ServiceAccount): retried, and said at once, once, with the fix.
_OPERATOR_REFUSALS = frozenset({RefusalKind.RBAC, RefusalKind.SERVICE_ACCOUNT_MISSING})


class Interrupted(Exception):
    """The key was cancelled, or the launcher is stopping: stop waiting, send nothing more."""


@dataclass(eq=False)
class Job:
    request: LaunchRequest
    pod_name: str
    namespace: str
    interrupt: Interrupt = field(default_factory=Interrupt)  # set by cancel() and stop(); nudged by quota_freed()
    cancelled: bool = False
    attempts: int = 0
    pod: PodBody | None = None  # once built
    uid: str | None = None  # of the pod the last attempt created
    last_error: KubeApiError | None = None  # of the last failed attempt, while retrying
    submitted: float = 0.0  # on the launcher's clock


class Stale(Exception):
    """The task instance is no longer queued for this launch's queueing: nothing may be created."""


class Expired(Exception):
    """The launch's deadline passed: a pod created now could not run its task."""


def job_result(job: Job, *, ok: bool, error: str | None, cancelled: bool | None = None) -> LaunchResult:
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


class OperatorWarnings:
    """The operator refusals said since the last create in their namespace (a few at most)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._said: set[tuple[str, str]] = set()  # (namespace, refusal detail)

    def warn(self, namespace: str, error: KubeApiError) -> None:
        """An RBAC or ServiceAccount refusal: one warning with the fix, not one per task and retry."""
        refusal = error.refusal
        if refusal is None or refusal.kind not in _OPERATOR_REFUSALS:
            return
        said = (namespace, refusal.detail)
        with self._lock:
            if said in self._said:
                return
            self._said.add(said)
        log.warning(
            "Pods in namespace %s cannot be created until an operator acts: %s. Fix: %s. Every launch there "
            "retries with backoff meanwhile (within [hybrid_executor] pod_creation_retry_timeout)",
            namespace,
            error.message,
            refusal.hint,
        )

    def cleared(self, namespace: str) -> None:
        """A pod was created in ``namespace``: a refusal there is said again if it comes back."""
        if not self._said:
            return
        with self._lock:
            self._said = {said for said in self._said if said[0] != namespace}


__all__ = ["Expired", "Interrupted", "Job", "OperatorWarnings", "Stale", "job_result"]

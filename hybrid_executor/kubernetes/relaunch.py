"""A pod that failed before its task started gets a new pod: the stock ``pod_launch_failure_retries``.

A node drained or scaled down, an eviction before the container started, a node that failed it at
boot, an image pull that failed: the pod failed, but no task code ran, and its task instance is
still QUEUED in the metadata database. The stock KubernetesExecutor (cncf-kubernetes 10.20+) then
queues the task's pod again, up to ``[kubernetes_executor] pod_launch_failure_retries`` times (-1:
no limit, 0: never), unless the container's termination reason is one of
``pod_launch_failure_excluded_container_reasons`` (default ``Error``: a container that started and
whose Airflow process exited before it set the task running). The scheduler is told nothing, so
no task retry is used. So here.

Who decides what: the scheduler's thread sees the failure (a pod event) and decides from memory
alone whether it may be one before start (:meth:`Relauncher.allows`: the task's current queueing,
a workload kept for it, relaunches left, a reason not excluded). It then submits a launch of a new
pod (:meth:`Relauncher.next_launch`) whose first step, on a launcher thread, reads the task
instance's state (:func:`~hybrid_executor.kubernetes.staleness.still_queued`; an unreadable
database counts as "not queued"). QUEUED, of this try and this queueing: the new pod is created,
and the stock WARNING is logged. Anything else (its task did start and set it running; the scheduler
moved on): nothing is created, and the old pod's failure is reported as if there were no relaunch
(:mod:`~hybrid_executor.kubernetes.launch_outcomes`). So the scheduler's thread never waits for
the database. The new pod's launch is an ordinary one: the workload token's expiry bounds it
(launch deadline), a revoke or the scheduler's own change_state cancels it, and a create that
fails for good fails the task with both pods' stories.

Naming: the n-th new pod of a queueing is ``pod_name_for(key, queueing, n)`` (a 409 on a retried
create is still its own pod) and carries the ``hybrid-executor/relaunch: n`` annotation beside the
queueing's own id, so adoption (and the log view: ``identity.newest_of_queueing``) matches it to
its task instance and prefers it to the failed pods before it, which go by the policy
(``delete_worker_pods``, ``delete_worker_pods_on_failure``).
Duplicate Failed events of one pod make one new pod: the failed pod's entry is finished (then
forgotten) as soon as its first one is handled.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hybrid_executor.kubernetes.identity import ANNOTATION_RELAUNCH, pod_name_for
from hybrid_executor.kubernetes.launches import LaunchRequest
from hybrid_executor.kubernetes.staleness import still_queued
from hybrid_executor.kubernetes.tracking import TrackedPod
from hybrid_executor.kubernetes.workload_token import launch_deadline

if TYPE_CHECKING:
    from airflow.executors.workloads import ExecuteTask
    from airflow.models.taskinstancekey import TaskInstanceKey

    from hybrid_executor.kubernetes.podstate import PodOutcome
    from hybrid_executor.settings import KubernetesSettings

log = logging.getLogger(__name__)

EVENT = "pod failed before its task started"


@dataclass(frozen=True)
class Relauncher:
    """The policy (``retries``: -1 no limit, 0 never) and the making of each new pod's launch."""

    retries: int
    excluded_reasons: frozenset[str]

    @classmethod
    def from_settings(cls, settings: KubernetesSettings) -> Relauncher:
        return cls(
            settings.pod_launch_failure_retries, frozenset(settings.pod_launch_failure_excluded_container_reasons)
        )

    @property
    def enabled(self) -> bool:
        """Whether pods keep their workload while in flight (only to make a new pod)."""
        return self.retries != 0

    def allows(self, pod: TrackedPod, outcome: PodOutcome) -> bool:
        """Whether ``pod``'s failure may get a new pod, by what this executor knows (the database decides)."""
        return (
            pod.workload is not None
            and pod.current
            and not pod.revoked
            and (self.retries < 0 or pod.relaunch < self.retries)
            and outcome.reason not in self.excluded_reasons
        )

    def next_launch(
        self, pod: TrackedPod, outcome: PodOutcome, build: Callable[[ExecuteTask], dict[str, Any]]
    ) -> tuple[TrackedPod, LaunchRequest]:
        """The entry and the launch of the new pod after ``pod`` failed with ``outcome``."""
        workload = pod.workload
        assert workload is not None
        number = pod.relaunch + 1
        name = pod_name_for(pod.key, pod.queueing, number)
        successor = TrackedPod(
            pod.key,
            pod.namespace,
            name,
            pod.queueing,
            launching=True,
            workload=workload,
            relaunch=number,
            failure=outcome.message,
        )
        warning = (
            f"[Try {number} of {self.retries}] Pod {pod.namespace}/{pod.name} for task {pod.key} failed before "
            f"the task process started (container_reason: {outcome.reason}). Requeuing without consuming a "
            "task retry."
        )
        request = LaunchRequest(
            pod.key,
            functools.partial(_build_relaunch, build, workload, name, number),
            pod_name=name,
            namespace=pod.namespace,
            deadline=launch_deadline(workload.token),
            still_wanted=_PreStartCheck(pod.key, pod.queueing, warning),
            ask_first=True,
        )
        return successor, request

    def event_text(self, pod: TrackedPod) -> str:
        """For the task's event log, once the new pod exists."""
        return (
            f"{pod.failure}; its task instance was still queued (no task code ran), so a new pod "
            f"{pod.namespace}/{pod.name} runs it without using a task retry "
            f"(pod_launch_failure_retries: {pod.relaunch} of {self.retries})"
        )


class _PreStartCheck:
    """On a launcher thread, before each create of a new pod: the task instance must still be queued.

    The first time it is, the stock executor's WARNING is logged: now it is known that no task code ran.
    """

    def __init__(self, key: TaskInstanceKey, queueing: str, warning: str) -> None:
        self._key = key
        self._queueing = queueing
        self._warning: str | None = warning

    def __call__(self) -> bool:
        if not still_queued(self._key, self._queueing, unreadable=False):
            return False
        if self._warning is not None:
            log.warning("%s", self._warning)
            self._warning = None
        return True


def _build_relaunch(
    build: Callable[[ExecuteTask], dict[str, Any]], workload: ExecuteTask, name: str, number: int
) -> dict[str, Any]:
    """The queueing's pod body as ``build`` makes it (on a launcher thread), under the new pod's name."""
    body = build(workload)
    metadata = body["metadata"]
    metadata["name"] = name
    metadata["annotations"] = {**(metadata.get("annotations") or {}), ANNOTATION_RELAUNCH: str(number)}
    return body


__all__ = ["EVENT", "Relauncher"]

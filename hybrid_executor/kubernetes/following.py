"""A followed pod's events turned into its task's reports: the pod executor's side of the watch.

:class:`PodFollower` reads each :class:`~hybrid_executor.kubernetes.podevents.PodEvent` against
the executor's :class:`~hybrid_executor.kubernetes.tracking.PodTable`: a second pod of one
queueing is deleted by uid, a pod another scheduler adopted is let go, a Pending pod gets its
deadline (and fails at once on a reason that cannot resolve, or when the deadline passes), a pod
that ended reports its task (for its own queueing only), is deleted by policy or gets a new pod
(:mod:`hybrid_executor.kubernetes.relaunch`). It runs on the scheduler's thread, from the
executor's ``sync()`` and adoption; it reports through the executor's own BaseExecutor calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from hybrid_executor.kubernetes.podevents import PodEvent
from hybrid_executor.kubernetes.podstate import PodOutcome, outcome_of
from hybrid_executor.kubernetes.tracking import TrackedPod

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.executors.workloads import ExecuteTask
    from airflow.models.taskinstancekey import TaskInstanceKey

    from hybrid_executor.kubernetes.adoption import AdoptedPod
    from hybrid_executor.kubernetes.launcher import PodLauncher
    from hybrid_executor.kubernetes.pending import PendingDeadlines
    from hybrid_executor.kubernetes.relaunch import Relauncher
    from hybrid_executor.kubernetes.tracking import PodTable
    from hybrid_executor.metrics import PodMetrics
    from hybrid_executor.settings import KubernetesSettings


class TaskReports(Protocol):
    """What the follower reports through: the pod executor's own BaseExecutor calls."""

    running: set[Any]  # BaseExecutor's running set (of WorkloadKey from Airflow 3.3 on)

    @property
    def log(self) -> Any: ...  # a logging.Logger, or Airflow's own logger type from 3.3 on

    def success(self, key: TaskInstanceKey, info: Any = None) -> None: ...

    def fail(self, key: TaskInstanceKey, info: Any = None) -> None: ...

    def log_task_event(self, *, event: str, extra: str, ti_key: TaskInstanceKey) -> Any: ...


class DeletePod(Protocol):
    def __call__(self, namespace: str, name: str, *, uid: str | None = None) -> None: ...


@dataclass(eq=False)
class PodFollower:
    """Follows the executor's pods through their events, on the scheduler's thread.

    ``settings`` and ``launcher`` are read when needed: the executor loads its settings lazily
    and starts its launcher at ``start()``. ``relauncher`` is set at ``start()`` as well.
    """

    table: PodTable
    pending: PendingDeadlines
    metrics: PodMetrics
    reports: TaskReports
    settings: Callable[[], KubernetesSettings]
    launcher: Callable[[], PodLauncher | None]
    delete_pod: DeletePod
    build_pod: Callable[[ExecuteTask], dict[str, Any]]
    relauncher: Relauncher | None = None  # from the settings, at the executor's start()

    def on_event(self, event: PodEvent) -> None:
        metadata = event.pod.get("metadata") or {}
        pod = self.table.by_name.get(metadata.get("name", ""))
        if pod is None or event.queueing != pod.queueing or event.key != pod.key:
            return  # not a pod of a queueing this executor follows (another deployment's, or an older one's)
        uid = metadata.get("uid")
        if pod.uid is None:
            pod.uid = uid
            pod.namespace = metadata.get("namespace", pod.namespace)
        elif uid != pod.uid:
            if event.type != "DELETED":
                self.reports.log.warning(
                    "Task %s: deleting pod %s/%s (uid %s): a second pod of one queueing (the first was %s)",
                    pod.key,
                    pod.namespace,
                    pod.name,
                    uid,
                    pod.uid,
                )
                self.delete_pod(metadata.get("namespace", pod.namespace), pod.name, uid=uid)
            return
        launcher = self.launcher()
        if pod.launching and launcher is not None:
            launcher.cancel(pod.name)  # the pod exists: no attempt may make another once it is gone
        if pod.finished or pod.revoked:
            return
        if event.type == "DELETED" and not event.synthetic and not metadata.get("deletionTimestamp"):
            self._let_go(pod)
            return
        settings = self.settings()
        outcome = outcome_of(event.type, event.pod, settings.worker_pod_pending_fatal_container_state_reasons)
        if outcome.state == "pending":
            self._note_pending(pod, outcome)
        elif outcome.state == "running":
            self.metrics.left_pending(pod.pending_since)
            pod.pending_since = None
        elif outcome.state == "unknown":
            pod.pending_since = None  # it did start; the pending timeout no longer applies
            if not pod.unknown_reported:
                pod.unknown_reported = True
                self.reports.log.warning("Task %s: %s", pod.key, outcome.message)
                self.reports.log_task_event(event="pod phase Unknown", extra=outcome.message, ti_key=pod.key)
        elif outcome.state in ("success", "failed"):
            self._finish(pod, outcome)

    def follow_adopted(self, adopted: Sequence[AdoptedPod]) -> None:
        """Follow pods adopted from a dead scheduler; the state their relabel answered is their first event."""
        for pod in adopted:
            self.reports.running.add(pod.key)
            self.table.follow(TrackedPod(pod.key, pod.namespace, pod.name, pod.queueing, pod.uid))
            if pod.pod:
                self.on_event(PodEvent("MODIFIED", pod.pod))

    def _let_go(self, pod: TrackedPod) -> None:
        """The pod left this scheduler's selector without being deleted: another scheduler adopted it.

        A deleted pod's last state always carries deletionTimestamp (the API server writes it before
        it removes any pod); only a relabel, which adoption alone does, ends a watch's view of a pod
        without it. That scheduler took this one for dead (a heartbeat later than
        scheduler_health_check_threshold) and now reports the task: nothing is reported here, and
        the slot is freed, as the stock executor does with its ADOPTED state.
        """
        self.reports.log.info(
            "Task %s: pod %s/%s was adopted by another scheduler; no longer followed here",
            pod.key,
            pod.namespace,
            pod.name,
        )
        pod.finished = True
        if pod.current:
            self.reports.running.discard(pod.key)
        self.release(pod)

    def _note_pending(self, pod: TrackedPod, outcome: PodOutcome) -> None:
        if outcome.fatal:
            self._finish(pod, outcome, still_pending=True)
            return
        pod.pending_reason = outcome.message
        if pod.pending_since is None:
            self.pending.started_pending(pod, time.monotonic(), self.settings().worker_pods_pending_timeout)

    def enforce_pending_timeout(self) -> None:
        timeout = self.settings().worker_pods_pending_timeout
        for pod in list(self.pending.due(self.table.by_name, time.monotonic(), timeout)):
            message = (
                f"pod {pod.namespace}/{pod.name} was still Pending after {timeout:g}s "
                f"([hybrid_executor] worker_pods_pending_timeout): {pod.pending_reason}"
            )
            # Not relaunched: a new pod would wait as long again.
            self._finish(pod, PodOutcome("failed", message, fatal=True), still_pending=True, relaunch=False)

    def _finish(
        self, pod: TrackedPod, outcome: PodOutcome, *, still_pending: bool = False, relaunch: bool = True
    ) -> None:
        """Report the task's end (for its current queueing only) and delete the pod by policy.

        A pod given up on while still Pending (the pending timeout, a reason that cannot resolve) is
        deleted whatever the policy, as the stock executor deleted timed-out pods: left there, it
        would hold its quota, and could yet start and run a task already reported failed. A failure
        may instead get a new pod (see :mod:`hybrid_executor.kubernetes.relaunch`): nothing is reported.
        """
        pod.finished = True
        launcher = self.launcher()
        if launcher is not None:
            launcher.quota_freed(pod.namespace)  # an ended pod no longer counts against the quota
        settings = self.settings()
        if outcome.state == "success":
            if pod.current:
                self.reports.success(pod.key, f"{pod.namespace}/{pod.name}")
            delete = settings.delete_worker_pods
        else:
            if pod.current and not (relaunch and self._relaunch(pod, outcome)):
                self.fail_task(pod, "pod failed", outcome.message)
            delete = still_pending or (settings.delete_worker_pods and settings.delete_worker_pods_on_failure)
        if delete and not outcome.gone:
            self.delete_pod(pod.namespace, pod.name, uid=pod.uid)
        self.release(pod)

    def _relaunch(self, pod: TrackedPod, outcome: PodOutcome) -> bool:
        """Submit a new pod for ``pod``'s queueing, if its failure may be one before its task started."""
        launcher = self.launcher()
        if self.relauncher is None or launcher is None or not self.relauncher.allows(pod, outcome):
            return False
        successor, request = self.relauncher.next_launch(pod, outcome, self.build_pod)
        self.table.follow(successor)  # the failed pod's entry no longer reports (and is forgotten)
        launcher.submit(request)
        self.reports.log.info(
            "Task %s: pod %s/%s failed; launching pod %s", pod.key, pod.namespace, pod.name, successor.name
        )
        return True

    def release(self, pod: TrackedPod) -> None:
        """The queueing is over: forget its pod, or, while its launch is under way, stop the launch and
        keep the entry until the launcher answers (see the executor's _on_launch_result: what it made
        is deleted)."""
        launcher = self.launcher()
        if pod.launching and launcher is not None:
            launcher.cancel(pod.name)
        else:
            self.table.forget(pod)

    def fail_task(self, pod: TrackedPod, event: str, message: str) -> None:
        self.reports.log.error("Task %s: %s: %s", pod.key, event, message)
        self.reports.log_task_event(event=event, extra=message, ti_key=pod.key)
        self.reports.fail(pod.key, message)


__all__ = ["DeletePod", "PodFollower", "TaskReports"]

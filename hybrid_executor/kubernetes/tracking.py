"""What the pod executor knows of each queueing's pod: an entry by pod name, and the current one per task key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.executors.workloads import ExecuteTask
    from airflow.models.taskinstancekey import TaskInstanceKey


@dataclass(eq=False, slots=True)  # one per pod in flight: no __dict__ each for the collector to scan
class TrackedPod:
    """What this executor knows of the pod of one queueing of a task.

    ``current``: the newest queueing of its key, the only one whose outcome is reported. An older
    queueing (the task came back with the same try: a deferral, a reschedule poke, a requeue) is
    still followed, so that its pod is deleted by policy when it ends, but it reports nothing.
    ``uid``: the first uid seen for the name (watch or create answer); a pod of the same name with
    another uid is a second pod, made by a create that was retried after the first was deleted.
    ``launching``: the launcher has not answered yet; the entry is kept until it has, so that a pod
    it creates after the outcome is known (and deleted).
    ``workload``: kept while the pod is in flight, to make a new pod if it fails before its task
    starts (see :mod:`hybrid_executor.kubernetes.relaunch`); None once it ended, for an adopted pod,
    or with pod_launch_failure_retries 0. ``relaunch``: which pod of the queueing this is (0: the
    first). ``failure``: for a new pod, the failure of the one before it, reported if the new pod
    cannot be made (the task instance is no longer queued: its task did start).
    """

    key: TaskInstanceKey
    namespace: str
    name: str
    queueing: str
    uid: str | None = None
    current: bool = True
    launching: bool = False
    revoked: bool = False
    finished: bool = False
    pending_since: float | None = None
    pending_reason: str = ""
    unknown_reported: bool = False  # phase Unknown said once in the task's event log
    workload: ExecuteTask | None = None
    relaunch: int = 0
    failure: str | None = None


class PodTable:
    """The executor's entries: ``by_name`` (pod names are unique to a queueing) and ``current`` per key."""

    def __init__(self) -> None:
        self.by_name: dict[str, TrackedPod] = {}
        self.current: dict[TaskInstanceKey, TrackedPod] = {}

    def follow(self, pod: TrackedPod) -> TrackedPod:
        """Track ``pod`` as its key's current queueing; an older queueing is kept but reports nothing."""
        older = self.current.get(pod.key)
        if older is not None and older is not pod:
            older.current = False
            older.workload = None  # an older queueing reports nothing, so it is never relaunched
            if older.finished and not older.launching:
                self.forget(older)
        self.by_name[pod.name] = pod
        self.current[pod.key] = pod
        return pod

    def forget(self, pod: TrackedPod) -> None:
        pod.workload = None
        if self.by_name.get(pod.name) is pod:
            del self.by_name[pod.name]
        if self.current.get(pod.key) is pod:
            del self.current[pod.key]


__all__ = ["PodTable", "TrackedPod"]

"""Orphaned pods: those left by schedulers that are gone, once no scheduler will ever follow them.

A scheduler that dies leaves its pods labelled with its job. Adoption takes over those whose task
instance is still queued or running in that queueing; the others it never sees: a pod that
finished while no scheduler ran (its task reported its own end), the pod of a queueing the
scheduler has since reset or moved on from. Nobody watches them: a finished one stays for ever
whatever the policy, a running one runs a task Airflow has ended, beside its next try.

So, at start and then every ``[scheduler] orphaned_tasks_check_interval`` (what the stock
KubernetesExecutor's ``_adopt_completed_pods`` runs on), on a thread of its own, this lists the
pods of this deployment whose scheduler job is neither this one nor another live one (a
SchedulerJob RUNNING with a heartbeat within ``[scheduler] scheduler_health_check_threshold``,
the scheduler's own test), and judges each by its task instance in the metadata database,
found by the id the pod carries (``task_instance_id``, unique to a try):

- the try is current, its state adoptable (queued, running, restarting) and its queueing the
  pod's: adoption's; left alone;
- the try is current and its queueing the pod's, but the task instance has ended: a finished pod
  goes by the policy (``delete_worker_pods``, ``delete_worker_pods_on_failure``), as its own
  scheduler would have deleted it; a pending one is deleted (it never ran and never will); a
  running one is left until it ends (its task learns of the end at its next heartbeat);
- the queueing or the try is no longer current (a later queueing of the try, a later try, a
  reset after a failed adoption): a finished pod by the policy, an unfinished one deleted;
- no task instance of this database has the id: not this deployment's (two deployments may
  share a label value when their database URLs look alike) or a purged one; left alone.

Never touched: pods of this scheduler and of every live one, of another deployment, and pods
without the deployment label (made by older versions: ``airflow hybrid cleanup-pods
--include-unlabelled`` takes those). A pass never raises; an API or database error is logged and
the next pass tries again. Deletions go through the executor's PodDeleter, with the pod's uid as
a precondition.
"""

from __future__ import annotations

import enum
import logging
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from hybrid_executor.kubernetes.errors import KubeApiError
from hybrid_executor.kubernetes.identity import (
    ANNOTATION_TASK_INSTANCE_ID,
    LABEL_SCHEDULER_JOB,
    field_of,
    queueing_of_pod,
    selector_for_deployment,
)

if TYPE_CHECKING:
    from hybrid_executor.kubernetes.api import KubeApi

log = logging.getLogger(__name__)

_FINISHED = ("Succeeded", "Failed")
_BATCH = 500  # task instance ids per query
# State.adoptable_states, as the strings the database holds.
_ADOPTABLE = frozenset({"queued", "running", "restarting"})


class Deleter(Protocol):
    def delete(self, namespace: str, name: str, uid: str | None = None) -> None: ...


@dataclass(frozen=True)
class DeletionPolicy:
    delete_worker_pods: bool
    delete_worker_pods_on_failure: bool

    def deletes(self, phase: str) -> bool:
        """Whether a finished pod in ``phase`` is deleted, as the executor deletes its own."""
        if phase == "Succeeded":
            return self.delete_worker_pods
        return self.delete_worker_pods and self.delete_worker_pods_on_failure


@dataclass(frozen=True)
class TaskInstanceRecord:
    """What the database holds for a pod's task instance id."""

    current_try: bool  # the task instance's current try; False: an earlier try (task_instance_history)
    state: str | None = None
    external_executor_id: str | None = None


class Verdict(enum.Enum):
    ADOPTABLE = "adoption's"  # left alone: the next adoption takes it
    WAIT = "still running"  # its task ended; looked at again next pass
    KEEP = "kept by policy"  # settled: not looked at again
    UNKNOWN = "not this database's"  # settled
    DELETE = "deleted"


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    reason: str
    despite_policy: bool = False  # an unfinished pod deleted whatever delete_worker_pods says


def judge(pod: dict[str, Any], record: TaskInstanceRecord | None, policy: DeletionPolicy) -> Judgement:
    """What to do with a pod of a scheduler that is gone, given what the database says of its task try."""
    if record is None:
        return Judgement(Verdict.UNKNOWN, "no task instance of this database has its id")
    phase = str((pod.get("status") or {}).get("phase") or "")
    queueing = queueing_of_pod(pod)
    if record.current_try:
        recorded = record.external_executor_id or ""
        # An empty recorded id: a queueing whose id the executor drew, not stored yet (adoption's made_for).
        same_queueing = not queueing or not recorded or queueing == recorded
        state = record.state or "none"
        if same_queueing and state in _ADOPTABLE:
            return Judgement(Verdict.ADOPTABLE, f"its task instance is {state}")
        if same_queueing:
            ended = f"its task instance is {state}"
            if phase in _FINISHED:
                return _by_policy(phase, policy, ended)
            if phase == "Pending":
                return Judgement(Verdict.DELETE, f"{ended} and the pod never started", despite_policy=True)
            return Judgement(Verdict.WAIT, f"{ended}; the pod is {phase or 'in no phase'}")
        over = "its task instance was queued again since"
    else:
        over = "its task instance has had a later try since"
    if phase in _FINISHED:
        return _by_policy(phase, policy, over)
    return Judgement(Verdict.DELETE, f"{over}: no second copy of the task may run", despite_policy=True)


def _by_policy(phase: str, policy: DeletionPolicy, why: str) -> Judgement:
    if policy.deletes(phase):
        return Judgement(Verdict.DELETE, f"{why}; the pod {phase}")
    return Judgement(Verdict.KEEP, f"{why}; the pod {phase}, kept by delete_worker_pods(_on_failure)")


# --- the database ----------------------------------------------------------------------------


def live_scheduler_job_ids(health_check_threshold: float) -> set[str]:
    """The ids of the scheduler jobs alive now, by the scheduler's own test (adopt_or_reset_orphaned_tasks)."""
    from datetime import datetime, timedelta, timezone

    from airflow.jobs.job import Job, JobState
    from airflow.utils.session import create_session
    from sqlalchemy import select

    cutoff = datetime.now(timezone.utc) - timedelta(seconds=health_check_threshold)
    # Not the scoped session: this runs on a thread of its own, beside the scheduler's transaction.
    with create_session(scoped=False) as session:
        query = select(Job.id).where(
            Job.job_type == "SchedulerJob", Job.state == JobState.RUNNING, Job.latest_heartbeat >= cutoff
        )
        return {str(job_id) for job_id in session.scalars(query)}


def task_instance_records(ids: Collection[str]) -> dict[str, TaskInstanceRecord]:
    """The record of each id that is a task instance's current try or an earlier try of one, by id."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session
    from sqlalchemy import select

    wanted = sorted({parsed for text in ids if (parsed := _uuid(text)) is not None})
    records: dict[str, TaskInstanceRecord] = {}
    with create_session(scoped=False) as session:
        for chunk in _chunks(wanted):
            query = select(TaskInstance.id, TaskInstance.state, TaskInstance.external_executor_id).where(
                TaskInstance.id.in_(chunk)
            )
            for ti_id, state, external_executor_id in session.execute(query):
                records[str(ti_id)] = TaskInstanceRecord(True, _text(state), external_executor_id)
        earlier = [ti_id for ti_id in wanted if str(ti_id) not in records]
        for chunk in _chunks(earlier):
            history = select(TaskInstanceHistory.task_instance_id).where(
                TaskInstanceHistory.task_instance_id.in_(chunk)
            )
            for ti_id in session.scalars(history):
                records[str(ti_id)] = TaskInstanceRecord(False)
    return records


def configure_models() -> None:
    """Import the models these queries use and configure SQLAlchemy's mappers, on the calling thread.

    The first query of a model configures every mapper, which imports every Airflow model: done
    first on the collector's thread while another thread imports airflow.models (a test, a plugin),
    the two wait on each other's import locks. In a scheduler it is a no-op: all is configured.
    """
    from airflow.jobs.job import Job  # noqa: F401
    from airflow.models.taskinstance import TaskInstance  # noqa: F401
    from airflow.models.taskinstancehistory import TaskInstanceHistory  # noqa: F401
    from sqlalchemy.orm import configure_mappers

    configure_mappers()


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except (TypeError, ValueError):
        return None


def _text(state: object) -> str | None:
    return None if state is None else str(getattr(state, "value", state))


def _chunks(items: Sequence[uuid.UUID]) -> list[Sequence[uuid.UUID]]:
    return [items[start : start + _BATCH] for start in range(0, len(items), _BATCH)]


# --- the collector ---------------------------------------------------------------------------


class OrphanPodCollector:
    """Deletes, on a thread of its own, the pods no scheduler will follow (see the module docstring)."""

    def __init__(
        self,
        api: KubeApi,
        deleter: Deleter,
        *,
        namespaces: Sequence[str | None],  # None: every namespace (one cluster-wide list)
        deployment_id: str,
        job_id: str,
        policy: DeletionPolicy,
        interval: float,
        health_check_threshold: float,
        live_jobs: Callable[[float], set[str]] = live_scheduler_job_ids,
        records: Callable[[Collection[str]], dict[str, TaskInstanceRecord]] = task_instance_records,
    ) -> None:
        self._api = api
        self._deleter = deleter
        self._namespaces = list(namespaces)
        self._deployment_id = deployment_id
        self._job_id = job_id
        self._policy = policy
        self._interval = interval
        self._threshold = health_check_threshold
        self._live_jobs = live_jobs
        self._records = records
        self._settled: set[str] = set()  # uids judged KEEP or UNKNOWN: never looked up again
        self._stopping = threading.Event()
        self._done = threading.Condition()
        self._passes = 0
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(cls, api: KubeApi, deleter: Deleter, **kwargs: Any) -> OrphanPodCollector:
        """With the scheduler's own interval and liveness threshold, as the stock executor reads them."""
        from airflow.configuration import conf

        return cls(
            api,
            deleter,
            interval=conf.getfloat("scheduler", "orphaned_tasks_check_interval", fallback=300.0),
            health_check_threshold=conf.getfloat("scheduler", "scheduler_health_check_threshold", fallback=30.0),
            **kwargs,
        )

    def start(self) -> None:
        configure_models()
        self._thread = threading.Thread(target=self._run, name="orphan-pod-collector", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wait_for_passes(self, count: int, timeout: float) -> bool:
        """Whether ``count`` passes have ended within ``timeout`` seconds (for tests and tools)."""
        with self._done:
            return self._done.wait_for(lambda: self._passes >= count, timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.collect()
            except Exception as error:  # the database is down, a bug: the next pass tries again
                log.warning(
                    "Could not look for orphaned worker pods (%s: %s); trying again in %gs",
                    type(error).__name__,
                    error,
                    self._interval,
                    exc_info=not isinstance(error, KubeApiError),
                )
            with self._done:
                self._passes += 1
                self._done.notify_all()
            if self._stopping.wait(self._interval):
                return

    def collect(self) -> int:
        """One pass: ask for the deletion of every orphaned pod; how many were asked for."""
        live = self._live_jobs(self._threshold)
        selector = selector_for_deployment(self._deployment_id, exclude_job_ids=[self._job_id, *live])
        pods = []
        for namespace in self._namespaces:
            try:
                pods.extend(self._api.list_pods(namespace, selector))
            except KubeApiError as error:
                where = namespace or "all namespaces"
                log.warning("Could not list pods in %s to find orphaned ones (%s): next pass", where, error)
        seen = {str(field_of(p.get("metadata"), "uid") or "") for p in pods}
        self._settled &= seen  # forget pods that are gone: the set never grows with history
        candidates = [pod for pod in pods if self._is_candidate(pod)]
        if not candidates:
            return 0
        records = self._records({_task_instance_id(pod) for pod in candidates})
        by_policy: Counter[str] = Counter()  # finished pods deleted, by scheduler job: one line, not one per pod
        asked = 0
        for pod in candidates:
            judgement = judge(pod, records.get(_normal_id(_task_instance_id(pod))), self._policy)
            if self._act(pod, judgement):
                asked += 1
                if not judgement.despite_policy:
                    by_policy[pod["metadata"]["labels"][LABEL_SCHEDULER_JOB]] += 1
        if by_policy:
            jobs = ", ".join(f"{count} of job {job}" for job, count in sorted(by_policy.items()))
            log.info("Deleting finished pods of dead schedulers that no scheduler follows: %s", jobs)
        return asked

    def _is_candidate(self, pod: dict[str, Any]) -> bool:
        metadata = pod.get("metadata") or {}
        if metadata.get("deletionTimestamp") or metadata.get("uid") in self._settled:
            return False
        # A job id is a number: any other value is not a scheduler's (an executor run without a job).
        job = str((metadata.get("labels") or {}).get(LABEL_SCHEDULER_JOB, ""))
        return job.isdigit() and bool(_task_instance_id(pod))

    def _act(self, pod: dict[str, Any], judgement: Judgement) -> bool:
        """Whether the pod's deletion was asked for."""
        metadata = pod["metadata"]
        namespace, name, uid = metadata["namespace"], metadata["name"], metadata.get("uid")
        job = metadata["labels"][LABEL_SCHEDULER_JOB]
        if judgement.verdict in (Verdict.KEEP, Verdict.UNKNOWN) and uid:
            self._settled.add(uid)  # a lasting verdict: not looked up again
        if judgement.verdict is not Verdict.DELETE:
            log.debug(
                "Pod %s/%s of scheduler job %s: %s (%s)",
                namespace,
                name,
                job,
                judgement.verdict.value,
                judgement.reason,
            )
            return False
        if judgement.despite_policy:
            log.warning("Deleting pod %s/%s of dead scheduler job %s: %s", namespace, name, job, judgement.reason)
        else:
            log.debug("Deleting pod %s/%s of dead scheduler job %s: %s", namespace, name, job, judgement.reason)
        self._deleter.delete(namespace, name, uid=uid)
        return True


def _task_instance_id(pod: dict[str, Any]) -> str:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(ANNOTATION_TASK_INSTANCE_ID) or "")


def _normal_id(text: str) -> str:
    parsed = _uuid(text)
    return str(parsed) if parsed is not None else text


__all__ = [
    "DeletionPolicy",
    "Judgement",
    "OrphanPodCollector",
    "TaskInstanceRecord",
    "Verdict",
    "judge",
    "live_scheduler_job_ids",
    "task_instance_records",
]

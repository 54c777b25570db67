"""KubernetesPodExecutor: each task in a pod of its own, launched from inside the scheduler.

The scheduler's thread never waits on the Kubernetes API here: ``_process_workloads`` builds the
pod and hands it to the launcher's threads, ``sync`` drains what the launcher and the watchers
put on their queues. Each heartbeat costs O(changes): pending-timeout checks use a heap keyed by
deadline, never a scan of everything running.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.executors.base_executor import PARALLELISM, BaseExecutor
from airflow.utils.state import TaskInstanceState

from hybrid_executor.compat import set_external_executor_id
from hybrid_executor.kubernetes.adoption import AdoptedPod, AdoptionResult, adopt_pods
from hybrid_executor.kubernetes.api import KubeApi
from hybrid_executor.kubernetes.deployment import resolve_deployment_id
from hybrid_executor.kubernetes.launch_outcomes import settle_launch
from hybrid_executor.kubernetes.launcher import LaunchRequest, LaunchResult
from hybrid_executor.kubernetes.pending import PendingDeadlines
from hybrid_executor.kubernetes.podlog import read_task_pod_log
from hybrid_executor.kubernetes.pods import (
    PodContext,
    base_pod_template,
    pod_context_for,
    pod_name_for,
    worker_pod_body,
)
from hybrid_executor.kubernetes.podstate import PodOutcome, outcome_of
from hybrid_executor.kubernetes.readoption import PendingAdoptions
from hybrid_executor.kubernetes.relaunch import EVENT as RELAUNCH_EVENT
from hybrid_executor.kubernetes.relaunch import Relauncher
from hybrid_executor.kubernetes.services import PodServices
from hybrid_executor.kubernetes.staleness import still_queued
from hybrid_executor.kubernetes.tracking import PodTable, TrackedPod
from hybrid_executor.kubernetes.watcher import PodEvent
from hybrid_executor.kubernetes.workload_token import launch_deadline
from hybrid_executor.metrics import PodMetrics

if TYPE_CHECKING:
    from airflow.executors import workloads
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancekey import TaskInstanceKey
    from kubernetes.client import V1Pod
    from sqlalchemy.orm import Session

    from hybrid_executor.kubernetes.cleanup import PodDeleter
    from hybrid_executor.kubernetes.launcher import PodLauncher
    from hybrid_executor.kubernetes.orphans import OrphanPodCollector
    from hybrid_executor.kubernetes.watcher import PodWatcher
    from hybrid_executor.settings import KubernetesSettings


class KubernetesPodExecutor(BaseExecutor):
    """Runs each workload given to it as a pod; see the module docstring for the threading rules."""

    supports_ad_hoc_ti_run: bool = True
    supports_multi_team: bool = True

    def __init__(
        self,
        parallelism: int = PARALLELISM,
        team_name: str | None = None,
        *,
        settings: KubernetesSettings | None = None,
        api: KubeApi | None = None,
    ) -> None:
        super().__init__(parallelism=parallelism, team_name=team_name)
        self._settings = settings
        self._api = api
        self._services: PodServices | None = None  # its threads, from start() on
        self._deployment_id: str | None = None
        self._events: queue.SimpleQueue[PodEvent] = queue.SimpleQueue()
        self._table = PodTable()  # by pod name (unique to a queueing), and the current queueing per key
        self._pending = PendingDeadlines()
        self._templates: dict[str, V1Pod] = {}
        self._templates_lock = threading.Lock()  # launcher threads build pods concurrently
        self._contexts: dict[tuple[str | None, str], PodContext] = {}  # by queue and job: its template's JSON made once
        self._metrics = PodMetrics(team_name)
        self._queued_at: dict[TaskInstanceKey, float] = {}  # time.monotonic() at queue_workload, until launched
        self._pending_adoptions = PendingAdoptions(self._adopt)
        self._relauncher: Relauncher | None = None  # from the settings, at start()

    # --- life ------------------------------------------------------------------------------

    @property
    def settings(self) -> KubernetesSettings:
        if self._settings is None:
            from hybrid_executor.settings import load_settings

            self._settings = load_settings(self.conf).kubernetes
        return self._settings

    @property
    def api(self) -> KubeApi:
        if self._api is None:
            self._api = KubeApi.from_settings(self.settings)
        return self._api

    @property
    def scheduler_job_id(self) -> str:
        return str(self.job_id) if self.job_id is not None else "unknown"

    @property
    def deployment_id(self) -> str:
        """The hybrid-executor/deployment label of this deployment's pods (see kubernetes.deployment)."""
        if self._deployment_id is None:
            self._deployment_id = resolve_deployment_id(self.settings.deployment_id)
        return self._deployment_id

    @property
    def _launcher(self) -> PodLauncher | None:
        return self._services.launcher if self._services else None

    @property
    def _deleter(self) -> PodDeleter | None:
        return self._services.deleter if self._services else None

    @property
    def _orphans(self) -> OrphanPodCollector | None:
        return self._services.orphans if self._services else None

    @property
    def _watchers(self) -> dict[str, PodWatcher]:
        return self._services.watchers if self._services else {}

    def start(self) -> None:
        self._relauncher = Relauncher.from_settings(self.settings)
        services = PodServices.start(
            self.api,
            self.settings,
            self._events,
            self._metrics,
            job_id=self.scheduler_job_id,
            deployment_id=self.deployment_id,
        )
        self._services = services

    def end(self) -> None:
        self.sync()
        self.terminate()

    def terminate(self) -> None:
        if self._services is not None:
            self._services.stop()
            self._services.watchers.clear()

    # --- launching ------------------------------------------------------------------------

    def queue_workload(self, workload: Any, session: Session) -> None:
        super().queue_workload(workload, session)  # raises for anything but a task (no callbacks here)
        self._queued_at[workload.ti.key] = time.monotonic()  # for the queued-to-created timer

    def _process_workloads(self, workload_items: Sequence[workloads.All]) -> None:
        """Hand each workload to the launcher; the pod is built on a launcher thread, not this one."""
        from airflow.executors import workloads as workload_types

        assert self._launcher is not None, "start() the executor first"
        for workload in workload_items:
            if not isinstance(workload, workload_types.ExecuteTask):
                raise ValueError(f"{type(self).__name__} cannot run {type(workload).__name__} workloads")
            key = workload.ti.key
            self.queued_tasks.pop(key, None)
            queued_at = self._queued_at.pop(key, None)
            self.running.add(key)
            queueing = self._queueing_of(workload)
            name, namespace = pod_name_for(key, queueing), self.settings.namespace_for(workload.ti.queue)
            if name in self._table.by_name:
                # The scheduler handed over the very same queueing twice (the same external_executor_id):
                # its pod is already on its way.
                continue
            kept = workload if self._relauncher is not None and self._relauncher.enabled else None
            pod = self._table.follow(TrackedPod(key, namespace, name, queueing, launching=True, workload=kept))
            self._launcher.submit(
                LaunchRequest(
                    key,
                    functools.partial(self._build_pod, workload),
                    pod_name=name,
                    namespace=namespace,
                    deadline=launch_deadline(workload.token),
                    still_wanted=functools.partial(still_queued, key, queueing),
                    queued_at=queued_at,
                )
            )
            self.log.debug("Task %s: launching pod %s/%s", key, pod.namespace, pod.name)

    def _queueing_of(self, workload: workloads.ExecuteTask) -> str:
        """The id of this queueing: the scheduler's ``external_executor_id``, or one drawn here.

        The scheduler draws a new one whenever it queues a task for an executor that pre-assigns
        them, as the router does. A workload without one (an Airflow that does not pre-assign)
        gets a UUID here, reported as the QUEUED event's info: the scheduler then stores it as the
        task instance's external_executor_id, which adoption matches pods on.
        """
        ti = workload.ti
        queueing = getattr(ti, "external_executor_id", None)
        if not queueing:
            queueing = str(uuid.uuid4())
            set_external_executor_id(ti, queueing)  # a field of the workload's ti from Airflow 3.2
            self.event_buffer[ti.key] = (TaskInstanceState.QUEUED, queueing)
        return str(queueing)

    def _build_pod(self, workload: workloads.ExecuteTask) -> dict[str, Any]:
        """Runs on a launcher thread: the pod's JSON body, from its queue's context (made once per queue)."""
        cache_key = (workload.ti.queue, self.scheduler_job_id)
        context = self._contexts.get(cache_key)
        if context is None:
            queue_name, job_id = cache_key
            context = pod_context_for(
                self.settings, queue_name, job_id, self._template, deployment_id=self.deployment_id
            )
            context.base_body  # noqa: B018 - made now, not by every launcher thread racing for it
            self._contexts[cache_key] = context
        return worker_pod_body(workload, context)

    def _template(self, path: str | None) -> V1Pod:
        if path is None:
            return base_pod_template(None)
        with self._templates_lock:
            if path not in self._templates:
                self._templates[path] = base_pod_template(path)
            return self._templates[path]

    # --- syncing --------------------------------------------------------------------------

    def sync(self) -> None:
        if self._launcher is not None:
            for result in self._launcher.results():
                self._on_launch_result(result)
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            self._on_pod_event(event)
        self._enforce_pending_timeout()
        self._settle_adoptions()

    def _on_launch_result(self, result: LaunchResult) -> None:
        pod = self._table.by_name.get(result.pod_name)
        if pod is None:  # cannot happen: a launching pod is never forgotten
            if result.ok and result.uid:
                self._delete_pod(result.namespace, result.pod_name, uid=result.uid)
            return
        actions = settle_launch(pod, result)
        if actions.delete_uid is not None:  # a stray pod
            self.log.warning(
                "Task %s: deleting pod %s/%s (uid %s): it was created after its queueing ended",
                pod.key,
                pod.namespace,
                pod.name,
                actions.delete_uid,
            )
        if actions.delete:
            self._delete_pod(pod.namespace, pod.name, uid=actions.delete_uid)
        if actions.stop_running:
            self.running.discard(pod.key)
        if actions.failure is not None:
            self._fail_task(pod, *actions.failure)
        elif result.ok and pod.failure and not actions.delete and self._relauncher is not None:
            self.log_task_event(event=RELAUNCH_EVENT, extra=self._relauncher.event_text(pod), ti_key=pod.key)
            pod.failure = None
        if pod.revoked or pod.finished:
            self._table.forget(pod)  # the launch is over and so is the queueing

    def _on_pod_event(self, event: PodEvent) -> None:
        metadata = event.pod.get("metadata") or {}
        pod = self._table.by_name.get(metadata.get("name", ""))
        if pod is None or event.queueing != pod.queueing or event.key != pod.key:
            return  # not a pod of a queueing this executor follows (another deployment's, or an older one's)
        uid = metadata.get("uid")
        if pod.uid is None:
            pod.uid = uid
            pod.namespace = metadata.get("namespace", pod.namespace)
        elif uid != pod.uid:
            if event.type != "DELETED":
                self.log.warning(
                    "Task %s: deleting pod %s/%s (uid %s): a second pod of one queueing (the first was %s)",
                    pod.key,
                    pod.namespace,
                    pod.name,
                    uid,
                    pod.uid,
                )
                self._delete_pod(metadata.get("namespace", pod.namespace), pod.name, uid=uid)
            return
        if pod.launching and self._launcher is not None:
            self._launcher.cancel(pod.name)  # the pod exists: no attempt may make another once it is gone
        if pod.finished or pod.revoked:
            return
        if event.type == "DELETED" and not event.synthetic and not metadata.get("deletionTimestamp"):
            self._let_go(pod)
            return
        outcome = outcome_of(event.type, event.pod, self.settings.worker_pod_pending_fatal_container_state_reasons)
        if outcome.state == "pending":
            self._note_pending(pod, outcome)
        elif outcome.state == "running":
            self._metrics.left_pending(pod.pending_since)
            pod.pending_since = None
        elif outcome.state == "unknown":
            pod.pending_since = None  # it did start; the pending timeout no longer applies
            if not pod.unknown_reported:
                pod.unknown_reported = True
                self.log.warning("Task %s: %s", pod.key, outcome.message)
                self.log_task_event(event="pod phase Unknown", extra=outcome.message, ti_key=pod.key)
        elif outcome.state in ("success", "failed"):
            self._finish(pod, outcome)

    def _let_go(self, pod: TrackedPod) -> None:
        """The pod left this scheduler's selector without being deleted: another scheduler adopted it.

        A deleted pod's last state always carries deletionTimestamp (the API server writes it before
        it removes any pod); only a relabel, which adoption alone does, ends a watch's view of a pod
        without it. That scheduler took this one for dead (a heartbeat later than
        scheduler_health_check_threshold) and now reports the task: nothing is reported here, and
        the slot is freed, as the stock executor does with its ADOPTED state.
        """
        self.log.info(
            "Task %s: pod %s/%s was adopted by another scheduler; no longer followed here",
            pod.key,
            pod.namespace,
            pod.name,
        )
        pod.finished = True
        if pod.current:
            self.running.discard(pod.key)
        self._release(pod)

    def _note_pending(self, pod: TrackedPod, outcome: PodOutcome) -> None:
        if outcome.fatal:
            self._finish(pod, outcome, still_pending=True)
            return
        pod.pending_reason = outcome.message
        if pod.pending_since is None:
            self._pending.started_pending(pod, time.monotonic(), self.settings.worker_pods_pending_timeout)

    def _enforce_pending_timeout(self) -> None:
        timeout = self.settings.worker_pods_pending_timeout
        for pod in list(self._pending.due(self._table.by_name, time.monotonic(), timeout)):
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
        if self._launcher is not None:
            self._launcher.quota_freed(pod.namespace)  # an ended pod no longer counts against the quota
        if outcome.state == "success":
            if pod.current:
                self.success(pod.key, f"{pod.namespace}/{pod.name}")
            delete = self.settings.delete_worker_pods
        else:
            if pod.current and not (relaunch and self._relaunch(pod, outcome)):
                self._fail_task(pod, "pod failed", outcome.message)
            delete = still_pending or (self.settings.delete_worker_pods and self.settings.delete_worker_pods_on_failure)
        if delete and not outcome.gone:
            self._delete_pod(pod.namespace, pod.name, uid=pod.uid)
        self._release(pod)

    def _relaunch(self, pod: TrackedPod, outcome: PodOutcome) -> bool:
        """Submit a new pod for ``pod``'s queueing, if its failure may be one before its task started."""
        if self._relauncher is None or self._launcher is None or not self._relauncher.allows(pod, outcome):
            return False
        successor, request = self._relauncher.next_launch(pod, outcome, self._build_pod)
        self._table.follow(successor)  # the failed pod's entry no longer reports (and is forgotten)
        self._launcher.submit(request)
        self.log.info("Task %s: pod %s/%s failed; launching pod %s", pod.key, pod.namespace, pod.name, successor.name)
        return True

    def _release(self, pod: TrackedPod) -> None:
        """The queueing is over: forget its pod, or, while its launch is under way, stop the launch and
        keep the entry until the launcher answers (see _on_launch_result: what it made is deleted)."""
        if pod.launching and self._launcher is not None:
            self._launcher.cancel(pod.name)
        else:
            self._table.forget(pod)

    def _delete_pod(self, namespace: str, name: str, *, uid: str | None = None) -> None:
        assert self._deleter is not None, "start() the executor first"
        self._deleter.delete(namespace, name, uid=uid)

    def _fail_task(self, pod: TrackedPod, event: str, message: str) -> None:
        self.log.error("Task %s: %s: %s", pod.key, event, message)
        self.log_task_event(event=event, extra=message, ti_key=pod.key)
        self.fail(pod.key, message)

    # --- the scheduler's other calls ------------------------------------------------------

    def change_state(self, key: Any, state: Any, info: Any = None, remove_running: bool = True) -> None:
        """Also the scheduler's own call when it ends a task itself: then the pod goes, and the task is forgotten.

        The scheduler fails a task without asking the executor after a heartbeat timeout (the task
        process is gone or hangs) and after a task stuck in queued was requeued too often. Its pod,
        still pending or running, must not go on running a task Airflow has ended, nor hold quota:
        it is deleted, as a revoked task's is. This executor's own reports come after it marked the
        pod finished, so they are told apart.
        """
        self._pending_adoptions.discard(key)
        pod = self._table.current.get(key)
        if pod is not None and not pod.finished and not pod.revoked:
            where = f"{pod.namespace}/{pod.name}"
            self.log.info("Task %s ended by the scheduler (%s): deleting pod %s", key, state, where)
            pod.finished = True
            self._delete_pod(pod.namespace, pod.name, uid=pod.uid)
            self._release(pod)
        super().change_state(key, state, info, remove_running=remove_running)

    def revoke_task(self, *, ti: TaskInstance) -> None:
        """Stop the task's current queueing: no pod, or its pod deleted; the task is forgotten."""
        key = ti.key
        self._pending_adoptions.discard(key)
        pod = self._table.current.get(key)
        if pod is not None:
            if pod.pending_since is not None and pod.pending_reason and not pod.finished:
                # The scheduler revokes a task its task_queued_timeout found still queued: say why the pod waited.
                where = f"pod {pod.namespace}/{pod.name}"
                self.log_task_event(
                    event="pod revoked while pending", extra=f"{where}: {pod.pending_reason}", ti_key=key
                )
            pod.revoked = True
            self._delete_pod(pod.namespace, pod.name)
            self._release(pod)
        self.running.discard(key)
        self.queued_tasks.pop(key, None)
        self._queued_at.pop(key, None)

    def try_adopt_task_instances(self, tis: Sequence[TaskInstance]) -> Sequence[TaskInstance]:
        """Adopt the pods of dead schedulers (see :mod:`hybrid_executor.kubernetes.adoption`).

        A task this executor already runs is kept as it is. The scheduler asks that when it took
        its own job for dead (a heartbeat later than ``scheduler_health_check_threshold``, say on a
        loaded machine): answering "not adopted" would make it reset the task and start a second
        pod for a try whose first pod still runs.
        """
        wanted = [ti for ti in tis if ti.key not in self.running]
        if not wanted:
            return []
        outcome = self._adopt(wanted)
        self._follow_adopted(outcome.adopted)
        if outcome.unlisted:
            # Their pods may run: kept (see readoption), never reset into a second try beside them.
            self.running.update(ti.key for ti in outcome.unlisted)
            self._pending_adoptions.add(outcome.unlisted)
        return outcome.not_adopted

    def _adopt(self, tis: Sequence[TaskInstance]) -> AdoptionResult:
        started = time.monotonic()
        outcome = adopt_pods(
            self.api,
            self.settings.watch_scopes(),
            self.scheduler_job_id,
            tis,
            deployment_id=self.deployment_id,
            abandon=lambda namespace, name, uid: self._delete_pod(namespace, name, uid=uid),
        )
        self._metrics.adoption(len(outcome.adopted), len(outcome.not_adopted), time.monotonic() - started)
        return outcome

    def _follow_adopted(self, adopted: Sequence[AdoptedPod]) -> None:
        for pod in adopted:
            self.running.add(pod.key)
            self._table.follow(TrackedPod(pod.key, pod.namespace, pod.name, pod.queueing, pod.uid))
            if pod.pod:
                self._on_pod_event(PodEvent("MODIFIED", pod.pod))

    def _settle_adoptions(self) -> None:
        if not len(self._pending_adoptions):
            return
        settled = self._pending_adoptions.poll()
        self._follow_adopted(settled.adopted)
        for ti, event, message in settled.failures():
            self.log.error("Task %s: %s", ti.key, message)
            self.log_task_event(event=event, extra=message, ti_key=ti.key)
            self.fail(ti.key, message)

    def get_task_log(self, ti: TaskInstance, try_number: int) -> tuple[list[str], list[str]]:
        return read_task_pod_log(self, ti, try_number)

    def debug_dump(self) -> None:
        super().debug_dump()
        self.log.info(
            "pods followed: %d (current %d), launches pending: %d, pending deadlines: %d, watchers: %s",
            len(self._table.by_name),
            len(self._table.current),
            self._launcher.pending() if self._launcher else 0,
            len(self._pending),
            {ns: w.synced for ns, w in self._watchers.items()},
        )

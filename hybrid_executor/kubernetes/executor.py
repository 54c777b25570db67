"""KubernetesPodExecutor: each task in a pod of its own, launched from inside the scheduler.

The scheduler's thread never waits on the Kubernetes API here: ``_process_workloads`` builds the
pod and hands it to the launcher's threads, ``sync`` drains what the launcher and the watchers
put on their queues. Each heartbeat costs O(changes): pending-timeout checks use a heap keyed by
deadline, never a scan of everything running.
"""

from __future__ import annotations

import functools
import queue
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.executors.base_executor import PARALLELISM, BaseExecutor
from airflow.utils.state import TaskInstanceState

from hybrid_executor.compat import set_external_executor_id
from hybrid_executor.kubernetes.adoption import AdoptionResult, adopt_pods
from hybrid_executor.kubernetes.api import KubeApi
from hybrid_executor.kubernetes.deployment import resolve_deployment_id
from hybrid_executor.kubernetes.following import PodFollower
from hybrid_executor.kubernetes.launch_outcomes import settle_launch
from hybrid_executor.kubernetes.launcher import LaunchRequest, LaunchResult
from hybrid_executor.kubernetes.pending import PendingDeadlines
from hybrid_executor.kubernetes.podbodies import PodBodies
from hybrid_executor.kubernetes.podevents import PodEvent
from hybrid_executor.kubernetes.podlog import read_task_pod_log
from hybrid_executor.kubernetes.pods import pod_name_for
from hybrid_executor.kubernetes.readoption import PendingAdoptions
from hybrid_executor.kubernetes.relaunch import EVENT as RELAUNCH_EVENT
from hybrid_executor.kubernetes.relaunch import Relauncher
from hybrid_executor.kubernetes.services import PodServices
from hybrid_executor.kubernetes.staleness import still_queued
from hybrid_executor.kubernetes.tracking import PodTable, TrackedPod
from hybrid_executor.kubernetes.workload_token import launch_deadline
from hybrid_executor.metrics import PodMetrics

if TYPE_CHECKING:
    from airflow.executors import workloads
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancekey import TaskInstanceKey
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
        self._bodies = PodBodies()
        self._metrics = PodMetrics(team_name)
        self._queued_at: dict[TaskInstanceKey, float] = {}  # time.monotonic() at queue_workload, until launched
        self._pending_adoptions = PendingAdoptions(self._adopt)
        self._follower = PodFollower(  # its events, on this thread: see kubernetes.following
            self._table,
            self._pending,
            self._metrics,
            self,
            settings=lambda: self.settings,
            launcher=lambda: self._launcher,
            delete_pod=self._delete_pod,
            build_pod=self._build_pod,
        )

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

    @property
    def _relauncher(self) -> Relauncher | None:
        """From the settings, at start()."""
        return self._follower.relauncher

    def start(self) -> None:
        self._follower.relauncher = Relauncher.from_settings(self.settings)
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
        """Runs on a launcher thread: the pod's JSON body (see kubernetes.podbodies)."""
        return self._bodies.build(workload, self.scheduler_job_id, self.settings, self.deployment_id)

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
            self._follower.on_event(event)
        self._follower.enforce_pending_timeout()
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
            self._follower.fail_task(pod, *actions.failure)
        elif result.ok and pod.failure and not actions.delete and self._relauncher is not None:
            self.log_task_event(event=RELAUNCH_EVENT, extra=self._relauncher.event_text(pod), ti_key=pod.key)
            pod.failure = None
        if pod.revoked or pod.finished:
            self._table.forget(pod)  # the launch is over and so is the queueing

    def _delete_pod(self, namespace: str, name: str, *, uid: str | None = None) -> None:
        assert self._deleter is not None, "start() the executor first"
        self._deleter.delete(namespace, name, uid=uid)

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
            self._follower.release(pod)
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
            self._follower.release(pod)
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
        self._follower.follow_adopted(outcome.adopted)
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

    def _settle_adoptions(self) -> None:
        if not len(self._pending_adoptions):
            return
        settled = self._pending_adoptions.poll()
        self._follower.follow_adopted(settled.adopted)
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

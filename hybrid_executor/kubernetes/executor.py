"""KubernetesPodExecutor: each task in a pod of its own, launched from inside the scheduler.

The scheduler's thread never waits on the Kubernetes API here: ``_process_workloads`` builds the
pod and hands it to the launcher's threads, ``sync`` drains what the launcher and the watchers
put on their queues. Each heartbeat costs O(changes): pending-timeout checks use a heap keyed by
deadline, never a scan of everything running.
"""

from __future__ import annotations

import functools
import heapq
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.executors.base_executor import PARALLELISM, BaseExecutor
from airflow.models.taskinstancekey import TaskInstanceKey

from hybrid_executor.kubernetes.api import KubeApi, KubeApiError
from hybrid_executor.kubernetes.cleanup import PodDeleter
from hybrid_executor.kubernetes.launcher import LaunchRequest, LaunchResult, PodLauncher
from hybrid_executor.kubernetes.pods import (
    base_pod_template,
    build_worker_pod,
    pod_context_for,
    pod_name_for,
    scheduler_job_labels,
    selector_for_scheduler,
    task_key_from_pod,
)
from hybrid_executor.kubernetes.podstate import PodOutcome, outcome_of
from hybrid_executor.kubernetes.watcher import PodEvent, PodWatcher

if TYPE_CHECKING:
    from airflow.executors import workloads
    from airflow.models.taskinstance import TaskInstance
    from kubernetes.client import V1Pod

    from hybrid_executor.settings import KubernetesSettings


@dataclass
class _Tracked:
    """What this executor knows of one task's pod."""

    namespace: str
    name: str
    pending_since: float | None = None
    pending_reason: str = ""
    finished: bool = False


class KubernetesPodExecutor(BaseExecutor):
    """Runs each workload given to it as a pod; see the module docstring for the threading rules."""

    supports_ad_hoc_ti_run: bool = True
    supports_multi_team: bool = True
    RUNNING_POD_LOG_LINES = 200

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
        self._launcher: PodLauncher | None = None
        self._deleter: PodDeleter | None = None
        self._watchers: dict[str, PodWatcher] = {}
        self._events: queue.SimpleQueue[PodEvent] = queue.SimpleQueue()
        self._tracked: dict[TaskInstanceKey, _Tracked] = {}
        self._by_pod: dict[tuple[str, str], TaskInstanceKey] = {}
        self._pending_deadlines: list[tuple[float, TaskInstanceKey]] = []
        self._templates: dict[str, V1Pod] = {}
        self._templates_lock = threading.Lock()  # launcher threads build pods concurrently

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

    def start(self) -> None:
        settings = self.settings
        self._launcher = PodLauncher(
            self.api,
            concurrency=settings.pod_creation_concurrency,
            qps=settings.api_qps,
            burst=settings.api_burst,
            retry_timeout=settings.pod_creation_retry_timeout,
        )
        self._launcher.start()
        self._deleter = PodDeleter(self.api)
        self._deleter.start()
        selector = selector_for_scheduler(job_id=self.scheduler_job_id)
        for namespace in sorted(settings.namespaces()):
            watcher = PodWatcher(
                self.api,
                namespace,
                selector,
                self._events,
                watch_timeout_seconds=settings.watch_timeout_seconds,
            )
            watcher.start()
            self._watchers[namespace] = watcher

    def end(self) -> None:
        self.sync()
        self.terminate()

    def terminate(self) -> None:
        if self._launcher is not None:
            self._launcher.stop(timeout=5)
        if self._deleter is not None:
            self._deleter.stop(timeout=5)
        for watcher in self._watchers.values():
            watcher.stop(timeout=5)
        self._watchers.clear()

    # --- launching ------------------------------------------------------------------------

    def _process_workloads(self, workload_items: Sequence[workloads.All]) -> None:
        """Hand each workload to the launcher; the pod is built on a launcher thread, not this one."""
        from airflow.executors import workloads as workload_types

        assert self._launcher is not None, "start() the executor first"
        for workload in workload_items:
            if not isinstance(workload, workload_types.ExecuteTask):
                raise ValueError(f"{type(self).__name__} cannot run {type(workload).__name__} workloads")
            key = workload.ti.key
            self.queued_tasks.pop(key, None)
            self.running.add(key)
            name, namespace = pod_name_for(key), self.settings.namespace_for(workload.ti.queue)
            self._track(key, namespace, name)
            self._launcher.submit(
                LaunchRequest(key, functools.partial(self._build_pod, workload), pod_name=name, namespace=namespace)
            )

    def _build_pod(self, workload: workloads.ExecuteTask) -> V1Pod:
        """Runs on a launcher thread: template (cached), pod_override merge, mutation hook."""
        context = pod_context_for(self.settings, workload.ti.queue, self.scheduler_job_id, self._template)
        return build_worker_pod(workload, context)

    def _template(self, path: str | None) -> V1Pod:
        if path is None:
            return base_pod_template(None)
        with self._templates_lock:
            if path not in self._templates:
                self._templates[path] = base_pod_template(path)
            return self._templates[path]

    def _track(self, key: TaskInstanceKey, namespace: str, name: str) -> _Tracked:
        tracked = self._tracked.get(key)
        if tracked is not None and (tracked.namespace, tracked.name) != (namespace, name):
            self._by_pod.pop((tracked.namespace, tracked.name), None)
            tracked.namespace, tracked.name = namespace, name
        elif tracked is None:
            tracked = self._tracked[key] = _Tracked(namespace, name)
        self._by_pod[(namespace, name)] = key
        return tracked

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

    def _on_launch_result(self, result: LaunchResult) -> None:
        if result.cancelled:
            if result.ok:  # created while it was being revoked: the task must not run after all
                self._delete_pod(result.namespace, result.pod_name)
            return
        if result.key not in self.running:
            # Already over: the watch reported the pod's end before this result came (a quick pod),
            # or a revoke came after the create and deleted the pod itself. Nothing left to do.
            return
        if result.ok:
            self._track(result.key, result.namespace, result.pod_name)
            return
        event = (
            "pod could not be built"
            if (result.error or "").startswith("pod could not be built")
            else ("pod creation failed")
        )
        self._fail_task(result.key, event, result.error or "unknown error")
        self._forget(result.key)  # no pod to follow

    def _on_pod_event(self, event: PodEvent) -> None:
        metadata = event.pod.get("metadata") or {}
        where = (metadata.get("namespace", ""), metadata.get("name", ""))
        key = self._by_pod.get(where) or task_key_from_pod(event.pod)
        if key is None or key not in self.running:
            return
        tracked = self._tracked.get(key) or self._track(key, *where)
        if tracked.finished:
            return
        outcome = outcome_of(event.type, event.pod)
        if outcome.state == "pending":
            self._note_pending(key, tracked, outcome)
        elif outcome.state == "running":
            tracked.pending_since = None
        elif outcome.state in ("success", "failed"):
            self._finish(key, tracked, outcome)

    def _note_pending(self, key: TaskInstanceKey, tracked: _Tracked, outcome: PodOutcome) -> None:
        if outcome.fatal:
            self._finish(key, tracked, outcome, still_pending=True)
            return
        tracked.pending_reason = outcome.message
        if tracked.pending_since is None:
            tracked.pending_since = time.monotonic()
            deadline = tracked.pending_since + self.settings.worker_pods_pending_timeout
            heapq.heappush(self._pending_deadlines, (deadline, key))

    def _enforce_pending_timeout(self) -> None:
        now = time.monotonic()
        while self._pending_deadlines and self._pending_deadlines[0][0] <= now:
            _, key = heapq.heappop(self._pending_deadlines)
            tracked = self._tracked.get(key)
            if tracked is None or tracked.finished or tracked.pending_since is None:
                continue
            if tracked.pending_since + self.settings.worker_pods_pending_timeout > now:
                continue  # pending again since: a newer deadline is in the heap
            message = (
                f"pod {tracked.namespace}/{tracked.name} was still Pending after "
                f"{self.settings.worker_pods_pending_timeout:g}s ([kubernetes_executor] "
                f"worker_pods_pending_timeout): {tracked.pending_reason}"
            )
            self._finish(key, tracked, PodOutcome("failed", message, fatal=True), still_pending=True)

    def _finish(
        self, key: TaskInstanceKey, tracked: _Tracked, outcome: PodOutcome, *, still_pending: bool = False
    ) -> None:
        """Report the task's end and delete its pod by policy.

        A pod given up on while still Pending (the pending timeout, a reason that cannot resolve) is
        deleted whatever the policy, as the stock executor deleted timed-out pods: left there, it
        would hold its quota, and could yet start and run a task already reported failed.
        """
        tracked.finished = True
        if outcome.state == "success":
            self.success(key, f"{tracked.namespace}/{tracked.name}")
            delete = self.settings.delete_worker_pods
        else:
            self._fail_task(key, "pod failed", outcome.message)
            delete = still_pending or (self.settings.delete_worker_pods and self.settings.delete_worker_pods_on_failure)
        if delete and not outcome.gone:
            self._delete_pod(tracked.namespace, tracked.name)
        self._forget(key)

    def _delete_pod(self, namespace: str, name: str) -> None:
        assert self._deleter is not None, "start() the executor first"
        self._deleter.delete(namespace, name)

    def _fail_task(self, key: TaskInstanceKey, event: str, message: str) -> None:
        self.log.error("Task %s: %s: %s", key, event, message)
        self.log_task_event(event=event, extra=message, ti_key=key)
        self.fail(key, message)
        if key not in self._tracked or self._tracked[key].finished:
            self._forget(key)

    def _forget(self, key: TaskInstanceKey) -> None:
        tracked = self._tracked.pop(key, None)
        if tracked is not None:
            self._by_pod.pop((tracked.namespace, tracked.name), None)

    # --- the scheduler's other calls ------------------------------------------------------

    def revoke_task(self, *, ti: TaskInstance) -> None:
        key = ti.key
        if self._launcher is not None:
            self._launcher.cancel(key)
        tracked = self._tracked.get(key)
        if tracked is not None:
            self._delete_pod(tracked.namespace, tracked.name)
            self._forget(key)
        self.running.discard(key)
        self.queued_tasks.pop(key, None)

    def try_adopt_task_instances(self, tis: Sequence[TaskInstance]) -> Sequence[TaskInstance]:
        """Adopt the pods of dead schedulers: one paginated LIST per namespace, then relabel each.

        The relabelled pod starts matching this scheduler's watch, which then reports its current
        state, finished or not; so a pod that ended while no scheduler ran is picked up the same way.

        A task this executor already runs is kept as it is. The scheduler asks that when it took
        its own job for dead (a heartbeat later than ``scheduler_health_check_threshold``, say on a
        loaded machine): answering "not adopted" would make it reset the task and start a second
        pod for a try whose first pod still runs.
        """
        wanted = {ti.key: ti for ti in tis if ti.key not in self.running}
        if not wanted:
            return []
        selector = selector_for_scheduler(exclude_job_id=self.scheduler_job_id)
        found: dict[TaskInstanceKey, dict[str, Any]] = {}
        for namespace in sorted(self.settings.namespaces()):
            for pod in self._list_all(namespace, selector):
                key = task_key_from_pod(pod)
                if key in wanted:
                    found[key] = pod
        not_adopted = []
        for key, ti in wanted.items():
            match = found.get(key)
            if match is None:
                not_adopted.append(ti)
                continue
            metadata = match["metadata"]
            try:
                self.api.patch_pod_labels(
                    metadata["namespace"], metadata["name"], scheduler_job_labels(self.scheduler_job_id)
                )
            except KubeApiError as error:
                self.log.warning("Could not adopt pod %s/%s: %s", metadata["namespace"], metadata["name"], error)
                not_adopted.append(ti)
                continue
            self.running.add(key)
            self._track(key, metadata["namespace"], metadata["name"])
        return not_adopted

    def _list_all(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        pods: list[dict[str, Any]] = []
        continue_token: str | None = None
        while True:
            page = self.api.list_pods_page(namespace, selector, continue_token)
            pods.extend(page.items)
            continue_token = page.continue_token
            if not continue_token:
                return pods

    def get_task_log(self, ti: TaskInstance, try_number: int) -> tuple[list[str], list[str]]:
        key = ti.key.with_try_number(try_number)
        namespace, name = self.settings.namespace_for(ti.queue), pod_name_for(key)
        try:
            text = self.api.read_pod_log(namespace, name, tail_lines=self.RUNNING_POD_LOG_LINES)
        except KubeApiError as error:
            return [f"Reading the log of pod {namespace}/{name} failed: {error}"], [""]
        return [f"Found the log of pod {namespace}/{name} through the Kubernetes API"], [text]

    def debug_dump(self) -> None:
        super().debug_dump()
        self.log.info(
            "pods tracked: %d, launches pending: %d, pending deadlines: %d, watchers: %s",
            len(self._tracked),
            self._launcher.pending() if self._launcher else 0,
            len(self._pending_deadlines),
            {ns: w.synced for ns, w in self._watchers.items()},
        )

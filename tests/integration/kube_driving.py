"""What the Kubernetes-route integration tests share: a DAG of pod tasks, the server's record of
every pod, and the executor driven as the scheduler drives it."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hybrid_executor.testing.kube import LocalKubeAPI


@dataclass
class QueuedTask:
    ti: Any  # airflow.models.taskinstance.TaskInstance, detached from its session
    workload: Any  # airflow.executors.workloads.ExecuteTask

    @property
    def key(self) -> Any:
        return self.ti.key

    @property
    def pod_name(self) -> str:
        """The name of the pod of this queueing (the pod executor names it from the key and the queueing's id)."""
        from hybrid_executor.kubernetes.pods import pod_name_for

        return pod_name_for(self.workload.ti.key, self.workload.ti.external_executor_id)


MANY = 20

KUBE_ROUTE = f"""
from kubernetes.client import models as k8s



def pod(script, image=None):
    container = k8s.V1Container(name="base", command=["sh", "-c", script], image=image)
    return {{"pod_override": k8s.V1Pod(spec=k8s.V1PodSpec(containers=[container]))}}


def noop():
    pass


SCRIPTS = {{
    "ok": "echo fine",
    "ok_b": "echo fine too",
    "fails": "echo broken >&2; exit 4",
    "sleep_1": "sleep 1",
    "sleep_1_fails": "sleep 1; exit 5",
    "sleep_3": "sleep 3",
    "sleep_3_b": "sleep 3",
    "sleep_30": "sleep 30",
    # The shell kills itself as the OOM killer would (exit 137); "$$$$" because Kubernetes
    # expands "$$" in a command to "$".
    "oom": "echo allocating; kill -9 $$$$",
}}
IMAGES = {{"broken_image": "broken/never-pulls:1", "invalid_image": "Not/A:Valid Image"}}


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False)
def kube_route():
    for task_id, script in SCRIPTS.items():
        task(task_id=task_id, queue="kubernetes", executor_config=pod(script))(noop)()
    for task_id, image in IMAGES.items():
        task(task_id=task_id, queue="kubernetes", executor_config=pod("exit 0", image))(noop)()
    for number in range({MANY}):
        task(task_id=f"many_{{number}}", queue="kubernetes", executor_config=pod("echo many"))(noop)()


kube_route()
"""


# --- what the server saw ----------------------------------------------------------------------


@dataclass
class PodHistory:
    """Every pod the local API created or removed in one namespace, seen from inside its store."""

    namespace: str
    created: Counter[str] = field(default_factory=Counter)
    removed: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_change(self, change: Any) -> None:
        if change.resource != "pods" or change.key[0] != self.namespace:
            return
        with self.lock:
            if change.type == "ADDED":
                self.created[change.key[1]] += 1
            elif change.type == "DELETED":
                self.removed[change.key[1]] += 1

    def creations(self, name: str) -> int:
        with self.lock:
            return self.created[name]

    def names(self) -> set[str]:
        with self.lock:
            return set(self.created)


def pods_path(namespace: str) -> str:
    """A fault-rule path glob for the pods of one namespace only (so no other test's requests match)."""
    return f"/api/v1/namespaces/{namespace}/pods*"


def requests_of(kube_api: LocalKubeAPI, verb: str) -> int:
    return kube_api.requests()[(verb, "pods")]


# --- the executor, driven as the scheduler does -------------------------------------------------


@dataclass
class Final:
    state: Any
    info: Any
    seconds: float  # since the start of the wait


class Executors:
    """Starts HybridExecutors as a scheduler would (a job id each); ends every one not abandoned."""

    def __init__(self, executor_config: Callable[..., None]) -> None:
        self._config = executor_config
        self.started: list[Any] = []

    def start(self, job_id: int = 4242, **options: str) -> Any:
        """A started HybridExecutor; ``options`` are ``[hybrid_executor]`` options for it."""
        settings = {
            "worker_container_repository": "apache/airflow",
            "worker_container_tag": "3.3.2",
            "pod_creation_retry_timeout": "20",
            **options,
        }
        for key, value in settings.items():
            self._config("hybrid_executor", key, value)
        from hybrid_executor import HybridExecutor

        executor = HybridExecutor()
        executor.job_id = job_id
        executor.start()
        self.started.append(executor)
        return executor

    def kill(self, executor: Any) -> None:
        """A scheduler that dies: its threads stop, and it never syncs nor ends again."""
        executor.terminate()
        self.started.remove(executor)

    def end_all(self) -> None:
        for executor in self.started:
            executor.end()


def queue_all(executor: Any, tasks: list[Any]) -> None:
    for queued in tasks:
        executor.queue_workload(queued.workload, session=None)


def wait_for_final(executor: Any, keys: set[Any], timeout: float = 30) -> dict[Any, Final]:
    """Heartbeat as the scheduler does until every key has a final state in the event buffer."""
    from airflow.utils.state import TaskInstanceState

    final_states = {TaskInstanceState.SUCCESS, TaskInstanceState.FAILED}
    seen: dict[Any, Final] = {}
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        executor.heartbeat()
        for key, (state, info) in executor.get_event_buffer().items():
            assert key not in seen, f"{key} reported twice: {seen[key]} and {state}"
            if state in final_states:
                seen[key] = Final(state, info, time.monotonic() - began)
        if keys <= seen.keys():
            return seen
        time.sleep(0.05)
    raise AssertionError(f"no final state for {keys - seen.keys()} after {timeout}s; seen {seen}")


def heartbeat_until(beating: Any, condition: Callable[[], bool], timeout: float = 20, what: str = "") -> None:
    """Heartbeat ``beating`` (an executor, a list of them, or None) until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    beating = [] if beating is None else beating if isinstance(beating, list) else [beating]
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        for executor in beating:
            executor.heartbeat()
        time.sleep(0.05)


def phases(kube_api: LocalKubeAPI, namespace: str) -> dict[str, str]:
    return {pod["metadata"]["name"]: pod["status"].get("phase", "") for pod in kube_api.pods(namespace)}


def event_log(executor: Any) -> dict[str, str]:
    """task_id -> the extra text of its events, joined."""
    texts: dict[str, list[str]] = {}
    for entry in executor._task_event_logs:
        texts.setdefault(entry.task_id, []).append(f"{entry.event}: {entry.extra}")
    return {task_id: "\n".join(extras) for task_id, extras in texts.items()}


def assert_one_pod_each(history: PodHistory, tasks: list[Any]) -> None:
    expected = {queued.pod_name for queued in tasks}
    assert {name: history.creations(name) for name in expected} == dict.fromkeys(expected, 1)


def launch_then_die(executors: Executors, dead: Any, tasks: list[Any], history: PodHistory) -> None:
    """``dead`` launches the pods of ``tasks`` and dies once they exist: it never syncs nor ends again."""
    queue_all(dead, tasks)
    heartbeat_until(dead, lambda: {t.pod_name for t in tasks} <= history.names(), what="every pod to be created")
    executors.kill(dead)


def cleanup_passes(executor: Any, count: int = 1) -> None:
    """Wait for ``count`` passes of the executor's cleanup of orphaned pods (one runs at start, and lists)."""
    orphans = executor.kubernetes_executor._orphans
    assert orphans.wait_for_passes(count, timeout=30), f"{count} passes of the orphaned-pod cleanup"


def cleanup_passes_done(executor: Any) -> int:
    return int(executor.kubernetes_executor._orphans._passes)


def queue_and_wait_for_final(executor: Any, tasks: list[Any], timeout: float = 30) -> dict[Any, Final]:
    """Hand ``tasks`` to ``executor`` and heartbeat until each of them has its final state."""
    queue_all(executor, tasks)
    return wait_for_final(executor, {t.key for t in tasks}, timeout=timeout)


def wait_for_final_of(executor: Any, task: Any, timeout: float = 30) -> Final:
    """Heartbeat until ``task`` has its final state in the event buffer."""
    return wait_for_final(executor, {task.key}, timeout=timeout)[task.key]


def states_by_task_id(events: dict[Any, Final]) -> dict[str, Any]:
    return {key.task_id: final.state for key, final in events.items()}


def heartbeat_times(executor: Any, count: int, pause: float = 0.1) -> None:
    """``count`` more heartbeats, ``pause`` seconds apart: time for whatever was still to come to come."""
    for _ in range(count):
        executor.heartbeat()
        time.sleep(pause)


def events_over_heartbeats(executor: Any, count: int, pause: float = 0.1) -> dict[Any, Any]:
    """Every event ``executor`` reports over ``count`` more heartbeats, ``pause`` seconds apart."""
    seen: dict[Any, Any] = {}
    for _ in range(count):
        executor.heartbeat()
        seen.update(executor.get_event_buffer())
        time.sleep(pause)
    return seen


@dataclass
class KubeRoute:
    """What a Kubernetes-route test drives: the local API and the test's namespace on it, the executors
    it starts, the server's record of the namespace's pods, and the task instances of the kube_route DAG."""

    api: LocalKubeAPI
    namespace: str
    executors: Executors
    history: PodHistory
    configure: Callable[[str, str, str], None]  # the executor_config fixture: (section, key, value)
    queue_run: Callable[..., list[QueuedTask]]
    dag_id: str

    def start(self, job_id: int = 4242, **options: str) -> Any:
        return self.executors.start(job_id, **options)

    def kill(self, executor: Any) -> None:
        self.executors.kill(executor)

    def queue(self, executor: Any, task_ids: list[str], *, in_workload: bool = True) -> list[QueuedTask]:
        """A new DAG run's task instances ``task_ids``, QUEUED for ``executor`` as the scheduler queues them
        (``in_workload=False``: their external_executor_id not in the workload, as Airflow 3.1 queues them)."""
        return self.queue_run(self.dag_id, executor, task_ids, in_workload=in_workload)

    def queue_by_task_id(self, executor: Any, task_ids: list[str]) -> dict[str, QueuedTask]:
        return {t.ti.task_id: t for t in self.queue(executor, task_ids)}

    def phases(self) -> dict[str, str]:
        return phases(self.api, self.namespace)

    def labels(self) -> dict[str, dict[str, str]]:
        """Pod name -> its labels, for every pod of the namespace."""
        return {pod["metadata"]["name"]: pod["metadata"]["labels"] for pod in self.api.pods(self.namespace)}

    def pod_fault(self, verb: str, **rule: Any) -> Any:
        """A fault rule for ``verb`` requests on the pods of this test's namespace only."""
        return self.api.faults.add(verb, "pods", pods_path(self.namespace), **rule)

    def requests(self, verb: str) -> int:
        return requests_of(self.api, verb)

    def core(self) -> Any:
        from kubernetes.client import CoreV1Api

        return CoreV1Api(self.api.api_client())

    def wait_for_phase(self, beating: Any, pod_name: str, phase: str, timeout: float = 20, what: str = "") -> None:
        """Heartbeat ``beating`` until the pod ``pod_name`` is in ``phase``."""
        heartbeat_until(
            beating, lambda: self.phases().get(pod_name) == phase, timeout=timeout, what=what or f"{pod_name} {phase}"
        )

    def wait_for_watcher(self, executor: Any) -> None:
        """Heartbeat until the executor's watcher of the namespace has listed its pods."""
        heartbeat_until(
            executor, lambda: executor.kubernetes_executor._watchers[self.namespace].synced, what="the watcher to list"
        )

    def launched_by_a_dead_scheduler(self, job_id: int, task_ids: list[str]) -> list[QueuedTask]:
        """The tasks ``task_ids``, whose pods a scheduler of job ``job_id`` launched before it died."""
        dead = self.start(job_id=job_id)
        tasks = self.queue(dead, task_ids)
        launch_then_die(self.executors, dead, tasks, self.history)
        return tasks

    def launch(self, executor: Any, task_ids: list[str]) -> list[QueuedTask]:
        """The tasks ``task_ids`` queued (as the scheduler queues them) and handed to ``executor``."""
        tasks = self.queue(executor, task_ids)
        queue_all(executor, tasks)
        return tasks

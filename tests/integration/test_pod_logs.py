"""The log of a running pod task, as Airflow's log view asks the executor for it (``get_task_log``).

Pods with sidecars (a service mesh proxy, a log shipper), pods a ``pod_override`` moved to another
watched namespace, and an api-server whose Kubernetes configuration is broken.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kube_driving import Executors, heartbeat_until, phases, queue_all, wait_for_final

from hybrid_executor.settings import SettingsError
from hybrid_executor.testing.kube import LocalKubeAPI

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_faults_left")]

LOGGED = """
from kubernetes.client import models as k8s

SIDECAR = k8s.V1Container(
    name="log-shipper", image="fluent/fluent-bit:3", command=["sh", "-c", "echo shipping; sleep 5"]
)


def noop():
    pass


def pod(script, *, sidecar=False, namespace=None):
    base = k8s.V1Container(name="base", command=["sh", "-c", script])
    return {
        "pod_override": k8s.V1Pod(
            metadata=k8s.V1ObjectMeta(namespace=namespace),
            spec=k8s.V1PodSpec(containers=[base, SIDECAR] if sidecar else [base]),
        )
    }


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False)
def logged():
    script = "echo the task speaks; sleep 5"
    task(task_id="with_sidecar", queue="kubernetes", executor_config=pod(script, sidecar=True))(noop)()
    task(task_id="moved", queue="kubernetes", executor_config=pod(script, namespace="it-moved-logs"))(noop)()
    task(task_id="on_celery")(noop)()


logged()
"""

MOVED = "it-moved-logs"


def base_log(kube_api: LocalKubeAPI, namespace: str, name: str) -> str:
    from kubernetes.client import CoreV1Api

    response = CoreV1Api(kube_api.api_client()).read_namespaced_pod_log(
        name, namespace, container="base", _preload_content=False
    )
    return str(response.data.decode())


@pytest.fixture
def logged(make_dag: Callable[..., str], kube_api: LocalKubeAPI) -> str:
    from kubernetes.client import CoreV1Api

    core = CoreV1Api(kube_api.api_client())
    if MOVED not in {ns.metadata.name for ns in core.list_namespace().items}:
        core.create_namespace({"metadata": {"name": MOVED}})
    return make_dag("logged", LOGGED)


def test_a_pod_with_a_sidecar_shows_the_tasks_own_log(
    executors: Executors,
    logged: str,
    queue_run: Callable[..., list[Any]],
    kube_api: LocalKubeAPI,
    namespace: str,
) -> None:
    from airflow.utils.state import TaskInstanceState

    executor = executors.start()
    [task] = queue_run(logged, executor, ["with_sidecar"])
    queue_all(executor, [task])
    heartbeat_until(executor, lambda: phases(kube_api, namespace).get(task.pod_name) == "Running")
    heartbeat_until(None, lambda: "the task speaks" in base_log(kube_api, namespace, task.pod_name))

    sources, logs = executor.get_task_log(task.ti, 1)

    assert sources == [f"Found the log of pod {namespace}/{task.pod_name} (container base) through the Kubernetes API"]
    assert "the task speaks" in logs[0]
    assert "shipping" not in logs[0]
    assert wait_for_final(executor, {task.key})[task.key].state == TaskInstanceState.SUCCESS


def test_a_pod_moved_by_its_pod_override_is_followed_read_and_deleted_where_it_is(
    executors: Executors,
    logged: str,
    queue_run: Callable[..., list[Any]],
    kube_api: LocalKubeAPI,
    namespace: str,
) -> None:
    from airflow.utils.state import TaskInstanceState

    # The other namespace is watched because a queue's profile names it.
    executor = executors.start(
        kubernetes_queues=f"kubernetes, kubernetes-moved namespace={MOVED}", delete_worker_pods="True"
    )
    [task] = queue_run(logged, executor, ["moved"])
    queue_all(executor, [task])
    heartbeat_until(executor, lambda: phases(kube_api, MOVED).get(task.pod_name) == "Running")
    heartbeat_until(None, lambda: "the task speaks" in base_log(kube_api, MOVED, task.pod_name))

    sources, logs = executor.get_task_log(task.ti, 1)
    final = wait_for_final(executor, {task.key}, timeout=30)[task.key]

    assert sources == [f"Found the log of pod {MOVED}/{task.pod_name} (container base) through the Kubernetes API"]
    assert "the task speaks" in logs[0]
    assert (final.state, final.info) == (TaskInstanceState.SUCCESS, f"{MOVED}/{task.pod_name}")
    heartbeat_until(executor, lambda: task.pod_name not in phases(kube_api, MOVED), what="its deletion there")
    assert task.pod_name not in phases(kube_api, namespace)


def test_a_broken_kubeconfig_is_said_in_the_log_view_and_celery_logs_are_untouched(
    executor_config: Callable[..., None],
    logged: str,
    queue_run: Callable[..., list[Any]],
    tmp_path: Any,
) -> None:
    # The api-server builds the executor only to read logs; its kubeconfig may differ from the scheduler's.
    from hybrid_executor import HybridExecutor

    missing = tmp_path / "no-such-kubeconfig"
    executor_config("kubernetes_executor", "config_file", str(missing))
    router = HybridExecutor()
    tasks = {t.ti.task_id: t for t in queue_run(logged, router, ["with_sidecar", "on_celery"])}

    sources, logs = router.get_task_log(tasks["with_sidecar"].ti, 1)

    assert len(sources) == 1
    assert sources[0].startswith("Cannot reach the Kubernetes API to read the pod's log: ")
    assert f"[kubernetes_executor] config_file = '{missing}' does not exist" in sources[0]
    assert logs == [""]
    with pytest.raises(SettingsError, match="config_file"):  # the scheduler stops on it, as before
        router.start()
    # A Celery task's log comes from its worker's log server: the executor has nothing to add.
    assert router.get_task_log(tasks["on_celery"].ti, 1) == ([], [])

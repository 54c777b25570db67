"""multi_namespace_mode: a watch per listed namespace, or one cluster-wide watch when the list is empty.

Pods go where their queue or pod_override puts them; the executor follows, adopts and reads the log
of each of them there, and a missing ClusterRole shows as the API's own RBAC refusal in its log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from kube_driving import Executors, heartbeat_until, queue_all, wait_for_final
from kubernetes.client import CoreV1Api

from hybrid_executor.testing.kube import LocalKubeAPI

pytestmark = pytest.mark.usefixtures("no_faults_left")

TEAM_A, TEAM_B = "multi-ns-team-a", "multi-ns-team-b"

MULTI_NS = f"""
from kubernetes.client import models as k8s


def in_namespace(namespace):
    container = k8s.V1Container(name="base", command=["sh", "-c", "echo in " + str(namespace)])
    metadata = k8s.V1ObjectMeta(namespace=namespace)
    return {{"pod_override": k8s.V1Pod(metadata=metadata, spec=k8s.V1PodSpec(containers=[container]))}}


def noop():
    pass


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False)
def multi_ns():
    for task_id, namespace in (("here", None), ("team_a", "{TEAM_A}"), ("team_b", "{TEAM_B}")):
        task(task_id=task_id, queue="kubernetes", executor_config=in_namespace(namespace))(noop)()


multi_ns()
"""


@pytest.fixture
def multi_ns(make_dag: Callable[..., str], kube_api: LocalKubeAPI) -> str:
    core = CoreV1Api(kube_api.api_client())
    existing = {ns.metadata.name for ns in core.list_namespace().items}
    for name in {TEAM_A, TEAM_B} - existing:
        core.create_namespace({"metadata": {"name": name}})
    return make_dag("multi_ns", MULTI_NS)


def pod_namespaces(kube_api: LocalKubeAPI, tasks: list[Any]) -> dict[str, str]:
    names = {queued.pod_name: queued.ti.task_id for queued in tasks}
    return {
        names[p["metadata"]["name"]]: p["metadata"]["namespace"]
        for p in kube_api.pods()
        if p["metadata"]["name"] in names
    }


def test_a_watch_per_listed_namespace_follows_the_pods_put_there(
    executors: Executors, multi_ns: str, queue_run: Callable[..., list[Any]], kube_api: LocalKubeAPI, namespace: str
) -> None:
    from airflow.utils.state import TaskInstanceState

    executor = executors.start(
        job_id=7101, multi_namespace_mode="True", multi_namespace_mode_namespace_list=f"{TEAM_A}, {TEAM_B}"
    )
    assert set(executor.kubernetes_executor._watchers) == {namespace, TEAM_A, TEAM_B}
    tasks = queue_run(multi_ns, executor)

    queue_all(executor, tasks)
    events = wait_for_final(executor, {t.key for t in tasks})

    assert {final.state for final in events.values()} == {TaskInstanceState.SUCCESS}
    assert pod_namespaces(kube_api, tasks) == {"here": namespace, "team_a": TEAM_A, "team_b": TEAM_B}


def test_with_an_empty_list_one_cluster_wide_watch_follows_pods_in_any_namespace(
    executors: Executors, multi_ns: str, queue_run: Callable[..., list[Any]], kube_api: LocalKubeAPI, namespace: str
) -> None:
    from airflow.utils.state import TaskInstanceState

    # TEAM_B is named nowhere in the settings: only the cluster-wide watch can see its pod.
    executor = executors.start(job_id=7102, multi_namespace_mode="True", multi_namespace_mode_namespace_list="")
    assert list(executor.kubernetes_executor._watchers) == ["*"]
    tasks = {t.ti.task_id: t for t in queue_run(multi_ns, executor)}

    queue_all(executor, list(tasks.values()))
    events = wait_for_final(executor, {t.key for t in tasks.values()})

    assert {final.state for final in events.values()} == {TaskInstanceState.SUCCESS}
    assert pod_namespaces(kube_api, list(tasks.values()))["team_b"] == TEAM_B
    # The log view finds the pod wherever it is (delete_worker_pods is off in these tests).
    sources, lines = executor.get_task_log(tasks["team_b"].ti, 1)
    assert f"Found the log of pod {TEAM_B}/{tasks['team_b'].pod_name}" in sources[0]
    assert f"in {TEAM_B}" in lines[0]
    # A scheduler taking over adopts the pods of every namespace.
    successor = executors.start(job_id=7103, multi_namespace_mode="True", multi_namespace_mode_namespace_list="")
    assert successor.try_adopt_task_instances([t.ti for t in tasks.values()]) == []


def test_without_a_cluster_role_the_watch_logs_the_rbac_refusal_and_keeps_trying(
    executors: Executors, kube_api: LocalKubeAPI, caplog: pytest.LogCaptureFixture
) -> None:
    denied = kube_api.authorization.deny("*", "pods", namespace="")  # RoleBindings only
    try:
        with caplog.at_level(logging.WARNING, logger="hybrid_executor.kubernetes.watcher"):
            executor = executors.start(job_id=7104, multi_namespace_mode="True")
            heartbeat_until(executor, lambda: denied.hits >= 2, what="the watcher to retry its list")
    finally:
        kube_api.authorization.remove(denied)
    refusals = [r.getMessage() for r in caplog.records if "list failed" in r.getMessage()]
    assert refusals
    assert refusals[0].startswith("pod watcher *: list failed (KubeApiError: pods is forbidden: User ")
    assert 'cannot list resource "pods" in API group "" at the cluster scope' in refusals[0]
    heartbeat_until(executor, lambda: executor.kubernetes_executor._watchers["*"].synced, what="the watch to recover")

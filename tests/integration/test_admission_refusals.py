"""A pod create refused by admission, through the executor: what waiting can clear is retried, the rest fails at once.

Every admission refusal is HTTP 403; the local API answers each as a real kube-apiserver v1.36 does
(its admission plugins, in their order and words), and the executor tells them apart by the message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from kube_driving import Executors, PodHistory, event_log, heartbeat_until, queue_all, requests_of, wait_for_final

from hybrid_executor.testing.kube import LocalKubeAPI

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_faults_left")]

ADMITTED = """
from kubernetes.client import models as k8s


def noop():
    pass


def pod(**spec):
    base = k8s.V1Container(name="base", command=["sh", "-c", "echo admitted"])
    return {"pod_override": k8s.V1Pod(spec=k8s.V1PodSpec(containers=[base], **spec))}


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False)
def admitted():
    task(task_id="no_security_context", queue="kubernetes", executor_config=pod())(noop)()
    task(task_id="host_network", queue="kubernetes", executor_config=pod(host_network=True))(noop)()
    task(task_id="own_account", queue="kubernetes", executor_config=pod(service_account_name="airflow-worker"))(
        noop
    )()


admitted()
"""


@pytest.fixture
def admitted(make_dag: Callable[..., str]) -> str:
    return make_dag("admitted", ADMITTED)


def test_a_pod_the_namespaces_pod_security_level_refuses_fails_at_once_with_the_apis_message(
    executors: Executors,
    admitted: str,
    queue_run: Callable[..., list[Any]],
    kube_api: LocalKubeAPI,
    namespace: str,
    pod_history: PodHistory,
) -> None:
    from airflow.utils.state import TaskInstanceState
    from kubernetes.client import CoreV1Api

    CoreV1Api(kube_api.api_client()).patch_namespace(
        namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "baseline"}}}
    )
    executor = executors.start(pod_creation_retry_timeout="60")
    tasks = {t.ti.task_id: t for t in queue_run(admitted, executor, ["host_network", "no_security_context"])}
    creates = requests_of(kube_api, "create")

    queue_all(executor, list(tasks.values()))
    events = wait_for_final(executor, {tasks["host_network"].key}, timeout=10)

    final = events[tasks["host_network"].key]
    assert final.state == TaskInstanceState.FAILED
    assert final.seconds < 5  # not retried for the 60 s budget: waiting cannot make the pod admissible
    message = event_log(executor)["host_network"]
    assert 'violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)' in message
    assert message.startswith("pod creation failed: pods ")
    # The baseline level admits a pod without a securityContext: it ran.
    heartbeat_until(executor, lambda: pod_history.creations(tasks["no_security_context"].pod_name) == 1)
    assert requests_of(kube_api, "create") - creates == 2  # one each: nothing was retried
    assert pod_history.creations(tasks["host_network"].pod_name) == 0


def test_a_missing_service_account_is_retried_and_said_once_until_an_operator_creates_it(
    executors: Executors,
    admitted: str,
    queue_run: Callable[..., list[Any]],
    kube_api: LocalKubeAPI,
    namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from airflow.utils.state import TaskInstanceState
    from kubernetes.client import CoreV1Api

    caplog.set_level(logging.WARNING, logger="hybrid_executor")
    executor = executors.start(pod_creation_retry_timeout="60")
    [task] = queue_run(admitted, executor, ["own_account"])
    creates = requests_of(kube_api, "create")

    queue_all(executor, [task])
    heartbeat_until(executor, lambda: requests_of(kube_api, "create") - creates >= 3, what="a few refused creates")
    account = {"metadata": {"name": "airflow-worker"}}
    CoreV1Api(kube_api.api_client()).create_namespaced_service_account(namespace, account)
    began = time.monotonic()
    final = wait_for_final(executor, {task.key}, timeout=40)[task.key]

    assert final.state == TaskInstanceState.SUCCESS
    assert time.monotonic() - began < 40
    said = [r.getMessage() for r in caplog.records if "until an operator acts" in r.getMessage()]
    assert len(said) == 1, said
    assert (
        f"error looking up service account {namespace}/airflow-worker: "
        'serviceaccount "airflow-worker" not found' in said[0]
    )
    assert f"create the ServiceAccount airflow-worker in namespace {namespace}" in said[0]

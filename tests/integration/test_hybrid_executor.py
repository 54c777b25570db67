"""HybridExecutor driven through the calls the scheduler makes, on real task instances."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from driving import wait_for_events

from hybrid_executor.testing.kube import LocalKubeAPI

pytestmark = pytest.mark.slow

POD_TASKS = """
from kubernetes.client import models as k8s


def command(*argv):
    container = k8s.V1Container(name="base", command=list(argv))
    return {"pod_override": k8s.V1Pod(spec=k8s.V1PodSpec(containers=[container]))}


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False)
def pod_tasks():
    @task(queue="kubernetes", executor_config=command("sh", "-c", "echo done; exit 0"))
    def passes():
        pass

    @task(queue="kubernetes", executor_config=command("sh", "-c", "echo broken >&2; exit 3"))
    def fails():
        pass

    @task(queue="kubernetes", executor_config=command("sh", "-c", "exit 0") | {"pod_override": k8s.V1Pod(
        spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="Base-Invalid", image="busybox:1")]))})
    def invalid():
        pass

    passes()
    fails()
    invalid()


pod_tasks()
"""


@pytest.fixture
def hybrid(executor_config: Callable[..., None]) -> Any:
    executor_config("hybrid_executor", "worker_container_repository", "apache/airflow")
    executor_config("hybrid_executor", "worker_container_tag", "3.3.2")
    from hybrid_executor import HybridExecutor

    executor = HybridExecutor()
    executor.job_id = 4242
    executor.start()
    yield executor
    executor.end()


def test_pod_tasks_report_success_failure_and_the_apis_422(
    hybrid: Any,
    make_dag: Callable[..., str],
    queue_run: Callable[..., list[Any]],
    kube_api: LocalKubeAPI,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from airflow.utils.state import TaskInstanceState

    dag_id = make_dag("pod_tasks", POD_TASKS)
    tasks = {t.ti.task_id: t for t in queue_run(dag_id, hybrid)}
    for queued in tasks.values():
        hybrid.queue_workload(queued.workload, session=None)
    assert {t.key for t in tasks.values()} <= set(hybrid.kubernetes_executor.queued_tasks)

    events = wait_for_events(hybrid, {t.key for t in tasks.values()})

    assert events[tasks["passes"].key][0] == TaskInstanceState.SUCCESS
    assert events[tasks["fails"].key][0] == TaskInstanceState.FAILED
    assert events[tasks["invalid"].key][0] == TaskInstanceState.FAILED
    logs = {log.task_id: log.extra for log in hybrid._task_event_logs}
    assert "exit code 3" in logs["fails"]
    assert "spec.containers[0].name" in logs["invalid"]
    assert "Base-Invalid" in logs["invalid"]
    assert not hybrid.running
    messages, logs_of_pod = hybrid.get_task_log(tasks["passes"].ti, 1)
    assert logs_of_pod == ["done\n"], messages
    # The workload JSON in every pod carries the task's JWT: nothing the executor wrote may show it.
    written = capfd.readouterr()
    printed = written.out + written.err + caplog.text + "".join(str(log.extra) for log in hybrid._task_event_logs)
    for queued in tasks.values():
        assert queued.workload.token
        assert queued.workload.token not in printed

"""The Celery route for real: Redis broker, an `airflow celery worker`, Airflow's execution API."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from driving import wait_for_events

from hybrid_executor.demo.processes import ManagedProcess, stop_together
from hybrid_executor.testing.services import AirflowEnv, airflow_command, free_port

pytestmark = pytest.mark.slow

CELERY_TASKS = """
@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False)
def celery_tasks():
    @task
    def answer():
        return 42

    @task
    def broken():
        raise ValueError("this task fails on purpose")

    answer()
    broken()


celery_tasks()
"""


@pytest.fixture(scope="module")
def airflow_workers(airflow_env: AirflowEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """An api-server (whose execution API the tasks talk to) and one Celery worker, for this module."""
    logs = tmp_path_factory.mktemp("celery-route-logs")
    port = free_port()
    env = airflow_env.subprocess_env() | {
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__EXECUTOR": "hybrid_executor.HybridExecutor",
    }
    api = ManagedProcess(
        "api-server",
        [*airflow_command(), "api-server", "--host", "127.0.0.1", "--port", str(port)],
        env,
        logs / "api.log",
        logs,
    )
    worker_command = [
        *airflow_command(),
        "celery",
        "worker",
        "--concurrency",
        "2",
        "--without-gossip",
        "--without-mingle",
    ]
    worker = ManagedProcess("celery-worker", [*worker_command, "-s"], env, logs / "worker.log", logs)
    api.start()
    worker.start()
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2):
                    break
            except OSError:
                assert api.is_running(), api.log_tail(60)
                assert time.monotonic() < deadline, "the api-server did not answer within 120 s"
                time.sleep(0.5)
        yield {"AIRFLOW__CORE__EXECUTION_API_SERVER_URL": env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]}
    finally:
        stop_together([worker, api], grace=20)


def test_celery_tasks_run_on_a_real_worker_and_report_back(
    airflow_workers: dict[str, str],
    executor_config: Callable[..., None],
    make_dag: Callable[..., str],
    queue_run: Callable[..., list[Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.utils.state import TaskInstanceState

    from hybrid_executor import HybridExecutor

    for name, value in airflow_workers.items():
        monkeypatch.setenv(name, value)
    dag_id = make_dag("celery_tasks", CELERY_TASKS)
    executor = HybridExecutor()
    executor.job_id = 5151
    executor.start()
    try:
        tasks = {t.ti.task_id: t for t in queue_run(dag_id, executor)}
        for queued in tasks.values():
            executor.queue_workload(queued.workload, session=None)
        assert set(executor.celery_executor.queued_tasks) == {t.key for t in tasks.values()}
        assert not executor.kubernetes_executor.queued_tasks

        events = wait_for_events(executor, {t.key for t in tasks.values()}, timeout=120)
    finally:
        executor.end()

    # On Airflow 3 the executor's event says the workload ran to its end; the task's own outcome
    # reaches the metadata DB through the execution API, from the worker.
    assert events[tasks["answer"].key][0] == TaskInstanceState.SUCCESS
    assert events[tasks["broken"].key][0] == TaskInstanceState.SUCCESS
    assert _state_in_db(tasks["answer"].ti) == TaskInstanceState.SUCCESS
    assert _state_in_db(tasks["broken"].ti) == TaskInstanceState.FAILED
    assert _xcom(tasks["answer"].ti) == 42


def _state_in_db(ti: Any) -> Any:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return session.scalar(select(TaskInstance.state).where(TaskInstance.id == ti.id))


def _xcom(ti: Any) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == ti.dag_id,
                XComModel.task_id == ti.task_id,
                XComModel.run_id == ti.run_id,
                XComModel.key == "return_value",
            )
        ).first()
        return XComModel.deserialize_value(row) if row is not None else None

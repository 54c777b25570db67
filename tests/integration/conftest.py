"""Real task instances in the Airflow DB, a local Kubernetes API with its kubelet, and the executor's config.

The executors under test get exactly what the scheduler gives them: workloads made from task
instances of a serialized DAG, in a DAG run of the migrated metadata DB.
"""

from __future__ import annotations

import itertools
import subprocess
import textwrap
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kube_driving import KUBE_ROUTE, Executors, KubeRoute, PodHistory, QueuedTask

from hybrid_executor.compat import set_external_executor_id
from hybrid_executor.testing.kube import KubeletConfig, LocalKubeAPI
from hybrid_executor.testing.services import AirflowEnv, airflow_command

_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def kube_api() -> Iterator[LocalKubeAPI]:
    with LocalKubeAPI(kubelet=KubeletConfig(), bookmark_interval=1.0) as api:
        yield api


@pytest.fixture
def namespace(kube_api: LocalKubeAPI) -> str:
    name = f"it-{next(_numbers)}"
    client = kube_api.api_client()
    from kubernetes.client import CoreV1Api

    CoreV1Api(client).create_namespace({"metadata": {"name": name}})
    return name


@pytest.fixture
def executor_config(
    airflow_environ: AirflowEnv, kube_api: LocalKubeAPI, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., None]:
    """Point the executors at the local API and a namespace of the test's own; ``set(section, key, value)``."""
    defaults = {
        ("kubernetes_executor", "in_cluster"): "False",
        ("kubernetes_executor", "config_file"): str(kube_api.kubeconfig),
        ("kubernetes_executor", "namespace"): namespace,
        ("kubernetes_executor", "delete_worker_pods"): "False",
        # The tests' pods run shell scripts, which never set their task instance running: to the stock
        # pod_launch_failure_retries every failure of theirs is one before the task started.
        # test_pod_relaunch.py tests that with the default.
        ("kubernetes_executor", "pod_launch_failure_retries"): "0",
        ("hybrid_executor", "pod_creation_retry_timeout"): "30",
        ("hybrid_executor", "watch_timeout_seconds"): "30",
    }

    def set_option(section: str, key: str, value: str) -> None:
        monkeypatch.setenv(f"AIRFLOW__{section.upper()}__{key.upper()}", value)

    for (section, key), value in defaults.items():
        set_option(section, key, value)
    return set_option


_serialized: set[str] = set()


@pytest.fixture
def make_dag(airflow_environ: AirflowEnv) -> Callable[[str, str], str]:
    """Write a DAG file into the dags folder and serialize it into the DB; returns the dag_id."""

    def make(dag_id: str, body: str) -> str:
        if dag_id in _serialized:
            return dag_id
        source = "import pendulum\nfrom airflow.sdk import dag, task\n\n" + textwrap.dedent(body)
        (airflow_environ.home / "dags" / f"{dag_id}.py").write_text(source)
        result = subprocess.run(
            [*airflow_command(), "dags", "reserialize"],
            env=airflow_environ.subprocess_env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        _serialized.add(dag_id)
        return dag_id

    return make


@pytest.fixture
def queue_run(airflow_environ: AirflowEnv) -> Callable[..., list[QueuedTask]]:
    """Create a DAG run and turn its task instances into QUEUED ones with their workloads, as the scheduler does."""

    def queue(
        dag_id: str, executor: Any, task_ids: list[str] | None = None, *, in_workload: bool = True
    ) -> list[QueuedTask]:
        import pendulum
        from airflow.executors import workloads
        from airflow.models.serialized_dag import SerializedDagModel
        from airflow.utils.session import create_session
        from airflow.utils.state import DagRunState, TaskInstanceState
        from airflow.utils.types import DagRunTriggeredByType, DagRunType

        queued = []
        with create_session() as session:
            dag = SerializedDagModel.get_dag(dag_id, session=session)
            assert dag is not None, f"DAG {dag_id} is not serialized"
            now = pendulum.now("UTC")
            run = dag.create_dagrun(
                run_id=f"test-{next(_numbers)}",
                run_after=now,
                logical_date=now,
                data_interval=(now, now),
                run_type=DagRunType.MANUAL,
                triggered_by=DagRunTriggeredByType.TEST,
                state=DagRunState.RUNNING,
                session=session,
            )
            for ti in run.get_task_instances(session=session):
                if task_ids is not None and ti.task_id not in task_ids:
                    continue
                ti.state = TaskInstanceState.QUEUED
                ti.try_number = 1
                # The scheduler draws one per queueing for an executor that pre-assigns them (the router does).
                ti.external_executor_id = str(uuid.uuid4())
                session.flush()
                workload = workloads.ExecuteTask.make(ti, generator=executor.jwt_generator)
                # Airflow 3.2+ carries the id in the workload; 3.1's workload has no field for it (its
                # scheduler stores the id the executor draws): given here, the tests name the same pods.
                if in_workload:
                    set_external_executor_id(workload.ti, ti.external_executor_id)
                queued.append(QueuedTask(ti, workload))
            session.expunge_all()
        return queued

    return queue


# --- the Kubernetes route (helpers in kube_driving.py) ---------------------------------------


@pytest.fixture
def pod_history(kube_api: LocalKubeAPI, namespace: str) -> Iterator[PodHistory]:
    history = PodHistory(namespace)
    store = kube_api.server.store
    kube_api.call(lambda: store.add_listener(history.on_change))
    yield history
    kube_api.call(lambda: store._listeners.remove(history.on_change))


@pytest.fixture
def no_faults_left(kube_api: LocalKubeAPI) -> Iterator[None]:
    kube_api.faults.clear()
    yield
    kube_api.faults.clear()


@pytest.fixture
def executors(executor_config: Callable[..., None]) -> Iterator[Executors]:
    started = Executors(executor_config)
    yield started
    started.end_all()


@pytest.fixture
def kube_route(make_dag: Callable[..., str]) -> str:
    return make_dag("kube_route", KUBE_ROUTE)


@pytest.fixture
def kube(
    executors: Executors,
    kube_route: str,
    queue_run: Callable[..., list[QueuedTask]],
    kube_api: LocalKubeAPI,
    namespace: str,
    pod_history: PodHistory,
    executor_config: Callable[..., None],
) -> KubeRoute:
    """The fixtures a Kubernetes-route test drives, in one parameter. ``executors`` comes first, as it did in
    each test's own list: set up first, its executors end last (after the pod history stops recording)."""
    return KubeRoute(kube_api, namespace, executors, pod_history, executor_config, queue_run, kube_route)

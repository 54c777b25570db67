"""The end-to-end benchmark's deployment: the demo's stack, with one scheduler per round and a slow API.

What stays up for the whole run: PostgreSQL, Redis, the local Kubernetes API in a process of its
own (``ApiServerProcess``, its latency set per round), ``airflow api-server``, ``dag-processor``
and ``celery worker``, and the benchmark's kubelet (``e2e_kubelet``). Each round starts an
``airflow scheduler`` with one executor configuration (:data:`CONFIGURATIONS`) and stops it after.

Those long-lived processes run with ``[core] executor = CeleryExecutor,KubernetesExecutor``: the
dag-processor checks each task's ``executor`` against the configured ones, and the stock DAGs'
cluster policy names KubernetesExecutor. The policy (``airflow_local_settings.py`` in the Airflow
home's ``config`` folder, where Airflow finds it) is the one a user of the stock executor writes,
limited to the ``_stock`` DAGs so that ours run without it.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy
from bench_support import ApiServerProcess
from sqlalchemy import text

from hybrid_executor.demo.processes import ManagedProcess
from hybrid_executor.demo.stack import WORKER_NAMESPACE, DemoStack, StackError
from hybrid_executor.testing.services import airflow_command

DAGS = Path(__file__).resolve().parent / "dags"
KUBELET_DELAY = 0.5  # seconds from a pod's creation to its "container" starting

POLICY = '''"""The stock multi-executor setup's cluster policy: the kubernetes queue goes to KubernetesExecutor."""


def task_policy(task):
    # Only the benchmark's stock DAGs: the scheduler running HybridExecutor alone must not see it.
    if task.queue == "kubernetes" and task.dag_id.endswith("_stock"):
        if hasattr(task, "partial_kwargs"):
            # A mapped task's executor is a read-only property (Airflow 3.3) of its partial_kwargs.
            task.partial_kwargs["executor"] = "KubernetesExecutor"
        else:
            task.executor = "KubernetesExecutor"
'''


@dataclass(frozen=True)
class Configuration:
    name: str
    family: str  # which DAGs it runs: "ours" or "stock" (e2e_<variant>_<family>); the celery variant has one DAG
    options: dict[str, str] = field(default_factory=dict)  # AIRFLOW__... for its scheduler
    variants: tuple[str, ...] = ("kubernetes", "mixed")

    def dag_id(self, variant: str) -> str:
        return "e2e_celery" if variant == "celery" else f"e2e_{variant}_{self.family}"


OURS = {"AIRFLOW__CORE__EXECUTOR": "hybrid_executor.HybridExecutor"}
STOCK = {"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor,KubernetesExecutor"}
TUNED = {
    "AIRFLOW__KUBERNETES_EXECUTOR__WORKER_PODS_CREATION_BATCH_SIZE": "32",
    "AIRFLOW__KUBERNETES_EXECUTOR__ASYNC_POD_CREATION": "True",
}
# [scheduler] max_tis_per_query (default 16) for the "scheduler raised" configurations.
RAISED = {"AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY": "512"}
CONFIGURATIONS = {
    c.name: c
    for c in (
        Configuration("ours", "ours", OURS, ("kubernetes", "mixed", "celery")),
        Configuration("ours-max_tis_512", "ours", OURS | RAISED),
        Configuration("stock", "stock", STOCK),
        Configuration("stock-tuned", "stock", STOCK | TUNED),
        # Tuned further: with 16 task instances queued per loop, a batch of 32 never fills.
        Configuration("stock-tuned-max_tis_512", "stock", STOCK | TUNED | RAISED),
        Configuration("celery-alone", "ours", {"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"}, ("celery",)),
    )
}


class BenchStack(DemoStack):
    def __init__(self, folder: Path, *, tasks: int, mixed_tasks: int, parallelism: int, statsd: dict[str, str]) -> None:
        settings = {
            # The default pool's 128 slots would cap the tasks queued and running at once as parallelism's
            # 32 would: read when `db migrate` makes the pool, so set before it.
            "core": {
                "parallelism": str(parallelism),
                "default_pool_task_slot_count": str(parallelism),
                "executor": "CeleryExecutor,KubernetesExecutor",
            },
            # As a real deployment, and the stock executor's default: finished pods are deleted.
            "kubernetes_executor": {"delete_worker_pods": "True"},
            "metrics": statsd,
            # Two api-server workers: the kubelet's Execution API calls are two per task.
            "api": {"workers": "2"},
            "scheduler": {"task_queued_timeout": "1800"},
        }
        super().__init__(folder, DAGS, celery_concurrency=8, settings=settings)
        self.tasks = tasks
        self.mixed_tasks = mixed_tasks
        self.kube: ApiServerProcess | None = None
        self.kubelet_conn: multiprocessing.connection.Connection | None = None
        self._kubelet: multiprocessing.process.BaseProcess | None = None
        self.engine: sqlalchemy.Engine | None = None
        self._schedulers = 0

    def start(self, say: Callable[[str], None] = print) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self._step(say, "PostgreSQL and Redis", lambda: (self._start_postgres(), self._start_redis()))
        self._step(say, "the local Kubernetes API (its own process)", self._start_kube_api)
        self._step(say, "Airflow home and `airflow db migrate`", self._prepare_airflow)
        self._step(say, "Airflow: api-server, dag-processor, celery-worker; the kubelet", self._start_airflow)

    def _start_kube_api(self) -> None:
        self.kube = ApiServerProcess(self.kubeconfig, latency=0.0)
        self.kube.__enter__()
        self.kubernetes().create_namespace({"metadata": {"name": WORKER_NAMESPACE}})

    def _prepare_airflow(self) -> None:
        super()._prepare_airflow()
        config = self.home / "config"
        config.mkdir(exist_ok=True)
        (config / "airflow_local_settings.py").write_text(POLICY)
        self.env["HYBRID_E2E_TASKS"] = str(self.tasks)
        self.env["HYBRID_E2E_MIXED_TASKS"] = str(self.mixed_tasks)
        assert self.postgres is not None
        self.engine = sqlalchemy.create_engine(self.postgres.url)

    def _start_airflow(self) -> None:
        env = self._airflow_env()
        airflow = airflow_command()
        commands = {
            "api-server": [*airflow, "api-server", "--host", "127.0.0.1", "--port", str(self.api_port)],
            "dag-processor": [*airflow, "dag-processor"],
            "celery-worker": [*airflow, "celery", "worker", "--celery-hostname", "e2e-worker@%h"],
        }
        for name, command in commands.items():
            self._process(name, command, env).start()
        deadline = time.monotonic() + 300
        while self.api().unhealthy_components() is None:
            for name in commands:
                if not self.processes[name].is_running():
                    raise StackError(f"airflow {name} exited; see {self.processes[name].log_path}")
            if time.monotonic() > deadline:
                raise StackError(f"the api-server did not answer in 300 s; see {self.logs}")
            time.sleep(1)
        self._start_kubelet()

    def _start_kubelet(self) -> None:
        from e2e_kubelet import serve

        context = multiprocessing.get_context("spawn")
        self.kubelet_conn, child = context.Pipe()
        # Its Task SDK clients log each connection at INFO: the benchmark's output is for figures.
        env = self.env | {"AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}
        arguments = (child, env, str(self.kubeconfig), WORKER_NAMESPACE, f"{self.api_url}/execution/")
        self._kubelet = context.Process(target=serve, args=(*arguments, KUBELET_DELAY), daemon=True)
        self._kubelet.start()
        if not self.kubelet_conn.poll(120):
            raise StackError("the benchmark's kubelet did not start")
        self.kubelet_conn.recv()

    def kubelet(self, *command: object) -> object:
        assert self.kubelet_conn is not None
        self.kubelet_conn.send(command)
        return self.kubelet_conn.recv()

    def wait_for_dags(self, dag_ids: list[str]) -> None:
        api = self.api()
        for dag_id in dag_ids:
            api.wait_for_dag(dag_id, timeout=600)

    # --- one scheduler per round -----------------------------------------------------------

    def start_scheduler(self, configuration: Configuration) -> ManagedProcess:
        """Start a scheduler with ``configuration`` and return once its job heartbeats (and its executor started)."""
        assert self.engine is not None
        newest = "select coalesce(max(id), 0) from job where job_type = 'SchedulerJob'"
        with self.engine.connect() as conn:
            before = conn.execute(text(newest)).scalar_one()
        self._schedulers += 1
        name = f"scheduler-{self._schedulers}-{configuration.name}"
        process = self._process(name, [*airflow_command(), "scheduler"], self._airflow_env() | configuration.options)
        process.start()
        deadline = time.monotonic() + 300
        beating = (
            "select count(*) from job where job_type = 'SchedulerJob' and id > :before and state = 'running' "
            "and latest_heartbeat > start_date"
        )
        while True:
            with self.engine.connect() as conn:
                if conn.execute(text(beating), {"before": before}).scalar_one():
                    return process
            if not process.is_running():
                raise StackError(f"the scheduler exited; see {process.log_path}:\n{process.log_tail()}")
            if time.monotonic() > deadline:
                raise StackError(f"the scheduler did not heartbeat in 300 s; see {process.log_path}")
            time.sleep(0.5)

    def clear_run(self, dag_id: str, run_id: str) -> None:
        """After a round's scheduler stopped: what did not finish fails, and the round's pods go."""
        assert self.engine is not None
        unfinished = "('success', 'failed', 'skipped', 'upstream_failed', 'removed')"
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "update task_instance set state = 'failed' where dag_id = :dag and run_id = :run "
                    f"and (state is null or state not in {unfinished})"
                ),
                {"dag": dag_id, "run": run_id},
            )
            conn.execute(
                text(
                    "update dag_run set state = 'failed' where dag_id = :dag and run_id = :run and state <> 'success'"
                ),
                {"dag": dag_id, "run": run_id},
            )
        self.kubelet("clear")

    def stop(self) -> None:
        super().stop()
        if self.kubelet_conn is not None:
            self.kubelet_conn.send(("stop",))
        if self._kubelet is not None:
            self._kubelet.join(10)
        if self.engine is not None:
            self.engine.dispose()
        if self.kube is not None:
            self.kube.__exit__(None, None, None)

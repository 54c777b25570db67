"""A whole local deployment: PostgreSQL, Redis, the local Kubernetes API, and Airflow 3 with HybridExecutor.

``DemoStack(folder, dags_folder).start()`` brings up, all on 127.0.0.1:

- PostgreSQL (metadata DB) and Redis (Celery broker and result backend), from pip packages;
- the local Kubernetes API with its kubelet, which runs each pod's container as a host process
  (``python -m hybrid_executor.testing.kube serve --kubelet``), and the worker namespace;
- ``airflow api-server``, ``scheduler``, ``dag-processor``, ``triggerer`` and ``celery worker``,
  with ``[core] executor = hybrid_executor.HybridExecutor``; ``schedulers=2`` adds a second
  scheduler (``scheduler-2``) on the same metadata database, as in a highly available deployment.

Everything lives in ``folder``: the Airflow home, the data of both servers, the kubeconfig, the pod
template, and one log file per process in ``folder/logs``. ``stop()`` stops it all in reverse order.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from hybrid_executor.demo.airflow_api import AirflowApi
from hybrid_executor.demo.processes import ManagedProcess, stop_together
from hybrid_executor.testing.services import (
    PostgresServer,
    RedisServer,
    airflow_command,
    airflow_subprocess_env,
    free_port,
    prepare_airflow_home,
)

WORKER_NAMESPACE = "airflow-workers"
ADMIN_USER = "admin"
# Seconds a task waits for an answer of the execution API (Airflow's default: 5). One api-server
# worker on a loaded 2-core machine was seen to take longer when many tasks start at once, and a
# task whose start call times out fails without running.
EXECUTION_API_TIMEOUT = "30"
AIRFLOW_PROCESSES = ("api-server", "scheduler", "dag-processor", "triggerer", "celery-worker")
# The image the pod template names. The local kubelet does not pull images: it runs the command in
# this machine's virtualenv, which stands in for an image holding Airflow and the DAGs.
WORKER_IMAGE = "hybrid-executor/airflow-worker:demo"


class StackError(RuntimeError):
    """A part of the stack did not start; the message names it and the log to read."""


Say = Callable[[str], None]


class DemoStack:
    def __init__(
        self,
        folder: Path,
        dags_folder: Path,
        *,
        celery_concurrency: int = 4,
        schedulers: int = 1,
        settings: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.folder = folder.resolve()
        self.dags_folder = dags_folder.resolve()
        self.logs = self.folder / "logs"
        self.home = self.folder / "airflow-home"
        self.kubeconfig = self.folder / "kubeconfig"
        self.pod_template = self.folder / "pod_template.yaml"
        self.celery_concurrency = celery_concurrency
        self.schedulers = schedulers
        self.extra_settings = settings or {}
        self.password = secrets.token_urlsafe(12)
        self.api_port = 0
        self.postgres: PostgresServer | None = None
        self.redis: RedisServer | None = None
        self.processes: dict[str, ManagedProcess] = {}
        self.env: dict[str, str] = {}

    # --- start ----------------------------------------------------------------------------

    def start(self, say: Say = print) -> None:
        """Start everything and return once the api-server answers and every Airflow component heartbeats."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self._step(say, "PostgreSQL (metadata database)", self._start_postgres)
        self._step(say, "Redis (Celery broker)", self._start_redis)
        self._step(say, "local Kubernetes API and kubelet", self._start_kube_api)
        self._step(say, "Airflow home and `airflow db migrate`", self._prepare_airflow)
        self._step(say, "Airflow: " + ", ".join(AIRFLOW_PROCESSES), self._start_airflow)

    def _step(self, say: Say, what: str, action: Callable[[], None]) -> None:
        began = time.monotonic()
        say(f"  starting {what} ...")
        action()
        say(f"  started {what} in {time.monotonic() - began:.1f} s")

    def _start_postgres(self) -> None:
        self.postgres = PostgresServer(self.folder / "postgres")
        self.postgres.start()
        _link(self.logs / "postgres.log", self.postgres.log_path)

    def _start_redis(self) -> None:
        self.redis = RedisServer(self.folder / "redis")
        self.redis.start()
        _link(self.logs / "redis.log", self.redis.log_path)

    def _start_kube_api(self) -> None:
        command = [sys.executable, "-m", "hybrid_executor.testing.kube", "serve", "--port", "0"]
        command += ["--kubeconfig", str(self.kubeconfig), "--kubelet", "--bookmark-interval", "2"]
        process = self._process("kube-api", command, _base_env())
        process.start()
        deadline = time.monotonic() + 60
        while not _printed_its_url(process.log_path):
            if not process.is_running() or time.monotonic() > deadline:
                raise StackError(f"the local Kubernetes API did not start; see {process.log_path}")
            time.sleep(0.1)
        from kubernetes import client, config

        api = client.CoreV1Api(config.new_client_from_config(str(self.kubeconfig)))
        api.create_namespace({"metadata": {"name": WORKER_NAMESPACE}})

    def _prepare_airflow(self) -> None:
        assert self.postgres is not None
        assert self.redis is not None
        self.api_port = free_port()
        api_url = f"http://127.0.0.1:{self.api_port}"
        self._write_pod_template(api_url)
        settings: dict[str, dict[str, str]] = {
            "core": {
                "dags_folder": str(self.dags_folder),
                "execution_api_server_url": f"{api_url}/execution/",
                "parallelism": "32",
                "dags_are_paused_at_creation": "False",
                "simple_auth_manager_users": f"{ADMIN_USER}:admin",
            },
            "api": {"port": str(self.api_port), "host": "127.0.0.1", "base_url": api_url, "workers": "1"},
            "scheduler": {
                # Short, so that a restarted scheduler adopts a killed one's tasks within seconds.
                "scheduler_heartbeat_sec": "2",
                "scheduler_health_check_threshold": "15",
                "orphaned_tasks_check_interval": "5",
                "task_queued_timeout": "300",
            },
            "dag_processor": {"refresh_interval": "10"},
            "workers": {"execution_api_timeout": EXECUTION_API_TIMEOUT},
            # Free ports rather than the fixed defaults (8793, 8794), so that a second stack, or
            # anything else on this machine, cannot collide with the log servers.
            "logging": {
                "worker_log_server_port": str(free_port()),
                "trigger_log_server_port": str(free_port()),
            },
            "celery": {"worker_concurrency": str(self.celery_concurrency)},
            "kubernetes_executor": {
                "in_cluster": "False",
                "config_file": str(self.kubeconfig),
                "namespace": WORKER_NAMESPACE,
                "pod_template_file": str(self.pod_template),
                # Kept so that the report can name each task's pod; a real deployment deletes them.
                "delete_worker_pods": "False",
            },
            "hybrid_executor": {"kubernetes_queues": "kubernetes"},
        }
        for section, values in self.extra_settings.items():
            settings.setdefault(section, {}).update(values)
        self.env = prepare_airflow_home(
            self.home,
            self.postgres.url,
            self.redis.url,
            executor="hybrid_executor.HybridExecutor",
            settings=settings,
        )
        passwords = self.home / "simple_auth_manager_passwords.json"
        passwords.write_text(json.dumps({ADMIN_USER: self.password}))
        passwords.chmod(0o600)
        migrate = self._process("db-migrate", [*airflow_command(), "db", "migrate"], self._airflow_env())
        migrate.start()
        if migrate.wait(600) != 0:
            raise StackError(f"`airflow db migrate` failed; see {migrate.log_path}:\n{migrate.log_tail()}")

    def _write_pod_template(self, api_url: str) -> None:
        worker_home = self.folder / "worker-home"
        worker_home.mkdir(exist_ok=True)
        # The worker reads no metadata DB: it talks to the execution API only. An empty config file
        # keeps Airflow from writing a default one into the shared home from every pod at once.
        (worker_home / "airflow.cfg").write_text("# Worker pods take their settings from the pod's env.\n")
        env = {
            "AIRFLOW_HOME": str(worker_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": EXECUTION_API_TIMEOUT,
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            # A real container's hostname is its pod's name; these pods are host processes, so the
            # task reports $HOSTNAME, which the kubelet sets to the pod name as containerd does.
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "hybrid_executor.demo.hostname.container_hostname",
        }
        template: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "airflow-worker", "labels": {"app.kubernetes.io/part-of": "hybrid-executor-demo"}},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "base",
                        "image": WORKER_IMAGE,
                        "env": [{"name": name, "value": value} for name, value in env.items()],
                    }
                ],
            },
        }
        self.pod_template.write_text(yaml.safe_dump(template, sort_keys=False))

    def _start_airflow(self) -> None:
        env = self._airflow_env()
        airflow = airflow_command()
        commands = {
            "api-server": [*airflow, "api-server", "--host", "127.0.0.1", "--port", str(self.api_port)],
            "scheduler": [*airflow, "scheduler"],
            "dag-processor": [*airflow, "dag-processor"],
            "triggerer": [*airflow, "triggerer"],
            "celery-worker": [*airflow, "celery", "worker", "--celery-hostname", "demo-worker@%h"],
        }
        for number in range(2, self.schedulers + 1):
            commands[f"scheduler-{number}"] = [*airflow, "scheduler"]
        for name, command in commands.items():
            self._process(name, command, env).start()
        api = self.api()
        deadline = time.monotonic() + 300
        while True:
            for name in commands:
                process = self.processes[name]
                if not process.is_running():
                    raise StackError(
                        f"airflow {name} exited with code {process.exit_code()}; see {process.log_path}:\n"
                        f"{process.log_tail()}"
                    )
            unhealthy = api.unhealthy_components()
            if unhealthy == []:
                return
            if time.monotonic() > deadline:
                waiting = ", ".join(unhealthy or ["the api-server"])
                raise StackError(f"not healthy after 300 s: {waiting}; see the logs in {self.logs}")
            time.sleep(1)

    def _airflow_env(self) -> dict[str, str]:
        return airflow_subprocess_env(self.env, _base_env())

    def _process(self, name: str, command: list[str], env: dict[str, str]) -> ManagedProcess:
        process = ManagedProcess(name, command, env, self.logs / f"{name}.log", self.folder)
        self.processes[name] = process
        return process

    # --- use ------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def api(self) -> AirflowApi:
        return AirflowApi(self.api_url, ADMIN_USER, self.password)

    def kubernetes(self) -> Any:
        """A ``kubernetes.client.CoreV1Api`` on the local Kubernetes API."""
        from kubernetes import client, config

        return client.CoreV1Api(config.new_client_from_config(str(self.kubeconfig)))

    def restart(self, name: str) -> None:
        """Start a stopped or killed Airflow process again (same command, same log file)."""
        old = self.processes[name]
        old.stop(grace=5)
        self._process(name, old.command, old.env).start()

    # --- stop -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop everything started, Airflow first; safe to call at any point of start()."""
        airflow = [process for name, process in self.processes.items() if name != "kube-api"]
        # Short: Celery's warm shutdown would wait for running tasks, and a stopped demo has no use
        # for their results.
        stop_together(airflow, grace=10)
        if "kube-api" in self.processes:
            # Its kubelet stops the pods' processes as it shuts down.
            self.processes["kube-api"].stop()
        for server in (self.redis, self.postgres):
            if server is not None:
                server.stop()


def _base_env() -> dict[str, str]:
    """Our environment with this interpreter's bin folder first on PATH (pods run its ``python``)."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, *(p for p in env.get("PATH", "").split(os.pathsep) if p != bin_dir)])
    return env


def _printed_its_url(log_path: Path) -> bool:
    try:
        with open(log_path) as log:
            return any(line.startswith("http://") for line in log)
    except OSError:
        return False


def _link(link: Path, target: Path) -> None:
    with contextlib.suppress(OSError):
        link.unlink(missing_ok=True)
        link.symlink_to(target)

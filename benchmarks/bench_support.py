"""What the benchmarks share: the local API server in a process of its own, a throwaway Airflow home, workloads.

The API server runs in another process, as in production where it is another machine: a thread
of the benchmark's own process would take the GIL from the executor's threads (and overstate
their costs), and its memory would count as the executor's.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import multiprocessing
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

IMAGE = ("apache/airflow", "3.3.2")


def pod_template(command: str, extra: str = "") -> str:
    """A pod template whose container runs ``command`` (a YAML flow list); ``extra``: more lines of the container."""
    return f"""\
apiVersion: v1
kind: Pod
metadata:
  name: placeholder
spec:
  restartPolicy: Never
  containers:
    - name: base
      image: {":".join(IMAGE)}
      command: {command}
{extra}"""


# --- the API server's process ----------------------------------------------------------------


def _serve_api(conn: Connection, kubeconfig: str, latency: float, kubelet: bool) -> None:
    from hybrid_executor.testing.kube import LocalKubeAPI

    with LocalKubeAPI(kubeconfig=kubeconfig, kubelet=kubelet) as api:
        rule = api.faults.add(latency=latency) if latency > 0 else None
        conn.send(api.url)
        while True:
            try:
                command, *arguments = conn.recv()
            except EOFError:  # the benchmark ended without saying so
                return
            if command == "stop":
                return
            if command == "latency":
                if rule is not None:
                    api.faults.remove(rule)
                rule = api.faults.add(latency=arguments[0]) if arguments[0] > 0 else None
                conn.send(None)
            elif command == "requests":
                conn.send(dict(api.requests()))
            elif command == "cpu":
                conn.send(time.process_time())
            elif command == "quota":  # a ResourceQuota in the kubeconfig's namespace
                namespace, quota = arguments
                api.call(functools.partial(api.server.cluster.create_resource_quota, namespace, quota))
                conn.send(None)
            elif command == "phases":  # how many pods are in each phase, the whole cluster
                pods = api.pods()
                conn.send(dict(Counter(str((pod.get("status") or {}).get("phase") or "") for pod in pods)))


class ApiServerProcess:
    """The local Kubernetes API in a process of its own, ``latency`` seconds added to every request.

    ``kubelet``: the local kubelet runs each pod's containers as processes (in that process too).
    """

    def __init__(self, kubeconfig: Path, *, latency: float = 0.0, kubelet: bool = False) -> None:
        self.kubeconfig = kubeconfig
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve_api, args=(child, str(kubeconfig), latency, kubelet), daemon=True)

    def __enter__(self) -> ApiServerProcess:
        self._process.start()
        self._conn.recv()  # listening, kubeconfig written
        return self

    def __exit__(self, *exc_info: object) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(("stop",))
        self._process.join(30)

    def set_latency(self, seconds: float) -> None:
        self._conn.send(("latency", seconds))
        self._conn.recv()

    def requests(self) -> Counter[tuple[str, str]]:
        """Requests served so far, per (verb, resource)."""
        self._conn.send(("requests",))
        return Counter(self._conn.recv())

    def add_quota(self, namespace: str, quota: dict[str, Any]) -> None:
        self._conn.send(("quota", namespace, quota))
        self._conn.recv()

    def phases(self) -> Counter[str]:
        """How many pods the API holds in each phase (Pending, Running, Succeeded, Failed)."""
        self._conn.send(("phases",))
        return Counter(self._conn.recv())

    def cpu_seconds(self) -> float:
        """CPU time the server's process has used (all its threads)."""
        self._conn.send(("cpu",))
        result: float = self._conn.recv()
        return result


def serve_commands(conn: Connection, handlers: dict[str, Callable[..., Any]]) -> None:
    """A helper process's loop: each ``(command, *arguments)`` from ``conn`` is answered with its handler's result.

    Until ``("stop",)``, or the other end closing the pipe (the benchmark ended without saying so).
    """
    while True:
        try:
            command, *arguments = conn.recv()
        except EOFError:
            return
        if command == "stop":
            return
        conn.send(handlers[command](*arguments))


# --- this process: the scheduler's ------------------------------------------------------------


def airflow_environment(folder: Path, options: dict[str, str] | None = None) -> Path:
    """A throwaway Airflow home on SQLite, selected for this process; returns the scheduler log's path.

    Building workloads and the executors needs no database. ``options`` are more ``AIRFLOW__...``
    variables. Call before importing airflow.
    """
    from hybrid_executor.testing.services import prepare_airflow_home

    home = folder / "airflow_home"
    env = prepare_airflow_home(home, f"sqlite:///{home}/airflow.db", "redis://127.0.0.1:6379/0")
    for name in list(os.environ):
        if name.startswith(("AIRFLOW_", "_AIRFLOW_")):
            del os.environ[name]
    os.environ.update(env)
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"
    os.environ["AIRFLOW__KUBERNETES_EXECUTOR__IN_CLUSTER"] = "False"
    os.environ["AIRFLOW__HYBRID_EXECUTOR__WORKER_CONTAINER_REPOSITORY"] = IMAGE[0]
    os.environ["AIRFLOW__HYBRID_EXECUTOR__WORKER_CONTAINER_TAG"] = IMAGE[1]
    os.environ.update(options or {})
    return home / "logs" / "scheduler.log"


def log_to_file(path: Path) -> None:
    """Airflow logs to the console; a scheduler's logs go to a file: send them there, at INFO."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("[%(asctime)s] {%(filename)s:%(lineno)d} %(levelname)s - %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)


class Workloads:
    """Realistic ExecuteTask workloads (a hand-made TaskInstanceDTO, a real JWT), and pod name -> key."""

    def __init__(self, jwt_generator: Any, queue: str = "kubernetes", *, remember_pods: bool = True) -> None:
        self._generator = jwt_generator
        self._queue = queue
        self._numbers = itertools.count()
        self._remember_pods = remember_pods
        self.keys_by_pod: dict[str, Any] = {}

    def make(self, count: int) -> list[Any]:
        from airflow.executors.workloads import BundleInfo, ExecuteTask
        from airflow.executors.workloads.task import TaskInstanceDTO

        from hybrid_executor.kubernetes.pods import pod_name_for

        made = []
        for number in itertools.islice(self._numbers, count):
            dag_id = f"etl_orders_{number % 40:02d}"
            task_id = f"load_partition_{number:06d}"
            run_id = "scheduled__2026-11-20T00:00:00+00:00"
            ti = TaskInstanceDTO(
                id=uuid.uuid4(),
                dag_id=dag_id,
                task_id=task_id,
                run_id=run_id,
                try_number=1,
                map_index=-1,
                dag_version_id=uuid.uuid4(),
                queue=self._queue,
                pool_slots=1,
                priority_weight=1,
                executor_config={},
                external_executor_id=str(uuid.uuid4()),  # what the scheduler draws for each queueing
            )
            made.append(
                ExecuteTask(
                    ti=ti,
                    dag_rel_path=Path("etl/orders.py"),
                    token=ExecuteTask.generate_token(str(ti.id), self._generator),
                    log_path=f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}/attempt=1.log",
                    bundle_info=BundleInfo(name="dags-folder"),
                )
            )
            if self._remember_pods:
                self.keys_by_pod[pod_name_for(ti.key, ti.external_executor_id)] = ti.key
        return made


class MachineUse:
    """What else used the machine while a round ran (Linux: /proc/stat), to tell a noisy round.

    ``others``: cores kept busy by other processes (this one and its children, the API server and
    the driver once joined, are subtracted). ``stolen``: cores the hypervisor gave to other guests.
    """

    def __init__(self) -> None:
        self._start, self._ours, self._wall = self._machine(), self._our_cpu(), time.monotonic()

    @staticmethod
    def _machine() -> tuple[float, float] | None:
        """Seconds of CPU busy (but steal) and stolen, summed over the cores, since boot."""
        try:
            with open("/proc/stat") as stat:
                fields = [int(value) for value in stat.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        if len(fields) < 8:
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields
        tick = os.sysconf("SC_CLK_TCK")
        return (user + nice + system + irq + softirq) / tick, steal / tick

    @staticmethod
    def _our_cpu() -> float:
        times = os.times()
        return times.user + times.system + times.children_user + times.children_system

    def others(self) -> tuple[float, float] | None:
        """(other processes, stolen), in cores, on average since this object was made."""
        now = self._machine()
        if now is None or self._start is None:
            return None
        elapsed = time.monotonic() - self._wall
        busy, stolen = now[0] - self._start[0], now[1] - self._start[1]
        return max(0.0, busy - (self._our_cpu() - self._ours)) / elapsed, stolen / elapsed


def rss_mib() -> float:
    """This process's resident set size, in MiB (Linux: /proc/self/status)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")

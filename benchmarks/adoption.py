"""How long a new scheduler takes to adopt the pods of a dead one: relabels concurrently, and one after another.

The local Kubernetes API runs in a process of its own with ``--latency`` (15 ms) added to every
request, about what a real API server takes for a PATCH (12-18 ms). It holds ``--pods`` (5,000)
worker pods of a dead scheduler job, built by the executor's own pod builder (so they carry the
labels and annotations adoption selects and matches on), and Pending (no kubelet: adoption does
not care what phase a pod is in). This process plays the new scheduler: a started
KubernetesPodExecutor of a new job is handed 5,000 real (detached) TaskInstance objects, as
``adopt_or_reset_orphaned_tasks`` hands them, and ``try_adopt_task_instances`` is timed.

Each round adopts twice, each time as a new job taking the pods over from the previous one: with
the executor's relabelling threads (``adoption.RELABEL_CONCURRENCY``, 16), and with one thread,
i.e. one PATCH after another. It prints, per round and as medians: pods adopted, the wall time,
PATCHes per second, and what the LIST cost (its pages and its time, part of the wall time); then
the ratio of the two. A figure, not a test.

    python benchmarks/adoption.py [--pods 5000] [--rounds 3] [--latency 0.015]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_support import ApiServerProcess, MachineUse, Workloads, airflow_environment, log_to_file

QUEUE = "kubernetes"
DEAD_JOB = 100


@dataclass
class _Adoption:
    adopted: int
    seconds: float
    patches: int
    list_seconds: float
    list_pages: int
    our_cpu: float  # CPU seconds this process used (every thread: relabels, the watcher, ...)
    server_cpu: float  # and the API server's process
    others_cores: float | None  # cores other processes kept busy meanwhile (a noisy round shows here)

    @property
    def patches_per_second(self) -> float:
        return self.patches / self.seconds


def _create_dead_schedulers_pods(executor: Any, workloads: Sequence[Any], threads: int) -> float:
    """Build each workload's pod as job ``executor.job_id``'s (the executor's own builder) and create it."""
    from hybrid_executor.kubernetes.pods import build_worker_pod, pod_context_for

    began = time.monotonic()
    context = pod_context_for(executor.settings, QUEUE, executor.scheduler_job_id)
    pods = [build_worker_pod(workload, context) for workload in workloads]
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(executor.api.create_pod, pods):
            pass
    return time.monotonic() - began


def _task_instances(workloads: Sequence[Any]) -> list[Any]:
    """Detached TaskInstance objects of the workloads' queueings, as the scheduler reads them from its database."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    with DAG("etl_orders", schedule=None):
        operator = EmptyOperator(task_id="load_partition", queue=QUEUE)
    tis = []
    for workload in workloads:
        ti = TaskInstance(task=operator, dag_version_id=workload.ti.dag_version_id, run_id=workload.ti.run_id)
        ti.dag_id, ti.task_id, ti.try_number = workload.ti.dag_id, workload.ti.task_id, workload.ti.try_number
        ti.external_executor_id = workload.ti.external_executor_id
        tis.append(ti)
    return tis


def _timed(call: Callable[..., Any], seconds: list[float]) -> Callable[..., Any]:
    @functools.wraps(call)
    def timed(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - began)

    return timed


def _adopt(server: ApiServerProcess, tis: Sequence[Any], job_id: int, concurrency: int) -> _Adoption:
    """A started executor of job ``job_id`` adopts ``tis``, relabelling on ``concurrency`` threads."""
    from hybrid_executor.kubernetes import adoption
    from hybrid_executor.kubernetes.executor import KubernetesPodExecutor

    executor = KubernetesPodExecutor()
    executor.job_id = job_id
    executor.start()
    default_concurrency = adoption.RELABEL_CONCURRENCY
    try:
        for watcher in executor._watchers.values():
            watcher.wait_synced(30)
        list_seconds: list[float] = []
        executor.api.list_pods = _timed(executor.api.list_pods, list_seconds)  # type: ignore[method-assign]
        adoption.RELABEL_CONCURRENCY = concurrency
        before, server_cpu = server.requests(), server.cpu_seconds()
        machine = MachineUse()
        began, our_cpu = time.perf_counter(), time.process_time()
        not_adopted = executor.try_adopt_task_instances(tis)
        seconds, our_cpu = time.perf_counter() - began, time.process_time() - our_cpu
        served, server_cpu = server.requests() - before, server.cpu_seconds() - server_cpu
        others = machine.others()
    finally:
        adoption.RELABEL_CONCURRENCY = default_concurrency
        executor.terminate()
        executor.api.close()
    return _Adoption(
        adopted=len(tis) - len(not_adopted),
        seconds=seconds,
        patches=served[("patch", "pods")],
        list_seconds=sum(list_seconds),
        list_pages=served[("list", "pods")],
        our_cpu=our_cpu,
        server_cpu=server_cpu,
        # The API server's process is not a joined child: MachineUse counts it with the others.
        others_cores=None if others is None else max(0.0, others[0] - server_cpu / seconds),
    )


def _describe(figures: _Adoption) -> str:
    return (
        f"{figures.adopted} pods adopted in {figures.seconds:.2f}s, {figures.patches_per_second:.0f} PATCHes/s; "
        f"LIST {figures.list_pages} pages in {figures.list_seconds:.2f}s; CPU: this process {figures.our_cpu:.1f}s, "
        f"the API server {figures.server_cpu:.1f}s"
        + ("" if figures.others_cores is None else f", other processes {figures.others_cores:.2f} cores meanwhile")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.015, help="seconds added to every API request")
    parser.add_argument("--create-threads", type=int, default=16, help="threads creating the dead job's pods")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-adoption-") as name:
        folder = Path(name)
        kubeconfig = folder / "kubeconfig"
        log_file = airflow_environment(folder, {"AIRFLOW__KUBERNETES_EXECUTOR__CONFIG_FILE": str(kubeconfig)})
        import airflow  # noqa: F401 - configures Airflow (and its logging) from the environment above

        from hybrid_executor.kubernetes.adoption import RELABEL_CONCURRENCY
        from hybrid_executor.kubernetes.executor import KubernetesPodExecutor

        log_to_file(log_file)
        configurations = {f"{RELABEL_CONCURRENCY} threads": RELABEL_CONCURRENCY, "1 thread (serial)": 1}
        results: dict[str, list[_Adoption]] = {label: [] for label in configurations}
        with ApiServerProcess(kubeconfig) as server:
            dead = KubernetesPodExecutor()
            dead.job_id = DEAD_JOB
            workloads = Workloads(dead.jwt_generator, QUEUE, remember_pods=False).make(args.pods)
            took = _create_dead_schedulers_pods(dead, workloads, args.create_threads)
            dead.api.close()
            tis = _task_instances(workloads)
            print(
                f"{os.cpu_count()} cores, Python {sys.version.split()[0]}; API server in a process of its own; "
                f"{args.pods} pods of scheduler job {DEAD_JOB} built and created in {took:.1f}s (no latency); "
                f"now {args.latency * 1000:g} ms added to every request"
            )
            server.set_latency(args.latency)
            job_id = DEAD_JOB
            for number in range(1, args.rounds + 1):
                for label, concurrency in configurations.items():
                    job_id += 1  # a new scheduler each time, taking the pods over from the last one
                    figures = _adopt(server, tis, job_id, concurrency)
                    results[label].append(figures)
                    print(f"round {number}, {label}: {_describe(figures)}")
        _summary(results, args)


def _summary(results: dict[str, list[_Adoption]], args: argparse.Namespace) -> None:
    print(f"medians of {args.rounds} rounds, {args.pods} pods, {args.latency * 1000:g} ms per request:")
    walls = {}
    for label, rounds in results.items():
        walls[label] = statistics.median(r.seconds for r in rounds)
        print(
            f"  {label}: {statistics.median(r.adopted for r in rounds):.0f} adopted in {walls[label]:.2f}s, "
            f"{statistics.median(r.patches_per_second for r in rounds):.0f} PATCHes/s; LIST "
            f"{statistics.median(r.list_pages for r in rounds):.0f} pages in "
            f"{statistics.median(r.list_seconds for r in rounds):.2f}s; CPU: this process "
            f"{statistics.median(r.our_cpu for r in rounds):.1f}s, the API server "
            f"{statistics.median(r.server_cpu for r in rounds):.1f}s"
        )
    concurrent, serial = walls.values()
    print(f"  serial / concurrent: {serial / concurrent:.1f}x")


if __name__ == "__main__":
    main()

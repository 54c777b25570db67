"""How much of a full namespace quota the executor keeps in use while tasks wait for it.

A ResourceQuota of ``--quota`` (20) pods; ``--tasks`` (200) pod tasks, each a container that
sleeps ``--task-seconds`` (3), queued at once, so that most of them wait for quota. The local
Kubernetes API and its kubelet (each container a process) run in a process of their own; this one
plays the scheduler, driving the HybridExecutor with its defaults as SchedulerJobRunner does
(``queue_workload``, ``heartbeat()``, ``get_event_buffer()`` every ``--loop-interval``).

Every ``--sample`` seconds the API's process counts the pods that hold quota (those not in a
terminal phase: what the quota's ``pods`` counts). Printed: from the first create to the last
(while tasks waited for quota), the mean and the median of that count, as a share of the quota,
and the whole run's wall time next to what a quota kept full would take. The issue asked for close
to 20 of 20 where 9-12 was measured; a launch refused for quota waits at most 5 s, and each pod of
its namespace that ends wakes one waiting launch at once.

    python benchmarks/quota_use.py [--quota 20] [--tasks 200] [--task-seconds 3] [--latency 0.01]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench_support import ApiServerProcess, Workloads, airflow_environment, log_to_file, pod_template

QUEUE = "kubernetes"
NAMESPACE = "default"
_TERMINAL = ("Succeeded", "Failed")


def _pod_template(seconds: float) -> str:
    command = f'["sh", "-c", "sleep {seconds:g}", "--"]'  # the worker's args follow, ignored
    return pod_template(command, "      resources:\n        requests: {cpu: 10m, memory: 16Mi}\n")


class _Sampler:
    """Every ``interval`` seconds, on a thread here: the pods holding quota (counted in the API's
    process) and the launches not done yet (tasks waiting for a pod, the launcher's own count)."""

    def __init__(self, server: ApiServerProcess, launcher: Any, interval: float) -> None:
        self._server, self._launcher, self._interval = server, launcher, interval
        self.samples: list[tuple[float, int, int]] = []  # (monotonic, holding quota, launches waiting)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="quota-sampler", daemon=True)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            phases = self._server.phases()
            holding = sum(n for phase, n in phases.items() if phase not in _TERMINAL)
            self.samples.append((time.monotonic(), holding, self._launcher.pending()))


def _drive(router: Any, workloads: Workloads, args: argparse.Namespace) -> tuple[int, int, float]:
    from airflow.utils.state import TaskInstanceState

    for workload in workloads.make(args.tasks):
        router.queue_workload(workload, session=None)
    finished = failed = 0
    began = moment = time.monotonic()
    while finished < args.tasks:
        router.heartbeat()
        for _, (state, _info) in router.get_event_buffer().items():
            if state in (TaskInstanceState.SUCCESS, TaskInstanceState.FAILED):
                finished += 1
                failed += state == TaskInstanceState.FAILED
        router._task_event_logs.clear()  # the scheduler saves and pops them
        if time.monotonic() - began > args.timeout:
            raise SystemExit(f"only {finished} of {args.tasks} tasks finished in {args.timeout:g}s")
        moment += args.loop_interval
        time.sleep(max(0.0, moment - time.monotonic()))
    return finished, failed, time.monotonic() - began


def _report(samples: list[tuple[float, int, int]], args: argparse.Namespace, wall: float, failed: int) -> None:
    # While tasks waited for quota: from the first sample at a full quota, every sample with launches
    # still waiting (once none waits, the pods of the last tasks end and the count falls, as it must).
    first_full = next((i for i, (_, holding, _w) in enumerate(samples) if holding >= args.quota), len(samples))
    window = [sample for sample in samples[first_full:] if sample[2] > 0]
    print(f"{os.cpu_count()} cores, Python {sys.version.split()[0]}; API server and kubelet in a process of their own")
    print(
        f"quota {args.quota} pods, {args.tasks} tasks of {args.task_seconds:g} s each, {args.latency * 1000:g} ms "
        f"added per request, a scheduler loop every {args.loop_interval * 1000:g} ms; {failed} tasks failed"
    )
    if not window:
        print("the quota never filled: nothing to measure (more tasks, or longer ones)")
        return
    held = [holding for _, holding, _w in window]
    seconds = window[-1][0] - window[0][0]
    print(
        f"pods holding quota while tasks waited ({len(held)} samples over {seconds:.0f} s): "
        f"mean {statistics.fmean(held):.1f}, median {statistics.median(held):g}, min {min(held)} "
        f"of {args.quota} ({statistics.fmean(held) / args.quota:.0%} of the quota)"
    )
    ideal = args.tasks / args.quota * args.task_seconds
    print(f"wall time {wall:.1f} s; a quota kept full the whole time: {ideal:.1f} s (ratio {ideal / wall:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quota", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--task-seconds", type=float, default=3.0)
    parser.add_argument("--latency", type=float, default=0.01, help="seconds added to every API request")
    parser.add_argument("--loop-interval", type=float, default=0.05)
    parser.add_argument("--sample", type=float, default=0.25, help="seconds between two counts of the pods")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-quota-") as name:
        folder = Path(name)
        kubeconfig, template = folder / "kubeconfig", folder / "pod_template.yaml"
        template.write_text(_pod_template(args.task_seconds), encoding="utf-8")
        log_file = airflow_environment(
            folder,
            {
                "AIRFLOW__CORE__EXECUTOR": "hybrid_executor.HybridExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(args.tasks),
                "AIRFLOW__KUBERNETES_EXECUTOR__CONFIG_FILE": str(kubeconfig),
                "AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE": str(template),
                "AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE": NAMESPACE,
            },
        )
        import airflow  # noqa: F401 - configures Airflow (and its logging) from the environment above

        from hybrid_executor import HybridExecutor

        log_to_file(log_file)
        with ApiServerProcess(kubeconfig, latency=args.latency, kubelet=True) as server:
            server.add_quota(NAMESPACE, {"metadata": {"name": "pods"}, "spec": {"hard": {"pods": str(args.quota)}}})
            router = HybridExecutor()
            router.job_id = 1
            router.start()
            try:
                for watcher in router.kubernetes_executor._watchers.values():
                    watcher.wait_synced(30)
                with _Sampler(server, router.kubernetes_executor._launcher, args.sample) as sampler:
                    _, failed, wall = _drive(router, Workloads(router.jwt_generator, QUEUE, remember_pods=False), args)
            finally:
                router.terminate()
        _report(sampler.samples, args, wall, failed)


if __name__ == "__main__":
    main()

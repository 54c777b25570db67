"""End to end, side by side: HybridExecutor against the stock KubernetesExecutor, through a real scheduler.

One deployment for the whole run (``e2e_stack``): PostgreSQL, Redis, ``airflow api-server``,
``dag-processor`` and ``celery worker``, the local Kubernetes API in a process of its own with
``--latencies`` added to every request, and a kubelet (``e2e_kubelet``) that takes each new pod
Running, marks its task instance running then success through the Execution API, and the pod
Succeeded, ``KUBELET_DELAY`` after its creation: task code never runs in pods, so what is measured
is the executors' (and the scheduler's) bookkeeping. Celery tasks run for real on the worker.

Each round starts an ``airflow scheduler`` with one configuration, triggers a run of N mapped
tasks, waits until all are success (or ``--deadline``), and stops the scheduler. Configurations,
interleaved round by round:

- ``ours``: ``[core] executor = hybrid_executor.HybridExecutor``, defaults;
- ``ours-max_tis_512``: the same with ``[scheduler] max_tis_per_query = 512`` (default 16), to show
  what the scheduler's own limit costs;
- ``stock``: ``[core] executor = CeleryExecutor,KubernetesExecutor`` plus the cluster policy that
  sends the ``kubernetes`` queue to KubernetesExecutor, defaults (one pod per scheduler loop);
- ``stock-tuned``: that, with ``worker_pods_creation_batch_size = 32`` and ``async_pod_creation``;
- ``stock-tuned-max_tis_512``: that, with ``max_tis_per_query = 512`` (compared with ours-max_tis_512);
- ``celery-alone``: ``[core] executor = CeleryExecutor``, on the Celery-only variant.

Variants: ``kubernetes`` (N tasks on the kubernetes queue), ``mixed`` (M/2 on kubernetes, M/2 on
Celery; M = ``--mixed-tasks``, default N but at most 200),
``celery`` (M/2 on Celery only: ours against CeleryExecutor alone). Every configuration gets
``[core] parallelism`` and the default pool's slots = ``--parallelism`` (default N), as the
scheduler's default of 32 would cap every executor at 32 tasks in flight, and the pool's 128 every
configuration at 128 tasks queued or running.

Printed per round and as medians, with the ratio ours/other: pods/s (from the trigger to the
last pod created), tasks/s (to the last task success), p50/p99 queued-to-running per task (the
task instances' ``queued_dttm`` to ``start_date``), p50/p99 queued-to-created (``queued_dttm`` to
the kubelet's watch seeing the task's pod: the executor's own part of it), and the scheduler's own
``scheduler.scheduler_loop_duration`` timer (StatsD). A figure marked * did not finish within the
deadline: it is the rate over the window the round had. Then the raw rate: 16 threads of the
kubernetes client creating pods of the same shape (the first pod of ours) against the same API.
Writes ``--chart`` (PNG, one per variant; needs matplotlib: ``pip install -e '.[bench]'``).

    python benchmarks/end_to_end.py [--tasks 1000] [--rounds 1] [--latencies 0.01,0.1] [--deadline 300]
        [--variants kubernetes,mixed,celery] [--configurations ours,stock,...] [--chart docs/end_to_end.png]
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_support import MachineUse
from e2e_report import Round, chart, table
from e2e_stack import CONFIGURATIONS, KUBELET_DELAY, BenchStack, Configuration
from kube_api_creates import bodies_like, raw_client, raw_create_rate
from sqlalchemy import text

from hybrid_executor.testing.statsd import StatsdReceiver

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("kubernetes", "mixed", "celery")
DEFAULT_CONFIGURATIONS = (
    "ours",
    "ours-max_tis_512",
    "stock",
    "stock-tuned",
    "stock-tuned-max_tis_512",
    "celery-alone",
)


def _expected(variant: str, tasks: int, mixed: int) -> dict[str, int]:
    if variant == "kubernetes":
        return {"on_kubernetes": tasks}
    tasks = mixed
    if variant == "mixed":
        return {"on_kubernetes": tasks // 2, "on_celery": tasks - tasks // 2}
    return {"on_celery": tasks - tasks // 2}


def _task_instances(stack: BenchStack, dag_id: str, run_id: str) -> list[Any]:
    assert stack.engine is not None
    query = text(
        "select id, task_id, state, queued_dttm, start_date, end_date from task_instance "
        "where dag_id = :dag and run_id = :run and map_index >= 0"
    )
    with stack.engine.connect() as conn:
        return list(conn.execute(query, {"dag": dag_id, "run": run_id}))


def _round(
    stack: BenchStack,
    statsd: StatsdReceiver,
    configuration: Configuration,
    variant: str,
    figures: Round,
    deadline: float,
) -> dict[str, Any] | None:
    """One round; its figures go into ``figures``; returns the run's first pod (for the raw client's shape)."""
    dag_id = configuration.dag_id(variant)
    wanted = sum(figures.expected.values())
    scheduler = stack.start_scheduler(configuration)
    machine = MachineUse()
    run_id = ""
    try:
        statsd.clear()
        began = time.time()
        run_id = stack.api().trigger(dag_id, {})
        until = time.monotonic() + deadline
        while time.monotonic() < until:
            if sum(ti.state == "success" for ti in _task_instances(stack, dag_id, run_id)) >= wanted:
                break
            if not scheduler.is_running():
                print(f"  the scheduler exited; see {scheduler.log_path}", flush=True)
                break
            time.sleep(0.5)
        figures.window = time.time() - began
        figures.loops_ms = [m.value for m in statsd.received("scheduler.scheduler_loop_duration")]
    finally:
        scheduler.stop(grace=30)
        figures.others = machine.others()
    added, created, first_pod = stack.kubelet("added", run_id)  # type: ignore[misc]
    for ti in _task_instances(stack, dag_id, run_id):
        if ti.state == "success" and ti.end_date is not None:
            figures.finished.append((ti.end_date.timestamp() - began, ti.task_id))
        if ti.queued_dttm is not None and ti.start_date is not None:
            figures.waits.append((ti.start_date - ti.queued_dttm).total_seconds())
        if ti.queued_dttm is not None and str(ti.id) in created:
            # The executor's own part of queued-to-running; the rest is the kubelet's and the api-server's.
            figures.to_created.append(created[str(ti.id)] - ti.queued_dttm.timestamp())
    figures.pods = [moment - began for moment in added]
    stack.clear_run(dag_id, run_id)
    return first_pod


def _line(figures: Round) -> str:
    parts = []
    rate = figures.pods_rate()
    if rate is not None:
        parts.append(f"{len(figures.pods)} pods, {rate[0]:.1f} pods/s" + ("" if rate[1] else " (window)"))
    done, complete = figures.success_rate()
    parts.append(f"{len(figures.finished)} success, {done:.1f} tasks/s" + ("" if complete else " (window)"))
    parts.append(f"{figures.window:.0f} s")
    if figures.others is not None:
        parts.append(f"machine busy {figures.others[0]:.2f} cores besides this process, the stack included")
    return ", ".join(parts)


def _raw_shape(stored: dict[str, Any]) -> dict[str, Any]:
    """The body of a pod like ``stored`` (a pod as the API stored it): its spec, labels and annotations."""
    spec = copy.deepcopy(stored["spec"])
    spec.pop("nodeName", None)
    # The service account admission's volume is the API's to add again.
    spec["volumes"] = [v for v in spec.get("volumes") or [] if not v["name"].startswith("kube-api-access")]
    for container in spec["containers"]:
        container["volumeMounts"] = [
            m for m in container.get("volumeMounts") or [] if not m["name"].startswith("kube-api-access")
        ]
    metadata = {k: copy.deepcopy(stored["metadata"].get(k) or {}) for k in ("labels", "annotations")}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def _raw_rate(stack: BenchStack, stored: dict[str, Any], pods: int, namespace: str) -> float:
    bodies = bodies_like(_raw_shape(stored), pods, namespace)
    return raw_create_rate(raw_client(stack.kubeconfig, 16), namespace, bodies, 16)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000, help="mapped tasks per run (default 1000)")
    parser.add_argument(
        "--mixed-tasks",
        type=int,
        default=None,
        help="tasks of the mixed and celery variants (default: --tasks, at most 200)",
    )
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--latencies", default="0.01,0.1", help="seconds added to each API request, comma-separated")
    parser.add_argument("--deadline", type=float, default=300, help="seconds a round may take (default 300)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--configurations", default=",".join(DEFAULT_CONFIGURATIONS))
    parser.add_argument("--parallelism", type=int, default=None, help="[core] parallelism (default: --tasks)")
    # type=str: Path("") is "." (truthy), so '' could not say "no chart".
    parser.add_argument("--chart", type=str, default=str(ROOT / "docs" / "end_to_end.png"), help="'' for none")
    parser.add_argument("--raw-pods", type=int, default=None, help="pods the raw client creates (default --tasks)")
    parser.add_argument("--keep", type=Path, default=None, help="put the stack (logs) in DIR and keep it")
    args = parser.parse_args(argv)
    latencies = [float(value) for value in args.latencies.split(",")]
    variants = [v for v in args.variants.split(",") if v]
    names = [n for n in args.configurations.split(",") if n]
    unknown = [n for n in names if n not in CONFIGURATIONS] + [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown: {', '.join(unknown)}; configurations: {', '.join(CONFIGURATIONS)}")
    if args.chart and importlib.util.find_spec("matplotlib") is None:
        # Said now, not after the rounds: a run can take an hour, and its figures would be lost.
        parser.error(f"--chart {args.chart} needs matplotlib: pip install -e '.[bench]', or --chart '' for no chart")

    folder = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="e2e-"))
    # Celery tasks run for real, about one a second on a busy 2-core machine: fewer by default.
    mixed = args.mixed_tasks or min(args.tasks, 200)
    parallelism = args.parallelism or max(args.tasks, mixed)
    print(
        f"end to end: {args.tasks} mapped tasks ({mixed} in the mixed and celery variants), {os.cpu_count()} cores, "
        f"[core] parallelism {parallelism}, "
        f"pods succeed {KUBELET_DELAY:g} s after creation; deadline {args.deadline:g} s per round; in {folder}",
        flush=True,
    )
    rounds: list[Round] = []
    raw: dict[float, float] = {}
    with StatsdReceiver() as statsd:
        stack = BenchStack(
            folder, tasks=args.tasks, mixed_tasks=mixed, parallelism=parallelism, statsd=statsd.options()
        )
        try:
            stack.start()
            stack.wait_for_dags(
                sorted({"e2e_warmup_ours"} | {CONFIGURATIONS[n].dag_id(v) for n in names for v in variants})
            )
            assert stack.kube is not None
            warmup = Round("warmup", "ours", 0.0, 0, {"on_kubernetes": 8, "on_celery": 8})
            _round(stack, statsd, CONFIGURATIONS["ours"], "warmup", warmup, args.deadline)
            print(f"warm-up (not counted): {_line(warmup)}", flush=True)
            for latency in latencies:
                stack.kube.set_latency(latency)
                shape = None
                for number in range(1, args.rounds + 1):
                    for variant in variants:
                        for name in names:
                            configuration = CONFIGURATIONS[name]
                            if variant not in configuration.variants:
                                continue
                            figures = Round(variant, name, latency, number, _expected(variant, args.tasks, mixed))
                            first_pod = _round(stack, statsd, configuration, variant, figures, args.deadline)
                            if name == "ours" and first_pod is not None:
                                shape = first_pod
                            rounds.append(figures)
                            print(f"{latency * 1000:.0f} ms, {variant}, {name}, round {number}: {_line(figures)}")
                if shape is not None:
                    namespace = f"raw-{round(latency * 1000)}ms"
                    raw[latency] = _raw_rate(stack, shape, args.raw_pods or args.tasks, namespace)
                    print(f"{latency * 1000:.0f} ms: raw client, 16 threads: {raw[latency]:.0f} pods/s", flush=True)
            print(f"kubelet: {stack.kubelet('failures')} pods whose Execution API calls failed (cleared rounds)")
        finally:
            stack.stop()
            if args.keep is None:
                shutil.rmtree(folder, ignore_errors=True)
    _summary(rounds, raw, latencies, variants, names, args)
    return 0


def _summary(
    rounds: list[Round],
    raw: dict[float, float],
    latencies: list[float],
    variants: list[str],
    names: list[str],
    args: argparse.Namespace,
) -> None:
    from e2e_report import median_of

    print(
        f"\nmedians of {args.rounds} round(s), {os.cpu_count()} cores (a shared machine); rates: higher is better, "
        "times: lower is better; * = did not finish within the deadline, the rate over the window it had"
    )
    for variant in variants:
        for latency in latencies:
            print(table(variant, latency, rounds, names))
            ours = [r for r in rounds if r.variant == variant and r.latency == latency and r.configuration == "ours"]
            if latency in raw and ours and variant == "kubernetes":
                pods, _ = median_of(ours, Round.pods_rate)
                print(
                    f"  raw client (16 threads, same pod): {raw[latency]:.0f} pods/s; "
                    f"ours/raw: {pods / raw[latency]:.2f}"
                )
    if args.chart:
        main_chart = Path(args.chart)
        for variant in variants:
            if variant == "celery":
                continue
            path = main_chart if variant == "kubernetes" else main_chart.with_name(f"{main_chart.stem}_{variant}.png")
            chart(path, variant, rounds, names, args.tasks)
            print(f"chart: {path}")


if __name__ == "__main__":
    sys.exit(main())

"""Whether the executor's memory stays flat: 20,000 short pod tasks through the HybridExecutor, driven as a scheduler.

The local Kubernetes API runs in a process of its own, with its kubelet: each pod's container is
a process there, ``true`` (the queue's pod template sets it as the command, so the worker's
``execute_workload`` args are ignored), so a pod goes Pending, Running and Succeeded in a fraction
of a second, and the executor deletes it (``delete_worker_pods``, the default). Neither the API
server's memory nor its kubelet's is in this process, which plays the scheduler: the
HybridExecutor (the router, with Celery unused beside it), its options at their defaults but
``parallelism`` (``--parallelism``, 256), is driven as SchedulerJobRunner drives it. Each loop
queues as many workloads as there are open slots (``queue_workload``, realistic workloads with a
JWT each), calls ``heartbeat()``, drains ``get_event_buffer()`` and pops ``_task_event_logs``,
every ``--loop-interval`` seconds.

Every ``--every`` (2,000) finished tasks it prints the entries the executor tracks: its pod
table (by name, current per key), running, queued, event buffer (before the drain), Airflow's
retry attempts, task event logs, the watcher's pod events not yet synced, the pending-timeout
heap, the launcher's pending launches, undrained results and launches waiting for quota, the
deleter's pending deletions, the watcher's known pods, the adoptions waiting for a LIST, the
template cache, the router's entries handed to the scheduler and the Celery side's workloads;
then the Python objects the garbage collector tracks and this process's RSS. Then it idles a few
seconds (the last deletions and their DELETED events) and prints the settled row. Last, the
verdict: the growth of each figure from the ``--warmup`` (4,000) mark to the end; a count that
grew by more than ``--parallelism`` (what tasks in flight can hold), or the RSS or the object
count by more than ``--tolerance`` (5%), is called growing.

    python benchmarks/memory.py [--tasks 20000] [--every 2000] [--parallelism 256] [--tracemalloc]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_support import (
    ApiServerProcess,
    MachineUse,
    Workloads,
    airflow_environment,
    log_to_file,
    pod_template,
    rss_mib,
)

QUEUE = "kubernetes"
POD_TEMPLATE = pod_template('["true"]')


def _size(obj: Any, *path: str) -> int | None:
    """``len()`` of a (private) attribute; None if a refactoring took it away, so the benchmark still runs."""
    for name in path:
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    if hasattr(obj, "qsize"):
        return int(obj.qsize())
    if callable(obj):
        return int(obj())
    return len(obj)


def _watchers_known(pods: Any) -> int | None:
    watchers = getattr(pods, "_watchers", None)
    if watchers is None:
        return None
    return sum(_size(watcher, "_known") or 0 for watcher in watchers.values())


def _quota_waits(pods: Any) -> int | None:
    launcher = getattr(pods, "_launcher", None)
    return None if launcher is None else int(launcher.waiting_for_quota())


# What is counted: (column, what it is, how it is read off the router). RSS and objects come last.
TRACKED: list[tuple[str, str, Callable[[Any], int | None]]] = [
    ("by_name", "pod table, by pod name", lambda r: _size(r.kubernetes_executor, "_table", "by_name")),
    ("current", "pod table, current queueing per key", lambda r: _size(r.kubernetes_executor, "_table", "current")),
    ("running", "running (pod side)", lambda r: _size(r.kubernetes_executor, "running")),
    ("queued", "queued_tasks (pod side)", lambda r: _size(r.kubernetes_executor, "queued_tasks")),
    ("buffer", "event_buffer before the drain", lambda r: None),  # filled in by the loop
    ("attempts", "BaseExecutor.attempts", lambda r: _size(r.kubernetes_executor, "attempts")),
    ("evlogs", "_task_event_logs (pod side)", lambda r: _size(r.kubernetes_executor, "_task_event_logs")),
    ("events", "pod events not yet synced", lambda r: _size(r.kubernetes_executor, "_events")),
    ("deadlines", "pending-timeout heap", lambda r: _size(r.kubernetes_executor, "_pending")),
    ("launching", "launcher: launches pending", lambda r: _size(r.kubernetes_executor, "_launcher", "_pending")),
    ("results", "launcher: results not drained", lambda r: _size(r.kubernetes_executor, "_launcher", "_results")),
    ("quota", "launcher: launches waiting for quota", lambda r: _quota_waits(r.kubernetes_executor)),
    ("deleting", "deleter: deletions pending", lambda r: _size(r.kubernetes_executor, "_deleter", "pending")),
    ("known", "watcher: pods known", lambda r: _watchers_known(r.kubernetes_executor)),
    ("readopt", "adoptions waiting for a LIST", lambda r: _size(r.kubernetes_executor, "_pending_adoptions")),
    ("templates", "pod template cache", lambda r: _size(r.kubernetes_executor, "_bodies", "templates")),
    ("handed", "router: event logs handed to the scheduler", lambda r: _size(r, "_handed_to_scheduler")),
    ("celery", "Celery side: workloads", lambda r: _size(r.celery_executor, "workloads")),
]


@dataclass
class _Row:
    mark: str
    finished: int
    seconds: float
    counts: dict[str, int | None]
    objects: int
    rss: float
    traced: float | None = None


@dataclass
class _Run:
    made: int = 0
    finished: int = 0
    failed: int = 0
    why_failed: list[str] = field(default_factory=list)  # the first few failures' infos
    rows: list[_Row] = field(default_factory=list)


def _row(router: Any, mark: str, run: _Run, began: float, buffered: int) -> _Row:
    counts = {column: read(router) for column, _, read in TRACKED}
    counts["buffer"] = buffered
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] / 2**20 if tracemalloc.is_tracing() else None
    return _Row(mark, run.finished, time.monotonic() - began, counts, len(gc.get_objects()), rss_mib(), traced)


def _print_header(tracing: bool) -> None:
    columns = ["mark", "finished", "s"] + [column for column, _, _ in TRACKED] + ["objects", "RSS MiB"]
    print(" ".join(f"{c:>9}" for c in columns) + (" traced MiB" if tracing else ""))


def _print_row(row: _Row) -> None:
    values = [row.mark, str(row.finished), f"{row.seconds:.0f}"]
    values += ["-" if row.counts[c] is None else str(row.counts[c]) for c, _, _ in TRACKED]
    values += [str(row.objects), f"{row.rss:.1f}"]
    traced = "" if row.traced is None else f" {row.traced:10.1f}"
    print(" ".join(f"{v:>9}" for v in values) + traced, flush=True)


def _drive(router: Any, workloads: Workloads, args: argparse.Namespace) -> _Run:
    """The scheduler's loop until ``args.tasks`` tasks have finished; a row every ``args.every``."""
    from airflow.utils.state import TaskInstanceState

    run = _Run()
    began = last_progress = time.monotonic()
    next_mark = args.every
    moment = began
    while run.finished < args.tasks:
        count = min(router.slots_available, args.tasks - run.made)
        for workload in workloads.make(count):
            router.queue_workload(workload, session=None)
        run.made += count
        router.heartbeat()
        buffered = len(router.kubernetes_executor.event_buffer)
        for key, (state, info) in router.get_event_buffer().items():
            if state in (TaskInstanceState.SUCCESS, TaskInstanceState.FAILED):
                run.finished += 1
                last_progress = time.monotonic()
            if state == TaskInstanceState.FAILED:
                run.failed += 1
                if len(run.why_failed) < 5:
                    run.why_failed.append(f"{key.task_id}: {info}")
        logs = router._task_event_logs  # the scheduler saves them to its database, popping each
        while logs:
            logs.popleft()
        while run.finished >= next_mark:
            run.rows.append(_row(router, f"{next_mark:,}", run, began, buffered))
            _print_row(run.rows[-1])
            next_mark += args.every
        if time.monotonic() - last_progress > args.stall:
            raise SystemExit(f"no task finished for {args.stall:g}s ({run.finished} finished): see the scheduler log")
        moment += args.loop_interval
        time.sleep(max(0.0, moment - time.monotonic()))
    settle = time.monotonic() + args.settle
    while time.monotonic() < settle:  # the last deletions, and their DELETED events
        router.heartbeat()
        router.get_event_buffer()
        time.sleep(args.loop_interval)
    run.rows.append(_row(router, "settled", run, began, len(router.kubernetes_executor.event_buffer)))
    _print_row(run.rows[-1])
    return run


def _verdict(run: _Run, args: argparse.Namespace) -> None:
    marks = [row for row in run.rows if row.mark != "settled"]
    base = next((row for row in marks if row.finished >= args.warmup), None)
    if base is None or base is marks[-1]:
        print(f"verdict: too few tasks to judge growth after the {args.warmup:,} mark")
        return
    end, tasks = marks[-1], marks[-1].finished - base.finished
    growing = []
    for column, what, _ in TRACKED:
        before, after = base.counts[column], end.counts[column]
        if before is not None and after is not None and after - before > args.parallelism:
            growing.append(f"{column} ({what}) {before} -> {after}")
    for name, before, after in (("RSS", base.rss, end.rss), ("objects", base.objects, end.objects)):
        if after - before > args.tolerance * before:
            growing.append(f"{name} {before:,.1f} -> {after:,.1f}")
    rss_growth = end.rss - base.rss
    print(
        f"verdict, from the {base.finished:,} mark to {end.finished:,} ({tasks:,} tasks): RSS {base.rss:.1f} -> "
        f"{end.rss:.1f} MiB ({rss_growth:+.1f} MiB, {rss_growth * 1024 / tasks * 1000:+.0f} KiB per 1,000 tasks), "
        f"objects {base.objects:,} -> {end.objects:,} ({end.objects - base.objects:+,}); "
        + ("every count flat" if not growing else "GROWING: " + "; ".join(growing))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--every", type=int, default=2000, help="finished tasks between two rows")
    parser.add_argument("--warmup", type=int, default=4000, help="the mark growth is measured from")
    parser.add_argument("--parallelism", type=int, default=256)
    parser.add_argument("--loop-interval", type=float, default=0.1, help="seconds per scheduler loop")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds of heartbeats after the last task")
    parser.add_argument("--stall", type=float, default=120.0, help="give up after this long without a task ending")
    parser.add_argument("--tolerance", type=float, default=0.05, help="RSS and object growth called flat")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (slower)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-memory-") as name:
        folder = Path(name)
        kubeconfig, template = folder / "kubeconfig", folder / "pod_template.yaml"
        template.write_text(POD_TEMPLATE, encoding="utf-8")
        log_file = airflow_environment(
            folder,
            {
                "AIRFLOW__CORE__EXECUTOR": "hybrid_executor.HybridExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(args.parallelism),
                "AIRFLOW__KUBERNETES_EXECUTOR__CONFIG_FILE": str(kubeconfig),
                "AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE": str(template),
            },
        )
        import airflow  # noqa: F401 - configures Airflow (and its logging) from the environment above

        from hybrid_executor import HybridExecutor

        log_to_file(log_file)
        with ApiServerProcess(kubeconfig, kubelet=True) as server:
            router = HybridExecutor()
            router.job_id = 1
            router.start()
            try:
                for watcher in router.kubernetes_executor._watchers.values():
                    watcher.wait_synced(30)
                if args.tracemalloc:
                    tracemalloc.start()
                print(
                    f"{os.cpu_count()} cores, Python {sys.version.split()[0]}; API server and kubelet in a process "
                    f"of their own; {args.tasks:,} tasks, parallelism {args.parallelism}, a scheduler loop every "
                    f"{args.loop_interval * 1000:g} ms"
                )
                for column, what, _ in TRACKED:
                    print(f"  {column}: {what}")
                _print_header(args.tracemalloc)
                machine, our_cpu, server_cpu = MachineUse(), time.process_time(), server.cpu_seconds()
                began = time.monotonic()
                run = _drive(router, Workloads(router.jwt_generator, QUEUE, remember_pods=False), args)
                elapsed = time.monotonic() - began
                our_cpu, server_cpu = time.process_time() - our_cpu, server.cpu_seconds() - server_cpu
            finally:
                router.terminate()
        others = machine.others()
        noise = "" if others is None else f", other processes {max(0.0, others[0] - server_cpu / elapsed):.2f}"
        print(
            f"{run.finished:,} tasks finished ({run.failed} failed) in {elapsed:.0f}s, {run.finished / elapsed:.0f}/s; "
            f"cores used on average: this process {our_cpu / elapsed:.2f}, the API server and kubelet "
            f"{server_cpu / elapsed:.2f}{noise}"
        )
        for why in run.why_failed:
            print(f"  failed: {why}")
        _verdict(run, args)


if __name__ == "__main__":
    main()

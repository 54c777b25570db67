"""What the KubernetesPodExecutor costs and how fast it is, driven as the scheduler drives it.

Against the local Kubernetes API with 10 ms added to every request, with the executor's default
options, this prints per round and as the median of the rounds, each next to its goal (issue 3):

1. Pods created per second: N (2,000) Kubernetes tasks are queued (``queue_workload``), then
   timed from the start of the ``heartbeat()`` that hands them over until the API holds all N
   pods (the moment a watch of the driver process sees the N-th ADDED).
2. ``heartbeat()`` wall time, median and p99, with 5,000 pods running and 1% of them changing
   per loop: each loop the driver process patches 50 Running pods to Succeeded and the pods
   created since its last loop to Running (status subresource), and 50 new tasks are queued.
   Each heartbeat so hands 50 tasks over and drains 50 launch results and about 200 pod events
   (ADDED, Running, Succeeded, and the DELETED of the pods the executor deleted). A loop takes
   1 s (``--loop-interval``): 50 tasks ending per second is what the default api_qps (150 creates
   per second) and one deleting thread sustain with 10 ms per request.
3. Time from a pod's terminal phase to its task's event in the event buffer, median and p99:
   the driver patches pods to Succeeded one at a time, at random moments, and records when each
   patch is acknowledged; the executor heartbeats at a fixed cadence (default every 50 ms,
   a busy scheduler's loop) and the event counts as there when ``get_event_buffer()`` after the
   heartbeat returns it. Also printed: the part of it spent inside the pipeline, i.e. without
   the time the event waited in the executor's queue for the next heartbeat (the loop's sleep).

Before each round, the raw rate for comparison (issue 11): 16 threads of the official client
creating N pods of the shape our launcher sends, directly (``kube_api_creates.raw_create_rate``),
against a fresh API server with the same latency; printed with the ratio ours/raw.
``--only-creates`` skips figures 2 and 3.

Three processes, as in production, where the API server is another machine: the local API
server (no kubelet: pod phases are the driver's to set), the driver that plays the kubelet, and
this one, whose main thread plays the scheduler's. Neither of the others runs here, because a
thread in this process would take the GIL from the executor's threads and overstate its costs.
The machine's cores are shared by all three; their count is printed.

Only the executor's own options are left at their defaults (16 creating threads, api_qps 150,
api_burst 300, delete_worker_pods True, ...). ``[core] parallelism`` (default 32) would hold the
tasks in the executor's queue, so the executor gets a parallelism of twice the pods running.
The Airflow home is a temporary one on SQLite: building workloads and the executor needs no
database. Logs go to a file in it, at INFO, as a scheduler's do.

    python benchmarks/executor_kubernetes.py [--rounds 3] [--pods 2000] [--running 5000] [--loops 300]
        [--latency 0.01] [--only-creates] [--no-raw]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import multiprocessing
import os
import queue
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench_support import (
    IMAGE,
    ApiServerProcess,
    MachineUse,
    Workloads,
    airflow_environment,
    log_to_file,
    serve_commands,
)
from kube_api_creates import bodies_like, our_pod_shape, raw_client, raw_create_rate

NAMESPACE = "default"  # the executor's default namespace
RAW_THREADS = 16


# --- the driver's process: it plays the kubelet ----------------------------------------------


class _Driver:
    """Watches the namespace's pods and sets their phases through the status subresource."""

    def __init__(self, kubeconfig: str, threads: int) -> None:
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        configuration.connection_pool_maxsize = threads + 2
        self.core = client.CoreV1Api(client.ApiClient(configuration))
        self.pool = ThreadPoolExecutor(threads)
        self.changed = threading.Condition()
        self.added: list[float] = []  # when each ADDED was seen
        self.fresh: deque[str] = deque()  # created, not yet Running
        self.running: deque[str] = deque()  # Running, oldest first

    def start_watch(self) -> None:
        response = self.core.list_namespaced_pod(NAMESPACE, limit=1, _preload_content=False)
        version = json.loads(response.data)["metadata"]["resourceVersion"]
        response.release_conn()
        thread = threading.Thread(target=self._watch, args=(version,), daemon=True)
        thread.start()

    def _watch(self, version: str) -> None:
        response = self.core.list_namespaced_pod(
            NAMESPACE, watch=True, resource_version=version, timeout_seconds=36000, _preload_content=False
        )
        for line in response:
            if not line.startswith(b'{"type":"ADDED"'):
                continue
            name = json.loads(line)["object"]["metadata"]["name"]
            now = time.monotonic()
            with self.changed:
                self.added.append(now)
                self.fresh.append(name)
                self.changed.notify_all()

    def wait_added(self, count: int) -> float:
        """When the API held ``count`` pods (the count-th ADDED this watch saw)."""
        with self.changed:
            self.changed.wait_for(lambda: len(self.added) >= count)
            return self.added[count - 1]

    def patch_phase(self, name: str, phase: str) -> float:
        """Set a pod's phase as a kubelet does; returns when the API acknowledged it."""
        state: dict[str, Any] = (
            {"running": {"startedAt": _now()}}
            if phase == "Running"
            else {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": _now()}}
        )
        status = {
            "phase": phase,
            "containerStatuses": [
                {"name": "base", "image": ":".join(IMAGE), "imageID": "", "ready": phase == "Running"}
                | {"restartCount": 0, "state": state}
            ],
        }
        response = self.core.patch_namespaced_pod_status(
            name,
            NAMESPACE,
            {"status": status},
            _content_type="application/merge-patch+json",
            _preload_content=False,
        )
        try:
            response.data  # noqa: B018 - read the whole answer
        finally:
            response.release_conn()
        return time.monotonic()

    def tick(self, finishing: int) -> tuple[int, int, float]:
        """``finishing`` of the oldest Running pods to Succeeded, every pod created since to Running."""
        started = time.monotonic()
        with self.changed:
            starting = list(self.fresh)
            self.fresh.clear()
        ending = [self.running.popleft() for _ in range(min(finishing, len(self.running)))]
        futures = [self.pool.submit(self.patch_phase, name, "Succeeded") for name in ending]
        futures += [self.pool.submit(self.patch_phase, name, "Running") for name in starting]
        wait(futures)
        for future in futures:
            future.result()
        self.running.extend(starting)
        return len(ending), len(starting), time.monotonic() - started

    def finish_one_by_one(self, count: int, gap: tuple[float, float], seed: int) -> list[tuple[str, float]]:
        """``count`` Running pods to Succeeded one after the other, ``gap`` seconds apart (uniform)."""
        chance = random.Random(seed)
        acknowledged = []
        for _ in range(min(count, len(self.running))):
            time.sleep(chance.uniform(*gap))
            name = self.running.popleft()
            acknowledged.append((name, self.patch_phase(name, "Succeeded")))
        return acknowledged


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _drive(conn: Connection, kubeconfig: str, threads: int) -> None:
    driver = _Driver(kubeconfig, threads)
    handlers: dict[str, Callable[..., Any]] = {
        "watch": driver.start_watch,
        "wait_added": driver.wait_added,
        "tick": driver.tick,
        "finish_one_by_one": driver.finish_one_by_one,
    }
    serve_commands(conn, handlers)


# --- this process: the scheduler's ------------------------------------------------------------


class _TimedQueue(queue.SimpleQueue):  # type: ignore[type-arg]
    """The executor's pod event queue, noting when the watcher put each Succeeded pod in it."""

    def __init__(self) -> None:
        self.succeeded_at: dict[str, float] = {}
        self.puts = 0

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self.puts += 1
        pod = getattr(item, "pod", None) or {}
        if (pod.get("status") or {}).get("phase") == "Succeeded":
            self.succeeded_at.setdefault(pod["metadata"]["name"], time.monotonic())
        super().put(item, block, timeout)


@dataclass
class _Round:
    pods_per_second: float = 0.0
    raw_per_second: float = 0.0  # 16 threads of the official client, the same pods, no executor
    handover_ms: float = 0.0
    creation_failures: int = 0
    heartbeats_ms: list[float] = field(default_factory=list)
    heartbeats_cpu_ms: list[float] = field(default_factory=list)
    events_per_loop: float = 0.0
    driver_tick_ms: float = 0.0
    full_collections_ms: list[float] = field(default_factory=list)
    to_buffer_ms: list[float] = field(default_factory=list)
    in_pipeline_ms: list[float] = field(default_factory=list)
    delivery_ms: list[float] = field(default_factory=list)
    missing: int = 0
    others_cores: tuple[float, float] | None = None  # other processes, stolen: see MachineUse


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class _Scheduler:
    """The scheduler's side: one executor, driven through queue_workload / heartbeat / get_event_buffer."""

    def __init__(self, executor: Any, driver: Connection, workloads: Workloads) -> None:
        self.executor = executor
        self.driver = driver
        self.workloads = workloads
        self.failed: list[Any] = []

    def queue(self, workloads: Sequence[Any]) -> None:
        for workload in workloads:
            self.executor.queue_workload(workload, session=None)

    def beat(self) -> dict[Any, Any]:
        self.executor.heartbeat()
        return self.drain()

    def drain(self) -> dict[Any, Any]:
        from airflow.utils.state import TaskInstanceState

        events: dict[Any, Any] = self.executor.get_event_buffer()
        self.failed += [key for key, (state, _) in events.items() if state == TaskInstanceState.FAILED]
        return events

    def beat_until_driver_answers(self, interval: float) -> Any:
        """Heartbeat every ``interval`` seconds until the driver answers the last command."""
        moment = time.monotonic()
        while not self.driver.poll():
            self.beat()
            moment += interval
            time.sleep(max(0.0, moment - time.monotonic()))
        return self.driver.recv()

    def ask(self, *command: Any) -> Any:
        self.driver.send(command)
        return self.driver.recv()


def _create_pods(scheduler: _Scheduler, count: int, interval: float, figures: _Round) -> None:
    """Figure 1: queue ``count`` tasks, then heartbeat until the API holds their pods."""
    scheduler.queue(scheduler.workloads.make(count))
    scheduler.driver.send(("wait_added", count))
    started = time.monotonic()
    scheduler.beat()
    figures.handover_ms = (time.monotonic() - started) * 1000
    time.sleep(max(0.0, started + interval - time.monotonic()))
    all_there = scheduler.beat_until_driver_answers(interval)
    figures.pods_per_second = count / (all_there - started)
    figures.creation_failures = len(scheduler.failed)


def _fill(scheduler: _Scheduler, running: int, interval: float) -> None:
    """Bring the pods to ``running``, all of them Running, and let the executor take it all in."""
    scheduler.queue(scheduler.workloads.make(running - len(scheduler.executor.running)))
    scheduler.driver.send(("wait_added", running))
    scheduler.beat_until_driver_answers(interval)
    scheduler.driver.send(("tick", 0))
    scheduler.beat_until_driver_answers(interval)
    settle = time.monotonic() + 3.0
    while time.monotonic() < settle:
        scheduler.beat()
        time.sleep(interval)


def _churn(
    scheduler: _Scheduler,
    events: _TimedQueue,
    changes: int,
    loops: int,
    interval: float,
    figures: _Round,
    profile: cProfile.Profile | None,
) -> None:
    """Figure 2: each loop, ``changes`` pods finish and ``changes`` new tasks come; time each heartbeat."""
    ticks = []
    puts_before = events.puts
    collections = _GarbageCollections()
    moment = time.monotonic()
    for _ in range(loops):
        wall, cpu = time.perf_counter(), time.thread_time()
        if profile is not None:
            profile.enable()
        scheduler.executor.heartbeat()
        if profile is not None:
            profile.disable()
        figures.heartbeats_cpu_ms.append((time.thread_time() - cpu) * 1000)
        figures.heartbeats_ms.append((time.perf_counter() - wall) * 1000)
        scheduler.drain()
        if scheduler.driver.poll():
            ticks.append(scheduler.driver.recv())
        scheduler.driver.send(("tick", changes))
        scheduler.queue(scheduler.workloads.make(changes))  # the scheduler's loop makes them too
        moment += interval
        time.sleep(max(0.0, moment - time.monotonic()))
    collections.stop()
    while len(ticks) < loops:
        ticks.append(scheduler.driver.recv())
    figures.driver_tick_ms = statistics.median(tick[2] for tick in ticks) * 1000
    figures.events_per_loop = (events.puts - puts_before) / loops
    figures.full_collections_ms = collections.full


class _GarbageCollections:
    """How long each full (generation 2) collection took, in any thread of this process."""

    def __init__(self) -> None:
        self.full: list[float] = []
        self._started = 0.0
        gc.callbacks.append(self._note)

    def _note(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.full.append((time.perf_counter() - self._started) * 1000)

    def stop(self) -> None:
        gc.callbacks.remove(self._note)


def _to_event_buffer(
    scheduler: _Scheduler, events: _TimedQueue, pods: int, interval: float, seed: int, figures: _Round
) -> None:
    """Figure 3: pods end one by one; when does each task's event reach the event buffer?"""
    seen: dict[Any, tuple[float, float]] = {}
    scheduler.driver.send(("finish_one_by_one", pods, (0.01, 0.05), seed))
    acknowledged: list[tuple[str, float]] | None = None
    moment = time.monotonic()
    linger = None
    while linger is None or time.monotonic() < linger:
        began = time.monotonic()
        buffered = scheduler.beat()
        ended = time.monotonic()
        for key in buffered:
            seen.setdefault(key, (began, ended))
        if acknowledged is None and scheduler.driver.poll():
            acknowledged = scheduler.driver.recv()
            linger = time.monotonic() + 2.0
        moment += interval
        time.sleep(max(0.0, moment - time.monotonic()))
    assert acknowledged is not None
    for name, acked in acknowledged:
        key = scheduler.workloads.keys_by_pod.get(name)
        if key not in seen or name not in events.succeeded_at:
            figures.missing += 1
            continue
        began, ended = seen[key]
        queued = events.succeeded_at[name]
        waited = max(0.0, began - queued)  # in the queue, until the heartbeat that drained it began
        figures.to_buffer_ms.append((ended - acked) * 1000)
        figures.in_pipeline_ms.append((ended - acked - waited) * 1000)
        figures.delivery_ms.append((queued - acked) * 1000)


def _round(number: int, args: argparse.Namespace, folder: Path) -> _Round:
    from hybrid_executor.kubernetes.executor import KubernetesPodExecutor

    figures = _Round()
    machine = MachineUse()
    context = multiprocessing.get_context("spawn")
    kubeconfig = folder / f"kubeconfig-{number}"
    if args.raw:
        figures.raw_per_second = _raw_rate(folder / f"kubeconfig-raw-{number}", args)
    driver_end, driver_child = context.Pipe()
    driver = context.Process(target=_drive, args=(driver_child, str(kubeconfig), args.driver_threads), daemon=True)
    executor = None
    with ApiServerProcess(kubeconfig, latency=args.latency):
        try:
            driver.start()
            os.environ["AIRFLOW__KUBERNETES_EXECUTOR__CONFIG_FILE"] = str(kubeconfig)
            executor = KubernetesPodExecutor(parallelism=2 * args.running)
            executor.job_id = 1000 + number
            events = _TimedQueue()
            # The executor's queue between its watchers and sync(), replaced before start() to see when the
            # watcher hands each event over (how figure 3 tells the pipeline from the wait for a heartbeat).
            executor._events = events
            scheduler = _Scheduler(executor, driver_end, Workloads(executor.jwt_generator))
            scheduler.ask("watch")
            executor.start()
            time.sleep(1.0)  # the watcher's first list

            _create_pods(scheduler, args.pods, args.beat_interval, figures)
            if args.only_creates:
                return figures
            _fill(scheduler, args.running, args.beat_interval)
            running_before = len(executor.running)
            profile = cProfile.Profile() if args.profile else None
            _churn(scheduler, events, args.changes, args.loops, args.loop_interval, figures, profile)
            if profile is not None:
                profile.dump_stats(f"{args.profile}.{number}")
            if len(executor.running) < running_before - args.changes:
                print(f"  (pods running fell from {running_before} to {len(executor.running)} during the loops)")
            _to_event_buffer(scheduler, events, args.latency_pods, args.beat_interval, number, figures)
            if scheduler.failed:
                print(f"  ({len(scheduler.failed)} tasks failed; see the scheduler log)")
        finally:
            if executor is not None:
                executor.terminate()
            driver_end.send(("stop",))
            driver.join(30)
    figures.others_cores = machine.others()
    return figures


def _raw_rate(kubeconfig: Path, args: argparse.Namespace) -> float:
    """The raw rate: ``args.pods`` pods of our launcher's shape from 16 client threads, on a server of its own."""
    with ApiServerProcess(kubeconfig, latency=args.latency):
        os.environ["AIRFLOW__KUBERNETES_EXECUTOR__CONFIG_FILE"] = str(kubeconfig)
        bodies = bodies_like(our_pod_shape(), args.pods, "raw")
        return raw_create_rate(raw_client(kubeconfig, RAW_THREADS), "raw", bodies, RAW_THREADS)


def _report(number: int, figures: _Round, args: argparse.Namespace) -> None:
    beats = figures.heartbeats_ms
    noise = ""
    if figures.others_cores is not None:
        others, stolen = figures.others_cores
        noise = f" (meanwhile other processes used {others:.2f} cores, the hypervisor took {stolen:.2f})"
    print(f"round {number}:{noise}")
    print(
        f"  1. pods created: {figures.pods_per_second:.0f}/s for {args.pods} tasks "
        f"(handover heartbeat {figures.handover_ms:.0f} ms, {figures.creation_failures} failed)"
    )
    if figures.raw_per_second:
        print(
            f"     raw: {RAW_THREADS} official client threads, the same pods: {figures.raw_per_second:.0f}/s; "
            f"ours/raw {figures.pods_per_second / figures.raw_per_second:.2f}"
        )
    if beats:
        print(
            f"  2. heartbeat() over {len(beats)} loops, {args.running} pods running, {args.changes} finishing and "
            f"{args.changes} new per loop: median {statistics.median(beats):.1f} ms, "
            f"p99 {_percentile(beats, 0.99):.1f} ms, max {max(beats):.1f} ms "
            f"({figures.events_per_loop:.0f} pod events per loop; "
            f"its own CPU: median {statistics.median(figures.heartbeats_cpu_ms):.1f} ms; "
            f"driver's patches per loop: {figures.driver_tick_ms:.0f} ms)"
        )
        full = figures.full_collections_ms
        if full:
            print(
                f"     meanwhile {len(full)} full garbage collections in this process, "
                f"{statistics.median(full):.0f} ms median, {max(full):.0f} ms longest"
            )
    if figures.to_buffer_ms:
        print(
            f"  3. terminal phase -> event buffer over {len(figures.to_buffer_ms)} pods, heartbeat every "
            f"{args.beat_interval * 1000:.0f} ms: median {statistics.median(figures.to_buffer_ms):.0f} ms, "
            f"p99 {_percentile(figures.to_buffer_ms, 0.99):.0f} ms; inside the pipeline (without waiting for "
            f"the next heartbeat): median {statistics.median(figures.in_pipeline_ms):.1f} ms, "
            f"p99 {_percentile(figures.in_pipeline_ms, 0.99):.1f} ms; of which the watch: median "
            f"{statistics.median(figures.delivery_ms):.1f} ms"
            + (f" ({figures.missing} not seen)" if figures.missing else "")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pods", type=int, default=2000, help="tasks queued at once for figure 1")
    parser.add_argument("--running", type=int, default=5000, help="pods running for figures 2 and 3")
    parser.add_argument("--changes", type=int, default=50, help="pods finishing (and tasks queued) per loop")
    parser.add_argument("--loops", type=int, default=300, help="heartbeats timed for figure 2")
    parser.add_argument("--loop-interval", type=float, default=1.0, help="seconds per loop for figure 2")
    parser.add_argument("--latency-pods", type=int, default=300, help="pods timed for figure 3")
    parser.add_argument("--beat-interval", type=float, default=0.05, help="seconds between heartbeats, figure 3")
    parser.add_argument("--latency", type=float, default=0.01, help="seconds added to every API request")
    parser.add_argument("--driver-threads", type=int, default=16)
    parser.add_argument("--profile", metavar="PATH", help="cProfile the timed heartbeats into PATH.<round>")
    parser.add_argument("--only-creates", action="store_true", help="figure 1 (and the raw rate) only")
    parser.add_argument("--no-raw", dest="raw", action="store_false", help="skip the raw rate")
    parser.add_argument(
        "--set",
        type=lambda text: tuple(text.split("=", 1)),
        action="append",
        default=[],
        metavar="SECTION__KEY=VALUE",
        help="an Airflow option for the executor, e.g. hybrid_executor__api_qps=1000 (default: the defaults)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-executor-") as name:
        folder = Path(name)
        log_file = airflow_environment(folder, {f"AIRFLOW__{name.upper()}": value for name, value in args.set})
        import airflow  # noqa: F401 - configures Airflow (and its logging) from the environment above

        log_to_file(log_file)
        print(
            f"{os.cpu_count()} cores, Python {sys.version.split()[0]}; API server and driver in processes of their "
            f"own; {args.latency * 1000:.0f} ms added to every API request"
        )
        rounds = []
        for number in range(1, args.rounds + 1):
            figures = _round(number, args, folder)
            _report(number, figures, args)
            rounds.append(figures)
        _summary(rounds, args)


def _summary(rounds: list[_Round], args: argparse.Namespace) -> None:
    def median(pick: Callable[[_Round], float]) -> float:
        # A round without a figure (nothing timed in it) is left out, not a crash after every round ran.
        values = []
        for figures in rounds:
            try:
                values.append(pick(figures))
            except (ValueError, statistics.StatisticsError, ZeroDivisionError):
                continue
        return statistics.median(values) if values else float("nan")

    rate = median(lambda f: f.pods_per_second)
    print(f"median of {len(rounds)} rounds ({os.cpu_count()} cores):")
    print(f"  pods created per second, N={args.pods}: {rate:.1f}/s  (goal >= 100/s: {_verdict(rate >= 100)})")
    if args.raw:
        raw = median(lambda f: f.raw_per_second)
        ratio = median(lambda f: f.pods_per_second / f.raw_per_second)
        print(
            f"  raw rate ({RAW_THREADS} client threads, the same pods): {raw:.1f}/s; ours/raw, median of the "
            f"rounds' ratios: {ratio:.2f}  (goal >= 0.7: {_verdict(ratio >= 0.7)})"
        )
    if args.only_creates:
        return
    beat = median(lambda f: statistics.median(f.heartbeats_ms))
    beat99 = median(lambda f: _percentile(f.heartbeats_ms, 0.99))
    buffer = median(lambda f: statistics.median(f.to_buffer_ms))
    buffer99 = median(lambda f: _percentile(f.to_buffer_ms, 0.99))
    pipeline = median(lambda f: statistics.median(f.in_pipeline_ms))
    pipeline99 = median(lambda f: _percentile(f.in_pipeline_ms, 0.99))

    print(
        f"  heartbeat() with {args.running} running, 1% changing per loop: median {beat:.1f} ms, p99 {beat99:.1f} ms"
        f"  (goals: median <= 5 ms: {_verdict(beat <= 5)}, p99 <= 20 ms: {_verdict(beat99 <= 20)})"
    )
    print(
        f"  terminal phase -> event buffer, heartbeat every {args.beat_interval * 1000:.0f} ms: median {buffer:.0f} ms,"
        f" p99 {buffer99:.0f} ms  (goal <= 200 ms, on the p99: {_verdict(buffer99 <= 200)}); inside the pipeline: "
        f"median {pipeline:.1f} ms, p99 {pipeline99:.1f} ms"
    )


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


if __name__ == "__main__":
    main()

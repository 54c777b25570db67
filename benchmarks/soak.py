"""Fault soak: many mixed tasks through a real scheduler while the Kubernetes API, the scheduler and Redis misbehave.

The demo's stack (PostgreSQL, Redis, Airflow 3's api-server, scheduler, dag-processor, triggerer
and a Celery worker, all with HybridExecutor) runs ``benchmarks/dags/soak.py`` once with
``--tasks`` mapped tasks, 70% on the ``kubernetes`` queue (a pod each) and 30% on Celery. The
local Kubernetes API runs in this process (a thread, with its kubelet running pods as host
processes), so that its faults can be set and its record of requests read directly:

- creates of pods answer 500 (15%), 503 (15%), so 30% 5xx, and 429 with Retry-After: 1 (10%),
  drawn from a seeded random source;
- a ResourceQuota of 20 pods in the worker namespace (the 21st running pod is refused with 403
  "exceeded quota", and the executor must wait for room);
- every watch of pods is cut after 5 s; once, at 10% of the Kubernetes tasks done, one watch
  answers 410 Expired ("too old resource version"), as after an etcd compaction;
- at 20% and 60% of all tasks done the scheduler's process group is SIGKILLed and a new scheduler
  started; at 40% of the Celery tasks done Redis (broker and result backend, with its append-only
  file as a production broker keeps one) is stopped and started again on its port.

Then it waits for every task instance to be terminal and prints: tasks terminal, tasks lost
(not terminal at the end, or failed without a reason in the event log), failed tasks and why,
duplicate pods (more than one pod for one queueing of one try, from the API's record of every pod
created), tries that had pods from more than one queueing, max delete calls per pod, pods left,
wall time, p50/p99 queued-to-running (``queued_dttm`` to ``start_date``, from Airflow's DB) per
route, and how many of each injected fault the API served.

A benchmark, not a test: it prints figures and exits 1 only if tasks were lost or pods duplicated.

    python benchmarks/soak.py [--tasks 1000 | --scale 0.1] [--timeout 7200] [--seed 7] [--keep DIR]
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import text

from hybrid_executor.demo.stack import WORKER_NAMESPACE, DemoStack
from hybrid_executor.kubernetes.identity import LABEL_SCHEDULER_JOB
from hybrid_executor.testing.kube import FaultRule, KubeletConfig, LocalKubeAPI
from hybrid_executor.testing.services import RedisServer

DAGS = Path(__file__).resolve().parent / "dags"
DAG_ID = "fault_soak"
ROUTE_TASKS = {"kubernetes": "on_kubernetes", "celery": "on_celery"}
FULL_SIZE = 1000
KUBERNETES_SHARE = 0.7
POD_QUOTA = 20
TERMINAL = {"success", "failed", "upstream_failed", "skipped", "removed"}
# When each disruption comes: at a share of one route's mapped tasks terminal (None: of all of them).
# The broker's restart counts Celery's tasks, which end long before the pods do, so that it meets
# Celery tasks in flight; the 410 counts the pods', so that it meets a watch with pods to follow.
FORCED_410_AT = ("kubernetes", 0.10)
SCHEDULER_KILLS_AT = ((None, 0.20), (None, 0.60))
REDIS_RESTART_AT = ("celery", 0.40)
# How long, after the last task ended, the pods have to be deleted before they count as left behind.
SETTLE_SECONDS = 120


# --- the stack ----------------------------------------------------------------------------------


class SoakStack(DemoStack):
    """The demo's stack, with the local Kubernetes API in this process and Redis keeping an append-only file."""

    def __init__(self, folder: Path, *, seed: int, settings: dict[str, dict[str, str]]) -> None:
        super().__init__(folder, DAGS, settings=settings)
        self.seed = seed
        self.kube: LocalKubeAPI | None = None
        self.faults: dict[str, FaultRule] = {}
        self.pods_created: list[dict[str, Any]] = []  # every pod the API stored, as it was created

    def _start_redis(self) -> None:
        self.redis = RedisServer(self.folder / "redis", appendonly=True)
        self.redis.start()

    def restart_redis(self) -> None:
        assert self.redis is not None
        port = self.redis.port
        self.redis.stop()  # SIGTERM: Redis writes its append-only file out and exits
        self.redis = RedisServer(self.folder / "redis", port=port, appendonly=True)
        self.redis.start()

    def _start_kube_api(self) -> None:
        self.kube = LocalKubeAPI(
            kubeconfig=self.kubeconfig,
            kubelet=KubeletConfig(base_env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}),
            bookmark_interval=2,
            fault_seed=self.seed,
        ).start()
        store = self.kube.server.store

        def record(change: Any) -> None:
            if change.resource == "pods" and change.type == "ADDED":
                self.pods_created.append(copy.deepcopy(change.obj["metadata"]))

        self.kube.call(lambda: store.add_listener(record))
        core = self.kubernetes()
        core.create_namespace({"metadata": {"name": WORKER_NAMESPACE}})
        quota = {"metadata": {"name": "pods"}, "spec": {"hard": {"pods": str(POD_QUOTA)}}}
        core.create_namespaced_resource_quota(WORKER_NAMESPACE, quota)
        self.faults = _faults(self.kube)  # before any Airflow process talks to the API

    def stop(self) -> None:
        super().stop()
        if self.kube is not None:
            self.kube.stop()  # its kubelet stops the pods still running


def _faults(kube: LocalKubeAPI) -> dict[str, FaultRule]:
    faults = kube.faults
    # Each rule is drawn only when the ones before it did not answer, hence the conditional shares.
    return {
        "create 500": faults.add("create", "pods", status=500, probability=0.15),
        "create 503": faults.add("create", "pods", status=503, probability=0.15 / 0.85),
        "create 429 Retry-After 1": faults.add("create", "pods", status=429, retry_after=1, probability=0.10 / 0.70),
        "watch cut after 5 s": faults.add("watch", "pods", watch_close_after_seconds=5),
    }


def _settings() -> dict[str, dict[str, str]]:
    return {
        "core": {"parallelism": "48"},
        "scheduler": {
            # A killed scheduler counts as dead after 30 s without a heartbeat (the default; a
            # shorter threshold makes a live scheduler whose loop lags on a loaded machine declare
            # itself dead and adopt its own tasks); its tasks are then adopted within 3 s.
            "scheduler_heartbeat_sec": "2",
            "scheduler_health_check_threshold": "30",
            "orphaned_tasks_check_interval": "3",
            "task_queued_timeout": "600",
        },
        # As a real deployment: finished pods are deleted (the quota counts only pods not finished).
        "kubernetes_executor": {"delete_worker_pods": "True"},
    }


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Disruption:
    route: str | None  # whose tasks count towards ``at``: "kubernetes", "celery", or None for all
    at: float  # share of those mapped tasks terminal
    what: str
    action: Callable[[], None]
    done_after: float | None = None  # seconds after the trigger


@dataclass
class Run:
    run_id: str
    began: float
    disruptions: list[Disruption] = field(default_factory=list)
    exits: list[str] = field(default_factory=list)  # Airflow processes that ended on their own


def _task_instances(engine: sqlalchemy.Engine, run_id: str) -> list[dict[str, Any]]:
    query = text(
        "select task_id, map_index, state, try_number, queued_dttm, start_date, end_date "
        "from task_instance where dag_id = :dag and run_id = :run"
    )
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query, {"dag": DAG_ID, "run": run_id})]


def _failure_reasons(engine: sqlalchemy.Engine, run_id: str, failed: list[dict[str, Any]]) -> dict[str, str]:
    """What the event log says of each failed task instance: its last event with a text."""
    query = text(
        "select task_id, map_index, event, extra from log where dag_id = :dag and run_id = :run "
        "and extra is not null and extra <> '' order by dttm"
    )
    wanted = {(ti["task_id"], ti["map_index"]) for ti in failed}
    reasons: dict[str, str] = {}
    with engine.connect() as conn:
        for row in conn.execute(query, {"dag": DAG_ID, "run": run_id}):
            if (row.task_id, row.map_index) in wanted:
                reasons[f"{row.task_id}[{row.map_index}]"] = f"{row.event}: {str(row.extra)[:300]}"
    return reasons


def _kill_scheduler(stack: SoakStack) -> None:
    scheduler = stack.processes["scheduler"]
    scheduler.signal_group(signal.SIGKILL)
    scheduler.wait(30)
    stack.restart("scheduler")


def _drive(stack: SoakStack, engine: sqlalchemy.Engine, sizes: dict[str, int], timeout: float) -> Run:
    api = stack.api()
    api.wait_for_dag(DAG_ID, timeout=300)
    api.unpause(DAG_ID)
    assert stack.kube is not None
    kube = stack.kube
    run = Run(api.trigger(DAG_ID, sizes), time.monotonic())
    run.disruptions = [
        Disruption(*FORCED_410_AT, "one watch answers 410 Expired", lambda: _force_410(kube)),
        *(
            Disruption(route, at, f"scheduler SIGKILLed and restarted (#{n})", lambda: _kill_scheduler(stack))
            for n, (route, at) in enumerate(SCHEDULER_KILLS_AT, 1)
        ),
        Disruption(*REDIS_RESTART_AT, "Redis stopped and started again", stack.restart_redis),
    ]
    total = sum(sizes.values())
    deadline = run.began + timeout
    last_report = 0.0
    while True:
        tis = _task_instances(engine, run.run_id)
        mapped = [ti for ti in tis if ti["task_id"] in ROUTE_TASKS.values()]
        done = sum(ti["state"] in TERMINAL for ti in mapped)
        done_on = {
            route: sum(ti["state"] in TERMINAL for ti in mapped if ti["task_id"] == task_id)
            for route, task_id in ROUTE_TASKS.items()
        }
        everything_done = len(tis) == total + len(ROUTE_TASKS) and all(ti["state"] in TERMINAL for ti in tis)
        planners_failed = any(ti["state"] in TERMINAL - {"success"} for ti in tis if ti not in mapped)
        if everything_done or planners_failed:
            return run
        now = time.monotonic()
        for disruption in run.disruptions:
            route = disruption.route
            reached = (done_on[route] >= disruption.at * sizes[route]) if route else done >= disruption.at * total
            if disruption.done_after is None and reached:
                progress = ", ".join(f"{route} {done_on[route]}/{sizes[route]}" for route in ROUTE_TASKS)
                print(f"  {now - run.began:7.1f} s  {done}/{total} done ({progress}): {disruption.what}", flush=True)
                disruption.action()
                disruption.done_after = time.monotonic() - run.began
        if now - last_report >= 30:
            states = Counter(str(ti["state"]) for ti in mapped)
            print(f"  {now - run.began:7.1f} s  {done}/{total} done  {dict(sorted(states.items()))}", flush=True)
            last_report = now
        if now > deadline:
            print(f"  timed out after {timeout:g} s", flush=True)
            return run
        for name in ("scheduler", "celery-worker", "api-server"):
            if not stack.processes[name].is_running():
                exit = f"airflow {name} exited with {stack.processes[name].exit_code()}"
                run.exits.append(f"{exit} at {now - run.began:.0f} s")
                print(f"  {exit}; restarting it", flush=True)
                stack.restart(name)
        time.sleep(2)


def _force_410(kube: LocalKubeAPI) -> None:
    kube.faults.add("watch", "pods", watch_expired=True, times=1)


# --- the figures --------------------------------------------------------------------------------


def _phases(pods: list[dict[str, Any]]) -> str:
    phases = Counter(str((pod.get("status") or {}).get("phase")) for pod in pods)
    return f"{len(pods)} " + (f"({', '.join(f'{n} {phase}' for phase, n in sorted(phases.items()))})" if pods else "")


def _owners(pods: list[dict[str, Any]]) -> str:
    owners = Counter(str((pod["metadata"].get("labels") or {}).get(LABEL_SCHEDULER_JOB)) for pod in pods)
    return ", ".join(f"job {job}: {n}" for job, n in sorted(owners.items())) or "-"


def _declared_dead(stack: SoakStack) -> int:
    """How often a scheduler marked scheduler jobs failed for a stale heartbeat (its own log line)."""
    log = (stack.logs / "scheduler.log").read_text(errors="replace")
    return sum(int(n) for n in re.findall(r"Marked (\d+) SchedulerJob instances as failed", log))


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _settle(kube: LocalKubeAPI, seconds: float) -> float:
    """Wait (at most ``seconds``) for the worker pods to be deleted; how long it took."""
    began = time.monotonic()
    while kube.pods(WORKER_NAMESPACE) and time.monotonic() - began < seconds:
        time.sleep(2)
    return time.monotonic() - began


def _report(
    stack: SoakStack, engine: sqlalchemy.Engine, run: Run, sizes: dict[str, int], wall: float, settled: float
) -> bool:
    assert stack.kube is not None
    tis = _task_instances(engine, run.run_id)
    mapped = [ti for ti in tis if ti["task_id"] in ROUTE_TASKS.values()]
    total = sum(sizes.values())
    terminal = [ti for ti in mapped if ti["state"] in TERMINAL]
    failed = [ti for ti in tis if ti["state"] in TERMINAL - {"success"}]
    reasons = _failure_reasons(engine, run.run_id, failed)
    unexplained = [ti for ti in failed if f"{ti['task_id']}[{ti['map_index']}]" not in reasons]
    lost = (total - len(terminal)) + len(unexplained)

    per_queueing: Counter[tuple[str, ...]] = Counter()
    queueings_per_try: dict[tuple[str, ...], set[str]] = {}
    for metadata in stack.pods_created:
        notes = metadata.get("annotations") or {}
        attempt = tuple(str(notes.get(k, "")) for k in ("dag_id", "run_id", "task_id", "map_index", "try_number"))
        queueing = str(notes.get("hybrid-executor/external-executor-id", ""))
        per_queueing[(*attempt, queueing)] += 1
        queueings_per_try.setdefault(attempt, set()).add(queueing)
    duplicates = sum(count - 1 for count in per_queueing.values())
    requeued = sum(len(queueings) > 1 for queueings in queueings_per_try.values())
    deletes = stack.kube.delete_requests()
    left = stack.kube.pods(WORKER_NAMESPACE)

    rows: list[tuple[str, str]] = [
        ("tasks (kubernetes + celery)", f"{total} ({sizes['kubernetes']} + {sizes['celery']})"),
        ("tasks terminal", f"{len(terminal)}"),
        ("  of them success", f"{sum(ti['state'] == 'success' for ti in terminal)}"),
        ("tasks lost (must be 0)", f"{lost}"),
        ("tasks failed", f"{len(failed)}"),
        ("task tries > 1", f"{sum((ti['try_number'] or 0) > 1 for ti in mapped)}"),
        ("pods created", f"{len(stack.pods_created)}"),
        ("duplicate pods (must be 0)", f"{duplicates}"),
        ("tries with pods of more than one queueing", f"{requeued}"),
        ("max delete calls per pod", f"{max(deletes.values(), default=0)}"),
        (
            "pods never asked to be deleted",
            f"{sum(1 for m in stack.pods_created if (m['namespace'], m['name']) not in deletes)}",
        ),
        (f"pods left {settled:.0f} s after the end, by phase", _phases(left)),
        ("  their scheduler jobs (label)", _owners(left)),
        ("wall time", f"{wall:.0f} s"),
    ]
    for route, task_id in ROUTE_TASKS.items():
        waits = [
            (ti["start_date"] - ti["queued_dttm"]).total_seconds()
            for ti in mapped
            if ti["task_id"] == task_id and ti["start_date"] and ti["queued_dttm"]
        ]
        rows.append(
            (
                f"queued-to-running {route} p50 / p99",
                f"{_percentile(waits, 0.5):.1f} s / {_percentile(waits, 0.99):.1f} s",
            )
        )
    requests = stack.kube.requests()
    rows.append(("pod creates asked (all answers)", f"{requests[('create', 'pods')]}"))
    rule_hits = {name: rule.hits for name, rule in stack.faults.items()}
    rule_hits["watch 410 Expired"] = sum(rule.hits for rule in stack.kube.faults.rules if rule.watch_expired)
    rows += [(f"faults served: {name}", f"{hits}") for name, hits in rule_hits.items()]
    rows.append(("scheduler jobs declared dead (by any scheduler)", f"{_declared_dead(stack)}"))
    rows += [("unplanned", exit) for exit in run.exits]
    happened = sorted(run.disruptions, key=lambda d: float("inf") if d.done_after is None else d.done_after)
    rows += [(f"at {d.done_after:.0f} s" if d.done_after is not None else "never", d.what) for d in happened]

    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    for ti in failed:
        label = f"{ti['task_id']}[{ti['map_index']}]"
        print(f"failed: {label} ({ti['state']}, try {ti['try_number']}): {reasons.get(label, 'no reason recorded')}")
    for ti in mapped:
        if ti["state"] not in TERMINAL:
            print(f"not terminal: {ti['task_id']}[{ti['map_index']}] is {ti['state']}")
    return lost == 0 and duplicates == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=None, help=f"mapped tasks in all (default {FULL_SIZE})")
    parser.add_argument("--scale", type=float, default=1.0, help=f"tasks as a share of {FULL_SIZE} (default 1)")
    parser.add_argument("--timeout", type=float, default=7200, help="seconds to wait for every task (default 7200)")
    parser.add_argument("--seed", type=int, default=7, help="the faults' random seed (default 7)")
    parser.add_argument("--keep", type=Path, default=None, help="put the stack (logs) in DIR and keep it")
    args = parser.parse_args(argv)
    tasks = args.tasks if args.tasks is not None else round(FULL_SIZE * args.scale)
    if tasks < 10:
        parser.error(f"--tasks must be at least 10, got {tasks}")
    sizes = {"kubernetes": round(tasks * KUBERNETES_SHARE), "celery": tasks - round(tasks * KUBERNETES_SHARE)}
    # The kubelet runs each pod's `python` from PATH: this interpreter's, as an image would hold it.
    bin_dir = str(Path(sys.executable).parent)
    os.environ["PATH"] = os.pathsep.join([bin_dir, *os.environ.get("PATH", "").split(os.pathsep)])

    folder = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="soak-"))
    routes = f"{sizes['kubernetes']} Kubernetes + {sizes['celery']} Celery tasks"
    print(f"fault soak: {routes}, {os.cpu_count()} cores, in {folder}", flush=True)
    stack = SoakStack(folder, seed=args.seed, settings=_settings())
    engine: sqlalchemy.Engine | None = None
    ok = False
    try:
        stack.start()
        assert stack.kube is not None
        assert stack.postgres is not None
        engine = sqlalchemy.create_engine(stack.postgres.url)
        run = _drive(stack, engine, sizes, args.timeout)
        wall = time.monotonic() - run.began
        settled = _settle(stack.kube, SETTLE_SECONDS)
        ok = _report(stack, engine, run, sizes, wall, settled)
    finally:
        if engine is not None:
            engine.dispose()
        stack.stop()
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

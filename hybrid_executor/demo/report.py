"""Following a DAG run while it runs, and the table of where each task instance ran.

Where a task ran is read from two witnesses: Airflow's record of the task instance (its
``hostname``: the Celery worker's host, or the pod's name) and the Kubernetes API's record of the
pods this executor made (their annotations name the task instance and try). A task instance
whose try has a pod ran on the Kubernetes route; any other ran on a Celery worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from hybrid_executor.demo.airflow_api import AirflowApi, AirflowApiError

FINISHED_RUN_STATES = ("success", "failed")
_DONE = ("success", "failed", "skipped", "upstream_failed", "removed")
_MANAGED_BY = ("app.kubernetes.io/managed-by", "hybrid-executor")

TryKey = tuple[str, int, int]  # task_id, map_index, try_number


@dataclass(frozen=True)
class TaskRow:
    task_id: str
    map_index: int
    try_number: int
    queue: str
    route: str  # "kubernetes" or "celery" (or "-" for a task that never ran)
    where: str  # "pod NAMESPACE/NAME" or "worker HOSTNAME"
    state: str
    duration_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def pods_of_run(core_api: Any, dag_id: str, run_id: str) -> dict[TryKey, tuple[str, str]]:
    """(task_id, map_index, try_number) -> (namespace, pod name), for every pod of this run in any namespace."""
    found: dict[TryKey, tuple[str, str]] = {}
    pods = core_api.list_pod_for_all_namespaces(label_selector="=".join(_MANAGED_BY)).items
    for pod in pods:
        notes = pod.metadata.annotations or {}
        if notes.get("dag_id") != dag_id or notes.get("run_id") != run_id:
            continue
        try:
            key = (notes["task_id"], int(notes.get("map_index", -1)), int(notes["try_number"]))
        except (KeyError, ValueError):
            continue
        found[key] = (pod.metadata.namespace, pod.metadata.name)
    return found


def rows(task_instances: Iterable[dict[str, Any]], pods: dict[TryKey, tuple[str, str]]) -> list[TaskRow]:
    table = []
    for ti in sorted(task_instances, key=lambda ti: (ti.get("start_date") or "~", ti["task_id"], ti["map_index"])):
        key = (ti["task_id"], int(ti["map_index"]), int(ti["try_number"]))
        if key in pods:
            namespace, name = pods[key]
            route, where = "kubernetes", f"pod {namespace}/{name}"
        elif ti.get("hostname"):
            route, where = "celery", f"worker {ti['hostname']}"
        else:
            route, where = "-", "-"
        table.append(
            TaskRow(
                task_id=ti["task_id"],
                map_index=int(ti["map_index"]),
                try_number=int(ti["try_number"]),
                queue=ti.get("queue") or "",
                route=route,
                where=where,
                state=ti.get("state") or "none",
                duration_s=ti.get("duration"),
            )
        )
    return table


def format_table(table: list[TaskRow]) -> str:
    header = ("TASK", "TRY", "QUEUE", "RAN ON", "WHERE", "STATE", "DURATION")
    lines = [header]
    for row in table:
        name = row.task_id if row.map_index < 0 else f"{row.task_id}[{row.map_index}]"
        duration = "-" if row.duration_s is None else f"{row.duration_s:.1f} s"
        lines.append((name, str(row.try_number), row.queue, row.route, row.where, row.state, duration))
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def _name(ti: dict[str, Any]) -> str:
    return ti["task_id"] if ti["map_index"] < 0 else f"{ti['task_id']}[{ti['map_index']}]"


def progress_line(task_instances: Iterable[dict[str, Any]], already_done: Collection[str] = ()) -> str:
    """One line: how many are done, which just finished (not in ``already_done``) and how, which are
    queued and which running."""
    groups: dict[str, list[str]] = {"just done": [], "queued": [], "running": []}
    done = total = 0
    for ti in task_instances:
        total += 1
        name, state = _name(ti), ti.get("state") or "none"
        if state in _DONE:
            done += 1
            if name not in already_done:
                groups["just done"].append(f"{name} ({state})")
        elif state in ("queued", "scheduled"):
            groups["queued"].append(name)
        elif state in ("running", "up_for_retry", "restarting", "deferred"):
            groups["running"].append(name if state == "running" else f"{name} ({state})")
    parts = [f"done {done}/{total}"]
    parts += [f"{label}: {', '.join(sorted(names))}" for label, names in groups.items() if names]
    return " | ".join(parts)


def done_names(task_instances: Iterable[dict[str, Any]]) -> set[str]:
    return {_name(ti) for ti in task_instances if (ti.get("state") or "none") in _DONE}


def follow_run(
    api: AirflowApi, dag_id: str, run_id: str, say: Callable[[str], None], *, timeout: float, poll: float = 1.0
) -> dict[str, Any]:
    """Poll the run until it finishes, saying each change of its tasks' states; returns the final run."""
    began = time.monotonic()
    last = ""
    done: set[str] = set()
    while True:
        run = api.dag_run(dag_id, run_id)
        task_instances = api.task_instances(dag_id, run_id)
        line = progress_line(task_instances, done)
        done = done_names(task_instances)
        if line != last:
            say(f"  {time.monotonic() - began:5.0f} s  {line}")
            last = line
        if run["state"] in FINISHED_RUN_STATES:
            return run
        if time.monotonic() - began > timeout:
            raise AirflowApiError(f"the run {run_id} of {dag_id} did not finish within {timeout:g} s (--timeout)")
        time.sleep(poll)

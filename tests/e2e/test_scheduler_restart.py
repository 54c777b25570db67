"""A scheduler killed with SIGKILL mid-run, then started again: its successor adopts both kinds of task.

The stack is the demo's (real Airflow, Celery, PostgreSQL, Redis, the local Kubernetes API), used
as a library so the test can kill the scheduler's whole process group while two Celery tasks and
two pods run. Each execution of a task try leaves a marker file; the Kubernetes API keeps every
pod. After the restart the run must still succeed, every try must have run exactly once, and every
Kubernetes task try must have had exactly one pod.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from demo_command import E2E_DAGS

from hybrid_executor.demo.processes import processes_using
from hybrid_executor.demo.report import follow_run
from hybrid_executor.demo.stack import DemoStack
from hybrid_executor.kubernetes.pods import LABEL_SCHEDULER_JOB

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(900)]

DAG_ID = "survives_scheduler_kill"
SLEEPERS = {"celery_sleeper_a", "celery_sleeper_b", "pod_sleeper_a", "pod_sleeper_b"}
ALL_TASKS = SLEEPERS | {"celery_after", "pod_after"}
POD_TASKS = {"pod_sleeper_a", "pod_sleeper_b", "pod_after"}


def _wait(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        time.sleep(0.5)


def _pod_owners(core: Any) -> set[str]:
    """The scheduler jobs that own the pods (one label on each pod)."""
    pods = core.list_pod_for_all_namespaces(label_selector="app.kubernetes.io/managed-by").items
    return {pod.metadata.labels[LABEL_SCHEDULER_JOB] for pod in pods}


def test_a_run_survives_its_scheduler_being_killed(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    stack = DemoStack(
        tmp_path / "stack",
        E2E_DAGS,
        # A killed scheduler counts as dead after 12 s without a heartbeat (sent every 2 s); its
        # tasks are then adopted at the next orphan check (every 3 s).
        settings={
            "scheduler": {
                "scheduler_heartbeat_sec": "2",
                "scheduler_health_check_threshold": "12",
                "orphaned_tasks_check_interval": "3",
            }
        },
    )
    try:
        stack.start()
        api = stack.api()
        api.wait_for_dag(DAG_ID, timeout=120)
        api.unpause(DAG_ID)
        run_id = api.trigger(DAG_ID, {"marker_dir": str(markers)})

        def sleepers_running() -> bool:
            started = {path.name.split(".")[0] for path in markers.iterdir() if path.name != "release"}
            states = {ti["task_id"]: ti["state"] for ti in api.task_instances(DAG_ID, run_id)}
            return started >= SLEEPERS and all(states.get(task) == "running" for task in SLEEPERS)

        _wait(sleepers_running, "the four sleepers running", timeout=180)
        core = stack.kubernetes()
        first_owner = _pod_owners(core)
        scheduler = stack.processes["scheduler"]
        scheduler.signal_group(signal.SIGKILL)
        assert scheduler.wait(30) == -signal.SIGKILL
        stack.restart("scheduler")

        # The sleepers run on until the new scheduler has adopted them: Celery's by their task ids
        # (its own log line), the pods by relabelling them as its own.
        def adopted() -> bool:
            log = (stack.logs / "scheduler.log").read_text().split("Loaded executor")[-1]
            owners = _pod_owners(core)
            return "Adopted the following 2 tasks from a dead executor" in log and owners.isdisjoint(first_owner)

        _wait(adopted, "the restarted scheduler to adopt both kinds of task", timeout=180)
        states = {ti["task_id"]: ti["state"] for ti in api.task_instances(DAG_ID, run_id)}
        assert all(states[task] == "running" for task in SLEEPERS), states
        (markers / "release").touch()

        final = follow_run(api, DAG_ID, run_id, print, timeout=300)
        tis = {ti["task_id"]: ti for ti in api.task_instances(DAG_ID, run_id)}
        assert final["state"] == "success", json.dumps(tis, indent=1)
        assert {task: ti["state"] for task, ti in tis.items()} == dict.fromkeys(ALL_TASKS, "success")
        assert {task: ti["try_number"] for task, ti in tis.items()} == dict.fromkeys(ALL_TASKS, 1)

        executions = Counter(path.name.rsplit(".", 1)[0] for path in markers.iterdir() if path.name != "release")
        assert executions == Counter({f"{task}.-1.1": 1 for task in ALL_TASKS}), "a task try ran twice or never"

        pods = stack.kubernetes().list_pod_for_all_namespaces(label_selector="app.kubernetes.io/managed-by").items
        per_try = Counter(
            (pod.metadata.annotations["task_id"], pod.metadata.annotations["try_number"])
            for pod in pods
            if pod.metadata.annotations.get("run_id") == run_id
        )
        assert per_try == Counter({(task, "1"): 1 for task in POD_TASKS})

        jobs = {pod.metadata.annotations["task_id"]: pod.metadata.labels[LABEL_SCHEDULER_JOB] for pod in pods}
        assert jobs["pod_sleeper_a"] == jobs["pod_sleeper_b"] == jobs["pod_after"]  # the new scheduler's
    finally:
        stack.stop()
    assert processes_using(stack.folder) == []

"""The README's main command, end to end: a real Airflow 3 stack runs DAGs on Celery and in pods.

Each test starts ``python -m hybrid_executor.demo`` as a user would, and reads what it prints, the
report it writes, and Airflow's own REST API; nothing of the stack is faked but the cluster, which
is the local Kubernetes API whose kubelet runs pods as processes.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from demo_command import E2E_DAGS, DemoCommand

from hybrid_executor.demo.airflow_api import AirflowApi
from hybrid_executor.demo.processes import processes_using
from hybrid_executor.demo.stack import ADMIN_USER, AIRFLOW_PROCESSES

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(900)]

EXAMPLE_TASKS = {
    ("extract", -1),
    ("transform_in_pod", -1),
    ("load", -1),
    *((f"per_number.{name}", index) for name in ("double", "square_in_pod") for index in range(3)),
    ("summarize", -1),
    ("check_pod_override", -1),
    ("flaky_in_pod", -1),
}


def _expected_route(queue: str) -> str:
    return "kubernetes" if queue == "kubernetes" else "celery"


def test_the_demo_runs_the_example_dag_on_both_routes(run_demo: Callable[..., DemoCommand], tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    began = time.monotonic()
    demo = run_demo("--report-json", report_path)
    code = demo.wait(600)
    print(f"demo: {time.monotonic() - began:.0f} s from the command to its exit")

    assert code == 0, demo.output[-6000:]
    report = json.loads(report_path.read_text())
    assert report["state"] == "success"
    tasks = {(task["task_id"], task["map_index"]): task for task in report["tasks"]}
    assert set(tasks) == EXAMPLE_TASKS
    for task in tasks.values():
        assert task["state"] == "success", task
        assert task["route"] == _expected_route(task["queue"]), task
        where = "pod airflow-workers/" if task["route"] == "kubernetes" else "worker "
        assert task["where"].startswith(where), task
    assert {tasks[("per_number.double", i)]["route"] for i in range(3)} == {"celery"}
    assert {tasks[("per_number.square_in_pod", i)]["route"] for i in range(3)} == {"kubernetes"}
    assert tasks[("flaky_in_pod", -1)]["try_number"] == 2
    assert len({task["where"] for task in tasks.values() if task["route"] == "kubernetes"}) == 6  # a pod each

    # The table a user reads: a header, then one line per task instance with its place and state.
    assert re.search(r"^TASK +TRY +QUEUE +RAN ON +WHERE +STATE +DURATION$", demo.output, re.MULTILINE)
    assert re.search(r"^flaky_in_pod +2 +kubernetes +kubernetes +pod airflow-workers/\S+ +success", demo.output, re.M)
    assert re.search(r"^extract +1 +default +celery +worker \S+ +success", demo.output, re.MULTILINE)
    # Progress was shown while waiting (a task may go from queued to running between two polls,
    # so only "running", which lasts seconds for a pod, is sure to be seen).
    assert "running: " in demo.output
    assert "done 12/12" in demo.output

    logs = demo.folder.resolve() / "logs"
    assert f"Logs (one file per process): {logs}" in demo.lines[-1]
    for name in AIRFLOW_PROCESSES:
        assert (logs / f"{name}.log").stat().st_size > 0, name
    assert "outlived the shutdown" not in demo.output
    assert processes_using(demo.folder) == []


def _iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_an_invalid_pod_override_fails_its_task_fast_with_the_apis_message(
    run_demo: Callable[..., DemoCommand], tmp_path: Path
) -> None:
    report_path = tmp_path / "report.json"
    demo = run_demo(
        "--dags-folder", E2E_DAGS, "--dag-id", "bad_pod_override", "--keep-running", "--report-json", report_path
    )
    ui_line = demo.wait_for_line(lambda line: "Airflow UI:" in line, timeout=600)
    report = json.loads(report_path.read_text())
    assert report["state"] == "failed"
    states = {task["task_id"]: task["state"] for task in report["tasks"]}
    assert states == {"on_celery": "success", "in_pod_with_bad_override": "failed"}

    url = re.search(r"Airflow UI: (\S+)", ui_line)
    assert url is not None
    passwords = json.loads((demo.folder / "airflow-home" / "simple_auth_manager_passwords.json").read_text())
    api = AirflowApi(url.group(1), ADMIN_USER, passwords[ADMIN_USER])
    (bad,) = [ti for ti in api.task_instances("bad_pod_override", report["run_id"]) if ti["task_id"].startswith("in_")]
    assert bad["state"] == "failed"
    failed_after = (_iso(bad["end_date"]) - _iso(bad["queued_when"])).total_seconds()
    assert failed_after < 30, f"failed {failed_after:.0f} s after being queued: that is not fast"

    # The executor's own entry (BaseExecutor.log_task_event, saved by the scheduler), not Airflow's
    # "state mismatch ... Extra info" one that quotes the failure too.
    events = api.event_logs("bad_pod_override", report["run_id"], "in_pod_with_bad_override")
    api_message = 'spec.containers[1].name: Invalid value: "Sidecar": a lowercase RFC 1123 label must consist of'
    ours = [event for event in events if event["event"] == "pod creation failed"]
    assert len(ours) == 1, [(event["event"], event["extra"]) for event in events]
    (entry,) = ours
    assert entry["task_id"] == "in_pod_with_bad_override"
    assert entry["try_number"] == bad["try_number"]
    assert api_message in (entry["extra"] or ""), entry
    assert not any("eyJ" in (event["extra"] or "") for event in events), "a workload token reached the event log"

    demo.interrupt()
    assert demo.wait(120) == 1  # Ctrl-C ends --keep-running; the exit code is still the run's
    assert "outlived the shutdown" not in demo.output
    assert processes_using(demo.folder) == []


def test_ctrl_c_during_a_run_stops_everything(run_demo: Callable[..., DemoCommand], tmp_path: Path) -> None:
    conf = json.dumps({"marker_dir": str(tmp_path)})
    demo = run_demo("--dags-folder", E2E_DAGS, "--dag-id", "survives_scheduler_kill", "--conf", conf)
    demo.wait_for_line(lambda line: "running: " in line and "pod_sleeper" in line, timeout=600)
    demo.interrupt()
    assert demo.wait(120) == 130
    assert "Interrupted: stopping the stack." in demo.output
    assert "outlived the shutdown" not in demo.output
    assert processes_using(demo.folder) == []


def test_a_dag_file_that_does_not_import_stops_the_demo_with_its_error(
    run_demo: Callable[..., DemoCommand], tmp_path: Path
) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "broken.py").write_text(
        "from airflow.sdk import dag\n\nraise ValueError('no such table: mistyped_config')\n"
    )
    demo = run_demo("--dags-folder", dags, "--dag-id", "broken")
    assert demo.wait(300) == 1
    assert "error: the DAGs folder has import errors:" in demo.output
    assert "no such table: mistyped_config" in demo.output
    assert "outlived the shutdown" not in demo.output
    assert processes_using(demo.folder) == []

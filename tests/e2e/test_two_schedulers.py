"""Two schedulers on one metadata database, each with its own HybridExecutor; one is killed mid-run.

A run of 200 trivial tasks (100 on the Kubernetes queue, 100 on Celery) is shared by both
schedulers; Airflow locks the task instances it queues (SELECT ... FOR UPDATE SKIP LOCKED), so each
try is queued by one of them only. Once both have run tasks of both routes, the test parks the
tasks then starting (a ``hold`` file the DAG's tasks wait on), SIGKILLs the first scheduler's
process group while it has tasks of both routes running, and waits for the survivor to adopt them:
the Celery tasks by their ids, the pods by relabelling them as its own. Then it lets the tasks end.

Every task must succeed, every task try must have run exactly once, and every Kubernetes try that
ran must have had exactly one pod (a watch of the test's own sees pods that were deleted, too),
Celery tasks none. Only a try the killed scheduler had queued but not yet handed to a worker or a
pod may be reset (Airflow's rule: there is nothing to adopt); such a try never ran, and the task's
next try did, once. A task that was running when the scheduler died keeps its try number.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from demo_command import E2E_DAGS
from pods_seen import PodsSeen

from hybrid_executor.demo.processes import processes_using
from hybrid_executor.demo.report import follow_run
from hybrid_executor.demo.stack import WORKER_NAMESPACE, DemoStack
from hybrid_executor.kubernetes.pods import ANNOTATION_EXTERNAL_EXECUTOR_ID, LABEL_SCHEDULER_JOB

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(1800)]

DAG_ID = "two_schedulers"
TASKS = 100  # on each route, as in the DAG
POD_TASK, CELERY_TASK = "in_a_pod", "on_celery"
PARALLELISM = 8  # per scheduler: pods are host processes here, each an Airflow task runner
CELERY_CONCURRENCY = 6
ORPHANS_TAKEN = r"Adopted the following \d+ tasks|Adopted \d+ pods|Reset the following \d+ orphaned"
HEALTH_CHECK_THRESHOLD = 30  # seconds without a heartbeat before the other scheduler takes one for dead
DONE_BEFORE_HOLD = 20  # tasks that end, shared by both schedulers, before the test parks the rest
HELD_PER_ROUTE = 2  # tasks of each route the killed scheduler must have running when it dies


@dataclass(frozen=True)
class TaskRow:
    task_id: str
    map_index: int
    state: str | None
    try_number: int
    queued_by_job_id: int | None
    external_executor_id: str | None
    hostname: str | None


class Database:
    """Airflow's rows, read from its metadata database: the REST API does not say who queued a task."""

    def __init__(self, url: str) -> None:
        self._engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)

    def _rows(self, query: str, **params: Any) -> list[Any]:
        with self._engine.connect() as connection:
            return list(connection.execute(sqlalchemy.text(query), params))

    def task_instances(self, run_id: str) -> dict[tuple[str, int], TaskRow]:
        rows = self._rows(
            "SELECT task_id, map_index, state, try_number, queued_by_job_id, external_executor_id, hostname"
            " FROM task_instance WHERE dag_id = :dag_id AND run_id = :run_id",
            dag_id=DAG_ID,
            run_id=run_id,
        )
        return {(row.task_id, row.map_index): TaskRow(*row) for row in rows}

    def earlier_tries(self, run_id: str) -> list[tuple[str, int, int, int | None, str | None]]:
        """(task, map index, try, queued by, state) of each try that was not the last (a reset leaves one)."""
        rows = self._rows(
            "SELECT task_id, map_index, try_number, queued_by_job_id, state FROM task_instance_history"
            " WHERE dag_id = :dag_id AND run_id = :run_id",
            dag_id=DAG_ID,
            run_id=run_id,
        )
        return [tuple(row) for row in rows]

    def job_state(self, job_id: int) -> str:
        return str(self._rows("SELECT state FROM job WHERE id = :id", id=job_id)[0].state)

    def close(self) -> None:
        self._engine.dispose()


def _wait(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        time.sleep(0.5)


def _job_of(log: Path) -> int | None:
    """The scheduler job a scheduler runs as: its pod watcher logs the selector, which names it."""
    found = re.search(r"pod watcher \S+: started \(selector '[^']*scheduler-job=(\d+)[,']", log.read_text())
    return int(found.group(1)) if found else None


def _executions(markers: Path) -> Counter[tuple[str, int, int]]:
    """How often each (task, map index, try) ran: one marker file per execution."""
    runs: Counter[tuple[str, int, int]] = Counter()
    for path in markers.iterdir():
        if path.name != "hold":
            task_id, map_index, try_number, _pid = path.name.split(".")
            runs[(task_id, int(map_index), int(try_number))] += 1
    return runs


def _pod_owners(core: Any, run_id: str) -> dict[tuple[int, int], str]:
    """The scheduler job labelled on each pod of the run, by (map index, try)."""
    pods = core.list_namespaced_pod(WORKER_NAMESPACE).items
    return {
        (int(pod.metadata.annotations["map_index"]), int(pod.metadata.annotations["try_number"])): (
            pod.metadata.labels[LABEL_SCHEDULER_JOB]
        )
        for pod in pods
        if pod.metadata.annotations.get("run_id") == run_id
    }


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[DemoStack]:
    stack = DemoStack(
        tmp_path / "stack",
        E2E_DAGS,
        schedulers=2,
        celery_concurrency=CELERY_CONCURRENCY,
        settings={
            "core": {"parallelism": str(PARALLELISM)},
            # A killed scheduler counts as dead 30 s after its last heartbeat (every 2 s): a live
            # one's loop was seen to stall 20 s on a loaded 2-core machine, and the other then
            # takes it for dead. The orphan check runs every 3 s.
            "scheduler": {
                "scheduler_heartbeat_sec": "2",
                "scheduler_health_check_threshold": str(HEALTH_CHECK_THRESHOLD),
                "orphaned_tasks_check_interval": "3",
            },
        },
    )
    try:
        yield stack
    finally:
        stack.stop()
    assert processes_using(stack.folder) == []


def test_two_schedulers_share_a_run_and_the_survivor_adopts_the_killed_ones_tasks(
    stack: DemoStack, tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    began = time.monotonic()
    stack.start()
    db = Database(stack.postgres.url if stack.postgres else "")
    api = stack.api()
    core = stack.kubernetes()
    seen = PodsSeen(core, WORKER_NAMESPACE)
    victim, survivor = stack.processes["scheduler"], stack.processes["scheduler-2"]
    _wait(lambda: None not in (_job_of(victim.log_path), _job_of(survivor.log_path)), "both schedulers' jobs", 120)
    victim_job, survivor_job = _job_of(victim.log_path), _job_of(survivor.log_path)
    assert victim_job != survivor_job
    api.wait_for_dag(DAG_ID, timeout=120)
    run_id = api.trigger(DAG_ID, {"marker_dir": str(markers)})
    started = time.monotonic()

    # Both schedulers take a share of each route.
    def shared() -> bool:
        done = [ti for ti in db.task_instances(run_id).values() if ti.state == "success"]
        shares = Counter((ti.task_id, ti.queued_by_job_id) for ti in done)
        return len(done) >= DONE_BEFORE_HOLD and all(
            shares[(task, job)] for task in (POD_TASK, CELERY_TASK) for job in (victim_job, survivor_job)
        )

    _wait(shared, "both schedulers running tasks of both routes", timeout=300)
    (markers / "hold").touch()

    def victim_holds_both_routes() -> bool:
        ran = _executions(markers)
        tis = db.task_instances(run_id).values()
        held = Counter(
            ti.task_id
            for ti in tis
            if ti.state == "running" and ti.queued_by_job_id == victim_job and ran[(ti.task_id, ti.map_index, 1)]
        )
        return held[POD_TASK] >= HELD_PER_ROUTE and held[CELERY_TASK] >= HELD_PER_ROUTE

    _wait(victim_holds_both_routes, "the first scheduler's tasks running on both routes", timeout=180)
    # A live scheduler taken for dead before it queued anything costs nothing; with tasks, the
    # other adopts or resets them, and the test's account of who ran what no longer holds.
    premature = [p.name for p in (victim, survivor) if re.search(ORPHANS_TAKEN, p.log_path.read_text())]
    assert not premature, (
        f"{premature} took the other, live scheduler's tasks (no heartbeat for {HEALTH_CHECK_THRESHOLD} s): "
        "the machine is too loaded for this test's [scheduler] scheduler_health_check_threshold"
    )
    victim.signal_group(signal.SIGKILL)
    assert victim.wait(30) == -signal.SIGKILL
    killed_at = time.monotonic()
    at_kill = db.task_instances(run_id)
    running_under_victim = {
        key: ti for key, ti in at_kill.items() if ti.state == "running" and ti.queued_by_job_id == victim_job
    }
    pods_under_victim = {key for key in running_under_victim if key[0] == POD_TASK}

    # The survivor takes the killed job for dead and adopts (or, with nothing to adopt, resets) its tasks.
    def orphans_handled() -> bool:
        tis = db.task_instances(run_id).values()
        return db.job_state(victim_job) == "failed" and not any(
            ti.queued_by_job_id == victim_job and ti.state in ("queued", "running") for ti in tis
        )

    _wait(orphans_handled, "the survivor to adopt the killed scheduler's tasks", timeout=120)
    adopted_at = time.monotonic()
    after = db.task_instances(run_id)
    for key, ti in running_under_victim.items():  # still held: adopted, not reset and run again
        assert (after[key].state, after[key].try_number, after[key].queued_by_job_id) == (
            "running",
            ti.try_number,
            survivor_job,
        ), key
    owners = _pod_owners(core, run_id)
    for key in pods_under_victim:  # relabelled as the survivor's, so its watch follows them
        assert owners[(key[1], running_under_victim[key].try_number)] == str(survivor_job), key
    survivor_log = survivor.log_path.read_text()
    assert f"pods from scheduler job {victim_job}" in survivor_log
    assert "from a dead executor" in survivor_log  # Celery's adoption
    (markers / "hold").unlink()

    final = follow_run(api, DAG_ID, run_id, print, timeout=1200)
    finished = time.monotonic()
    tis = db.task_instances(run_id)
    assert final["state"] == "success", json.dumps([str(ti) for ti in tis.values() if ti.state != "success"])
    assert len(tis) == 2 * TASKS
    assert {ti.state for ti in tis.values()} == {"success"}

    # Every task ran once: its last try, exactly once; an earlier try only if it was reset unrun.
    runs = _executions(markers)
    assert set(runs.values()) == {1}, [key for key, count in runs.items() if count > 1]
    assert set(runs) == {(task, map_index, ti.try_number) for (task, map_index), ti in tis.items()}
    reset = [(task, map_index, number, by) for task, map_index, number, by, _ in db.earlier_tries(run_id)]
    for task, map_index, number, by in reset:
        assert by == victim_job, (task, map_index, number, by)  # only the killed scheduler's tries
        assert (task, map_index, number) not in runs, (task, map_index, number)  # and only tries that never ran
    reset_keys = {(task, map_index) for task, map_index, _, _ in reset}
    assert {key: ti.try_number for key, ti in tis.items() if key not in reset_keys} == dict.fromkeys(
        set(tis) - reset_keys, 1
    )

    # Each Kubernetes try that ran had exactly one pod, and Celery tasks none.
    pods = [pod for pod in seen.pods() if pod.annotations.get("run_id") == run_id]
    seen.stop()
    per_try = Counter(
        (pod.annotations["task_id"], int(pod.annotations["map_index"]), int(pod.annotations["try_number"]))
        for pod in pods
    )
    assert per_try == Counter({key: 1 for key in runs if key[0] == POD_TASK})
    pod_names = {pod.name for pod in pods}
    by_try = {(int(pod.annotations["map_index"]), int(pod.annotations["try_number"])): pod for pod in pods}
    for (task, map_index), ti in tis.items():
        if task == POD_TASK:
            pod = by_try[(map_index, ti.try_number)]
            assert ti.hostname == pod.name  # it ran in its own pod
            assert ti.external_executor_id == pod.annotations[ANNOTATION_EXTERNAL_EXECUTOR_ID]
        else:
            assert ti.hostname not in pod_names  # on the Celery worker

    # The Celery worker received each Celery task's id (the queueing's external_executor_id) once, and no pod task's.
    received = Counter(
        re.findall(
            r"Task execute_workload\[([0-9a-f-]+)\] received", stack.logs.joinpath("celery-worker.log").read_text()
        )
    )
    celery_ids = {ti.external_executor_id for (task, _), ti in tis.items() if task == CELERY_TASK}
    assert {task_id: received[task_id] for task_id in celery_ids} == dict.fromkeys(celery_ids, 1)
    assert not set(received) & {ti.external_executor_id for (task, _), ti in tis.items() if task == POD_TASK}

    print(
        f"stack up in {started - began:.0f} s; the run took {finished - started:.0f} s; the survivor adopted "
        f"{len(running_under_victim)} running tasks ({len(pods_under_victim)} pods) "
        f"{adopted_at - killed_at:.0f} s after the kill; {len(reset_keys)} tries reset unrun"
    )
    db.close()

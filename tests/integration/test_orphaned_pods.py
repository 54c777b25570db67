"""Nothing leaks: the pods of dead schedulers that adoption never sees, and the pods adoption cannot take.

Scheduler jobs are rows of the real Job table, task instances rows of the real task_instance
table; pods run on the local API's kubelet. A scheduler "dies" as in the adoption tests: its
threads stop and it never syncs again; its Job row says whether the others take it for dead.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from kube_driving import KubeRoute, QueuedTask, cleanup_passes, cleanup_passes_done, heartbeat_until, queue_all

from hybrid_executor.kubernetes.pods import LABEL_DEPLOYMENT, LABEL_SCHEDULER_JOB

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_faults_left")]

FINISHED = ("Succeeded", "Failed")


def scheduler_job(*, alive: bool) -> int:
    """A SchedulerJob row: RUNNING with a fresh heartbeat, or RUNNING with one older than any threshold."""
    from airflow.jobs.job import Job, JobState
    from airflow.utils.session import create_session

    with create_session() as session:
        job = Job()
        job.job_type = "SchedulerJob"
        job.state = JobState.RUNNING
        job.latest_heartbeat = datetime.now(timezone.utc) - (timedelta() if alive else timedelta(hours=2))
        session.add(job)
        session.flush()
        return int(job.id)


def die(job_id: int) -> None:
    """The job's heartbeat stops: it is older than the health check threshold."""
    from airflow.jobs.job import Job
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        stale = datetime.now(timezone.utc) - timedelta(hours=2)
        session.execute(update(Job).where(Job.id == job_id).values(latest_heartbeat=stale))


def set_task_instance(queued: QueuedTask, **values: Any) -> None:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        session.execute(update(TaskInstance).where(TaskInstance.id == queued.ti.id).values(**values))


def run_until(executors: list[Any], kube: KubeRoute, wanted: dict[str, tuple[str, ...]]) -> None:
    """Heartbeat ``executors`` until each pod named in ``wanted`` is in one of its phases."""
    heartbeat_until(
        executors,
        lambda: all(kube.phases().get(name) in allowed for name, allowed in wanted.items()),
        timeout=60,
        what=f"pods in {wanted}",
    )


def test_pods_of_dead_schedulers_whose_tries_ended_are_deleted_by_policy_and_no_others(kube: KubeRoute) -> None:
    from airflow.utils.state import TaskInstanceState

    dead_job, live_job = scheduler_job(alive=False), scheduler_job(alive=True)
    # Every scheduler below keeps its finished pods, so that they are there for the cleanup to judge.
    dead = kube.start(job_id=dead_job, delete_worker_pods="False", deployment_id="")
    tasks = kube.queue_by_task_id(dead, ["ok", "fails", "ok_b", "sleep_30", "sleep_1"])
    live = kube.start(job_id=live_job, delete_worker_pods="False", deployment_id="")
    [live_task] = kube.queue(live, ["ok"])
    # Another deployment (another database) whose job has the dead one's number.
    other = kube.start(job_id=dead_job, delete_worker_pods="False", deployment_id="theirs")
    [other_task] = kube.queue(other, ["ok"])
    queue_all(dead, list(tasks.values()))
    queue_all(live, [live_task])
    queue_all(other, [other_task])
    run_until(
        [dead, live, other],
        kube,
        {
            **{tasks[name].pod_name: FINISHED for name in ("ok", "fails", "ok_b", "sleep_1")},
            tasks["sleep_30"].pod_name: ("Running",),
            live_task.pod_name: FINISHED,
            other_task.pod_name: FINISHED,
        },
    )
    kube.kill(dead)
    kube.kill(other)

    # What the database says once they are gone: most tries ended; "ok_b" is still running (adoption's);
    # "sleep_30" was queued again (its queueing is over while its pod runs).
    for queued in (tasks["ok"], tasks["sleep_1"], live_task, other_task):
        set_task_instance(queued, state=TaskInstanceState.SUCCESS)
    set_task_instance(tasks["fails"], state=TaskInstanceState.FAILED)
    set_task_instance(tasks["ok_b"], state=TaskInstanceState.RUNNING)
    set_task_instance(tasks["sleep_30"], external_executor_id=str(uuid.uuid4()))
    # A pod made by an older version carries no deployment label.
    unlabelled = tasks["sleep_1"].pod_name
    kube.core().patch_namespaced_pod(unlabelled, kube.namespace, {"metadata": {"labels": {LABEL_DEPLOYMENT: None}}})

    kube.configure("scheduler", "orphaned_tasks_check_interval", "1")
    cleaner = kube.start(job_id=scheduler_job(alive=True), delete_worker_pods="True", deployment_id="")
    cleanup_passes(cleaner)
    gone = {tasks["ok"].pod_name, tasks["sleep_30"].pod_name}
    heartbeat_until(cleaner, lambda: not gone & set(kube.phases()), what=f"{gone} deleted")
    cleanup_passes(cleaner, cleanup_passes_done(cleaner) + 2)  # and nothing more on later passes

    left = {
        tasks["fails"].pod_name,  # failed: delete_worker_pods_on_failure is False
        tasks["ok_b"].pod_name,  # its task instance is running: adoption's
        unlabelled,
        live_task.pod_name,  # a live scheduler's
        other_task.pod_name,  # another deployment's
    }
    assert set(kube.phases()) == left
    assert {name: kube.history.removed[name] for name in gone} == dict.fromkeys(gone, 1)

    # The live scheduler dies: a later pass takes its finished pod too.
    die(live_job)
    kube.kill(live)
    heartbeat_until(cleaner, lambda: live_task.pod_name not in kube.phases(), what="the dead scheduler's pod deleted")
    assert set(kube.phases()) == left - {live_task.pod_name}


def test_a_cleanup_that_keeps_finished_pods_keeps_them_and_an_api_outage_waits_for_the_next_pass(
    kube: KubeRoute,
) -> None:
    from airflow.utils.state import TaskInstanceState

    dead = kube.start(job_id=scheduler_job(alive=False), delete_worker_pods="False", deployment_id="")
    tasks = kube.queue_by_task_id(dead, ["ok", "sleep_30"])
    queue_all(dead, list(tasks.values()))
    run_until([dead], kube, {tasks["ok"].pod_name: ("Succeeded",), tasks["sleep_30"].pod_name: ("Running",)})
    kube.kill(dead)
    set_task_instance(tasks["ok"], state=TaskInstanceState.SUCCESS)
    set_task_instance(tasks["sleep_30"], external_executor_id=str(uuid.uuid4()))

    outage = kube.pod_fault("list", status=500)
    kube.configure("scheduler", "orphaned_tasks_check_interval", "1")
    keeper = kube.start(job_id=scheduler_job(alive=True), delete_worker_pods="False", deployment_id="")
    cleanup_passes(keeper, 2)
    assert outage.hits >= 2  # each pass asked, none raised, and the scheduler goes on
    assert set(kube.phases()) == {tasks["ok"].pod_name, tasks["sleep_30"].pod_name}

    kube.api.faults.remove(outage)
    # The running pod of a queueing that is over goes whatever the policy; the finished one stays.
    heartbeat_until(keeper, lambda: set(kube.phases()) == {tasks["ok"].pod_name}, what="the running pod deleted")
    cleanup_passes(keeper, cleanup_passes_done(keeper) + 2)
    assert set(kube.phases()) == {tasks["ok"].pod_name}


@pytest.mark.parametrize("fault", ["refused", "applied, answer lost"])
def test_a_pod_adoption_cannot_relabel_is_deleted_so_no_second_copy_runs(
    kube: KubeRoute,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fault: str,
) -> None:
    # The scheduler resets a task instance that is not adopted and starts a new try: the old pod
    # must not run on beside it, under a dead scheduler's label that no watch follows (or under
    # the adopter's, when a relabel was applied but every answer was lost).
    monkeypatch.setattr("hybrid_executor.kubernetes.adoption.RETRY_BUDGET", 2.0)
    dead = kube.start(job_id=scheduler_job(alive=False), delete_worker_pods="False", deployment_id="")
    [task] = kube.launch(dead, ["sleep_30"])
    run_until([dead], kube, {task.pod_name: ("Running",)})
    kube.kill(dead)
    adopter_job = scheduler_job(alive=True)
    adopter = kube.start(job_id=adopter_job, delete_worker_pods="False", deployment_id="")
    cleanup_passes(adopter)
    assert task.pod_name in kube.phases()  # the cleanup at start leaves an adoptable task's pod alone
    if fault == "applied, answer lost":
        kube.pod_fault("patch", reset_after_apply=True, times=1)
    refused = kube.pod_fault("patch", status=500)

    with caplog.at_level(logging.WARNING, logger="hybrid_executor.kubernetes.adoption"):
        assert adopter.try_adopt_task_instances([task.ti]) == [task.ti]

    assert refused.hits >= 2  # retried first
    if fault == "applied, answer lost":
        labels = kube.api.pod(kube.namespace, task.pod_name)["metadata"]["labels"]
        assert labels[LABEL_SCHEDULER_JOB] == str(adopter_job)
    heartbeat_until(adopter, lambda: task.pod_name not in kube.phases(), what="the pod deleted")
    assert kube.history.removed[task.pod_name] == 1
    [warning] = [r.getMessage() for r in caplog.records if "Could not adopt pod" in r.getMessage()]
    assert f"{kube.namespace}/{task.pod_name}" in warning
    assert "deleting it" in warning

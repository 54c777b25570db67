"""One pod per queueing: a task that comes back with the same try, and two deployments in one namespace.

Airflow 3 queues the same task instance key (the same try number) again in normal operation: a
deferred task resuming, each poke of a reschedule-mode sensor, the scheduler's stuck-in-queued
requeue and a revoke followed by a requeue. Each time, the scheduler draws a new
``external_executor_id`` for the task instance (the router pre-assigns them). These tests queue
the same key again the way the scheduler does (a new id, the same try) and check, on the local
API's own record of every pod it ever stored, that each queueing gets a pod of its own and that a
pod's outcome is reported only for the queueing that made it.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from kube_driving import (
    KubeRoute,
    QueuedTask,
    cleanup_passes,
    cleanup_passes_done,
    heartbeat_until,
    queue_all,
    queue_and_wait_for_final,
    wait_for_final,
    wait_for_final_of,
)

from hybrid_executor.kubernetes.pods import LABEL_DEPLOYMENT, LABEL_SCHEDULER_JOB, pod_name_for

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_faults_left")]


def queued_again(queued: Any, *, stored: bool = True) -> Any:
    """The same task try queued once more, as the scheduler queues it: a new external_executor_id,
    stored on the task instance (a launch that is retried checks it there); ``stored=False``: the
    queueing of another deployment, whose database is not this one."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import update

    workload = queued.workload.model_copy(deep=True)
    workload.ti.external_executor_id = str(uuid.uuid4())
    if not stored:
        return QueuedTask(queued.ti, workload)
    with create_session() as session:
        session.execute(
            update(TaskInstance)
            .where(TaskInstance.id == queued.ti.id)
            .values(external_executor_id=workload.ti.external_executor_id)
        )
    return QueuedTask(queued.ti, workload)


def final_events(executor: Any, seconds: float) -> dict[Any, Any]:
    """Heartbeat for ``seconds``; every event the executor reported meanwhile."""
    seen: dict[Any, Any] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        executor.heartbeat()
        seen.update(executor.get_event_buffer())
        time.sleep(0.05)
    return seen


@pytest.mark.parametrize("delete_worker_pods", ["False", "True"])
def test_a_task_queued_again_with_the_same_try_gets_a_pod_of_its_own(kube: KubeRoute, delete_worker_pods: str) -> None:
    # A reschedule-mode sensor's pokes: each poke's pod ends (exit 0), then the task is queued again.
    from airflow.utils.state import TaskInstanceState

    executor = kube.start(delete_worker_pods=delete_worker_pods)
    [first] = kube.launch(executor, ["ok"])
    assert wait_for_final(executor, {first.key})[first.key].state == TaskInstanceState.SUCCESS

    pokes = [queued_again(first), queued_again(first)]
    for poke in pokes:
        queue_all(executor, [poke])
        final = wait_for_final(executor, {poke.key})[poke.key]
        assert (final.state, final.info) == (TaskInstanceState.SUCCESS, f"{kube.namespace}/{poke.pod_name}")

    names = [first.pod_name, *(poke.pod_name for poke in pokes)]
    assert len(set(names)) == 3
    assert {name: kube.history.creations(name) for name in names} == dict.fromkeys(names, 1)
    left = set() if delete_worker_pods == "True" else set(names)
    heartbeat_until(executor, lambda: set(kube.phases()) == left, what=f"pods {left} left")


def test_an_older_queueings_pod_never_reports_for_the_new_one(kube: KubeRoute) -> None:
    # A deferred task resumes while the pod that deferred it is still on its way out.
    from airflow.utils.state import TaskInstanceState

    executor = kube.start()
    [deferred] = kube.launch(executor, ["sleep_3"])
    kube.wait_for_phase(executor, deferred.pod_name, "Running")

    blocked = kube.pod_fault("create", status=503)  # the new pod waits
    resumed = queued_again(deferred)
    queue_all(executor, [resumed])
    heartbeat_until(executor, lambda: blocked.hits >= 1, what="the resumed task's create")
    early = final_events(executor, 0)
    kube.wait_for_phase(executor, deferred.pod_name, "Succeeded", timeout=15)
    early.update(final_events(executor, 1.0))
    assert early == {}  # the old pod's success is not the resumed task's

    kube.api.faults.remove(blocked)
    final = wait_for_final_of(executor, resumed)
    assert (final.state, final.info) == (TaskInstanceState.SUCCESS, f"{kube.namespace}/{resumed.pod_name}")
    assert kube.history.creations(resumed.pod_name) == 1


def test_a_revoked_task_queued_again_gets_a_new_pod_and_the_old_ones_end_is_not_reported(kube: KubeRoute) -> None:
    # What the scheduler's stuck-in-queued handling does: revoke_task, then queue the task again.
    from airflow.utils.state import TaskInstanceState

    executor = kube.start()
    [stuck] = kube.launch(executor, ["sleep_3"])
    kube.wait_for_phase(executor, stuck.pod_name, "Running")

    executor.revoke_task(ti=stuck.ti)
    requeued = queued_again(stuck)
    final = queue_and_wait_for_final(executor, [requeued])[requeued.key]

    assert (final.state, final.info) == (TaskInstanceState.SUCCESS, f"{kube.namespace}/{requeued.pod_name}")
    assert kube.history.removed[stuck.pod_name] == 1  # the revoked pod was deleted, its end never reported
    assert kube.history.creations(requeued.pod_name) == 1
    assert final_events(executor, 1.0) == {}


def test_a_task_revoked_while_its_create_is_retried_and_queued_again_gets_one_pod(kube: KubeRoute) -> None:
    from airflow.utils.state import TaskInstanceState

    executor = kube.start()
    [stuck] = kube.queue(executor, ["ok"])
    refused = kube.pod_fault("create", status=503, retry_after=1)
    queue_all(executor, [stuck])
    heartbeat_until(executor, lambda: refused.hits >= 1, what="the first create")

    executor.revoke_task(ti=stuck.ti)
    requeued = queued_again(stuck)
    queue_all(executor, [requeued])
    kube.api.faults.remove(refused)
    final = wait_for_final_of(executor, requeued)

    assert (final.state, final.info) == (TaskInstanceState.SUCCESS, f"{kube.namespace}/{requeued.pod_name}")
    assert kube.history.creations(stuck.pod_name) == 0
    assert kube.history.creations(requeued.pod_name) == 1


def test_a_create_stored_with_its_answer_lost_never_makes_a_second_pod(kube: KubeRoute) -> None:
    # The first POST is stored but its answer lost; the retries are refused while the pod runs,
    # ends and is deleted. A retry after that must not store a second pod of the same name.
    from airflow.utils.state import TaskInstanceState

    executor = kube.start(delete_worker_pods="True")
    [task] = kube.queue(executor, ["ok"])
    lost = kube.pod_fault("create", reset_after_apply=True, times=1)
    refused = kube.pod_fault("create", status=503, retry_after=1)

    final = queue_and_wait_for_final(executor, [task])[task.key]
    heartbeat_until(executor, lambda: task.pod_name not in kube.phases(), what="the pod's deletion")
    kube.api.faults.remove(refused)
    later = final_events(executor, 3.0)  # longer than the launcher's next retry would wait

    assert final.state == TaskInstanceState.SUCCESS
    assert lost.hits == 1
    assert kube.history.creations(task.pod_name) == 1
    assert kube.phases() == {}
    assert later == {}
    assert executor.kubernetes_executor._launcher.pending() == 0


def test_two_deployments_sharing_a_namespace_never_touch_each_others_pods(kube: KubeRoute) -> None:
    # Two metadata databases number their scheduler jobs alike, and run the same DAGs with the same
    # run ids (scheduled runs): the same task keys, the same job id; only their queueings' ids differ,
    # and their deployment labels (here one database plays both, so "theirs" is given an id of its own).
    from airflow.utils.state import TaskInstanceState

    ours = kube.start(job_id=7, delete_worker_pods="True", deployment_id="")
    theirs = kube.start(job_id=7, delete_worker_pods="False", deployment_id="theirs")
    [task] = kube.queue(ours, ["sleep_3"])
    ours_task, theirs_task = task, queued_again(task, stored=False)
    assert ours_task.pod_name != theirs_task.pod_name

    queue_all(ours, [ours_task])
    queue_all(theirs, [theirs_task])
    heartbeat_until(
        [ours, theirs],
        lambda: {kube.phases().get(n) for n in (ours_task.pod_name, theirs_task.pod_name)} == {"Running"},
        what="both pods to run",
    )
    # Our scheduler dies; its successor adopts our task, and must take our pod, not theirs; nor may its
    # cleanup of dead schedulers' pods take theirs (job 7 is no live job of our database).
    kube.kill(ours)
    kube.configure("scheduler", "orphaned_tasks_check_interval", "1")
    successor = kube.start(job_id=8, delete_worker_pods="True", deployment_id="")
    assert successor.try_adopt_task_instances([ours_task.ti]) == []
    labels = kube.labels()
    assert labels[ours_task.pod_name][LABEL_SCHEDULER_JOB] == "8"
    assert labels[theirs_task.pod_name][LABEL_SCHEDULER_JOB] == "7"

    mine = wait_for_final_of(successor, task)
    other = wait_for_final_of(theirs, task)

    assert (mine.state, mine.info) == (TaskInstanceState.SUCCESS, f"{kube.namespace}/{ours_task.pod_name}")
    assert (other.state, other.info) == (TaskInstanceState.SUCCESS, f"{kube.namespace}/{theirs_task.pod_name}")
    assert kube.history.creations(ours_task.pod_name) == kube.history.creations(theirs_task.pod_name) == 1
    # Ours deletes its finished pods, theirs keeps them: each policy applied to its own pod only.
    heartbeat_until(
        [successor, theirs],
        lambda: set(kube.phases()) == {theirs_task.pod_name},
        what="only their pod to be left",
    )
    cleanup_passes(successor, cleanup_passes_done(successor) + 2)
    assert set(kube.phases()) == {theirs_task.pod_name}
    assert kube.history.removed[theirs_task.pod_name] == 0
    assert kube.api.pod(kube.namespace, theirs_task.pod_name)["metadata"]["labels"][LABEL_DEPLOYMENT] == "theirs"


def test_a_workload_without_a_queueing_id_gets_one_that_the_scheduler_is_told(kube: KubeRoute) -> None:
    # An Airflow that does not pre-assign external_executor_id: the executor draws the id, names the
    # pod from it, and reports it as the QUEUED event's info, which the scheduler stores on the task
    # instance (process_executor_events), so adoption can match the pod later.
    from airflow.utils.state import TaskInstanceState

    executor = kube.start()
    [task] = kube.queue(executor, ["ok"])
    task.workload.ti.external_executor_id = None

    queue_all(executor, [task])
    executor.heartbeat()  # hands the workload to the pod executor
    state, drawn = executor.get_event_buffer()[task.key]
    final = wait_for_final(executor, {task.key})[task.key]

    assert state == TaskInstanceState.QUEUED
    assert str(uuid.UUID(drawn)) == drawn
    assert final.state == TaskInstanceState.SUCCESS
    [pod] = [p for p in kube.api.pods(kube.namespace) if p["metadata"]["annotations"]["task_id"] == "ok"]
    assert pod["metadata"]["annotations"]["hybrid-executor/external-executor-id"] == drawn
    assert pod["metadata"]["name"] == pod_name_for(task.key, drawn)

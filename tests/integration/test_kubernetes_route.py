"""The Kubernetes route under a misbehaving API: HybridExecutor driven as the scheduler drives it.

Every test queues real task instances (a DAG run of the metadata DB) through ``queue_workload``,
then heartbeats and reads ``get_event_buffer`` until each task has its final state, while the local
Kubernetes API answers with errors, throttles, fills its quota, drops or compacts its watches, or
its kubelet fails to pull images. "Exactly one pod per task try" is checked on the server's own
record of every pod it ever created (a store listener), not on what is left at the end.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kube_driving import (
    MANY,
    KubeRoute,
    assert_one_pod_each,
    cleanup_passes,
    event_log,
    events_over_heartbeats,
    heartbeat_times,
    heartbeat_until,
    launch_then_die,
    queue_all,
    queue_and_wait_for_final,
    states_by_task_id,
    wait_for_final,
    wait_for_final_of,
)

from hybrid_executor.kubernetes.pods import LABEL_SCHEDULER_JOB
from hybrid_executor.testing.kube import LocalKubeAPI

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_faults_left")]


# --- 1. retryable create errors recover --------------------------------------------------------


def test_503s_then_every_task_runs_in_exactly_one_pod(kube: KubeRoute) -> None:
    from airflow.utils.state import TaskInstanceState

    executor = kube.start()
    tasks = kube.queue(executor, ["ok", "ok_b"])
    rule = kube.pod_fault("create", status=503, times=3)
    creates = kube.requests("create")

    events = queue_and_wait_for_final(executor, tasks)

    assert {key: final.state for key, final in events.items()} == dict.fromkeys(events, TaskInstanceState.SUCCESS)
    assert rule.hits == 3
    assert kube.requests("create") - creates == len(tasks) + 3  # each 503 retried once, no more
    assert_one_pod_each(kube.history, tasks)


def test_429_with_retry_after_is_waited_out_then_every_task_runs_once(kube: KubeRoute) -> None:
    from airflow.utils.state import TaskInstanceState

    executor = kube.start()
    tasks = kube.queue(executor, ["ok", "ok_b", "fails"])
    rule = kube.pod_fault("create", status=429, retry_after=1, times=2)
    creates = kube.requests("create")

    events = queue_and_wait_for_final(executor, tasks)

    assert states_by_task_id(events) == {
        "ok": TaskInstanceState.SUCCESS,
        "ok_b": TaskInstanceState.SUCCESS,
        "fails": TaskInstanceState.FAILED,
    }
    assert rule.hits == 2
    # The throttled creates were not repeated before their Retry-After (1 s) was over.
    assert max(final.seconds for final in events.values()) >= 1.0
    assert kube.requests("create") - creates == len(tasks) + 2
    assert_one_pod_each(kube.history, tasks)


def test_a_full_quota_is_retried_until_running_pods_free_it(kube: KubeRoute) -> None:
    from airflow.utils.state import TaskInstanceState

    core = kube.core()
    core.create_namespaced_resource_quota(
        kube.namespace, {"metadata": {"name": "two-pods"}, "spec": {"hard": {"pods": "2"}}}
    )
    for number in range(2):
        container = {"name": "filler", "image": "busybox:1", "command": ["sleep", "300"]}
        core.create_namespaced_pod(
            kube.namespace,
            {"metadata": {"name": f"filler-{number}"}, "spec": {"restartPolicy": "Never", "containers": [container]}},
        )
    heartbeat_until(
        None, lambda: sorted(kube.phases().values()) == ["Running", "Running"], what="the filler pods to run"
    )
    executor = kube.start()
    tasks = kube.queue(executor, ["ok"])
    creates = kube.requests("create")

    queue_all(executor, tasks)
    # Refused (403 exceeded quota) while the fillers run, created once one of them is gone.
    heartbeat_until(executor, lambda: kube.requests("create") - creates >= 2, what="a refused create")
    assert not kube.history.names() - {"filler-0", "filler-1"}
    core.delete_namespaced_pod("filler-0", kube.namespace, grace_period_seconds=0)
    events = wait_for_final(executor, {t.key for t in tasks}, timeout=60)

    assert events[tasks[0].key].state == TaskInstanceState.SUCCESS
    assert_one_pod_each(kube.history, tasks)
    assert not event_log(executor)  # a retried quota error is no failure of the task


# --- 2. watches that break lose no event ---------------------------------------------------------


def test_a_watch_dropped_again_and_again_loses_no_event(kube: KubeRoute) -> None:
    from airflow.utils.state import TaskInstanceState

    executor = kube.start()
    kube.wait_for_watcher(executor)
    # Watch requests are cut (connection reset) after two events, and some closed after a moment.
    cut = kube.pod_fault("watch", watch_close_after_events=2, reset=True, times=30)
    kube.pod_fault("watch", watch_close_after_seconds=0.3, times=3)
    kube.api.close_watches()  # the open watch came before the rules: its reconnection meets them
    tasks = kube.queue(executor, ["ok", "fails", "sleep_1", "sleep_1_fails", "oom"])

    events = queue_and_wait_for_final(executor, tasks)

    assert states_by_task_id(events) == {
        "ok": TaskInstanceState.SUCCESS,
        "fails": TaskInstanceState.FAILED,
        "sleep_1": TaskInstanceState.SUCCESS,
        "sleep_1_fails": TaskInstanceState.FAILED,
        "oom": TaskInstanceState.FAILED,
    }
    assert cut.hits >= 3  # the watch really was cut, and resumed, several times
    assert not executor.running


def test_a_forced_410_relists_and_loses_no_event(kube: KubeRoute) -> None:
    from airflow.utils.state import TaskInstanceState

    executor = kube.start()
    tasks = kube.queue_by_task_id(executor, ["sleep_1", "sleep_1_fails", "sleep_30"])
    names = {task_id: t.pod_name for task_id, t in tasks.items()}
    queue_all(executor, list(tasks.values()))
    heartbeat_until(
        executor, lambda: kube.phases() == dict.fromkeys(names.values(), "Running"), what="every pod to run"
    )
    heartbeat_times(executor, 3)  # let the executor see them running
    lists = kube.requests("list")

    # The watch goes down (as on an API server restart) and its reconnection is slow: meanwhile two
    # pods finish and one is deleted, then the history is compacted, so resuming answers 410.
    slow = kube.pod_fault("watch", latency=3.0, times=1)
    kube.api.close_watches()
    kube.core().delete_namespaced_pod(names["sleep_30"], kube.namespace, grace_period_seconds=0)
    heartbeat_until(
        executor,
        lambda: kube.phases() == {names["sleep_1"]: "Succeeded", names["sleep_1_fails"]: "Failed"},
        timeout=2.5,
        what="two pods to finish and one to go while the watch is down",
    )
    kube.api.compact()
    assert slow.hits == 1

    events = wait_for_final(executor, {t.key for t in tasks.values()})

    assert kube.requests("list") > lists  # it relisted
    assert states_by_task_id(events) == {
        "sleep_1": TaskInstanceState.SUCCESS,
        "sleep_1_fails": TaskInstanceState.FAILED,
        "sleep_30": TaskInstanceState.FAILED,
    }
    logs = event_log(executor)
    assert "exit code 5" in logs["sleep_1_fails"]
    assert "deleted" in logs["sleep_30"]


# --- 3. adoption --------------------------------------------------------------------------------


def test_a_new_scheduler_adopts_running_and_finished_pods_of_a_dead_one(kube: KubeRoute) -> None:
    from airflow.utils.state import TaskInstanceState

    # A scheduler that stays alive (job 3) runs a task of its own meanwhile.
    alive = kube.start(job_id=3)
    alive_tasks = kube.launch(alive, ["sleep_3"])
    alive_pod = alive_tasks[0].pod_name

    # The scheduler that dies (job 1) launches two long pods and a quick one...
    dead = kube.start(job_id=1)
    tasks = kube.queue_by_task_id(dead, ["sleep_3", "sleep_3_b", "ok", "fails"])
    launched = [tasks["sleep_3"], tasks["sleep_3_b"], tasks["ok"]]
    queue_all(dead, launched)
    names = {t.pod_name for t in launched}
    heartbeat_until(
        [dead, alive],
        lambda: names <= kube.history.names() and alive_pod in kube.history.names(),
        what="every pod to be created",
    )
    # ... and dies: its threads stop, it never syncs again, never ends; the quick pod finishes after.
    kube.kill(dead)
    kube.wait_for_phase(alive, tasks["ok"].pod_name, "Succeeded")
    assert kube.phases()[tasks["sleep_3"].pod_name] == "Running"

    adopter = kube.start(job_id=2)
    kube.wait_for_watcher(adopter)
    cleanup_passes(adopter)  # its LIST at start is not adoption's
    lists, patches = kube.requests("list"), kube.requests("patch")
    tis = [t.ti for t in tasks.values()]  # "fails" was never launched: it has no pod

    not_adopted = adopter.try_adopt_task_instances(tis)

    assert [ti.task_id for ti in not_adopted] == ["fails"]
    assert kube.requests("list") - lists == 1  # one paginated list for the namespace
    assert kube.requests("patch") - patches == len(launched)
    labels = kube.labels()
    for queued in launched:
        assert labels[queued.pod_name][LABEL_SCHEDULER_JOB] == "2"
    assert labels[alive_pod][LABEL_SCHEDULER_JOB] == "3"  # the live scheduler's pod is left alone

    events = wait_for_final(adopter, {t.key for t in launched})

    assert states_by_task_id(events) == {
        "sleep_3": TaskInstanceState.SUCCESS,
        "sleep_3_b": TaskInstanceState.SUCCESS,
        "ok": TaskInstanceState.SUCCESS,
    }
    assert not adopter.running
    # The live scheduler still owns and reports its own task.
    alive_events = wait_for_final(alive, {alive_tasks[0].key})
    assert alive_events[alive_tasks[0].key].state == TaskInstanceState.SUCCESS
    assert kube.api.pod(kube.namespace, alive_pod)["metadata"]["labels"][LABEL_SCHEDULER_JOB] == "3"
    assert_one_pod_each(kube.history, [*launched, *alive_tasks])


def test_adoption_retries_a_failed_list_and_relabel(kube: KubeRoute) -> None:
    from airflow.utils.state import TaskInstanceState

    tasks = kube.launched_by_a_dead_scheduler(11, ["sleep_3", "sleep_3_b"])
    adopter = kube.start(job_id=12)

    # One failed LIST and one reset PATCH are retried, and both pods are adopted.
    kube.pod_fault("list", status=500, times=1)
    reset = kube.pod_fault("patch", reset=True, times=1)
    assert adopter.try_adopt_task_instances([t.ti for t in tasks]) == []
    assert reset.hits == 1
    labels = kube.labels()
    assert {labels[t.pod_name][LABEL_SCHEDULER_JOB] for t in tasks} == {"12"}
    events = wait_for_final(adopter, {t.key for t in tasks})
    assert {final.state for final in events.values()} == {TaskInstanceState.SUCCESS}


def test_an_api_outage_during_adoption_keeps_the_tasks_and_adopts_them_once_the_api_answers(kube: KubeRoute) -> None:
    from airflow.utils.state import TaskInstanceState

    dead = kube.start(job_id=13)
    tasks = kube.queue_by_task_id(dead, ["sleep_3", "ok", "fails"])
    launched = [tasks["sleep_3"], tasks["ok"]]  # "fails" is never launched: it has no pod
    launch_then_die(kube.executors, dead, launched, kube.history)
    adopter = kube.start(job_id=14)
    adopter.kubernetes_executor._pending_adoptions._interval = 0.5
    outage = kube.pod_fault("list", status=500)

    # Nothing raises (Airflow's scheduler would exit), and nothing is answered "not adopted": the
    # scheduler would reset the tasks and start second tries beside pods that may still run.
    began = time.monotonic()
    assert adopter.try_adopt_task_instances([t.ti for t in tasks.values()]) == []
    assert outage.hits > 1  # retried before deferring
    assert time.monotonic() - began < 30
    assert {t.key for t in tasks.values()} <= adopter.running
    heartbeat_until(adopter, lambda: outage.hits > 3, what="the listing to be tried again")

    kube.api.faults.remove(outage)
    events = wait_for_final(adopter, {t.key for t in tasks.values()})

    assert events[tasks["sleep_3"].key].state == TaskInstanceState.SUCCESS
    assert events[tasks["ok"].key].state == TaskInstanceState.SUCCESS
    assert events[tasks["fails"].key].state == TaskInstanceState.FAILED
    assert "no pod of this task was found" in str(events[tasks["fails"].key].info)
    labels = kube.labels()
    assert {labels[t.pod_name][LABEL_SCHEDULER_JOB] for t in launched} == {"14"}
    assert not adopter.running
    assert_one_pod_each(kube.history, launched)


def test_a_pod_that_finished_before_a_delayed_readoption_is_still_reported(kube: KubeRoute) -> None:
    # The listing after an outage runs on a thread; the relabel puts the pod in this scheduler's
    # watch, whose event may come before the thread hands its result over (a thread that lost the
    # GIL for a moment). A finished pod sends no later event: the state the relabel answered with
    # must be enough to report it.
    from airflow.utils.state import TaskInstanceState

    [task] = kube.launched_by_a_dead_scheduler(15, ["ok"])
    heartbeat_until([], lambda: kube.phases().get(task.pod_name) == "Succeeded", what="the pod to end")
    adopter = kube.start(job_id=16)
    pending = adopter.kubernetes_executor._pending_adoptions
    pending._interval = 0.2
    adopt = pending._adopt

    def adopt_then_pause(tis: Any) -> Any:
        outcome = adopt(tis)
        time.sleep(2)  # the watch's ADDED of the relabelled pod is handled meanwhile
        return outcome

    pending._adopt = adopt_then_pause
    outage = kube.pod_fault("list", status=500)
    assert adopter.try_adopt_task_instances([task.ti]) == []
    kube.api.faults.remove(outage)

    final = wait_for_final_of(adopter, task)

    assert final.state == TaskInstanceState.SUCCESS
    assert not adopter.running


def test_a_pod_that_a_readoption_cannot_relabel_fails_its_task_saying_so(
    kube: KubeRoute, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found once the API answers, but refused the relabel: the pod is deleted (no watch would follow
    # it) and the task fails; the message must say that, not that no pod was found.
    from airflow.utils.state import TaskInstanceState

    monkeypatch.setattr("hybrid_executor.kubernetes.adoption.RETRY_BUDGET", 2.0)
    [task] = kube.launched_by_a_dead_scheduler(17, ["sleep_30"])
    adopter = kube.start(job_id=18)
    adopter.kubernetes_executor._pending_adoptions._interval = 0.2
    outage = kube.pod_fault("list", status=500)
    assert adopter.try_adopt_task_instances([task.ti]) == []
    kube.api.faults.remove(outage)
    kube.pod_fault("patch", status=500)

    final = wait_for_final_of(adopter, task)

    assert final.state == TaskInstanceState.FAILED
    assert "could not be relabelled" in str(final.info)
    assert "no pod of this task was found" not in str(final.info)
    heartbeat_until(adopter, lambda: task.pod_name not in kube.phases(), what="the pod deleted")


def test_a_scheduler_asked_to_adopt_its_own_running_tasks_keeps_them(kube: KubeRoute) -> None:
    # A scheduler whose heartbeat came late marks its own job failed, then offers its own tasks for
    # adoption; resetting them would start a second pod for a try whose pod still runs.
    from airflow.utils.state import TaskInstanceState

    scheduler = kube.start(job_id=7)
    queued = kube.launch(scheduler, ["sleep_3"])
    heartbeat_until(scheduler, lambda: queued[0].pod_name in kube.history.names(), what="the pod")
    cleanup_passes(scheduler)
    lists, patches = kube.requests("list"), kube.requests("patch")

    assert scheduler.try_adopt_task_instances([t.ti for t in queued]) == []

    assert (kube.requests("list"), kube.requests("patch")) == (lists, patches)
    events = wait_for_final(scheduler, {queued[0].key})
    assert events[queued[0].key].state == TaskInstanceState.SUCCESS
    assert_one_pod_each(kube.history, queued)


def test_a_live_scheduler_whose_pod_another_adopts_lets_it_go_without_a_report(kube: KubeRoute) -> None:
    # Two schedulers: the other took this one for dead (its heartbeat came late on a loaded machine)
    # and adopted its pod, relabelling it. This one's watch sees the pod leave its selector: a
    # DELETED event without deletionTimestamp. The pod was not deleted, and its task is the other's
    # now: reporting it failed ("deleted while its task was running") would be false.
    from airflow.utils.state import TaskInstanceState

    late = kube.start(job_id=31)
    queued = kube.launch(late, ["sleep_3"])
    key, name = queued[0].key, queued[0].pod_name
    kube.wait_for_phase(late, name, "Running", what="the pod to run")
    other = kube.start(job_id=32)
    kube.wait_for_watcher(other)

    assert other.try_adopt_task_instances([queued[0].ti]) == []

    reported: dict[Any, Any] = {}

    def let_go() -> bool:
        reported.update(late.get_event_buffer())
        return key not in late.running

    heartbeat_until(late, let_go, what="the late scheduler to let the adopted task go")
    events = wait_for_final(other, {key})
    # The late one's watch has long seen the pod finish: nothing more comes.
    reported.update(events_over_heartbeats(late, 5, pause=0.05))
    assert reported == {}
    assert event_log(late) == {}
    assert events[key].state == TaskInstanceState.SUCCESS
    assert kube.api.pod(kube.namespace, name)["metadata"]["labels"][LABEL_SCHEDULER_JOB] == "32"
    assert_one_pod_each(kube.history, queued)


# --- 4. revoke ----------------------------------------------------------------------------------


def test_a_task_revoked_while_its_create_is_retried_never_gets_a_pod(kube: KubeRoute) -> None:
    from airflow.utils.state import TaskInstanceState

    executor = kube.start()
    revoked, kept = kube.queue(executor, ["ok", "ok_b"])
    # Retry-After 3 s: the revoke lands while the launcher waits for its next attempt. Without it, a
    # backoff drawn near 0 s could put an attempt on the wire as the test revokes; that pod is a
    # stray, deleted when its create answers, but it would be created.
    rule = kube.pod_fault("create", status=503, retry_after=3)
    queue_all(executor, [revoked])
    heartbeat_until(executor, lambda: rule.hits >= 2, what="the create to be retried")

    executor.revoke_task(ti=revoked.ti)

    assert revoked.key not in executor.running
    assert not executor.has_task(revoked.ti)
    kube.api.faults.remove(rule)
    events = queue_and_wait_for_final(executor, [kept])  # the API is fine again: another task gets its pod
    assert events[kept.key].state == TaskInstanceState.SUCCESS
    creates = kube.requests("create")
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        executor.heartbeat()
        assert revoked.key not in executor.get_event_buffer()  # revoke reports nothing
        time.sleep(0.1)
    assert kube.requests("create") == creates  # no create was still being retried
    assert kube.history.creations(revoked.pod_name) == 0
    assert revoked.pod_name not in kube.phases()


# --- 5. random faults -------------------------------------------------------------------------------


def test_under_random_faults_every_task_try_gets_exactly_one_pod(kube: KubeRoute) -> None:
    from airflow.utils.state import TaskInstanceState

    # Deleted once done, so a create retried after its lost answer could otherwise make a second pod.
    executor = kube.start(pod_creation_retry_timeout="30", pod_creation_concurrency="4", delete_worker_pods="True")
    tasks = kube.queue(executor, [f"many_{number}" for number in range(MANY)])
    lost = kube.pod_fault("create", reset_after_apply=True, probability=0.3, times=6)
    errors = kube.pod_fault("create", status=500, probability=0.3, times=12)
    resets = kube.pod_fault("create", reset=True, probability=0.1, times=4)
    kube.pod_fault("watch", watch_close_after_events=3, reset=True, probability=0.5, times=8)
    kube.pod_fault("*", latency=0.02, probability=0.5)
    kube.api.close_watches()

    events = queue_and_wait_for_final(executor, tasks, timeout=45)

    assert {key: final.state for key, final in events.items()} == dict.fromkeys(events, TaskInstanceState.SUCCESS)
    assert len(events) == MANY
    assert errors.hits + resets.hits > 0
    assert lost.hits > 0
    heartbeat_times(executor, 20)  # later retries, if any were still to come, would come now
    assert_one_pod_each(kube.history, tasks)
    assert not executor.running
    heartbeat_until(executor, lambda: kube.phases() == {}, what="every pod deleted")


# --- 6. pods that cannot start -----------------------------------------------------------------------


@pytest.fixture
def unpullable_images(kube_api: LocalKubeAPI) -> Iterator[str]:
    """Images under ``broken/`` never pull on the session's kubelet while the test runs."""
    kubelet = kube_api.server.kubelet
    assert kubelet is not None
    before = kubelet.config.image_pull_failure

    def set_pattern(pattern: str | None) -> None:
        kubelet.config.image_pull_failure = pattern

    kube_api.call(lambda: set_pattern(r"^broken/"))
    yield "broken/"
    kube_api.call(lambda: set_pattern(before))


def test_an_image_that_never_pulls_and_a_bad_name_fail_at_once_and_an_unschedulable_pod_after_the_timeout(
    kube: KubeRoute, unpullable_images: str
) -> None:
    from airflow.utils.state import TaskInstanceState

    timeout = 3.0
    executor = kube.start(worker_pods_pending_timeout=str(timeout))
    tasks = kube.queue_by_task_id(executor, ["broken_image", "invalid_image", "ok"])

    # ErrImagePull and InvalidImageName are in the stock worker_pod_pending_fatal_container_state_reasons.
    events = queue_and_wait_for_final(executor, list(tasks.values()), timeout=20)

    broken, invalid = events[tasks["broken_image"].key], events[tasks["invalid_image"].key]
    assert (broken.state, invalid.state) == (TaskInstanceState.FAILED, TaskInstanceState.FAILED)
    assert events[tasks["ok"].key].state == TaskInstanceState.SUCCESS
    assert max(broken.seconds, invalid.seconds) < timeout - 1  # not left to the timeout
    logs = event_log(executor)
    assert "ErrImagePull" in logs["broken_image"]
    assert "InvalidImageName" in logs["invalid_image"]
    assert "worker_pods_pending_timeout" not in logs["broken_image"] + logs["invalid_image"]

    # A pod no node takes waits, Unschedulable, until the pending timeout.
    kube.api.set_capacity(0)
    try:
        [waiting] = kube.queue(executor, ["sleep_1"])
        final = queue_and_wait_for_final(executor, [waiting], timeout=20)[waiting.key]
    finally:
        kube.api.set_capacity(None)
    assert final.state == TaskInstanceState.FAILED
    assert final.seconds >= timeout
    assert "[hybrid_executor] worker_pods_pending_timeout" in event_log(executor)["sleep_1"]
    assert "Unschedulable" in event_log(executor)["sleep_1"]
    # A pod given up on while Pending is deleted (it could still start and run a failed task).
    heartbeat_until(
        executor,
        lambda: set(kube.phases()) == {tasks["ok"].pod_name},
        timeout=5,
        what="the pending pods to be deleted",
    )


def test_by_default_a_pending_pod_waits_for_task_queued_timeout_and_its_revoke_says_why(kube: KubeRoute) -> None:
    # As the stock executor of Airflow 3: no pending timeout of the executor's own. A pod waiting for
    # a node (an autoscaler) is healthy until the scheduler's task_queued_timeout revokes its task.
    executor = kube.start()
    kube.api.set_capacity(0)
    try:
        [waiting] = kube.queue(executor, ["sleep_1"])
        queue_all(executor, [waiting])
        kube.wait_for_phase(executor, waiting.pod_name, "Pending", what="the pod to be created")
        time.sleep(3)
        executor.heartbeat()
        assert waiting.key not in executor.get_event_buffer()  # still waiting, not failed

        executor.revoke_task(ti=waiting.ti)  # what _handle_tasks_stuck_in_queued does
    finally:
        kube.api.set_capacity(None)
    heartbeat_until(executor, lambda: waiting.pod_name not in kube.phases(), what="the pod to go")
    assert "pod revoked while pending" in event_log(executor)[waiting.ti.task_id]
    assert "Unschedulable" in event_log(executor)[waiting.ti.task_id]


# --- 7. pods that end badly -------------------------------------------------------------------------


def test_a_pod_deleted_under_its_task_and_an_oom_kill_fail_with_a_clear_reason(kube: KubeRoute) -> None:
    from airflow.utils.state import TaskInstanceState

    executor = kube.start()
    tasks = kube.queue_by_task_id(executor, ["sleep_30", "oom"])
    queue_all(executor, list(tasks.values()))
    doomed = tasks["sleep_30"].pod_name
    kube.wait_for_phase(executor, doomed, "Running", what="the pod to run")
    heartbeat_times(executor, 3)

    kube.core().delete_namespaced_pod(doomed, kube.namespace)  # the default grace period
    events = wait_for_final(executor, {t.key for t in tasks.values()})

    assert events[tasks["sleep_30"].key].state == TaskInstanceState.FAILED
    assert events[tasks["oom"].key].state == TaskInstanceState.FAILED
    logs = event_log(executor)
    assert f"pod {kube.namespace}/{doomed} was deleted while its task was running" in logs["sleep_30"]
    assert "OOMKilled" in logs["oom"]
    assert "exit code 137" in logs["oom"]


def test_a_pod_whose_node_stops_reporting_is_said_to_be_unknown_and_followed_to_its_end(kube: KubeRoute) -> None:
    from airflow.utils.state import TaskInstanceState

    executor = kube.start(worker_pods_pending_timeout="1")
    tasks = kube.launch(executor, ["sleep_3"])
    name = tasks[0].pod_name
    kube.wait_for_phase(executor, name, "Running", what="the pod to run")

    # The node controller's word for a node that stopped reporting on its pods.
    kube.core().patch_namespaced_pod_status(name, kube.namespace, {"status": {"phase": "Unknown"}})
    heartbeat_until(executor, lambda: "sleep_3" in event_log(executor), what="the Unknown phase to be said")
    for _ in range(30):  # longer than the pending timeout: Unknown is no Pending
        executor.heartbeat()
        assert not executor.get_event_buffer(), "phase Unknown is no end of the task"
        time.sleep(0.05)

    assert event_log(executor)["sleep_3"] == (
        f"pod phase Unknown: pod {kube.namespace}/{name} is in phase Unknown: its node does not report on it"
        " (node lost?)"
    )
    events = wait_for_final(executor, {tasks[0].key})  # the node reports again: the pod ends as it does
    assert events[tasks[0].key].state == TaskInstanceState.SUCCESS


def test_no_pod_is_created_for_a_workload_whose_token_expires_before_the_pod_could_run(kube: KubeRoute) -> None:
    import jwt
    from airflow.utils.state import TaskInstanceState

    executor = kube.start()
    tasks = kube.queue_by_task_id(executor, ["ok", "ok_b"])
    # Queued long ago: its token (valid [scheduler] task_queued_timeout from queueing) is about to expire.
    stale = tasks["ok_b"].workload
    stale.token = jwt.encode({"sub": str(stale.ti.id), "exp": int(time.time()) + 20}, "not-the-real-key")

    events = queue_and_wait_for_final(executor, list(tasks.values()))

    assert events[tasks["ok"].key].state == TaskInstanceState.SUCCESS
    assert events[tasks["ok_b"].key].state == TaskInstanceState.FAILED
    assert "its workload's token expires before the pod could run the task" in event_log(executor)["ok_b"]
    assert kube.history.names() == {tasks["ok"].pod_name}


def test_a_task_marked_done_while_its_create_is_retried_never_gets_a_pod(kube: KubeRoute) -> None:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import update

    executor = kube.start()
    tasks = kube.queue(executor, ["ok"])
    outage = kube.pod_fault("create", status=503)
    queue_all(executor, tasks)
    heartbeat_until(executor, lambda: outage.hits >= 2, what="a retried create")

    # Someone marks the task success in the UI: the executor is not told.
    ti = tasks[0].ti
    with create_session() as session:
        session.execute(update(TaskInstance).where(TaskInstance.id == ti.id).values(state=TaskInstanceState.SUCCESS))
    kube.api.faults.remove(outage)
    heartbeat_until(executor, lambda: tasks[0].key not in executor.running, timeout=60, what="the task to be dropped")

    assert not kube.history.names()
    assert not executor.get_event_buffer()  # nothing to report: Airflow has moved on
    assert not executor.kubernetes_executor._table.by_name


def test_an_api_that_is_down_when_the_scheduler_starts_fails_only_its_pod_tasks(
    kube: KubeRoute, tmp_path: Path
) -> None:
    from airflow.utils.state import TaskInstanceState

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # closed once the block ends: nothing listens there
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: down\n"
        f"clusters: [{{name: down, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: down, user: {}}]\ncontexts: [{name: down, context: {cluster: down, user: down}}]\n"
    )
    kube.configure("kubernetes_executor", "config_file", str(kubeconfig))

    executor = kube.start(pod_creation_retry_timeout="2")  # raises nothing: the watchers retry

    tasks = kube.queue(executor, ["ok"])
    events = queue_and_wait_for_final(executor, tasks)
    assert events[tasks[0].key].state == TaskInstanceState.FAILED
    assert "gave up creating the pod after" in event_log(executor)["ok"]
    assert "Connection refused" in event_log(executor)["ok"]


# --- 8. cleanup policy --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delete_worker_pods", "on_failure", "kept"),
    [
        ("True", "False", {"fails"}),
        ("True", "True", set()),
        ("False", "True", {"ok", "fails"}),
    ],
)
def test_finished_pods_are_deleted_by_policy_and_at_most_once(
    kube: KubeRoute, delete_worker_pods: str, on_failure: str, kept: set[str]
) -> None:
    executor = kube.start(delete_worker_pods=delete_worker_pods, delete_worker_pods_on_failure=on_failure)
    tasks = kube.queue_by_task_id(executor, ["ok", "fails"])
    deletes = kube.requests("delete")

    queue_and_wait_for_final(executor, list(tasks.values()))
    deleted = {"ok", "fails"} - kept
    heartbeat_until(
        executor,
        lambda: set(kube.phases()) == {tasks[task_id].pod_name for task_id in kept},
        timeout=10,
        what=f"only the pods of {kept} to be left",
    )
    heartbeat_times(executor, 5)  # nothing more comes later

    assert kube.requests("delete") - deletes == len(deleted)
    assert {name: kube.history.removed[name] for name in kube.history.names()} == {
        tasks[task_id].pod_name: int(task_id in deleted) for task_id in ("ok", "fails")
    }


# --- 9. the scheduler ends a task itself ---------------------------------------------------------


def test_a_task_the_scheduler_fails_itself_loses_its_pod_and_is_forgotten(
    kube: KubeRoute, unpullable_images: str
) -> None:
    # A heartbeat timeout: change_state(FAILED); a task stuck in queued too often: fail(). Neither
    # pod may go on running a task Airflow has ended; the executor reports nothing more for them.
    from airflow.utils.state import TaskInstanceState

    # No fatal waiting reason: the unpullable image keeps its pod Pending (by default ErrImagePull fails it).
    executor = kube.start(worker_pod_pending_fatal_container_state_reasons="")
    tasks = kube.queue_by_task_id(executor, ["sleep_30", "broken_image"])
    queue_all(executor, list(tasks.values()))
    running, pending = tasks["sleep_30"], tasks["broken_image"]
    heartbeat_until(
        executor,
        lambda: kube.phases() == {running.pod_name: "Running", pending.pod_name: "Pending"},
        what="one pod running, one pending",
    )

    executor.change_state(running.key, TaskInstanceState.FAILED, remove_running=True)
    executor.fail(pending.key)
    reported = executor.get_event_buffer()
    heartbeat_until(executor, lambda: kube.phases() == {}, what="both pods deleted")
    later = events_over_heartbeats(executor, 10)

    assert {key: state for key, (state, _) in reported.items()} == {
        running.key: TaskInstanceState.FAILED,
        pending.key: TaskInstanceState.FAILED,
    }
    assert later == {}  # the pods' deletions are not reported as the tasks' ends a second time
    assert not executor.running
    assert executor.kubernetes_executor._table.by_name == {}
    assert kube.history.removed[running.pod_name] == kube.history.removed[pending.pod_name] == 1

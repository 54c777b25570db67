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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kube_driving import (
    MANY,
    Executors,
    PodHistory,
    assert_one_pod_each,
    cleanup_passes,
    event_log,
    heartbeat_until,
    launch_then_die,
    phases,
    pods_path,
    queue_all,
    requests_of,
    wait_for_final,
)

from hybrid_executor.kubernetes.pods import LABEL_SCHEDULER_JOB
from hybrid_executor.testing.kube import LocalKubeAPI

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_faults_left")]


# --- 1. retryable create errors recover --------------------------------------------------------


def test_503s_then_every_task_runs_in_exactly_one_pod(
    executors: Executors,
    kube_route: str,
    queue_run: Callable[..., list[Any]],
    kube_api: LocalKubeAPI,
    namespace: str,
    pod_history: PodHistory,
) -> None:
    from airflow.utils.state import TaskInstanceState

    executor = executors.start()
    tasks = queue_run(kube_route, executor, ["ok", "ok_b"])
    rule = kube_api.faults.add("create", "pods", pods_path(namespace), status=503, times=3)
    creates = requests_of(kube_api, "create")

    queue_all(executor, tasks)
    events = wait_for_final(executor, {t.key for t in tasks})

    assert {key: final.state for key, final in events.items()} == dict.fromkeys(events, TaskInstanceState.SUCCESS)
    assert rule.hits == 3
    assert requests_of(kube_api, "create") - creates == len(tasks) + 3  # each 503 retried once, no more
    assert_one_pod_each(pod_history, tasks)


def test_429_with_retry_after_is_waited_out_then_every_task_runs_once(
    executors: Executors,
    kube_route: str,
    queue_run: Callable[..., list[Any]],
    kube_api: LocalKubeAPI,
    namespace: str,
    pod_history: PodHistory,
) -> None:
    from airflow.utils.state import TaskInstanceState

    executor = executors.start()
    tasks = queue_run(kube_route, executor, ["ok", "ok_b", "fails"])
    rule = kube_api.faults.add("create", "pods", pods_path(namespace), status=429, retry_after=1, times=2)
    creates = requests_of(kube_api, "create")

    queue_all(executor, tasks)
    events = wait_for_final(executor, {t.key for t in tasks})

    states = {key.task_id: final.state for key, final in events.items()}
    assert states == {
        "ok": TaskInstanceState.SUCCESS,
        "ok_b": TaskInstanceState.SUCCESS,
        "fails": TaskInstanceState.FAILED,
    }
    assert rule.hits == 2
    # The throttled creates were not repeated before their Retry-After (1 s) was over.
    assert max(final.seconds for final in events.values()) >= 1.0
    assert requests_of(kube_api, "create") - creates == len(tasks) + 2
    assert_one_pod_each(pod_history, tasks)


def test_a_full_quota_is_retried_until_running_pods_free_it(
    executors: Executors,
    kube_route: str,
    queue_run: Callable[..., list[Any]],
    kube_api: LocalKubeAPI,
    namespace: str,
    pod_history: PodHistory,
) -> None:
    from airflow.utils.state import TaskInstanceState
    from kubernetes.client import CoreV1Api

    core = CoreV1Api(kube_api.api_client())
    core.create_namespaced_resource_quota(
        namespace, {"metadata": {"name": "two-pods"}, "spec": {"hard": {"pods": "2"}}}
    )
    for number in range(2):
        container = {"name": "filler", "image": "busybox:1", "command": ["sleep", "300"]}
        core.create_namespaced_pod(
            namespace,
            {"metadata": {"name": f"filler-{number}"}, "spec": {"restartPolicy": "Never", "containers": [container]}},
        )
    heartbeat_until(
        None,
        lambda: sorted(phases(kube_api, namespace).values()) == ["Running", "Running"],
        what="the filler pods to run",
    )
    executor = executors.start()
    tasks = queue_run(kube_route, executor, ["ok"])
    creates = requests_of(kube_api, "create")

    queue_all(executor, tasks)
    # Refused (403 exceeded quota) while the fillers run, created once one of them is gone.
    heartbeat_until(executor, lambda: requests_of(kube_api, "create") - creates >= 2, what="a refused create")
    assert not pod_history.names() - {"filler-0", "filler-1"}
    core.delete_namespaced_pod("filler-0", namespace, grace_period_seconds=0)
    events = wait_for_final(executor, {t.key for t in tasks}, timeout=60)

    assert events[tasks[0].key].state == TaskInstanceState.SUCCESS
    assert_one_pod_each(pod_history, tasks)
    assert not event_log(executor)  # a retried quota error is no failure of the task


# --- 2. watches that break lose no event ---------------------------------------------------------


def test_a_watch_dropped_again_and_again_loses_no_event(
    executors: Executors,
    kube_route: str,
    queue_run: Callable[..., list[Any]],
    kube_api: LocalKubeAPI,
    namespace: str,
) -> None:
    from airflow.utils.state import TaskInstanceState

    executor = executors.start()
    heartbeat_until(
        executor, lambda: executor.kubernetes_executor._watchers[namespace].synced, what="the watcher to list"
    )
    # Watch requests are cut (connection reset) after two events, and some closed after a moment.
    cut = kube_api.faults.add("watch", "pods", pods_path(namespace), watch_close_after_events=2, reset=True, times=30)
    kube_api.faults.add("watch", "pods", pods_path(namespace), watch_close_after_seconds=0.3, times=3)
    kube_api.close_watches()  # the open watch came before the rules: its reconnection meets them
    tasks = queue_run(kube_route, executor, ["ok", "fails", "sleep_1", "sleep_1_fails", "oom"])

    queue_all(executor, tasks)
    events = wait_for_final(executor, {t.key for t in tasks})

    states = {key.task_id: final.state for key, final in events.items()}
    assert states == {
        "ok": TaskInstanceState.SUCCESS,
        "fails": TaskInstanceState.FAILED,
        "sleep_1": TaskInstanceState.SUCCESS,
        "sleep_1_fails": TaskInstanceState.FAILED,
        "oom": TaskInstanceState.FAILED,
    }
    assert cut.hits >= 3  # the watch really was cut, and resumed, several times
    assert not executor.running


def test_a_forced_410_relists_and_loses_no_event(
    executors: Executors,
    kube_route: str,
    queue_run: Callable[..., list[Any]],
    kube_api: LocalKubeAPI,
    namespace: str,
) -> None:
    from airflow.utils.state import TaskInstanceState
    from kubernetes.client import CoreV1Api

    executor = executors.start()
    tasks = {t.ti.task_id: t for t in queue_run(kube_route, executor, ["sleep_1", "sleep_1_fails", "sleep_30"])}
    names = {task_id: t.pod_name for task_id, t in tasks.items()}
    queue_all(executor, list(tasks.values()))
    heartbeat_until(
        executor,
        lambda: phases(kube_api, namespace) == dict.fromkeys(names.values(), "Running"),
        what="every pod to run",
    )
    for _ in range(3):  # let the executor see them running
        executor.heartbeat()
        time.sleep(0.1)
    lists = requests_of(kube_api, "list")

    # The watch goes down (as on an API server restart) and its reconnection is slow: meanwhile two
    # pods finish and one is deleted, then the history is compacted, so resuming answers 410.
    slow = kube_api.faults.add("watch", "pods", pods_path(namespace), latency=3.0, times=1)
    kube_api.close_watches()
    CoreV1Api(kube_api.api_client()).delete_namespaced_pod(names["sleep_30"], namespace, grace_period_seconds=0)
    heartbeat_until(
        executor,
        lambda: phases(kube_api, namespace) == {names["sleep_1"]: "Succeeded", names["sleep_1_fails"]: "Failed"},
        timeout=2.5,
        what="two pods to finish and one to go while the watch is down",
    )
    kube_api.compact()
    assert slow.hits == 1

    events = wait_for_final(executor, {t.key for t in tasks.values()})

    assert requests_of(kube_api, "list") > lists  # it relisted
    states = {key.task_id: final.state for key, final in events.items()}
    assert states == {
        "sleep_1": TaskInstanceState.SUCCESS,
        "sleep_1_fails": TaskInstanceState.FAILED,
        "sleep_30": TaskInstanceState.FAILED,
    }
    logs = event_log(executor)
    assert "exit code 5" in logs["sleep_1_fails"]
    assert "deleted" in logs["sleep_30"]


# --- 3. adoption --------------------------------------------------------------------------------


def test_a_new_scheduler_adopts_running_and_finished_pods_of_a_dead_one(
    executors: Executors,
    kube_route: str,
    queue_run: Callable[..., list[Any]],
    kube_api: LocalKubeAPI,
    namespace: str,
    pod_history: PodHistory,
) -> None:
    from airflow.utils.state import TaskInstanceState

    # A scheduler that stays alive (job 3) runs a task of its own meanwhile.
    alive = executors.start(job_id=3)
    alive_tasks = queue_run(kube_route, alive, ["sleep_3"])
    queue_all(alive, alive_tasks)
    alive_pod = alive_tasks[0].pod_name

    # The scheduler that dies (job 1) launches two long pods and a quick one...
    dead = executors.start(job_id=1)
    tasks = {t.ti.task_id: t for t in queue_run(kube_route, dead, ["sleep_3", "sleep_3_b", "ok", "fails"])}
    launched = [tasks["sleep_3"], tasks["sleep_3_b"], tasks["ok"]]
    queue_all(dead, launched)
    names = {t.pod_name for t in launched}
    heartbeat_until(
        [dead, alive],
        lambda: names <= pod_history.names() and alive_pod in pod_history.names(),
        what="every pod to be created",
    )
    # ... and dies: its threads stop, it never syncs again, never ends; the quick pod finishes after.
    executors.kill(dead)
    heartbeat_until(alive, lambda: phases(kube_api, namespace).get(tasks["ok"].pod_name) == "Succeeded")
    assert phases(kube_api, namespace)[tasks["sleep_3"].pod_name] == "Running"

    adopter = executors.start(job_id=2)
    heartbeat_until(
        adopter, lambda: adopter.kubernetes_executor._watchers[namespace].synced, what="the watcher to list"
    )
    cleanup_passes(adopter)  # its LIST at start is not adoption's
    lists, patches = requests_of(kube_api, "list"), requests_of(kube_api, "patch")
    tis = [t.ti for t in tasks.values()]  # "fails" was never launched: it has no pod

    not_adopted = adopter.try_adopt_task_instances(tis)

    assert [ti.task_id for ti in not_adopted] == ["fails"]
    assert requests_of(kube_api, "list") - lists == 1  # one paginated list for the namespace
    assert requests_of(kube_api, "patch") - patches == len(launched)
    labels = {pod["metadata"]["name"]: pod["metadata"]["labels"] for pod in kube_api.pods(namespace)}
    for queued in launched:
        assert labels[queued.pod_name][LABEL_SCHEDULER_JOB] == "2"
    assert labels[alive_pod][LABEL_SCHEDULER_JOB] == "3"  # the live scheduler's pod is left alone

    events = wait_for_final(adopter, {t.key for t in launched})

    assert {key.task_id: final.state for key, final in events.items()} == {
        "sleep_3": TaskInstanceState.SUCCESS,
        "sleep_3_b": TaskInstanceState.SUCCESS,
        "ok": TaskInstanceState.SUCCESS,
    }
    assert not adopter.running
    # The live scheduler still owns and reports its own task.
    alive_events = wait_for_final(alive, {alive_tasks[0].key})
    assert alive_events[alive_tasks[0].key].state == TaskInstanceState.SUCCESS
    assert kube_api.pod(namespace, alive_pod)["metadata"]["labels"][LABEL_SCHEDULER_JOB] == "3"
    assert_one_pod_each(pod_history, [*launched, *alive_tasks])


def test_adoption_retries_a_failed_list_and_relabel(
    executors: Executors,
    kube_route: str,
    queue_run: Callable[..., list[Any]],
    kube_api: LocalKubeAPI,
    namespace: str,
    pod_history: PodHistory,
) -> None:
    from airflow.utils.state import TaskInstanceState

    dead = executors.start(job_id=11)
    tasks = queue_run(kube_route, dead, ["sleep_3", "sleep_3_b"])
    launch_then_die(executors, dead, tasks, pod_history)
    adopter = executors.start(job_id=12)
    path = pods_path(namespace)

    # One failed LIST and one reset PATCH are retried, and both pods are adopted.
    kube_api.faults.add("list", "pods", path, status=500, times=1)
    reset = kube_api.faults.add("patch", "pods", path, reset=True, times=1)
    assert adopter.try_adopt_task_instances([t.ti for t in tasks]) == []
    assert reset.hits == 1
    labels = {pod["metadata"]["name"]: pod["metadata"]["labels"] for pod in kube_api.pods(namespace)}
    assert {labels[t.pod_name][LABEL_SCHEDULER_JOB] for t in tasks} == {"12"}
    events = wait_for_final(adopter, {t.key for t in tasks})
    assert {final.state for final in events.values()} == {TaskInstanceState.SUCCESS}


def test_an_api_outage_during_adoption_keeps_the_tasks_and_adopts_them_once_the_api_answers(
    executors: Executors,
    kube_route: str,
    queue_run: Callable[..., list[Any]],
    kube_api: LocalKubeAPI,
    namespace: str,
    pod_history: PodHistory,
) -> None:
    from airflow.utils.state import TaskInstanceState

    dead = executors.start(job_id=13)
    tasks = {t.ti.task_id: t for t in queue_run(kube_route, dead, ["sleep_3", "ok", "fails"])}
    launched = [tasks["sleep_3"], tasks["ok"]]  # "fails" is never launched: it has no pod
    launch_then_die(executors, dead, launched, pod_history)
    adopter = executors.start(job_id=14)
    adopter.kubernetes_executor._pending_adoptions._interval = 0.5
    outage = kube_api.faults.add("list", "pods", pods_path(namespace), status=500)

    # Nothing raises (Airflow's scheduler would exit), and nothing is answered "not adopted": the
    # scheduler would reset the tasks and start second tries beside pods that may still run.
    began = time.monotonic()
    assert adopter.try_adopt_task_instances([t.ti for t in tasks.values()]) == []
    assert outage.hits > 1  # retried before deferring
    assert time.monotonic() - began < 30
    assert {t.key for t in tasks.values()} <= adopter.running
    heartbeat_until(adopter, lambda: outage.hits > 3, what="the listing to be tried again")

    kube_api.faults.remove(outage)
    events = wait_for_final(adopter, {t.key for t in tasks.values()})

    assert events[tasks["sleep_3"].key].state == TaskInstanceState.SUCCESS
    assert events[tasks["ok"].key].state == TaskInstanceState.SUCCESS
    assert events[tasks["fails"].key].state == TaskInstanceState.FAILED
    assert "no pod of this task was found" in str(events[tasks["fails"].key].info)
    labels = {pod["metadata"]["name"]: pod["metadata"]["labels"] for pod in kube_api.pods(namespace)}
    assert {labels[t.pod_name][LABEL_SCHEDULER_JOB] for t in launched} == {"14"}
    assert not adopter.running
    assert_one_pod_each(pod_history, launched)


def test_a_pod_that_finished_before_a_delayed_readoption_is_still_reported(
    executors: Executors,
    kube_route: str,
    queue_run: Callable[..., list[Any]],
    kube_api: LocalKubeAPI,
    namespace: str,
    pod_history: PodHistory,
) -> None:
    # The listing after an outage runs on a thread; the relabel puts the pod in this scheduler's
    # watch, whose event may come before the thread hands its result over (a thread that lost the
    # GIL for a moment). A finished pod sends no later event: the state the relabel answered with
    # must be enough to report it.
    from airflow.utils.state import TaskInstanceState

    dead = executors.start(job_id=15)
    [task] = queue_run(kube_route, dead, ["ok"])
    launch_then_die(executors, dead, [task], pod_history)
    heartbeat_until([], lambda: phases(kube_api, namespace).get(task.pod_name) == "Succeeded", what="the pod to end")
    adopter = executors.start(job_id=16)
    pending = adopter.kubernetes_executor._pending_adoptions
    pending._interval = 0.2
    adopt = pending._adopt

    def adopt_then_pause(tis: Any) -> Any:
        outcome = adopt(tis)
        time.sleep(2)  # the watch's ADDED of the relabelled pod is handled meanwhile
        return outcome

    pending._adopt = adopt_then_pause
    outage = kube_api.faults.add("list", "pods", pods_path(namespace), status=500)
    assert adopter.try_adopt_task_instances([task.ti]) == []
    kube_api.faults.remove(outage)

    final = wait_for_final(adopter, {task.key}, timeout=30)[task.key]

    assert final.state == TaskInstanceState.SUCCESS
    assert not adopter.running


def test_a_pod_that_a_readoption_cannot_relabel_fails_its_task_saying_so(
    executors: Executors,
    kube_route: str,
    queue_run: Callable[..., list[Any]],
    kube_api: LocalKubeAPI,
    namespace: str,
    pod_history: PodHistory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Found once the API answers, but refused the relabel: the pod is deleted (no watch would follow
    # it) and the task fails; the message must say that, not that no pod was found.
    from airflow.utils.state import TaskInstanceState

    monkeypatch.setattr("hybrid_executor.kubernetes.adoption.RETRY_BUDGET", 2.0)
    dead = executors.start(job_id=17)
    [task] = queue_run(kube_route, dead, ["sleep_30"])
    launch_then_die(executors, dead, [task], pod_history)
    adopter = executors.start(job_id=18)
    adopter.kubernetes_executor._pending_adoptions._interval = 0.2
    outage = kube_api.faults.add("list", "pods", pods_path(namespace), status=500)
    assert adopter.try_adopt_task_instances([task.ti]) == []
    kube_api.faults.remove(outage)
    kube_api.faults.add("patch", "pods", pods_path(namespace), status=500)

    final = wait_for_final(adopter, {task.key}, timeout=30)[task.key]

    assert final.state == TaskInstanceState.FAILED
    assert "could not be relabelled" in str(final.info)
    assert "no pod of this task was found" not in str(final.info)
    heartbeat_until(adopter, lambda: task.pod_name not in phases(kube_api, namespace), what="the pod deleted")


def test_a_scheduler_asked_to_adopt_its_own_running_tasks_keeps_them(
    executors: Executors,
    kube_route: str,
    queue_run: Callable[..., list[Any]],
    kube_api: LocalKubeAPI,
    pod_history: PodHistory,
) -> None:
    # A scheduler whose heartbeat came late marks its own job failed, then offers its own tasks for
    # adoption; resetting them would start a second pod for a try whose pod still runs.
    from airflow.utils.state import TaskInstanceState

    scheduler = executors.start(job_id=7)
    queued = queue_run(kube_route, scheduler, ["sleep_3"])
    queue_all(scheduler, queued)
    heartbeat_until(scheduler, lambda: queued[0].pod_name in pod_history.names(), what="the pod")
    cleanup_passes(scheduler)
    lists, patches = requests_of(kube_api, "list"), requests_of(kube_api, "patch")

    assert scheduler.try_adopt_task_instances([t.ti for t in queued]) == []

    assert (requests_of(kube_api, "list"), requests_of(kube_api, "patch")) == (lists, patches)
    events = wait_for_final(scheduler, {queued[0].key})
    assert events[queued[0].key].state == TaskInstanceState.SUCCESS
    assert_one_pod_each(pod_history, queued)


def test_a_live_scheduler_whose_pod_another_adopts_lets_it_go_without_a_report(
    executors: Executors,
    kube_route: str,
    queue_run: Callable[..., list[Any]],
    kube_api: LocalKubeAPI,
    namespace: str,
    pod_history: PodHistory,
) -> None:
    # Two schedulers: the other took this one for dead (its heartbeat came late on a loaded machine)
    # and adopted its pod, relabelling it. This one's watch sees the pod leave its selector: a
    # DELETED event without deletionTimestamp. The pod was not deleted, and its task is the other's
    # now: reporting it failed ("deleted while its task was running") would be false.
    from airflow.utils.state import TaskInstanceState

    late = executors.start(job_id=31)
    queued = queue_run(kube_route, late, ["sleep_3"])
    queue_all(late, queued)
    key, name = queued[0].key, queued[0].pod_name
    heartbeat_until(late, lambda: phases(kube_api, namespace).get(name) == "Running", what="the pod to run")
    other = executors.start(job_id=32)
    heartbeat_until(other, lambda: other.kubernetes_executor._watchers[namespace].synced, what="the watcher to list")

    assert other.try_adopt_task_instances([queued[0].ti]) == []

    reported: dict[Any, Any] = {}

    def let_go() -> bool:
        reported.update(late.get_event_buffer())
        return key not in late.running

    heartbeat_until(late, let_go, what="the late scheduler to let the adopted task go")
    events = wait_for_final(other, {key})
    for _ in range(5):  # the late one's watch has long seen the pod finish: nothing more comes
        late.heartbeat()
        reported.update(late.get_event_buffer())
        time.sleep(0.05)
    assert reported == {}
    assert event_log(late) == {}
    assert events[key].state == TaskInstanceState.SUCCESS
    assert kube_api.pod(namespace, name)["metadata"]["labels"][LABEL_SCHEDULER_JOB] == "32"
    assert_one_pod_each(pod_history, queued)


# --- 4. revoke ----------------------------------------------------------------------------------


def test_a_task_revoked_while_its_create_is_retried_never_gets_a_pod(
    executors: Executors,
    kube_route: str,
    queue_run: Callable[..., list[Any]],
    kube_api: LocalKubeAPI,
    namespace: str,
    pod_history: PodHistory,
) -> None:
    from airflow.utils.state import TaskInstanceState

    executor = executors.start()
    revoked, kept = queue_run(kube_route, executor, ["ok", "ok_b"])
    rule = kube_api.faults.add("create", "pods", pods_path(namespace), status=503)
    queue_all(executor, [revoked])
    heartbeat_until(executor, lambda: rule.hits >= 2, what="the create to be retried")

    executor.revoke_task(ti=revoked.ti)

    assert revoked.key not in executor.running
    assert not executor.has_task(revoked.ti)
    kube_api.faults.remove(rule)
    queue_all(executor, [kept])  # the API is fine again: another task gets its pod
    events = wait_for_final(executor, {kept.key})
    assert events[kept.key].state == TaskInstanceState.SUCCESS
    creates = requests_of(kube_api, "create")
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        executor.heartbeat()
        assert revoked.key not in executor.get_event_buffer()  # revoke reports nothing
        time.sleep(0.1)
    assert requests_of(kube_api, "create") == creates  # no create was still being retried
    assert pod_history.creations(revoked.pod_name) == 0
    assert revoked.pod_name not in phases(kube_api, namespace)


# --- 5. random faults -------------------------------------------------------------------------------


def test_under_random_faults_every_task_try_gets_exactly_one_pod(
    executors: Executors,
    kube_route: str,
    queue_run: Callable[..., list[Any]],
    kube_api: LocalKubeAPI,
    namespace: str,
    pod_history: PodHistory,
) -> None:
    from airflow.utils.state import TaskInstanceState

    # Deleted once done, so a create retried after its lost answer could otherwise make a second pod.
    executor = executors.start(pod_creation_retry_timeout="30", pod_creation_concurrency="4", delete_worker_pods="True")
    tasks = queue_run(kube_route, executor, [f"many_{number}" for number in range(MANY)])
    path = pods_path(namespace)
    lost = kube_api.faults.add("create", "pods", path, reset_after_apply=True, probability=0.3, times=6)
    errors = kube_api.faults.add("create", "pods", path, status=500, probability=0.3, times=12)
    resets = kube_api.faults.add("create", "pods", path, reset=True, probability=0.1, times=4)
    kube_api.faults.add("watch", "pods", path, watch_close_after_events=3, reset=True, probability=0.5, times=8)
    kube_api.faults.add("*", "pods", path, latency=0.02, probability=0.5)
    kube_api.close_watches()

    queue_all(executor, tasks)
    events = wait_for_final(executor, {t.key for t in tasks}, timeout=45)

    assert {key: final.state for key, final in events.items()} == dict.fromkeys(events, TaskInstanceState.SUCCESS)
    assert len(events) == MANY
    assert errors.hits + resets.hits > 0
    assert lost.hits > 0
    for _ in range(20):  # later retries, if any were still to come, would come now
        executor.heartbeat()
        time.sleep(0.1)
    assert_one_pod_each(pod_history, tasks)
    assert not executor.running
    heartbeat_until(executor, lambda: phases(kube_api, namespace) == {}, what="every pod deleted")


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
    executors: Executors,
    kube_route: str,
    queue_run: Callable[..., list[Any]],
    kube_api: LocalKubeAPI,
    namespace: str,
    unpullable_images: str,
) -> None:
    from airflow.utils.state import TaskInstanceState

    timeout = 3.0
    executor = executors.start(worker_pods_pending_timeout=str(timeout))
    tasks = {t.ti.task_id: t for t in queue_run(kube_route, executor, ["broken_image", "invalid_image", "ok"])}

    # ErrImagePull and InvalidImageName are in the stock worker_pod_pending_fatal_container_state_reasons.
    queue_all(executor, list(tasks.values()))
    events = wait_for_final(executor, {t.key for t in tasks.values()}, timeout=20)

    broken, invalid = events[tasks["broken_image"].key], events[tasks["invalid_image"].key]
    assert (broken.state, invalid.state) == (TaskInstanceState.FAILED, TaskInstanceState.FAILED)
    assert events[tasks["ok"].key].state == TaskInstanceState.SUCCESS
    assert max(broken.seconds, invalid.seconds) < timeout - 1  # not left to the timeout
    logs = event_log(executor)
    assert "ErrImagePull" in logs["broken_image"]
    assert "InvalidImageName" in logs["invalid_image"]
    assert "worker_pods_pending_timeout" not in logs["broken_image"] + logs["invalid_image"]

    # A pod no node takes waits, Unschedulable, until the pending timeout.
    kube_api.set_capacity(0)
    try:
        [waiting] = queue_run(kube_route, executor, ["sleep_1"])
        queue_all(executor, [waiting])
        final = wait_for_final(executor, {waiting.key}, timeout=20)[waiting.key]
    finally:
        kube_api.set_capacity(None)
    assert final.state == TaskInstanceState.FAILED
    assert final.seconds >= timeout
    assert "[hybrid_executor] worker_pods_pending_timeout" in event_log(executor)["sleep_1"]
    assert "Unschedulable" in event_log(executor)["sleep_1"]
    # A pod given up on while Pending is deleted (it could still start and run a failed task).
    heartbeat_until(
        executor,
        lambda: set(phases(kube_api, namespace)) == {tasks["ok"].pod_name},
        timeout=5,
        what="the pending pods to be deleted",
    )


def test_by_default_a_pending_pod_waits_for_task_queued_timeout_and_its_revoke_says_why(
    executors: Executors,
    kube_route: str,
    queue_run: Callable[..., list[Any]],
    kube_api: LocalKubeAPI,
    namespace: str,
) -> None:
    # As the stock executor of Airflow 3: no pending timeout of the executor's own. A pod waiting for
    # a node (an autoscaler) is healthy until the scheduler's task_queued_timeout revokes its task.
    executor = executors.start()
    kube_api.set_capacity(0)
    try:
        [waiting] = queue_run(kube_route, executor, ["sleep_1"])
        queue_all(executor, [waiting])
        heartbeat_until(
            executor,
            lambda: phases(kube_api, namespace).get(waiting.pod_name) == "Pending",
            what="the pod to be created",
        )
        time.sleep(3)
        executor.heartbeat()
        assert waiting.key not in executor.get_event_buffer()  # still waiting, not failed

        executor.revoke_task(ti=waiting.ti)  # what _handle_tasks_stuck_in_queued does
    finally:
        kube_api.set_capacity(None)
    heartbeat_until(executor, lambda: waiting.pod_name not in phases(kube_api, namespace), what="the pod to go")
    assert "pod revoked while pending" in event_log(executor)[waiting.ti.task_id]
    assert "Unschedulable" in event_log(executor)[waiting.ti.task_id]


# --- 7. pods that end badly -------------------------------------------------------------------------


def test_a_pod_deleted_under_its_task_and_an_oom_kill_fail_with_a_clear_reason(
    executors: Executors,
    kube_route: str,
    queue_run: Callable[..., list[Any]],
    kube_api: LocalKubeAPI,
    namespace: str,
) -> None:
    from airflow.utils.state import TaskInstanceState
    from kubernetes.client import CoreV1Api

    executor = executors.start()
    tasks = {t.ti.task_id: t for t in queue_run(kube_route, executor, ["sleep_30", "oom"])}
    queue_all(executor, list(tasks.values()))
    doomed = tasks["sleep_30"].pod_name
    heartbeat_until(executor, lambda: phases(kube_api, namespace).get(doomed) == "Running", what="the pod to run")
    for _ in range(3):
        executor.heartbeat()
        time.sleep(0.1)

    CoreV1Api(kube_api.api_client()).delete_namespaced_pod(doomed, namespace)  # the default grace period
    events = wait_for_final(executor, {t.key for t in tasks.values()})

    assert events[tasks["sleep_30"].key].state == TaskInstanceState.FAILED
    assert events[tasks["oom"].key].state == TaskInstanceState.FAILED
    logs = event_log(executor)
    assert f"pod {namespace}/{doomed} was deleted while its task was running" in logs["sleep_30"]
    assert "OOMKilled" in logs["oom"]
    assert "exit code 137" in logs["oom"]


def test_a_pod_whose_node_stops_reporting_is_said_to_be_unknown_and_followed_to_its_end(
    executors: Executors,
    kube_route: str,
    queue_run: Callable[..., list[Any]],
    kube_api: LocalKubeAPI,
    namespace: str,
) -> None:
    from airflow.utils.state import TaskInstanceState
    from kubernetes.client import CoreV1Api

    executor = executors.start(worker_pods_pending_timeout="1")
    tasks = queue_run(kube_route, executor, ["sleep_3"])
    queue_all(executor, tasks)
    name = tasks[0].pod_name
    heartbeat_until(executor, lambda: phases(kube_api, namespace).get(name) == "Running", what="the pod to run")

    # The node controller's word for a node that stopped reporting on its pods.
    CoreV1Api(kube_api.api_client()).patch_namespaced_pod_status(name, namespace, {"status": {"phase": "Unknown"}})
    heartbeat_until(executor, lambda: "sleep_3" in event_log(executor), what="the Unknown phase to be said")
    for _ in range(30):  # longer than the pending timeout: Unknown is no Pending
        executor.heartbeat()
        assert not executor.get_event_buffer(), "phase Unknown is no end of the task"
        time.sleep(0.05)

    assert event_log(executor)["sleep_3"] == (
        f"pod phase Unknown: pod {namespace}/{name} is in phase Unknown: its node does not report on it (node lost?)"
    )
    events = wait_for_final(executor, {tasks[0].key})  # the node reports again: the pod ends as it does
    assert events[tasks[0].key].state == TaskInstanceState.SUCCESS


def test_no_pod_is_created_for_a_workload_whose_token_expires_before_the_pod_could_run(
    executors: Executors,
    kube_route: str,
    queue_run: Callable[..., list[Any]],
    pod_history: PodHistory,
) -> None:
    import jwt
    from airflow.utils.state import TaskInstanceState

    executor = executors.start()
    tasks = {t.ti.task_id: t for t in queue_run(kube_route, executor, ["ok", "ok_b"])}
    # Queued long ago: its token (valid [scheduler] task_queued_timeout from queueing) is about to expire.
    stale = tasks["ok_b"].workload
    stale.token = jwt.encode({"sub": str(stale.ti.id), "exp": int(time.time()) + 20}, "not-the-real-key")

    queue_all(executor, list(tasks.values()))
    events = wait_for_final(executor, {t.key for t in tasks.values()})

    assert events[tasks["ok"].key].state == TaskInstanceState.SUCCESS
    assert events[tasks["ok_b"].key].state == TaskInstanceState.FAILED
    assert "its workload's token expires before the pod could run the task" in event_log(executor)["ok_b"]
    assert pod_history.names() == {tasks["ok"].pod_name}


def test_a_task_marked_done_while_its_create_is_retried_never_gets_a_pod(
    executors: Executors,
    kube_route: str,
    queue_run: Callable[..., list[Any]],
    kube_api: LocalKubeAPI,
    namespace: str,
    pod_history: PodHistory,
) -> None:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import update

    executor = executors.start()
    tasks = queue_run(kube_route, executor, ["ok"])
    outage = kube_api.faults.add("create", "pods", pods_path(namespace), status=503)
    queue_all(executor, tasks)
    heartbeat_until(executor, lambda: outage.hits >= 2, what="a retried create")

    # Someone marks the task success in the UI: the executor is not told.
    ti = tasks[0].ti
    with create_session() as session:
        session.execute(update(TaskInstance).where(TaskInstance.id == ti.id).values(state=TaskInstanceState.SUCCESS))
    kube_api.faults.remove(outage)
    heartbeat_until(executor, lambda: tasks[0].key not in executor.running, timeout=60, what="the task to be dropped")

    assert not pod_history.names()
    assert not executor.get_event_buffer()  # nothing to report: Airflow has moved on
    assert not executor.kubernetes_executor._table.by_name


def test_an_api_that_is_down_when_the_scheduler_starts_fails_only_its_pod_tasks(
    executors: Executors,
    executor_config: Callable[..., None],
    kube_route: str,
    queue_run: Callable[..., list[Any]],
    tmp_path: Path,
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
    executor_config("kubernetes_executor", "config_file", str(kubeconfig))

    executor = executors.start(pod_creation_retry_timeout="2")  # raises nothing: the watchers retry

    tasks = queue_run(kube_route, executor, ["ok"])
    queue_all(executor, tasks)
    events = wait_for_final(executor, {tasks[0].key})
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
    executors: Executors,
    kube_route: str,
    queue_run: Callable[..., list[Any]],
    kube_api: LocalKubeAPI,
    namespace: str,
    pod_history: PodHistory,
    delete_worker_pods: str,
    on_failure: str,
    kept: set[str],
) -> None:
    executor = executors.start(delete_worker_pods=delete_worker_pods, delete_worker_pods_on_failure=on_failure)
    tasks = {t.ti.task_id: t for t in queue_run(kube_route, executor, ["ok", "fails"])}
    deletes = requests_of(kube_api, "delete")

    queue_all(executor, list(tasks.values()))
    wait_for_final(executor, {t.key for t in tasks.values()})
    deleted = {"ok", "fails"} - kept
    heartbeat_until(
        executor,
        lambda: set(phases(kube_api, namespace)) == {tasks[task_id].pod_name for task_id in kept},
        timeout=10,
        what=f"only the pods of {kept} to be left",
    )
    for _ in range(5):  # nothing more comes later
        executor.heartbeat()
        time.sleep(0.1)

    assert requests_of(kube_api, "delete") - deletes == len(deleted)
    assert {name: pod_history.removed[name] for name in pod_history.names()} == {
        tasks[task_id].pod_name: int(task_id in deleted) for task_id in ("ok", "fails")
    }


# --- 9. the scheduler ends a task itself ---------------------------------------------------------


def test_a_task_the_scheduler_fails_itself_loses_its_pod_and_is_forgotten(
    executors: Executors,
    unpullable_images: str,
    kube_route: str,
    queue_run: Callable[..., list[Any]],
    kube_api: LocalKubeAPI,
    namespace: str,
    pod_history: PodHistory,
) -> None:
    # A heartbeat timeout: change_state(FAILED); a task stuck in queued too often: fail(). Neither
    # pod may go on running a task Airflow has ended; the executor reports nothing more for them.
    from airflow.utils.state import TaskInstanceState

    # No fatal waiting reason: the unpullable image keeps its pod Pending (by default ErrImagePull fails it).
    executor = executors.start(worker_pod_pending_fatal_container_state_reasons="")
    tasks = {t.ti.task_id: t for t in queue_run(kube_route, executor, ["sleep_30", "broken_image"])}
    queue_all(executor, list(tasks.values()))
    running, pending = tasks["sleep_30"], tasks["broken_image"]
    heartbeat_until(
        executor,
        lambda: phases(kube_api, namespace) == {running.pod_name: "Running", pending.pod_name: "Pending"},
        what="one pod running, one pending",
    )

    executor.change_state(running.key, TaskInstanceState.FAILED, remove_running=True)
    executor.fail(pending.key)
    reported = executor.get_event_buffer()
    heartbeat_until(executor, lambda: phases(kube_api, namespace) == {}, what="both pods deleted")
    later = {}
    for _ in range(10):
        executor.heartbeat()
        later.update(executor.get_event_buffer())
        time.sleep(0.1)

    assert {key: state for key, (state, _) in reported.items()} == {
        running.key: TaskInstanceState.FAILED,
        pending.key: TaskInstanceState.FAILED,
    }
    assert later == {}  # the pods' deletions are not reported as the tasks' ends a second time
    assert not executor.running
    assert executor.kubernetes_executor._table.by_name == {}
    assert pod_history.removed[running.pod_name] == pod_history.removed[pending.pod_name] == 1

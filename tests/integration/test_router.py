"""The router's own surface: what goes where, what is merged, what each child keeps to itself."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from airflow.executors import workloads

# Callback workloads (ExecuteCallback) exist from Airflow 3.2; on 3.1 the scheduler runs callbacks itself.
needs_callback_workloads = pytest.mark.skipif(
    not hasattr(workloads, "ExecuteCallback"), reason="this Airflow has no callback workloads (3.2+)"
)

ROUTED = """
@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False)
def routed():
    @task(queue="kubernetes")
    def in_a_pod():
        pass

    @task(queue="kubernetes-gpu")
    def on_a_gpu():
        pass

    @task
    def on_celery():
        pass

    @task(queue="reports")
    def on_another_celery_queue():
        pass

    in_a_pod()
    on_a_gpu()
    on_celery()
    on_another_celery_queue()


routed()
"""


@pytest.fixture
def router(executor_config: Callable[..., None]) -> Any:
    """A HybridExecutor that is not started: routing and bookkeeping need no network."""
    executor_config("hybrid_executor", "kubernetes_queues", "kubernetes, kubernetes-gpu namespace=gpu")
    executor_config("hybrid_executor", "parallelism", "10")
    executor_config("hybrid_executor", "kubernetes_parallelism", "4")
    from hybrid_executor import HybridExecutor

    return HybridExecutor()


@pytest.fixture
def tasks(router: Any, make_dag: Callable[..., str], queue_run: Callable[..., list[Any]]) -> dict[str, Any]:
    return {t.ti.task_id: t for t in queue_run(make_dag("routed", ROUTED), router)}


def test_each_task_goes_to_the_executor_its_queue_names(router: Any, tasks: dict[str, Any]) -> None:
    for queued in tasks.values():
        router.queue_workload(queued.workload, session=None)

    assert set(router.kubernetes_executor.queued_tasks) == {tasks["in_a_pod"].key, tasks["on_a_gpu"].key}
    assert set(router.celery_executor.queued_tasks) == {
        tasks["on_celery"].key,
        tasks["on_another_celery_queue"].key,
    }
    assert set(router.queued_tasks) == {t.key for t in tasks.values()}
    assert all(router.has_task(t.ti) for t in tasks.values())
    assert router.slots_occupied == 4
    assert router.slots_available == 6


def test_settings_and_parallelism(router: Any, caplog: pytest.LogCaptureFixture) -> None:
    assert router.parallelism == 10
    # A per-route cap is not applied (the scheduler cannot be told one): it is warned of, with the fix.
    assert router.kubernetes_executor.parallelism == 10
    assert router.celery_executor.parallelism == 10
    assert router.settings.kubernetes.namespace_for("kubernetes-gpu") == "gpu"
    caplog.set_level(logging.WARNING, logger="hybrid_executor")
    router._warn_about_route_caps()
    [warning] = [r.getMessage() for r in caplog.records if "is not applied" in r.getMessage()]
    assert "[hybrid_executor] kubernetes_parallelism = 4 is not applied" in warning
    assert "airflow pools set <name> 4" in warning
    assert "examples/airflow_local_settings.py" in warning


def test_job_id_and_callback_sink_reach_both_children(router: Any) -> None:
    sink = object()
    router.job_id = 77
    router.callback_sink = sink

    assert router.celery_executor.job_id == router.kubernetes_executor.job_id == 77
    assert router.celery_executor.callback_sink is router.kubernetes_executor.callback_sink is sink


def test_event_buffers_are_merged_and_filtered_by_dag(router: Any, tasks: dict[str, Any]) -> None:
    from airflow.models.taskinstancekey import TaskInstanceKey
    from airflow.utils.state import TaskInstanceState

    pod_key, celery_key = tasks["in_a_pod"].key, tasks["on_celery"].key
    other = TaskInstanceKey("another_dag", "t", "r", 1, -1)
    router.kubernetes_executor.event_buffer[pod_key] = (TaskInstanceState.SUCCESS, None)
    router.celery_executor.event_buffer[celery_key] = (TaskInstanceState.FAILED, None)
    router.celery_executor.event_buffer[other] = (TaskInstanceState.SUCCESS, None)

    only_routed = router.get_event_buffer(dag_ids=["routed"])
    assert set(only_routed) == {pod_key, celery_key}
    assert set(router.get_event_buffer()) == {other}  # the rest, and the buffers are drained


def test_task_event_logs_of_both_children_reach_the_scheduler_once(router: Any, tasks: dict[str, Any]) -> None:
    router.kubernetes_executor.log_task_event(event="pod failed", extra="from the pod", ti_key=tasks["in_a_pod"].key)
    router.celery_executor.log_task_event(event="celery", extra="from celery", ti_key=tasks["on_celery"].key)

    logs = router._task_event_logs
    assert sorted(entry.extra for entry in logs) == ["from celery", "from the pod"]
    logs.clear()  # what the scheduler does as it writes them
    assert not router._task_event_logs


def test_task_event_logs_are_saved_by_the_schedulers_own_save_path(router: Any, tasks: dict[str, Any]) -> None:
    # Airflow 3.3's SchedulerJobRunner._process_task_event_logs pops the entries into
    # bulk_save_objects(preserve_order=False), whose states hold them only weakly: an entry that
    # nothing else holds is freed before its row is built, and saved as "INSERT INTO log DEFAULT
    # VALUES" (null "event"). The router hands the scheduler entries that stay alive.
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.log import Log
    from airflow.utils.session import create_session
    from sqlalchemy import select

    for number in range(3):
        router.kubernetes_executor.log_task_event(
            event="pod failed", extra=f"pod reason {number}", ti_key=tasks["in_a_pod"].key
        )
    router.celery_executor.log_task_event(event="celery event", extra="celery reason", ti_key=tasks["on_celery"].key)

    with create_session() as session:
        SchedulerJobRunner._process_task_event_logs(router._task_event_logs, session)
    with create_session() as session:
        saved = session.execute(
            select(Log.event, Log.extra, Log.task_id).where(Log.run_id == tasks["in_a_pod"].ti.run_id)
        ).all()

    assert sorted(saved) == [
        ("celery event", "celery reason", "on_celery"),
        ("pod failed", "pod reason 0", "in_a_pod"),
        ("pod failed", "pod reason 1", "in_a_pod"),
        ("pod failed", "pod reason 2", "in_a_pod"),
    ]
    assert not router._task_event_logs


def test_fail_and_change_state_go_to_the_owner_only(router: Any, tasks: dict[str, Any]) -> None:
    from airflow.utils.state import TaskInstanceState

    pod_key, celery_key = tasks["in_a_pod"].key, tasks["on_celery"].key
    router.kubernetes_executor.running.add(pod_key)
    router.celery_executor.running.add(celery_key)

    router.fail(pod_key)
    router.change_state(celery_key, TaskInstanceState.SUCCESS)

    assert router.kubernetes_executor.event_buffer[pod_key][0] == TaskInstanceState.FAILED
    assert pod_key not in router.celery_executor.event_buffer
    assert router.celery_executor.event_buffer[celery_key][0] == TaskInstanceState.SUCCESS
    assert not router.running


def test_adoption_is_split_by_route_and_returns_what_neither_adopted(router: Any, tasks: dict[str, Any]) -> None:
    # Celery adopts a task by the id the scheduler pre-assigned (its Celery task id, looked up in
    # Redis); the pod side finds no pod for these tasks in its namespace, so it adopts none.
    for name in ("on_celery", "on_another_celery_queue"):
        tasks[name].ti.external_executor_id = f"celery-id-{name}"

    left = router.try_adopt_task_instances([t.ti for t in tasks.values()])

    assert sorted(ti.task_id for ti in left) == ["in_a_pod", "on_a_gpu"]
    assert router.celery_executor.running == {tasks["on_celery"].key, tasks["on_another_celery_queue"].key}
    assert not router.kubernetes_executor.running


def test_callbacks_go_to_celery(router: Any) -> None:
    assert router.supports_callbacks
    assert router.pre_assigns_external_executor_id  # Celery adopts by the id the scheduler pre-assigns
    # Airflow 3.2 and the Celery provider 3.14 name it; before, nothing reads it.
    assert router.sentry_integration == getattr(router.celery_executor, "sentry_integration", "")


def _callback(data: dict[str, Any]) -> Any:
    import uuid

    from airflow.executors.workloads import BundleInfo
    from airflow.executors.workloads.callback import CallbackDTO, ExecuteCallback

    return ExecuteCallback(
        callback=CallbackDTO(id=str(uuid.uuid4()), fetch_method="import_path", data=data),
        dag_rel_path="dags/routed.py",
        bundle_info=BundleInfo(name="dags-folder"),
        log_path=None,
        token="not-a-real-token",
    )


@needs_callback_workloads
@pytest.mark.parametrize(
    ("data", "default_queue", "sent_to"),
    [
        ({"path": "callbacks.alert"}, "default", None),  # Celery's own default: [operators] default_queue
        ({"path": "callbacks.alert", "queue": "reports"}, "default", "reports"),
        ({"path": "callbacks.alert", "queue": "kubernetes"}, "default", "default"),
        ({"path": "callbacks.alert"}, "kubernetes", "celery-callbacks"),
    ],
)
def test_a_callback_never_goes_to_a_queue_only_pods_take(
    executor_config: Callable[..., None], data: dict[str, Any], default_queue: str, sent_to: str | None
) -> None:
    executor_config("operators", "default_queue", default_queue)
    if default_queue == "kubernetes":
        executor_config("hybrid_executor", "callback_queue", "celery-callbacks")
    from hybrid_executor import HybridExecutor

    router = HybridExecutor()
    workload = _callback(dict(data))

    router.queue_workload(workload, session=None)

    assert list(router.celery_executor.queued_callbacks.values()) == [workload]
    assert workload.callback.data.get("queue") == sent_to


def test_a_kubernetes_default_queue_without_a_callback_queue_is_refused_at_start(
    executor_config: Callable[..., None],
) -> None:
    executor_config("operators", "default_queue", "kubernetes")
    from hybrid_executor import HybridExecutor
    from hybrid_executor.settings import SettingsError

    router = HybridExecutor()  # the api-server builds one to read logs: that must still work

    with pytest.raises(SettingsError) as refused:
        router.start()
    assert str(refused.value) == (
        "[operators] default_queue = 'kubernetes' is a Kubernetes queue, but callbacks run on Celery: no "
        "Celery worker would take them from it; set [hybrid_executor] callback_queue to a queue your Celery "
        "workers serve, e.g. default"
    )


def test_a_child_that_raises_while_adopting_costs_neither_the_scheduler_nor_the_other(
    router: Any, tasks: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Redis down: the Celery provider's state fetch raises out of its try_adopt_task_instances.
    def broker_down(tis: Any) -> Any:
        raise ConnectionError("Error 111 connecting to localhost:6379. Connection refused.")

    monkeypatch.setattr(router.celery_executor, "try_adopt_task_instances", broker_down)
    caplog.set_level(logging.ERROR, logger="hybrid_executor")

    left = router.try_adopt_task_instances([t.ti for t in tasks.values()])

    # The pod side still answers for its own (no pods: not adopted); Celery's are not reset.
    assert sorted(ti.task_id for ti in left) == ["in_a_pod", "on_a_gpu"]
    assert "CeleryExecutor could not adopt 2 task instances" in caplog.text


def test_end_and_terminate_stop_both_children_even_when_one_raises(
    executors: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for how in ("end", "terminate"):
        router = executors.start(job_id=77)
        executors.started.remove(router)
        launcher = router.kubernetes_executor._launcher

        def broken(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError("the broker went away")

        monkeypatch.setattr(router.celery_executor, how, broken)

        with pytest.raises(RuntimeError, match="the broker went away"):
            getattr(router, how)()

        assert not any(thread.is_alive() for thread in launcher._threads)
        assert not router.kubernetes_executor._watchers


def test_a_child_that_raises_in_a_heartbeat_stops_neither_the_scheduler_nor_the_other_route(
    router: Any, tasks: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Redis restarting: the Celery provider's sync() raises redis' ConnectionError out of heartbeat().
    def broker_down() -> None:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(router.celery_executor, "sync", broker_down)
    beats: list[int] = []
    monkeypatch.setattr(router.kubernetes_executor, "trigger_tasks", lambda open_slots: beats.append(open_slots))
    monkeypatch.setattr(router.kubernetes_executor, "sync", lambda: beats.append(-1))
    caplog.set_level(logging.ERROR, logger="hybrid_executor")

    router.heartbeat()
    router.sync()

    assert -1 in beats  # the pod route had its heartbeat and its sync
    assert "CeleryExecutor failed in this heartbeat; it tries again in the next one" in caplog.text
    assert "CeleryExecutor failed to sync" in caplog.text

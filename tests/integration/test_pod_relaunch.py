"""A pod that fails before its task started gets a new pod, as the stock executor's pod_launch_failure_retries.

The pods wait, Unschedulable, on a node without room (capacity 0) and are then failed by a status
patch, as a node that went away, an eviction or a container runtime would fail them: their task
instance is still QUEUED in the metadata database, so no task code ran. Room is made only once the
executor has answered, so the new pod then runs its task for real on the kubelet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kube_driving import KubeRoute, PodHistory, event_log, events_over_heartbeats, heartbeat_until, wait_for_final_of

from hybrid_executor.testing.kube import LocalKubeAPI

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_faults_left", "stock_relaunch_default")]

_STOCK_RETRIES = "AIRFLOW__KUBERNETES_EXECUTOR__POD_LAUNCH_FAILURE_RETRIES"


@pytest.fixture
def stock_relaunch_default(executor_config: Callable[..., None], monkeypatch: pytest.MonkeyPatch) -> None:
    """The stock default (1): the other integration tests' pods never set their task running, so they turn it off."""
    monkeypatch.delenv(_STOCK_RETRIES, raising=False)


@pytest.fixture
def no_room(kube_api: LocalKubeAPI) -> Iterator[Callable[[], None]]:
    """The node takes no pod until the test calls the fixture's value (and again after the test)."""
    kube_api.set_capacity(0)
    yield lambda: kube_api.set_capacity(None)
    kube_api.set_capacity(None)


@pytest.fixture
def warnings_said() -> Iterator[list[str]]:
    """The relaunch module's warnings, by a handler of its own (Airflow's logging set-up may drop caplog's)."""
    said: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logger = logging.getLogger("hybrid_executor.kubernetes.relaunch")
    logger.addHandler(handler)
    yield said
    logger.removeHandler(handler)


@pytest.fixture
def launch_waiting(kube: KubeRoute, no_room: Callable[[], None]) -> Callable[[Any], tuple[Any, str]]:
    """Queue task "ok" on ``executor``; its queued task and pod once the pod waits for a node."""

    def launch(executor: Any) -> tuple[Any, str]:
        [queued] = kube.launch(executor, ["ok"])
        _wait_unschedulable(executor, kube, queued.pod_name)
        return queued, queued.pod_name

    return launch


def _second_pod(executor: Any, history: PodHistory, first: str) -> str:
    heartbeat_until(executor, lambda: len(history.names()) >= 2, what="a new pod")
    [second] = history.names() - {first}
    return second


def _wait_unschedulable(executor: Any, kube: KubeRoute, name: str) -> None:
    def unschedulable() -> bool:
        pod = kube.api.pod(kube.namespace, name)
        conditions = ((pod or {}).get("status") or {}).get("conditions") or []
        return any(c.get("type") == "PodScheduled" and c.get("status") == "False" for c in conditions)

    heartbeat_until(executor, unschedulable, what=f"pod {name} to wait for a node")


def _fail(kube: KubeRoute, name: str, reason: str | None) -> None:
    """Fail the pod as its node would: a container that terminated for ``reason``, or (None) an eviction."""
    if reason is None:
        status: dict[str, Any] = {"phase": "Failed", "reason": "Evicted", "message": "The node was low on memory."}
    else:
        terminated = {"exitCode": 128 if reason != "Error" else 1, "reason": reason, "message": f"{reason} here"}
        status = {
            "phase": "Failed",
            "containerStatuses": [
                {
                    "name": "base",
                    "image": "apache/airflow:3.3.2",
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"terminated": terminated},
                }
            ],
        }
    kube.core().patch_namespaced_pod_status(name, kube.namespace, {"status": status})


def test_a_pod_failed_before_its_task_started_gets_one_new_pod_and_the_task_succeeds(
    kube: KubeRoute,
    no_room: Callable[[], None],
    launch_waiting: Callable[[Any], tuple[Any, str]],
    warnings_said: list[str],
) -> None:
    from airflow.utils.state import TaskInstanceState

    executor = kube.start(delete_worker_pods="True", delete_worker_pods_on_failure="True")
    queued, first = launch_waiting(executor)

    _fail(kube, first, "ContainerCannotRun")
    second = _second_pod(executor, kube.history, first)
    # The failed pod goes by the policy (here: deleted), and nothing was reported for it.
    heartbeat_until(executor, lambda: first not in kube.phases(), what="the failed pod deleted")
    assert queued.key not in executor.get_event_buffer()
    no_room()
    final = wait_for_final_of(executor, queued)

    assert final.state == TaskInstanceState.SUCCESS
    assert kube.history.names() == {first, second}
    assert (kube.history.creations(first), kube.history.creations(second)) == (1, 1)
    assert warnings_said == [
        f"[Try 1 of 1] Pod {kube.namespace}/{first} for task {queued.key} failed before the task process started "
        "(container_reason: ContainerCannotRun). Requeuing without consuming a task retry."
    ]
    logs = event_log(executor)["ok"]
    assert "pod failed before its task started" in logs
    assert "ContainerCannotRun" in logs
    assert events_over_heartbeats(executor, 10) == {}
    assert not executor.running


def test_a_second_failure_before_start_fails_the_task_with_that_pods_message(
    kube: KubeRoute,
    launch_waiting: Callable[[Any], tuple[Any, str]],
) -> None:
    from airflow.utils.state import TaskInstanceState

    executor = kube.start()  # delete_worker_pods False (the tests' default): both failed pods stay
    queued, first = launch_waiting(executor)
    _fail(kube, first, "ContainerCannotRun")
    _fail(kube, first, "ContainerCannotRun")  # a second Failed event of the same pod: one new pod
    second = _second_pod(executor, kube.history, first)
    _wait_unschedulable(executor, kube, second)

    _fail(kube, second, None)  # evicted before it started, too
    final = wait_for_final_of(executor, queued)

    assert final.state == TaskInstanceState.FAILED
    assert f"pod {kube.namespace}/{second} was evicted" in event_log(executor)["ok"]
    assert events_over_heartbeats(executor, 10) == {}
    assert kube.history.names() == {first, second}  # no third pod
    assert set(kube.phases()) == {first, second}  # kept by the policy


@pytest.mark.parametrize(
    ("reason", "options", "ran"),
    [
        pytest.param("Error", {}, False, id="an excluded reason"),
        pytest.param("ContainerCannotRun", {"pod_launch_failure_retries": "0"}, False, id="retries 0"),
        pytest.param("ContainerCannotRun", {}, True, id="the task ran"),
    ],
)
def test_a_pod_failure_fails_the_task_at_once(
    kube: KubeRoute,
    launch_waiting: Callable[[Any], tuple[Any, str]],
    reason: str,
    options: dict[str, str],
    ran: bool,
) -> None:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import update

    for option, value in options.items():
        kube.configure("kubernetes_executor", option, value)  # the stock option, as a stock user sets it
    executor = kube.start()
    queued, first = launch_waiting(executor)
    if ran:  # its task process started (and set it running) before the pod failed
        with create_session() as session:
            session.execute(
                update(TaskInstance).where(TaskInstance.id == queued.ti.id).values(state=TaskInstanceState.RUNNING)
            )

    _fail(kube, first, reason)
    final = wait_for_final_of(executor, queued)

    assert final.state == TaskInstanceState.FAILED
    assert f"pod {kube.namespace}/{first} failed: container base ended with exit code" in event_log(executor)["ok"]
    assert f"({reason}): {reason} here" in event_log(executor)["ok"]
    assert events_over_heartbeats(executor, 10) == {}
    assert kube.history.names() == {first}


def test_a_revoke_while_the_new_pod_is_being_created_stops_it(
    kube: KubeRoute,
    launch_waiting: Callable[[Any], tuple[Any, str]],
) -> None:
    executor = kube.start()
    queued, first = launch_waiting(executor)
    outage = kube.pod_fault("create", status=503)

    _fail(kube, first, "ContainerCannotRun")
    heartbeat_until(executor, lambda: outage.hits >= 1, what="the new pod's create")
    executor.revoke_task(ti=queued.ti)  # the scheduler's task_queued_timeout
    kube.api.faults.remove(outage)

    assert events_over_heartbeats(executor, 20) == {}
    assert kube.history.names() == {first}
    assert not executor.running
    assert not executor.kubernetes_executor._table.by_name

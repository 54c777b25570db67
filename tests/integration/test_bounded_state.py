"""Nothing leaks: once its tasks are over and their pods deleted, the pod executor holds no entry of them.

``benchmarks/memory.py`` shows the same over 20,000 tasks, with the process's RSS; this checks the
entries themselves, on a few tasks, so a structure that keeps one entry per task ever run fails here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kube_driving import MANY, Executors, heartbeat_until, phases, queue_all, wait_for_final

from hybrid_executor.testing.kube import LocalKubeAPI

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_faults_left")]


def test_once_its_pods_are_deleted_the_pod_executor_holds_nothing_of_its_tasks(
    executors: Executors,
    kube_route: str,
    queue_run: Callable[..., list[Any]],
    kube_api: LocalKubeAPI,
    namespace: str,
) -> None:
    from airflow.utils.state import TaskInstanceState

    executor = executors.start(delete_worker_pods="True")
    tasks = queue_run(kube_route, executor, [f"many_{number}" for number in range(MANY)])

    queue_all(executor, tasks)
    events = wait_for_final(executor, {t.key for t in tasks})
    heartbeat_until(executor, lambda: phases(kube_api, namespace) == {}, what="every pod deleted")
    pods = executor.kubernetes_executor
    heartbeat_until(executor, lambda: pods._deleter.pending() == 0, what="the deleter to be done")

    assert {final.state for final in events.values()} == {TaskInstanceState.SUCCESS}
    assert not pods.running
    assert not pods.queued_tasks
    assert not pods._table.by_name
    assert not pods._table.current
    assert pods._launcher.pending() == 0
    assert not pods._pending_deadlines  # every pod was Pending once: none of them may stay in the heap
    assert not any(watcher._known for watcher in pods._watchers.values())

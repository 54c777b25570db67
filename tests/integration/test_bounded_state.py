"""Nothing leaks: once its tasks are over and their pods deleted, the pod executor holds no entry of them.

``benchmarks/memory.py`` shows the same over 20,000 tasks, with the process's RSS; this checks the
entries themselves, on a few tasks, so a structure that keeps one entry per task ever run fails here.
"""

from __future__ import annotations

import time
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

    def left() -> dict[str, int]:
        sizes = {
            "running": len(pods.running),
            "queued": len(pods.queued_tasks),
            "pods by name": len(pods._table.by_name),
            "current pods": len(pods._table.current),
            "launches": pods._launcher.pending(),
            "deletions": pods._deleter.pending(),
            # Every pod was Pending once: none of them may stay in the heap.
            "pending deadlines": len(pods._pending),
            "pods the watchers know": sum(len(watcher._known) for watcher in pods._watchers.values()),
        }
        return {name: size for name, size in sizes.items() if size}

    deadline = time.monotonic() + 20  # the watch's last DELETED events may come after the API's last delete
    while left() and time.monotonic() < deadline:
        executor.heartbeat()
        time.sleep(0.05)

    assert {final.state for final in events.values()} == {TaskInstanceState.SUCCESS}
    assert left() == {}

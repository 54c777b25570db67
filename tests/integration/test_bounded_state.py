"""Nothing leaks: once its tasks are over and their pods deleted, the pod executor holds no entry of them.

``benchmarks/memory.py`` shows the same over 20,000 tasks, with the process's RSS; this checks the
entries themselves, on a few tasks, so a structure that keeps one entry per task ever run fails here.
"""

from __future__ import annotations

import time

import pytest
from kube_driving import MANY, KubeRoute, heartbeat_until, queue_and_wait_for_final

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_faults_left")]


def test_once_its_pods_are_deleted_the_pod_executor_holds_nothing_of_its_tasks(kube: KubeRoute) -> None:
    from airflow.utils.state import TaskInstanceState

    executor = kube.start(delete_worker_pods="True")
    tasks = kube.queue(executor, [f"many_{number}" for number in range(MANY)])

    events = queue_and_wait_for_final(executor, tasks)
    heartbeat_until(executor, lambda: kube.phases() == {}, what="every pod deleted")
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

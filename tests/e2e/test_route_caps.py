"""A pool caps the Kubernetes route while Celery keeps its share, with a real scheduler (issue: per-route caps).

A cap inside the executor cannot be right: the scheduler asks the executor for its free slots as a
whole and queues tasks whatever their route, so the tasks a capped route held back sat QUEUED,
took the executor's slots from the other route, and aged into task_queued_timeout. A pool is what
the scheduler checks before it queues a task; the cluster policy of
examples/airflow_local_settings.py gives every Kubernetes task the pool without changing a DAG.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from demo_command import E2E_DAGS

from hybrid_executor.demo.processes import processes_using
from hybrid_executor.demo.report import follow_run
from hybrid_executor.demo.stack import WORKER_NAMESPACE, DemoStack

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(1200)]

DAG_ID = "route_caps"
TASKS = 40  # on each route, as in the DAG
PARALLELISM = 8
POD_SLOTS = 2
EXAMPLE_POLICY = Path(__file__).parents[2] / "examples" / "airflow_local_settings.py"
ACTIVE = {"queued", "running"}


class Peaks:
    """The most task instances active at once per task, and the most pods Running at once, polled."""

    def __init__(self, api: Any, core: Any, run_id: str) -> None:
        self.kubernetes = self.celery = self.celery_beside_capped_pods = self.pods = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(api, core, run_id), daemon=True)
        self._thread.start()

    def _run(self, api: Any, core: Any, run_id: str) -> None:
        while not self._stop.is_set():
            states = [(ti["task_id"], ti["state"]) for ti in api.task_instances(DAG_ID, run_id)]
            pods = sum(pod.status.phase == "Running" for pod in core.list_namespaced_pod(WORKER_NAMESPACE).items)
            kubernetes = sum(task == "in_a_pod" and state in ACTIVE for task, state in states)
            celery = sum(task == "on_celery" and state in ACTIVE for task, state in states)
            self.kubernetes, self.celery, self.pods = (
                max(self.kubernetes, kubernetes),
                max(self.celery, celery),
                max(self.pods, pods),
            )
            if kubernetes == POD_SLOTS:
                self.celery_beside_capped_pods = max(self.celery_beside_capped_pods, celery)
            time.sleep(0.3)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def test_a_pool_caps_the_pods_and_celery_runs_at_its_share(tmp_path: Path) -> None:
    stack = DemoStack(
        tmp_path / "stack",
        E2E_DAGS,
        celery_concurrency=PARALLELISM,
        settings={
            "core": {"parallelism": str(PARALLELISM), "max_active_tasks_per_dag": str(2 * TASKS)},
            # Short, so that a task held QUEUED (what an in-executor cap did) would fail within the test.
            "scheduler": {"task_queued_timeout": "90"},
        },
    )
    (stack.home / "config").mkdir(parents=True)
    shutil.copy(EXAMPLE_POLICY, stack.home / "config" / "airflow_local_settings.py")
    try:
        stack.start()
        api = stack.api()
        api.request("POST", "/pools", json={"name": "kubernetes", "slots": POD_SLOTS, "description": "pods"})
        api.wait_for_dag(DAG_ID, timeout=120)
        api.unpause(DAG_ID)
        run_id = api.trigger(DAG_ID, {})
        peaks = Peaks(api, stack.kubernetes(), run_id)

        final = follow_run(api, DAG_ID, run_id, print, timeout=900)
        peaks.stop()
        tis = api.task_instances(DAG_ID, run_id)
        assert final["state"] == "success", json.dumps([t for t in tis if t["state"] != "success"], indent=1)
        assert sorted((ti["task_id"], ti["state"], ti["try_number"]) for ti in tis) == sorted(
            [("in_a_pod", "success", 1)] * TASKS + [("on_celery", "success", 1)] * TASKS
        )
        assert {ti["pool"] for ti in tis if ti["task_id"] == "in_a_pod"} == {"kubernetes"}  # the policy's

        print(
            f"peaks: pod tasks {peaks.kubernetes}, Celery tasks {peaks.celery} ({peaks.celery_beside_capped_pods} "
            f"beside {POD_SLOTS} pod tasks), Running pods {peaks.pods}"
        )
        assert peaks.kubernetes == POD_SLOTS  # the pool's cap on pod tasks, reached and never passed
        # Not asserted: Running pods. A pool slot is freed when the task reports its end, and the
        # next pod starts while the previous one's process is still exiting (Airflow's supervisor
        # uploads logs and ends after the state is saved): seen up to 6 on 2 loaded cores.
        assert peaks.celery_beside_capped_pods >= 3  # Celery ran beside the capped pods, not after them
        ends = {task: max(ti["end_date"] for ti in tis if ti["task_id"] == task) for task in ("in_a_pod", "on_celery")}
        assert ends["on_celery"] < ends["in_a_pod"]  # Celery's 40 were done while the pods still queued
    finally:
        stack.stop()
    assert processes_using(stack.folder) == []

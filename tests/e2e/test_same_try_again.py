"""A deferrable task and a reschedule-mode sensor in pods, with a real scheduler, triggerer and kubelet.

Both come back to the executor with the same try number: the deferred task when its trigger fires,
the sensor at each poke. Each such queueing must get a pod of its own, whether finished pods are
kept or deleted; before pods were named per queueing, the second queueing found the first's pod
(409) and the task stayed queued until the scheduler gave up on it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from demo_command import E2E_DAGS
from pods_seen import PodsSeen

from hybrid_executor.demo.processes import processes_using
from hybrid_executor.demo.report import follow_run
from hybrid_executor.demo.stack import WORKER_NAMESPACE, DemoStack
from hybrid_executor.kubernetes.pods import ANNOTATION_EXTERNAL_EXECUTOR_ID

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(900)]

DAG_ID = "same_try_again"
POKES = 3  # as in the DAG


def _phases(core: Any) -> dict[str, str]:
    return {pod.metadata.name: pod.status.phase for pod in core.list_namespaced_pod(WORKER_NAMESPACE).items}


@pytest.mark.parametrize("delete_worker_pods", ["False", "True"])
def test_each_resumption_and_each_poke_runs_in_a_pod_of_its_own(tmp_path: Path, delete_worker_pods: str) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    stack = DemoStack(
        tmp_path / "stack",
        E2E_DAGS,
        settings={"kubernetes_executor": {"delete_worker_pods": delete_worker_pods}},
    )
    try:
        stack.start()
        core = stack.kubernetes()
        seen = PodsSeen(core, WORKER_NAMESPACE)
        api = stack.api()
        api.wait_for_dag(DAG_ID, timeout=120)
        api.unpause(DAG_ID)
        run_id = api.trigger(DAG_ID, {"marker_dir": str(markers)})

        final = follow_run(api, DAG_ID, run_id, print, timeout=400)
        tis = {ti["task_id"]: ti for ti in api.task_instances(DAG_ID, run_id)}
        assert final["state"] == "success", json.dumps(tis, indent=1)
        assert {task: (ti["state"], ti["try_number"]) for task, ti in tis.items()} == dict.fromkeys(
            ("defers", "pokes", "waits_deferred"), ("success", 1)
        )

        pods = seen.by_task(run_id)
        assert len(pods["defers"]) == 2  # deferred in one pod, resumed in another
        assert len(pods["pokes"]) == POKES == len(list(markers.glob("poke.*")))  # one pod a poke
        assert len(pods["waits_deferred"]) in (1, 2)  # 1 only if its pod started after the 20 s had passed
        for task_pods in pods.values():
            assert {pod["try_number"] for pod in task_pods} == {"1"}
            queueings = [pod[ANNOTATION_EXTERNAL_EXECUTOR_ID] for pod in task_pods]
            assert len(set(queueings)) == len(queueings)  # each pod made for a queueing of its own

        # A task reports its state before its process exits: its pod ends a moment after the run.
        expected = {} if delete_worker_pods == "True" else dict.fromkeys(seen.names(), "Succeeded")
        deadline = time.monotonic() + 60
        while (left := _phases(core)) != expected and time.monotonic() < deadline:
            time.sleep(0.5)
        assert left == expected
        seen.stop()
    finally:
        stack.stop()
    assert processes_using(stack.folder) == []

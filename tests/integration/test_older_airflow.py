"""The pod route where an older Airflow differs: run on the minors that have the difference (make test-compat)."""

from __future__ import annotations

import pytest
from kube_driving import KubeRoute, queue_and_wait_for_final

from hybrid_executor.compat import scheduler_pre_assigns_external_executor_id

pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("no_faults_left"),
    pytest.mark.skipif(
        scheduler_pre_assigns_external_executor_id(),
        reason="this Airflow's scheduler draws external_executor_id itself (3.2+)",
    ),
]


def test_a_retried_create_of_a_queueing_whose_id_the_executor_drew_still_makes_its_pod(kube: KubeRoute) -> None:
    """Airflow 3.1: the workload has no id, the executor draws one; the task instance's row holds another
    (its previous queueing's, as after a deferral) until the scheduler reads the QUEUED event. A create
    retried meanwhile must not take that for "moved on": the task would wait for task_queued_timeout."""
    from airflow.utils.state import TaskInstanceState

    executor = kube.start()
    tasks = kube.queue(executor, ["ok"], in_workload=False)
    rule = kube.pod_fault("create", status=503, times=2)

    events = queue_and_wait_for_final(executor, tasks, timeout=60)

    assert events[tasks[0].key].state == TaskInstanceState.SUCCESS
    assert rule.hits == 2
    assert len(kube.history.names()) == 1
    drawn = tasks[0].workload.ti.external_executor_id
    assert drawn != tasks[0].ti.external_executor_id  # the executor's own, reported for the scheduler to store

"""Metrics of a HybridExecutor run for real, as a StatsD server receives them from Airflow's StatsD logger.

``[metrics] statsd_on`` points Airflow at a UDP socket on loopback (tags InfluxDB-style, so they
travel in the datagram); the executor is built, started and heartbeaten as the scheduler does, its
pods are created by the local Kubernetes API and run by its kubelet, with a fault or two on the way.
"""

from __future__ import annotations

import pytest
from kube_driving import KubeRoute, heartbeat_until, queue_all, queue_and_wait_for_final

from hybrid_executor.testing.statsd import Received, StatsdReceiver

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_faults_left")]


def under(statsd: StatsdReceiver, name: str, **tags: str) -> list[Received]:
    return [metric for metric in statsd.received(name) if tags.items() <= metric.tags.items()]


def test_the_router_and_its_pods_send_their_metrics(statsd: StatsdReceiver, kube: KubeRoute) -> None:
    executor = kube.start(delete_worker_pods="True")
    kube.wait_for_watcher(executor)
    # The watch is cut once, then its resourceVersion is gone (410): it relists, before any pod exists,
    # so that it sees each pod Pending, then Running. One create answers 503 (retried).
    kube.pod_fault("watch", reset=True, times=1)
    kube.pod_fault("watch", status=410, times=1)
    kube.api.close_watches()
    statsd.wait_for(
        lambda: under(statsd, "hybrid_executor.watch.relists", namespace=kube.namespace), timeout=30, what="the relist"
    )
    kube.pod_fault("create", status=503, times=1)
    tasks = kube.queue(executor, ["ok", "sleep_1"])

    queue_and_wait_for_final(executor, tasks)
    heartbeat_until(executor, lambda: not kube.phases(), what="the finished pods to be deleted")

    # The router: BaseExecutor's gauges with its tags, and each route's, tagged and dotted.
    for status in ("open", "queued", "running"):
        name = "executor.open_slots" if status == "open" else f"executor.{status}_tasks"
        assert under(statsd, name, status=status, executor_class_name="HybridExecutor"), name
        for route in ("celery", "kubernetes"):
            assert under(statsd, f"hybrid_executor.route.{name.split('.')[1]}", route=route, status=status)
            assert statsd.received(f"hybrid_executor.route.{name.split('.')[1]}.{route}")
    # Both tasks were queued on the Kubernetes route and ran there, Celery's stayed empty.
    assert max(m.value for m in under(statsd, "hybrid_executor.route.running_tasks", route="kubernetes")) >= 1
    assert {m.value for m in under(statsd, "hybrid_executor.route.queued_tasks", route="celery")} == {0}
    assert max(m.value for m in under(statsd, "hybrid_executor.route.open_slots", route="kubernetes")) >= 1

    # The pod side: two pods, one of them after a retried 503, each timed from queue_workload.
    statsd.wait_for(lambda: len(statsd.received("hybrid_executor.pod_delete.done")) == 2, what="two deletes")
    assert sum(m.value for m in statsd.received("hybrid_executor.pod_create.succeeded")) == 2
    assert [m.value for m in under(statsd, "hybrid_executor.pod_create.retried", reason="server")] == [1]
    assert [m.value for m in statsd.received("hybrid_executor.pod_create.retried.server")] == [1]
    assert len(statsd.received("hybrid_executor.pod_create.latency")) == 3  # three create requests
    queued_to_created = statsd.received("hybrid_executor.pod_create.queued_to_created")
    assert len(queued_to_created) == 2
    assert all(m.kind == "ms" and m.value > 0 for m in queued_to_created)
    pending = statsd.received("hybrid_executor.pod.pending_duration")
    assert len(pending) == 2  # each pod was seen Pending, then Running
    assert all(m.kind == "ms" and m.value > 0 for m in pending)
    assert under(statsd, "hybrid_executor.watch.reconnects", namespace=kube.namespace)
    assert [m.value for m in under(statsd, "hybrid_executor.watch.relists", namespace=kube.namespace)] == [1]
    assert statsd.received(f"hybrid_executor.watch.relists.{kube.namespace}")
    assert not statsd.received("hybrid_executor.pod_create.failed")


def test_adoption_counts_and_times_what_it_adopted(statsd: StatsdReceiver, kube: KubeRoute) -> None:
    dead = kube.start(job_id=71)
    tasks = kube.queue_by_task_id(dead, ["sleep_3", "fails"])
    queue_all(dead, [tasks["sleep_3"]])
    heartbeat_until(dead, lambda: tasks["sleep_3"].pod_name in kube.phases(), what="the pod to be created")
    kube.kill(dead)
    adopter = kube.start(job_id=72)

    not_adopted = adopter.try_adopt_task_instances([t.ti for t in tasks.values()])

    assert [ti.task_id for ti in not_adopted] == ["fails"]  # never launched: no pod
    statsd.wait_for(lambda: statsd.received("hybrid_executor.adoption.duration"), what="the adoption timer")
    assert [m.value for m in statsd.received("hybrid_executor.adoption.adopted")] == [1]
    assert [m.value for m in statsd.received("hybrid_executor.adoption.not_adopted")] == [1]

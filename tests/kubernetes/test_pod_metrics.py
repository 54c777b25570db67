"""The launcher's, deleter's and watcher's metrics, received by a StatsD socket through Airflow's StatsD logger.

The local Kubernetes API answers with the faults (403 quota and RBAC, PodSecurity, 422, 500, a reset
connection, 410 on a watch); each test reads what arrived on the UDP socket: the counter, its
``reason`` tag (StatsD with InfluxDB-style tags) and its dotted name for StatsD without tags.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kube_test_support import NS
from kubernetes import client

from hybrid_executor.kubernetes.api import KubeApi
from hybrid_executor.kubernetes.cleanup import PodDeleter
from hybrid_executor.kubernetes.launcher import LaunchRequest, LaunchResult, PodLauncher
from hybrid_executor.kubernetes.pods import PodBuildError
from hybrid_executor.kubernetes.watcher import PodEvent, PodWatcher
from hybrid_executor.testing.kube import LocalKubeAPI
from hybrid_executor.testing.statsd import StatsdReceiver

QUOTA_FULL = 'pods "p" is forbidden: exceeded quota: workers, requested: pods=1, used: pods=5, limited: pods=5'
RBAC = (
    'pods is forbidden: User "system:serviceaccount:airflow:scheduler" cannot create resource "pods" '
    'in API group "" in the namespace "default"'
)
POD_SECURITY = 'pods "p" is forbidden: violates PodSecurity "restricted:latest": host namespaces (hostNetwork=true)'


def pod(name: str) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, namespace=NS, labels={"app": "metrics-test"}),
        spec=client.V1PodSpec(
            restart_policy="Never", containers=[client.V1Container(name="base", image="busybox:1.36")]
        ),
    )


@pytest.fixture
def launcher(api: KubeApi, statsd: StatsdReceiver) -> Iterator[PodLauncher]:
    started = PodLauncher(
        api, concurrency=2, qps=0, burst=1, retry_timeout=5.0, backoff_multiplier=0.01, backoff_max=0.05
    )
    started.start()
    yield started
    started.stop(timeout=5)


def launch(launcher: PodLauncher, name: str, **request: Any) -> LaunchResult:
    from airflow.models.taskinstancekey import TaskInstanceKey

    key = TaskInstanceKey("dag", name, "run", 1, -1)
    request = {"pod": pod(name), "queued_at": time.monotonic(), **request}
    launcher.submit(LaunchRequest(key, pod_name=name, namespace=NS, **request))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        results = launcher.results()
        if results:
            return results[0]
        time.sleep(0.01)
    raise AssertionError(f"no launch result for {name}")


def counted(statsd: StatsdReceiver, name: str, **tags: str) -> float:
    return sum(m.value for m in statsd.received(name) if m.kind == "c" and tags.items() <= m.tags.items())


CREATE_FAULTS: dict[str, tuple[dict[str, Any], str, str]] = {
    "403 quota full: retried": ({"status": 403, "message": QUOTA_FULL, "times": 1}, "retried", "quota"),
    "403 RBAC: retried": ({"status": 403, "message": RBAC, "times": 1}, "retried", "rbac"),
    "403 PodSecurity: failed": ({"status": 403, "message": POD_SECURITY}, "failed", "admission"),
    "422 invalid: failed": ({"status": 422}, "failed", "invalid"),
    "500: retried": ({"status": 500, "times": 1}, "retried", "server"),
    "connection reset: retried": ({"reset": True, "times": 1}, "retried", "connection"),
}


@pytest.mark.parametrize(("fault", "outcome", "reason"), CREATE_FAULTS.values(), ids=CREATE_FAULTS.keys())
def test_a_refused_create_counts_under_its_reason(
    kube: LocalKubeAPI, launcher: PodLauncher, statsd: StatsdReceiver, fault: dict[str, Any], outcome: str, reason: str
) -> None:
    rule = kube.faults.add("create", "pods", **fault)

    result = launch(launcher, f"{outcome}-{reason}")

    assert rule.hits >= 1
    assert result.ok is (outcome == "retried")
    tagged = f"hybrid_executor.pod_create.{outcome}"
    statsd.wait_for(lambda: counted(statsd, tagged, reason=reason) == 1, what=f"{tagged} reason={reason}")
    statsd.wait_for(lambda: counted(statsd, f"{tagged}.{reason}") == 1, what=f"{tagged}.{reason}")
    other = "failed" if outcome == "retried" else "retried"
    assert counted(statsd, f"hybrid_executor.pod_create.{other}") == 0
    succeeded = 1 if result.ok else 0
    statsd.wait_for(
        lambda: len(statsd.received("hybrid_executor.pod_create.latency")) == result.attempts,
        what="one latency per create request",
    )
    assert counted(statsd, "hybrid_executor.pod_create.succeeded") == succeeded
    assert len(statsd.received("hybrid_executor.pod_create.queued_to_created")) == succeeded
    assert {m.kind for m in statsd.received("hybrid_executor.pod_create.latency")} == {"ms"}


def _unbuildable() -> client.V1Pod:
    raise PodBuildError("pod_override is not a V1Pod (a dict): give executor_config a k8s.V1Pod")


@pytest.mark.parametrize(
    ("request_options", "reason"),
    [
        ({"pod": _unbuildable}, "build"),
        ({"deadline": time.monotonic() - 1}, "expired"),  # the workload's token would expire before the pod ran
    ],
    ids=["the pod cannot be built", "the token expires first"],
)
def test_a_launch_that_sends_no_create_counts_its_failure(
    launcher: PodLauncher, statsd: StatsdReceiver, request_options: dict[str, Any], reason: str
) -> None:
    result = launch(launcher, f"unsent-{reason}", **request_options)

    assert (result.ok, result.attempts) == (False, 0)
    statsd.wait_for(lambda: counted(statsd, "hybrid_executor.pod_create.failed", reason=reason) == 1, what=reason)
    assert counted(statsd, f"hybrid_executor.pod_create.failed.{reason}") == 1
    assert not statsd.received("hybrid_executor.pod_create.latency")


def test_deletes_count_done_retried_and_failed(kube: LocalKubeAPI, api: KubeApi, statsd: StatsdReceiver) -> None:
    core = client.CoreV1Api(kube.api_client())
    for name in ("deleted", "refused"):
        core.create_namespaced_pod(NS, pod(name))
    kube.faults.add("delete", "pods", f"/api/v1/namespaces/{NS}/pods/deleted", status=503, times=1)
    kube.faults.add("delete", "pods", f"/api/v1/namespaces/{NS}/pods/refused", status=400)
    deleter = PodDeleter(api, concurrency=2, backoff_multiplier=0.01, backoff_max=0.05)
    deleter.start()
    try:
        deleter.delete(NS, "deleted")
        deleter.delete(NS, "refused")
        deleter.delete(NS, "never-was")  # 404: done, nothing to delete

        statsd.wait_for(lambda: counted(statsd, "hybrid_executor.pod_delete.done") == 2, what="two deletes done")
        statsd.wait_for(lambda: counted(statsd, "hybrid_executor.pod_delete.failed", reason="invalid") == 1)
    finally:
        deleter.stop(timeout=5)
    assert counted(statsd, "hybrid_executor.pod_delete.retried", reason="server") == 1
    assert counted(statsd, "hybrid_executor.pod_delete.retried.server") == 1
    assert counted(statsd, "hybrid_executor.pod_delete.failed.invalid") == 1


def test_a_broken_watch_counts_a_reconnect_and_a_410_a_relist(
    kube: LocalKubeAPI, api: KubeApi, statsd: StatsdReceiver
) -> None:
    # The first watch is reset, the next answers 410 Gone (a rule that answers is met once per request).
    reset = kube.faults.add("watch", "pods", reset=True, times=1)
    gone = kube.faults.add("watch", "pods", status=410, times=1)
    events: queue.SimpleQueue[PodEvent] = queue.SimpleQueue()
    watcher = PodWatcher(api, NS, "app=metrics-test", events, backoff_initial=0.01, backoff_max=0.05)
    watcher.start()
    try:
        statsd.wait_for(lambda: counted(statsd, "hybrid_executor.watch.relists", namespace=NS) == 1, what="one relist")
    finally:
        watcher.stop(timeout=5)
    assert (reset.hits, gone.hits) == (1, 1)
    assert counted(statsd, "hybrid_executor.watch.reconnects", namespace=NS) == 1
    assert counted(statsd, f"hybrid_executor.watch.reconnects.{NS}") == 1
    assert counted(statsd, f"hybrid_executor.watch.relists.{NS}") == 1

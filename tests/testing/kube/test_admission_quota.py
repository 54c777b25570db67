"""ResourceQuota on compute resources: "exceeded quota" and "failed quota" refusals, and status.used.

The refusal wordings are the ones recorded from a real v1.36 server (/work/shared/kubernetes-refusals.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

Refusal = Callable[..., dict[str, Any]]


def _quota(name: str, **hard: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": name}, "spec": {"hard": hard}}


def _pod(name: str, resources: dict[str, Any] | None = None, container: str = "base") -> dict[str, Any]:
    spec: dict[str, Any] = {"name": container, "image": "apache/airflow:3.3.2"}
    if resources is not None:
        spec["resources"] = resources
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [spec]}}


def _used(v1: client.CoreV1Api, ns: str, name: str) -> dict[str, str]:
    used: dict[str, str] = v1.read_namespaced_resource_quota(name, ns).status.used
    return used


CHART_QUOTA = {"requests.cpu": "20", "requests.memory": "64Gi", "limits.memory": "128Gi", "pods": "100"}


@pytest.mark.parametrize("dry_run", [None, "All"])
@pytest.mark.parametrize(
    ("name", "resources", "message"),
    [
        (
            "msg-0",
            {"requests": {"cpu": "30", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
            'pods "msg-0" is forbidden: exceeded quota: hybrid-executor-workers, requested: requests.cpu=30, '
            "used: requests.cpu=0, limited: requests.cpu=20",
        ),
        (
            "msg-1",
            {"requests": {"cpu": "1", "memory": "80Gi"}, "limits": {"memory": "80Gi"}},
            'pods "msg-1" is forbidden: exceeded quota: hybrid-executor-workers, requested: requests.memory=80Gi, '
            "used: requests.memory=0, limited: requests.memory=64Gi",
        ),
    ],
)
def test_recorded_exceeded_quota_refusals(
    kube: Any,
    v1: client.CoreV1Api,
    ns: str,
    refusal: Refusal,
    name: str,
    resources: dict[str, Any],
    message: str,
    dry_run: str | None,
) -> None:
    v1.create_namespaced_resource_quota(ns, _quota("hybrid-executor-workers", **CHART_QUOTA))
    before = kube.api.resource_version

    status = refusal(v1.create_namespaced_pod, ns, _pod(name, resources), dry_run=dry_run)

    assert (status["code"], status["reason"]) == (403, "Forbidden")
    assert status["message"] == message
    assert status["details"] == {"name": name, "kind": "pods"}
    assert kube.api.pods(ns) == []
    assert kube.api.resource_version == before


@pytest.mark.parametrize(
    ("name", "dry_run", "message"),
    [
        (
            "msg-3",
            None,
            'pods "msg-3" is forbidden: exceeded quota: zero-pods, requested: pods=1, used: pods=0, limited: pods=0',
        ),
        (
            "msg-4",
            "All",
            'pods "msg-4" is forbidden: exceeded quota: zero-pods, requested: pods=1, used: pods=0, limited: pods=0',
        ),
    ],
)
def test_recorded_zero_pods_refusal(
    kube: Any, v1: client.CoreV1Api, ns: str, refusal: Refusal, name: str, dry_run: str | None, message: str
) -> None:
    v1.create_namespaced_resource_quota(ns, _quota("zero-pods", pods="0"))

    status = refusal(v1.create_namespaced_pod, ns, _pod(name), dry_run=dry_run)

    assert status["message"] == message
    assert status["details"] == {"name": name, "kind": "pods"}
    assert kube.api.pods(ns) == []


@pytest.mark.parametrize("dry_run", [None, "All"])
def test_recorded_failed_quota_refusal(
    kube: Any, v1: client.CoreV1Api, ns: str, refusal: Refusal, dry_run: str | None
) -> None:
    v1.create_namespaced_resource_quota(ns, _quota("q", **{"requests.cpu": "10", "limits.memory": "10Gi"}))

    status = refusal(v1.create_namespaced_pod, ns, _pod("msg-8", {"requests": {"memory": "1Gi"}}), dry_run=dry_run)

    assert (status["code"], status["reason"]) == (403, "Forbidden")
    assert status["message"] == (
        'pods "msg-8" is forbidden: failed quota: q: must specify limits.memory for: base; requests.cpu for: base'
    )
    assert status["details"] == {"name": "msg-8", "kind": "pods"}
    assert kube.api.pods(ns) == []


def test_failed_quota_lists_every_container_missing_a_resource(v1: client.CoreV1Api, ns: str, refusal: Refusal) -> None:
    v1.create_namespaced_resource_quota(ns, _quota("compute", cpu="10", memory="10Gi"))
    body = _pod("two", {"requests": {"cpu": "1"}})
    body["spec"]["containers"].append({"name": "a-side", "image": "busybox:1.36"})
    body["spec"]["initContainers"] = [
        {"name": "init", "image": "busybox:1.36", "resources": {"limits": {"memory": "1Gi"}}}
    ]

    status = refusal(v1.create_namespaced_pod, ns, body)

    # Resources and container names in name order; a limit stands in for the request it defaults.
    assert (
        status["message"]
        == 'pods "two" is forbidden: failed quota: compute: must specify cpu for: a-side,init; memory for: a-side,base'
    )


def test_failed_quota_comes_before_any_exceeded_quota(v1: client.CoreV1Api, ns: str, refusal: Refusal) -> None:
    v1.create_namespaced_resource_quota(ns, _quota("a-pods", pods="0"))
    v1.create_namespaced_resource_quota(ns, _quota("b-cpu", **{"requests.cpu": "1"}))

    status = refusal(v1.create_namespaced_pod, ns, _pod("p"))

    assert status["message"] == 'pods "p" is forbidden: failed quota: b-cpu: must specify requests.cpu for: base'


def test_every_exceeded_resource_of_the_quota_is_named(v1: client.CoreV1Api, ns: str, refusal: Refusal) -> None:
    v1.create_namespaced_resource_quota(
        ns, _quota("small", **{"limits.memory": "1Gi", "requests.cpu": "1", "pods": "5"})
    )
    body = _pod("big", {"requests": {"cpu": "1500m"}, "limits": {"memory": "2Gi"}})

    status = refusal(v1.create_namespaced_pod, ns, body)

    assert status["message"] == (
        'pods "big" is forbidden: exceeded quota: small, requested: limits.memory=2Gi,requests.cpu=1500m, '
        "used: limits.memory=0,requests.cpu=0, limited: limits.memory=1Gi,requests.cpu=1"
    )


def test_cpu_and_memory_are_the_requests(v1: client.CoreV1Api, ns: str, refusal: Refusal) -> None:
    v1.create_namespaced_resource_quota(ns, _quota("plain", cpu="1", memory="1Gi"))
    v1.create_namespaced_pod(ns, _pod("first", {"requests": {"cpu": "600m", "memory": "512Mi"}}))

    status = refusal(v1.create_namespaced_pod, ns, _pod("second", {"requests": {"cpu": "600m", "memory": "256Mi"}}))

    assert status["message"] == (
        'pods "second" is forbidden: exceeded quota: plain, requested: cpu=600m, used: cpu=600m, limited: cpu=1'
    )
    assert _used(v1, ns, "plain") == {"cpu": "600m", "memory": "512Mi"}


def test_status_used_sums_the_pods_in_use(v1: client.CoreV1Api, ns: str) -> None:
    hard = {"requests.cpu": "10", "requests.memory": "64Gi", "limits.memory": "128Gi", "pods": "10", "count/pods": "10"}
    created = v1.create_namespaced_resource_quota(ns, _quota("q", **hard))
    assert created.status.used == {
        "count/pods": "0",
        "limits.memory": "0",
        "pods": "0",
        "requests.cpu": "0",
        "requests.memory": "0",
    }

    v1.create_namespaced_pod(
        ns, _pod("a", {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}})
    )
    v1.create_namespaced_pod(
        ns, _pod("b", {"requests": {"cpu": "1500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}})
    )

    assert _used(v1, ns, "q") == {
        "count/pods": "2",
        "limits.memory": "2Gi",
        "pods": "2",
        "requests.cpu": "2",
        "requests.memory": "1Gi",
    }

    v1.patch_namespaced_pod_status("a", ns, {"status": {"phase": "Succeeded"}})

    # A finished pod uses no compute and is no "pods", but it still counts among count/pods.
    assert _used(v1, ns, "q") == {
        "count/pods": "2",
        "limits.memory": "1Gi",
        "pods": "1",
        "requests.cpu": "1500m",
        "requests.memory": "512Mi",
    }

    v1.delete_namespaced_pod("a", ns)

    assert _used(v1, ns, "q")["count/pods"] == "1"


def test_used_compute_counts_towards_the_next_pod(v1: client.CoreV1Api, ns: str, refusal: Refusal) -> None:
    v1.create_namespaced_resource_quota(ns, _quota("cpu", **{"requests.cpu": "2"}))
    v1.create_namespaced_pod(ns, _pod("first", {"requests": {"cpu": "1500m"}}))

    status = refusal(v1.create_namespaced_pod, ns, _pod("second", {"requests": {"cpu": "1"}}))

    assert status["message"] == (
        'pods "second" is forbidden: exceeded quota: cpu, requested: requests.cpu=1, used: requests.cpu=1500m, '
        "limited: requests.cpu=2"
    )
    v1.patch_namespaced_pod_status("first", ns, {"status": {"phase": "Failed"}})
    assert v1.create_namespaced_pod(ns, _pod("second", {"requests": {"cpu": "1"}})).metadata.name == "second"


def test_init_containers_count_at_their_peak(v1: client.CoreV1Api, ns: str) -> None:
    v1.create_namespaced_resource_quota(ns, _quota("q", **{"requests.cpu": "10", "requests.memory": "10Gi"}))
    body = _pod("init", {"requests": {"cpu": "1", "memory": "1Gi"}})
    body["spec"]["initContainers"] = [
        {"name": "migrate", "image": "busybox:1.36", "resources": {"requests": {"cpu": "3", "memory": "256Mi"}}}
    ]

    v1.create_namespaced_pod(ns, body)

    assert _used(v1, ns, "q") == {"requests.cpu": "3", "requests.memory": "1Gi"}


def test_a_limit_range_default_satisfies_the_quota(v1: client.CoreV1Api, ns: str) -> None:
    # LimitRanger's defaults are filled in before ResourceQuota looks at the pod.
    v1.create_namespaced_limit_range(
        ns,
        {
            "metadata": {"name": "defaults"},
            "spec": {
                "limits": [{"type": "Container", "default": {"memory": "1Gi"}, "defaultRequest": {"cpu": "250m"}}]
            },
        },
    )
    v1.create_namespaced_resource_quota(ns, _quota("q", **{"requests.cpu": "1", "limits.memory": "4Gi"}))

    v1.create_namespaced_pod(ns, _pod("defaulted"))

    assert _used(v1, ns, "q") == {"limits.memory": "1Gi", "requests.cpu": "250m"}


def test_resources_pods_do_not_use_are_ignored(v1: client.CoreV1Api, ns: str) -> None:
    v1.create_namespaced_resource_quota(ns, _quota("other", services="0", **{"requests.storage": "0"}))

    pod = v1.create_namespaced_pod(ns, _pod("free"))

    assert pod.metadata.name == "free"


def test_extended_resources_are_counted_as_requests(v1: client.CoreV1Api, ns: str, refusal: Refusal) -> None:
    v1.create_namespaced_resource_quota(ns, _quota("gpus", **{"requests.nvidia.com/gpu": "1"}))

    status = refusal(v1.create_namespaced_pod, ns, _pod("gpu", {"limits": {"nvidia.com/gpu": "2"}}))

    assert status["message"] == (
        'pods "gpu" is forbidden: exceeded quota: gpus, requested: requests.nvidia.com/gpu=2, '
        "used: requests.nvidia.com/gpu=0, limited: requests.nvidia.com/gpu=1"
    )

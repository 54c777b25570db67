"""LimitRange: the object's verbs and validation, and the LimitRanger admission (defaults, then min/max) on pod create.

The refusal wordings are the ones recorded from a real v1.36 server (/work/shared/kubernetes-refusals.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

Refusal = Callable[..., dict[str, Any]]


def _limit_range(name: str = "limits", **item: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": name}, "spec": {"limits": [item]}}


def _pod(name: str, resources: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "base", "image": "apache/airflow:3.3.2"}
    if resources is not None:
        container["resources"] = resources
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [container], **spec}}


def _chart_limits(v1: client.CoreV1Api, ns: str) -> None:
    """A LimitRange as the chart's (max cpu 8, max memory 16Gi, min memory 64Mi)."""
    item: dict[str, Any] = {"type": "Container", "max": {"cpu": "8", "memory": "16Gi"}, "min": {"memory": "64Mi"}}
    v1.create_namespaced_limit_range(ns, _limit_range(**item))


# --- the object ------------------------------------------------------------------------------


def test_create_get_list_and_delete(v1: client.CoreV1Api, ns: str) -> None:
    created = v1.create_namespaced_limit_range(ns, _limit_range(type="Container", max={"cpu": "2000m"}))

    assert created.kind == "LimitRange"
    assert created.metadata.uid
    assert created.metadata.resource_version
    # SetDefaults_LimitRangeItem: the default limit is the max, the default request the default.
    assert created.spec.limits[0].max == {"cpu": "2"}
    assert created.spec.limits[0].default == {"cpu": "2"}
    assert created.spec.limits[0].default_request == {"cpu": "2"}
    assert v1.read_namespaced_limit_range("limits", ns).metadata.uid == created.metadata.uid
    assert [r.metadata.name for r in v1.list_namespaced_limit_range(ns).items] == ["limits"]
    listed = v1.list_limit_range_for_all_namespaces()
    assert listed.kind == "LimitRangeList"
    assert [(r.metadata.namespace, r.metadata.name) for r in listed.items] == [(ns, "limits")]

    v1.delete_namespaced_limit_range("limits", ns)

    assert v1.list_namespaced_limit_range(ns).items == []


def test_defaults_follow_min_when_there_is_no_max(v1: client.CoreV1Api, ns: str) -> None:
    created = v1.create_namespaced_limit_range(
        ns, _limit_range(type="Container", min={"memory": "64Mi"}, default={"cpu": "1"})
    )

    item = created.spec.limits[0]
    assert item.default == {"cpu": "1"}
    assert item.default_request == {"cpu": "1", "memory": "64Mi"}


def test_a_pod_item_gets_no_defaults(v1: client.CoreV1Api, ns: str) -> None:
    created = v1.create_namespaced_limit_range(ns, _limit_range(type="Pod", max={"cpu": "4"}))

    assert created.spec.limits[0].default is None
    assert created.spec.limits[0].default_request is None


def test_min_above_max_is_422(v1: client.CoreV1Api, ns: str, refusal: Refusal) -> None:
    status = refusal(
        v1.create_namespaced_limit_range, ns, _limit_range(type="Container", min={"cpu": "2"}, max={"cpu": "1"})
    )

    assert status["reason"] == "Invalid"
    # The defaults (1, from max) are checked too: min is above them.
    assert status["message"] == (
        'LimitRange "limits" is invalid: ['
        'spec.limits[0].min[cpu]: Invalid value: "2": min value 2 is greater than max value 1, '
        'spec.limits[0].defaultRequest[cpu]: Invalid value: "1": min value 2 is greater than default request value 1, '
        'spec.limits[0].default[cpu]: Invalid value: "2": min value 2 is greater than default value 1]'
    )
    assert [c["field"] for c in status["details"]["causes"]] == [
        "spec.limits[0].min[cpu]",
        "spec.limits[0].defaultRequest[cpu]",
        "spec.limits[0].default[cpu]",
    ]
    assert v1.list_namespaced_limit_range(ns).items == []


def test_unknown_type_and_resource_are_422(v1: client.CoreV1Api, ns: str, refusal: Refusal) -> None:
    body = _limit_range(type="Node", max={"cpu": "1"})
    body["spec"]["limits"].append({"type": "Container", "max": {"gpu": "1"}})

    status = refusal(v1.create_namespaced_limit_range, ns, body)

    assert status["message"] == (
        'LimitRange "limits" is invalid: ['
        'spec.limits[0].type: Invalid value: "Node": must be a standard limit type or fully qualified, '
        'spec.limits[1].max[gpu]: Invalid value: "gpu": must be a standard resource for containers, '
        'spec.limits[1].default[gpu]: Invalid value: "gpu": must be a standard resource for containers, '
        'spec.limits[1].defaultRequest[gpu]: Invalid value: "gpu": must be a standard resource for containers]'
    )


def test_defaults_on_a_pod_item_are_forbidden(v1: client.CoreV1Api, ns: str, refusal: Refusal) -> None:
    status = refusal(v1.create_namespaced_limit_range, ns, _limit_range(type="Pod", default={"cpu": "1"}))

    assert status["message"] == (
        "LimitRange \"limits\" is invalid: spec.limits[0].default: Forbidden: may not be specified when `type` is 'Pod'"
    )


def test_a_quantity_that_does_not_parse_is_400(kube: Any, ns: str) -> None:
    body = b'{"metadata":{"name":"bad"},"spec":{"limits":[{"type":"Container","max":{"cpu":"lots"}}]}}'

    code, answer = kube.raw("POST", f"/api/v1/namespaces/{ns}/limitranges", body)

    assert code == 400
    assert b"quantities must match the regular expression" in answer
    assert b'LimitRange in version \\"v1\\" cannot be handled as a LimitRange' in answer


def test_a_limit_range_in_a_missing_namespace_is_404(v1: client.CoreV1Api, refusal: Refusal) -> None:
    status = refusal(v1.create_namespaced_limit_range, "nowhere", _limit_range(type="Container"))

    assert (status["code"], status["message"]) == (404, 'namespaces "nowhere" not found')


# --- LimitRanger: defaults -------------------------------------------------------------------


def test_defaults_fill_what_a_container_lacks_and_are_annotated(v1: client.CoreV1Api, ns: str) -> None:
    item: dict[str, Any] = {
        "type": "Container",
        "default": {"cpu": "1", "memory": "1Gi"},
        "defaultRequest": {"cpu": "250m"},
    }
    v1.create_namespaced_limit_range(ns, _limit_range(**item))
    body = _pod("defaulted", {"requests": {"memory": "512Mi"}})
    body["spec"]["initContainers"] = [{"name": "setup", "image": "busybox:1.36", "command": ["true"]}]

    pod = v1.create_namespaced_pod(ns, body)

    base, setup = pod.spec.containers[0], pod.spec.init_containers[0]
    assert base.resources.requests == {"cpu": "250m", "memory": "512Mi"}
    assert base.resources.limits == {"cpu": "1", "memory": "1Gi"}
    assert setup.resources.requests == {"cpu": "250m", "memory": "1Gi"}
    assert setup.resources.limits == {"cpu": "1", "memory": "1Gi"}
    assert pod.metadata.annotations == {
        "kubernetes.io/limit-ranger": "LimitRanger plugin set: cpu request for container base; "
        "cpu, memory limit for container base; cpu, memory request for init container setup; "
        "cpu, memory limit for init container setup"
    }
    assert pod.status.qos_class == "Burstable"


def test_a_limit_without_a_request_is_the_request(v1: client.CoreV1Api, ns: str) -> None:
    # SetDefaults_Pod, as the body is decoded (before LimitRanger and quota look at it).
    pod = v1.create_namespaced_pod(ns, _pod("limited", {"limits": {"cpu": "2", "memory": "1Gi"}}))

    assert pod.spec.containers[0].resources.requests == {"cpu": "2", "memory": "1Gi"}
    assert pod.status.qos_class == "Guaranteed"


def test_without_a_limit_range_nothing_is_defaulted(v1: client.CoreV1Api, ns: str) -> None:
    pod = v1.create_namespaced_pod(ns, _pod("plain"))

    assert pod.spec.containers[0].resources.requests is None
    assert pod.metadata.annotations is None


# --- LimitRanger: bounds (recorded messages) -------------------------------------------------


@pytest.mark.parametrize("dry_run", [None, "All"])
@pytest.mark.parametrize(
    ("name", "resources", "message"),
    [
        (
            "msg-5",
            {"limits": {"cpu": "60"}},
            'pods "msg-5" is forbidden: maximum cpu usage per Container is 8, but limit is 60',
        ),
        (
            "msg-6",
            {"limits": {"memory": "32Gi"}},
            'pods "msg-6" is forbidden: maximum memory usage per Container is 16Gi, but limit is 32Gi',
        ),
        (
            "msg-7",
            {"requests": {"memory": "16Mi"}},
            'pods "msg-7" is forbidden: minimum memory usage per Container is 64Mi, but request is 16Mi',
        ),
    ],
)
def test_recorded_limit_range_refusals(
    kube: Any,
    v1: client.CoreV1Api,
    ns: str,
    refusal: Refusal,
    name: str,
    resources: dict[str, Any],
    message: str,
    dry_run: str | None,
) -> None:
    _chart_limits(v1, ns)
    before = kube.api.resource_version

    status = refusal(v1.create_namespaced_pod, ns, _pod(name, resources), dry_run=dry_run)

    assert (status["code"], status["reason"]) == (403, "Forbidden")
    assert status["message"] == message
    assert status["details"] == {"name": name, "kind": "pods"}
    assert kube.api.pods(ns) == []
    assert kube.api.resource_version == before


def test_a_request_over_max_is_refused_when_the_limit_is_within(
    v1: client.CoreV1Api, ns: str, refusal: Refusal
) -> None:
    v1.create_namespaced_limit_range(ns, _limit_range(type="Container", max={"memory": "1Gi"}))
    body = _pod("p", {"requests": {"memory": "2Gi"}, "limits": {"memory": "4Gi"}})

    status = refusal(v1.create_namespaced_pod, ns, body)

    assert status["message"] == 'pods "p" is forbidden: maximum memory usage per Container is 1Gi, but limit is 4Gi'


def test_every_violation_of_a_limit_range_is_listed(v1: client.CoreV1Api, ns: str, refusal: Refusal) -> None:
    item: dict[str, Any] = {
        "type": "Container",
        "min": {"cpu": "100m", "memory": "64Mi"},
        "maxLimitRequestRatio": {"cpu": "2"},
    }
    v1.create_namespaced_limit_range(ns, _limit_range(**item))
    body = _pod("many", {"requests": {"cpu": "50m", "memory": "16Mi"}, "limits": {"cpu": "500m", "memory": "1Gi"}})

    status = refusal(v1.create_namespaced_pod, ns, body)

    assert status["message"] == (
        'pods "many" is forbidden: [minimum cpu usage per Container is 100m, but request is 50m, '
        "minimum memory usage per Container is 64Mi, but request is 16Mi, "
        "cpu max limit to request ratio per Container is 2, but provided ratio is 10.000000]"
    )


def test_a_pod_item_bounds_the_pods_total(v1: client.CoreV1Api, ns: str, refusal: Refusal) -> None:
    v1.create_namespaced_limit_range(ns, _limit_range("pod-total", type="Pod", max={"cpu": "1"}))
    body = _pod("two", {"limits": {"cpu": "600m"}})
    body["spec"]["containers"].append(
        {"name": "side", "image": "busybox:1.36", "resources": {"limits": {"cpu": "600m"}}}
    )

    status = refusal(v1.create_namespaced_pod, ns, body)

    assert status["message"] == 'pods "two" is forbidden: maximum cpu usage per Pod is 1, but limit is 1200m'


def test_a_container_without_the_request_a_min_needs(v1: client.CoreV1Api, ns: str, refusal: Refusal) -> None:
    # A min with no default: LimitRanger defaults the request to the min, so only an explicit lower one fails...
    v1.create_namespaced_limit_range(ns, _limit_range(type="Container", min={"cpu": "100m"}))
    assert v1.create_namespaced_pod(ns, _pod("defaulted")).spec.containers[0].resources.requests == {"cpu": "100m"}
    # ...while a Pod item has no defaults at all.
    v1.create_namespaced_limit_range(ns, _limit_range("pod-min", type="Pod", min={"memory": "1Mi"}))

    status = refusal(v1.create_namespaced_pod, ns, _pod("bare"))

    assert (
        status["message"] == 'pods "bare" is forbidden: minimum memory usage per Pod is 1Mi.  No request is specified'
    )


def test_a_pod_within_the_limits_is_created(v1: client.CoreV1Api, ns: str) -> None:
    _chart_limits(v1, ns)

    pod = v1.create_namespaced_pod(ns, _pod("fits", {"requests": {"cpu": "500m", "memory": "512Mi"}}))

    assert pod.spec.containers[0].resources.limits == {"cpu": "8", "memory": "16Gi"}

"""ResourceQuota: the object's verbs, the quota admission's 403 and the controller's status.used."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiException


def _status(excinfo: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(excinfo.value.body)
    return body


def _quota(name: str, **hard: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": name}, "spec": {"hard": hard}}


def _used(v1: client.CoreV1Api, ns: str, name: str = "pods") -> dict[str, str]:
    used: dict[str, str] = v1.read_namespaced_resource_quota(name, ns).status.used
    return used


def test_create_get_and_list(v1: client.CoreV1Api, ns: str) -> None:
    v1.create_namespace({"metadata": {"name": "elsewhere"}})

    created = v1.create_namespaced_resource_quota(ns, _quota("pods", pods="10"))
    v1.create_namespaced_resource_quota("elsewhere", _quota("other", **{"count/pods": "3"}))

    assert created.kind == "ResourceQuota"
    assert created.metadata.uid
    assert created.spec.hard == {"pods": "10"}
    assert created.status.hard == {"pods": "10"}
    assert created.status.used == {"pods": "0"}
    assert v1.read_namespaced_resource_quota("pods", ns).metadata.uid == created.metadata.uid
    assert [q.metadata.name for q in v1.list_namespaced_resource_quota(ns).items] == ["pods"]
    everywhere = v1.list_resource_quota_for_all_namespaces()
    assert [(q.metadata.namespace, q.metadata.name) for q in everywhere.items] == [
        ("elsewhere", "other"),
        (ns, "pods"),
    ]
    assert everywhere.kind == "ResourceQuotaList"


def test_create_twice_is_409(v1: client.CoreV1Api, ns: str) -> None:
    v1.create_namespaced_resource_quota(ns, _quota("q", pods="1"))

    with pytest.raises(ApiException) as excinfo:
        v1.create_namespaced_resource_quota(ns, _quota("q", pods="1"))

    assert excinfo.value.status == 409
    assert _status(excinfo)["message"] == 'resourcequotas "q" already exists'


def test_quantities_are_stored_in_canonical_form(v1: client.CoreV1Api, ns: str) -> None:
    created = v1.create_namespaced_resource_quota(ns, _quota("sized", pods="10", **{"requests.memory": "2048Mi"}))

    assert created.spec.hard == {"pods": "10", "requests.memory": "2Gi"}
    assert created.status.hard == {"pods": "10", "requests.memory": "2Gi"}


def test_unparsable_hard_quantity_is_400(v1: client.CoreV1Api, ns: str) -> None:
    with pytest.raises(ApiException) as excinfo:
        v1.create_namespaced_resource_quota(ns, _quota("bad", pods="lots"))

    assert excinfo.value.status == 400
    assert _status(excinfo)["message"] == (
        'ResourceQuota in version "v1" cannot be handled as a ResourceQuota: quantities must match the regular '
        "expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )


def test_negative_hard_quantity_is_422(v1: client.CoreV1Api, ns: str) -> None:
    with pytest.raises(ApiException) as excinfo:
        v1.create_namespaced_resource_quota(ns, _quota("negative", pods="-1"))

    assert excinfo.value.status == 422
    assert _status(excinfo)["message"] == (
        'ResourceQuota "negative" is invalid: spec.hard[pods]: Invalid value: "-1": must be greater than or equal to 0'
    )


def test_quota_in_missing_namespace_is_404(v1: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as excinfo:
        v1.create_namespaced_resource_quota("nowhere", _quota("q", pods="1"))

    assert excinfo.value.status == 404
    assert _status(excinfo)["message"] == 'namespaces "nowhere" not found'


def test_status_patch(v1: client.CoreV1Api, ns: str) -> None:
    created = v1.create_namespaced_resource_quota(ns, _quota("pods", pods="10"))

    patched = v1.patch_namespaced_resource_quota_status(
        "pods", ns, {"spec": {"hard": {"pods": "99"}}, "status": {"used": {"pods": "7"}}}
    )

    assert patched.status.used == {"pods": "7"}
    assert patched.status.hard == {"pods": "10"}
    assert patched.spec.hard == {"pods": "10"}  # the status subresource leaves the spec alone
    assert patched.metadata.resource_version != created.metadata.resource_version
    assert v1.read_namespaced_resource_quota_status("pods", ns).status.used == {"pods": "7"}


def test_raising_the_hard_limit_updates_the_status(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    v1.create_namespaced_resource_quota(ns, _quota("pods", pods="1"))
    make_pod("first")

    v1.patch_namespaced_resource_quota("pods", ns, {"spec": {"hard": {"pods": "2"}}})

    quota = v1.read_namespaced_resource_quota("pods", ns)
    assert quota.status.hard == {"pods": "2"}
    assert quota.status.used == {"pods": "1"}
    make_pod("second")  # admitted under the new limit


def test_pods_beyond_the_hard_limit_are_403(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod], pod_body: Callable[..., dict[str, Any]]
) -> None:
    v1.create_namespaced_resource_quota(ns, _quota("pod-count", pods="2"))
    make_pod("p1")
    make_pod("p2")

    with pytest.raises(ApiException) as excinfo:
        v1.create_namespaced_pod(ns, pod_body("p3"))

    assert excinfo.value.status == 403
    status = _status(excinfo)
    assert status["reason"] == "Forbidden"
    assert status["message"] == (
        'pods "p3" is forbidden: exceeded quota: pod-count, requested: pods=1, used: pods=2, limited: pods=2'
    )
    assert status["details"] == {"name": "p3", "kind": "pods"}
    assert [p.metadata.name for p in v1.list_namespaced_pod(ns).items] == ["p1", "p2"]


def test_the_forbidden_pod_is_named_after_its_generated_name(
    v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]
) -> None:
    v1.create_namespaced_resource_quota(ns, _quota("none", pods="0"))

    with pytest.raises(ApiException) as excinfo:
        v1.create_namespaced_pod(ns, pod_body(generate_name="job-"))

    assert excinfo.value.status == 403
    name = _status(excinfo)["details"]["name"]
    assert name.startswith("job-")
    assert _status(excinfo)["message"] == (
        f'pods "{name}" is forbidden: exceeded quota: none, requested: pods=1, used: pods=0, limited: pods=0'
    )


def test_count_pods_quota(v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]) -> None:
    v1.create_namespaced_resource_quota(ns, _quota("objects", **{"count/pods": "1"}))
    make_pod("only")

    with pytest.raises(ApiException) as excinfo:
        make_pod("extra")

    assert excinfo.value.status == 403
    assert _status(excinfo)["message"] == (
        'pods "extra" is forbidden: exceeded quota: objects, requested: count/pods=1, used: count/pods=1, '
        "limited: count/pods=1"
    )


def test_pods_in_a_terminal_phase_do_not_count(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    v1.create_namespaced_resource_quota(ns, _quota("pods", pods="2"))
    make_pod("a")
    make_pod("b")
    with pytest.raises(ApiException):
        make_pod("c")

    v1.patch_namespaced_pod_status("a", ns, {"status": {"phase": "Failed"}})
    assert _used(v1, ns) == {"pods": "1"}
    make_pod("c")
    assert _used(v1, ns) == {"pods": "2"}

    v1.patch_namespaced_pod_status("b", ns, {"status": {"phase": "Succeeded"}})
    make_pod("d")
    assert _used(v1, ns) == {"pods": "2"}
    with pytest.raises(ApiException) as excinfo:
        make_pod("e")
    assert "used: pods=2, limited: pods=2" in _status(excinfo)["message"]


def test_status_used_follows_the_pods_in_use(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    v1.create_namespaced_resource_quota(ns, _quota("pods", pods="10"))
    v1.create_namespaced_resource_quota(ns, _quota("objects", **{"count/pods": "10"}))

    for name in ("x", "y", "z"):
        make_pod(name)
    assert _used(v1, ns) == {"pods": "3"}
    assert _used(v1, ns, "objects") == {"count/pods": "3"}

    v1.delete_namespaced_pod("y", ns)
    assert _used(v1, ns) == {"pods": "2"}

    v1.patch_namespaced_pod_status("z", ns, {"status": {"phase": "Running"}})
    assert _used(v1, ns) == {"pods": "2"}


def test_a_quota_counts_the_pods_already_there(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    make_pod("early-1")
    make_pod("early-2")

    created = v1.create_namespaced_resource_quota(ns, _quota("late", pods="1"))

    assert created.status.used == {"pods": "2"}
    with pytest.raises(ApiException) as excinfo:
        make_pod("late-pod")
    assert _status(excinfo)["message"].endswith("used: pods=2, limited: pods=1")


def test_the_quota_of_another_namespace_does_not_apply(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    v1.create_namespace({"metadata": {"name": "strict"}})
    v1.create_namespaced_resource_quota("strict", _quota("none", pods="0"))

    make_pod("free")

    assert [p.metadata.name for p in v1.list_namespaced_pod(ns).items] == ["free"]


def test_delete_quota_lifts_the_limit(v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]) -> None:
    v1.create_namespaced_resource_quota(ns, _quota("none", pods="0"))
    with pytest.raises(ApiException):
        make_pod("blocked")

    v1.delete_namespaced_resource_quota("none", ns)

    assert make_pod("allowed").metadata.name == "allowed"
    with pytest.raises(ApiException) as excinfo:
        v1.read_namespaced_resource_quota("none", ns)
    assert excinfo.value.status == 404

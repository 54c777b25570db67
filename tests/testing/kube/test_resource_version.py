"""resourceVersion: one store-wide counter that every change raises, and what lists make of it.

These tests compare resourceVersions on purpose: they check the server's own counter. Clients must
treat resourceVersions as opaque strings, and nothing else in the tests compares them.
"""

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


def test_a_new_server_has_counted_its_default_namespaces(kube: Any, v1: client.CoreV1Api) -> None:
    listed = v1.list_namespace()

    # Each namespace, then its "default" ServiceAccount (the ServiceAccount controller's).
    assert kube.api.resource_version == 8
    assert listed.metadata.resource_version == "8"
    assert sorted(int(n.metadata.resource_version) for n in listed.items) == [1, 3, 5, 7]
    accounts = v1.list_service_account_for_all_namespaces().items
    assert sorted(int(a.metadata.resource_version) for a in accounts) == [2, 4, 6, 8]


def test_every_change_in_any_resource_raises_the_one_counter(
    kube: Any, v1: client.CoreV1Api, pod_body: Callable[..., dict[str, Any]]
) -> None:
    counter = kube.api.resource_version

    def changed_once(resource_version: str) -> None:
        nonlocal counter
        counter += 1
        assert kube.api.resource_version == counter
        assert resource_version == str(counter)

    # A new namespace is one change, and its "default" ServiceAccount (the controller's) another.
    assert v1.create_namespace({"metadata": {"name": "rv"}}).metadata.resource_version == str(counter + 1)
    counter += 1
    changed_once(v1.read_namespaced_service_account("default", "rv").metadata.resource_version)
    changed_once(v1.create_namespaced_pod("rv", pod_body("p")).metadata.resource_version)
    changed_once(v1.patch_namespaced_pod("p", "rv", {"metadata": {"labels": {"a": "b"}}}).metadata.resource_version)
    changed_once(v1.patch_namespaced_pod_status("p", "rv", {"status": {"phase": "Running"}}).metadata.resource_version)
    changed_once(v1.patch_namespace("rv", {"metadata": {"labels": {"x": "y"}}}).metadata.resource_version)
    # An immediate delete is two changes: the store marks the pod (deletionTimestamp), then removes it.
    counter += 1
    changed_once(v1.delete_namespaced_pod("p", "rv").metadata.resource_version)
    quota = {"metadata": {"name": "q"}, "spec": {"hard": {"pods": "5"}}}
    changed_once(v1.create_namespaced_resource_quota("rv", quota).metadata.resource_version)
    # A pod created under a quota is one change, and the quota controller's status.used another.
    pod = v1.create_namespaced_pod("rv", pod_body("counted"))
    assert pod.metadata.resource_version == str(counter + 1)
    quota_now = v1.read_namespaced_resource_quota("q", "rv")
    assert quota_now.status.used == {"pods": "1"}
    assert quota_now.metadata.resource_version == str(counter + 2)
    assert kube.api.resource_version == counter + 2


def test_a_list_answers_the_newest_revision_of_the_whole_store(
    kube: Any, v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    make_pod("p")
    v1.create_namespace({"metadata": {"name": "later"}})  # the newest change is not a pod

    pods = v1.list_namespaced_pod(ns)
    nothing = v1.list_namespaced_pod("later")
    quotas = v1.list_resource_quota_for_all_namespaces()

    newest = str(kube.api.resource_version)
    assert pods.metadata.resource_version == newest
    assert nothing.metadata.resource_version == newest
    assert quotas.metadata.resource_version == newest
    assert pods.items[0].metadata.resource_version != newest


def test_failed_writes_do_not_raise_the_counter(
    kube: Any, v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod], pod_body: Callable[..., Any]
) -> None:
    make_pod("taken")
    before = kube.api.resource_version

    for attempt in (
        lambda: v1.create_namespaced_pod(ns, pod_body("taken")),
        lambda: v1.create_namespaced_pod(ns, pod_body("Bad_Name")),
        lambda: v1.create_namespaced_pod("missing", pod_body("p")),
        lambda: v1.delete_namespaced_pod("ghost", ns),
        lambda: v1.patch_namespaced_pod("taken", ns, {"spec": {"restartPolicy": "Never"}}),
    ):
        with pytest.raises(ApiException):
            attempt()

    assert kube.api.resource_version == before


def test_list_at_an_exact_older_revision(v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]) -> None:
    make_pod("a", labels={"v": "1"})
    then = v1.list_namespaced_pod(ns).metadata.resource_version
    make_pod("b")
    v1.patch_namespaced_pod("a", ns, {"metadata": {"labels": {"v": "2"}}})

    old = v1.list_namespaced_pod(ns, resource_version=then, resource_version_match="Exact")
    new = v1.list_namespaced_pod(ns, resource_version=then, resource_version_match="NotOlderThan")

    assert old.metadata.resource_version == then
    assert [(p.metadata.name, p.metadata.labels) for p in old.items] == [("a", {"v": "1"})]
    assert [(p.metadata.name, p.metadata.labels) for p in new.items] == [("a", {"v": "2"}), ("b", None)]


def test_list_at_a_compacted_revision_is_410(
    kube: Any, v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    then = v1.list_namespaced_pod(ns).metadata.resource_version
    make_pod("a")
    compacted = kube.api.compact()

    with pytest.raises(ApiException) as excinfo:
        v1.list_namespaced_pod(ns, resource_version=then, resource_version_match="Exact")

    assert excinfo.value.status == 410
    assert _status(excinfo)["reason"] == "Expired"
    assert _status(excinfo)["message"] == "The resourceVersion for the provided list is too old."
    # A list at "any" or "not older than" that revision is served from the newest state.
    assert [p.metadata.name for p in v1.list_namespaced_pod(ns, resource_version=then).items] == ["a"]
    assert kube.api.resource_version == compacted


def test_legacy_exact_list_with_a_limit(v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]) -> None:
    make_pod("a")
    then = v1.list_namespaced_pod(ns).metadata.resource_version
    make_pod("b")

    # resourceVersion with a limit and no resourceVersionMatch reads at exactly that revision.
    page = v1.list_namespaced_pod(ns, resource_version=then, limit=10)

    assert [p.metadata.name for p in page.items] == ["a"]
    assert page.metadata.resource_version == then
    # Without a limit it means "not older than".
    assert [p.metadata.name for p in v1.list_namespaced_pod(ns, resource_version=then).items] == ["a", "b"]


def test_list_at_a_future_revision_is_504_too_large(kube: Any, v1: client.CoreV1Api, ns: str) -> None:
    future = str(kube.api.resource_version + 100)

    with pytest.raises(ApiException) as excinfo:
        v1.list_namespaced_pod(ns, resource_version=future, resource_version_match="NotOlderThan")

    assert excinfo.value.status == 504
    assert excinfo.value.headers["Retry-After"] == "1"
    status = _status(excinfo)
    assert status["reason"] == "Timeout"
    assert status["message"] == f"Too large resource version: {future}, current: {kube.api.resource_version}"
    assert status["details"] == {
        "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
        "retryAfterSeconds": 1,
    }


def test_resource_version_match_without_resource_version_is_refused(v1: client.CoreV1Api, ns: str) -> None:
    with pytest.raises(ApiException) as excinfo:
        v1.list_namespaced_pod(ns, resource_version_match="Exact")

    assert excinfo.value.status == 422
    status = _status(excinfo)
    assert status["reason"] == "Invalid"
    assert status["message"] == (
        'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: '
        "resourceVersionMatch is forbidden unless resourceVersion is provided"
    )


def test_garbage_resource_version_is_400(v1: client.CoreV1Api, ns: str) -> None:
    with pytest.raises(ApiException) as excinfo:
        v1.list_namespaced_pod(ns, resource_version="abc", resource_version_match="NotOlderThan")

    assert excinfo.value.status == 400
    assert _status(excinfo)["reason"] == "BadRequest"
    assert _status(excinfo)["message"].startswith("invalid resource version")

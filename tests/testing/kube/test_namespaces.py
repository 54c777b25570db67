"""Namespaces: create, get, list, delete (Terminating, then gone) and the NamespaceLifecycle admission."""

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


def test_create_fills_what_the_server_owns(v1: client.CoreV1Api) -> None:
    created = v1.create_namespace({"metadata": {"name": "team-a", "labels": {"owner": "me"}}})

    assert created.metadata.name == "team-a"
    assert created.metadata.uid
    assert created.metadata.creation_timestamp is not None
    assert int(created.metadata.resource_version) > 0
    assert created.metadata.labels == {"owner": "me", "kubernetes.io/metadata.name": "team-a"}
    assert created.spec.finalizers == ["kubernetes"]
    assert created.status.phase == "Active"


def test_get_and_list(v1: client.CoreV1Api) -> None:
    v1.create_namespace({"metadata": {"name": "listed"}})

    assert v1.read_namespace("listed").status.phase == "Active"
    names = {item.metadata.name for item in v1.list_namespace().items}
    assert names == {"default", "kube-system", "kube-public", "kube-node-lease", "listed"}
    selected = v1.list_namespace(label_selector="kubernetes.io/metadata.name=listed").items
    assert [item.metadata.name for item in selected] == ["listed"]


def test_get_missing_namespace_is_404(v1: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as excinfo:
        v1.read_namespace("absent")

    assert excinfo.value.status == 404
    assert _status(excinfo)["message"] == 'namespaces "absent" not found'
    assert _status(excinfo)["details"] == {"name": "absent", "kind": "namespaces"}


def test_create_twice_is_409(v1: client.CoreV1Api) -> None:
    v1.create_namespace({"metadata": {"name": "twice"}})
    with pytest.raises(ApiException) as excinfo:
        v1.create_namespace({"metadata": {"name": "twice"}})

    assert excinfo.value.status == 409
    assert _status(excinfo)["reason"] == "AlreadyExists"
    assert _status(excinfo)["message"] == 'namespaces "twice" already exists'


def test_namespace_name_must_be_a_dns_label(v1: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as excinfo:
        v1.create_namespace({"metadata": {"name": "a.b"}})

    assert excinfo.value.status == 422
    status = _status(excinfo)
    assert status["message"].startswith('Namespace "a.b" is invalid: metadata.name: Invalid value: "a.b": ')
    assert [cause["field"] for cause in status["details"]["causes"]] == ["metadata.name"]


def test_delete_empty_namespace_answers_terminating_then_it_is_gone(v1: client.CoreV1Api) -> None:
    v1.create_namespace({"metadata": {"name": "short-lived"}})

    # The answer is the Namespace itself (the client's model says V1Status, so read the JSON).
    answer = json.loads(v1.delete_namespace("short-lived", _preload_content=False).data)

    assert answer["kind"] == "Namespace"
    assert answer["status"]["phase"] == "Terminating"
    assert answer["metadata"]["deletionTimestamp"]
    with pytest.raises(ApiException) as excinfo:
        v1.read_namespace("short-lived")
    assert excinfo.value.status == 404
    assert "short-lived" not in {item.metadata.name for item in v1.list_namespace().items}


def test_delete_namespace_deletes_its_pods(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    make_pod("one")
    make_pod("two")
    v1.create_namespace({"metadata": {"name": "neighbour"}})
    make_pod("kept", namespace="neighbour")

    v1.delete_namespace(ns)

    assert v1.list_namespaced_pod(ns).items == []
    assert [p.metadata.name for p in v1.list_pod_for_all_namespaces().items] == ["kept"]
    with pytest.raises(ApiException) as excinfo:
        v1.read_namespace(ns)
    assert excinfo.value.status == 404


def _terminating_namespace(v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]) -> None:
    """Delete ``ns`` while a pod bound to a node holds it (its graceful deletion keeps it a while)."""
    make_pod("bound", nodeName="node-1")
    v1.delete_namespace(ns)
    assert v1.read_namespace(ns).status.phase == "Terminating"
    assert v1.read_namespaced_pod("bound", ns).metadata.deletion_timestamp is not None


def test_create_in_terminating_namespace_is_403(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod], pod_body: Callable[..., dict[str, Any]]
) -> None:
    _terminating_namespace(v1, ns, make_pod)

    with pytest.raises(ApiException) as excinfo:
        v1.create_namespaced_pod(ns, pod_body("late"))

    assert excinfo.value.status == 403
    status = _status(excinfo)
    assert status["reason"] == "Forbidden"
    assert status["message"] == (
        f'pods "late" is forbidden: unable to create new content in namespace {ns} because it is being terminated'
    )
    assert status["details"] == {
        "name": "late",
        "kind": "pods",
        "causes": [
            {
                "reason": "NamespaceTerminating",
                "message": f"namespace {ns} is being terminated",
                "field": "metadata.namespace",
            }
        ],
    }


def test_create_with_generate_name_in_terminating_namespace_names_the_prefix(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod], pod_body: Callable[..., dict[str, Any]]
) -> None:
    # NamespaceLifecycle is a mutating admission: it runs before the name is generated, so
    # admission.NewForbidden names the pod by its generateName.
    _terminating_namespace(v1, ns, make_pod)

    with pytest.raises(ApiException) as excinfo:
        v1.create_namespaced_pod(ns, pod_body(generate_name="late-"))

    assert excinfo.value.status == 403
    status = _status(excinfo)
    assert status["message"] == (
        f'pods "late-" is forbidden: unable to create new content in namespace {ns} because it is being terminated'
    )
    assert status["details"]["name"] == "late-"


def test_terminating_namespace_goes_when_its_last_pod_goes(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    _terminating_namespace(v1, ns, make_pod)

    v1.delete_namespaced_pod("bound", ns, grace_period_seconds=0)

    with pytest.raises(ApiException) as excinfo:
        v1.read_namespace(ns)
    assert excinfo.value.status == 404


@pytest.mark.parametrize("name", ["default", "kube-system", "kube-public"])
def test_immortal_namespaces_cannot_be_deleted(v1: client.CoreV1Api, name: str) -> None:
    with pytest.raises(ApiException) as excinfo:
        v1.delete_namespace(name)

    assert excinfo.value.status == 403
    assert _status(excinfo)["message"] == f'namespaces "{name}" is forbidden: this namespace may not be deleted'
    assert v1.read_namespace(name).status.phase == "Active"


def test_create_pod_in_missing_namespace_is_404(v1: client.CoreV1Api, pod_body: Callable[..., dict[str, Any]]) -> None:
    with pytest.raises(ApiException) as excinfo:
        v1.create_namespaced_pod("x", pod_body("p"))

    assert excinfo.value.status == 404
    status = _status(excinfo)
    assert status["reason"] == "NotFound"
    assert status["message"] == 'namespaces "x" not found'
    assert status["details"] == {"name": "x", "kind": "namespaces"}

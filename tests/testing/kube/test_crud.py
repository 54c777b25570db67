"""Pods: create (server-owned fields, defaults, generateName), get, delete, and the 404/409 answers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiException


def _status(excinfo: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(excinfo.value.body)
    return body


def test_create_fills_server_owned_fields(
    v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]
) -> None:
    body = pod_body("web", labels={"app": "web"})
    body["metadata"].update(uid="client-chosen", resourceVersion="999", creationTimestamp="2000-01-01T00:00:00Z")
    body["status"] = {"phase": "Running"}

    created = v1.create_namespaced_pod(ns, body)

    assert created.kind == "Pod"
    assert created.api_version == "v1"
    assert created.metadata.name == "web"
    assert created.metadata.namespace == ns
    assert created.metadata.labels == {"app": "web"}
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", created.metadata.uid)
    assert created.metadata.resource_version not in (None, "", "999")
    assert created.metadata.creation_timestamp.year > 2000
    assert created.metadata.generation == 1
    assert created.metadata.deletion_timestamp is None
    assert created.status.phase == "Pending"  # a client cannot create a pod with a status of its own
    assert created.status.qos_class == "BestEffort"


def test_create_fills_the_defaults(v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]) -> None:
    body = pod_body("defaults")
    body["spec"]["containers"].append({"name": "sidecar", "image": "registry.local:5000/tools"})

    spec = v1.create_namespaced_pod(ns, body).spec

    assert spec.restart_policy == "Always"
    assert spec.termination_grace_period_seconds == 30
    assert spec.dns_policy == "ClusterFirst"
    assert spec.scheduler_name == "default-scheduler"
    assert spec.service_account_name == "default"
    assert spec.service_account == "default"
    assert spec.enable_service_links is True
    assert spec.priority == 0
    assert spec.node_name is None
    main, sidecar = spec.containers
    assert main.image_pull_policy == "IfNotPresent"  # tagged, not :latest
    assert sidecar.image_pull_policy == "Always"  # untagged means :latest (the port is not a tag)
    assert main.termination_message_path == "/dev/termination-log"
    assert main.termination_message_policy == "File"


def test_create_keeps_what_the_client_chose(
    v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]
) -> None:
    v1.create_namespaced_service_account(ns, {"metadata": {"name": "robot"}})  # the ServiceAccount admission wants it
    body = pod_body("chosen", restartPolicy="Never", terminationGracePeriodSeconds=5, serviceAccountName="robot")
    body["spec"]["containers"][0]["imagePullPolicy"] = "Never"

    spec = v1.create_namespaced_pod(ns, body).spec

    assert spec.restart_policy == "Never"
    assert spec.termination_grace_period_seconds == 5
    assert spec.service_account_name == "robot"
    assert spec.service_account == "robot"
    assert spec.containers[0].image_pull_policy == "Never"


@pytest.mark.parametrize(
    ("resources", "qos_class"),
    [
        ({}, "BestEffort"),
        ({"requests": {"cpu": "100m"}}, "Burstable"),
        ({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed"),
        ({"requests": {"cpu": "1000m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1024Mi"}}, "Guaranteed"),
        ({"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}, "Burstable"),
    ],
)
def test_qos_class(
    v1: client.CoreV1Api,
    ns: str,
    pod_body: Callable[..., dict[str, Any]],
    resources: dict[str, Any],
    qos_class: str,
) -> None:
    body = pod_body("sized")
    body["spec"]["containers"][0]["resources"] = resources

    assert v1.create_namespaced_pod(ns, body).status.qos_class == qos_class


def test_generate_name_gives_the_prefix_and_five_characters(
    v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]
) -> None:
    names = {v1.create_namespaced_pod(ns, pod_body(generate_name="job-")).metadata.name for _ in range(5)}

    assert len(names) == 5
    for name in names:
        # apimachinery's alphabet: no vowels and no look-alike digits.
        assert re.fullmatch(r"job-[bcdfghjklmnpqrstvwxz2456789]{5}", name)
    pod = v1.read_namespaced_pod(sorted(names)[0], ns)
    assert pod.metadata.generate_name == "job-"


def test_get(v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]) -> None:
    created = make_pod("fetched", labels={"a": "b"})

    fetched = v1.read_namespaced_pod("fetched", ns)

    assert fetched.metadata.uid == created.metadata.uid
    assert fetched.metadata.resource_version == created.metadata.resource_version
    assert fetched.metadata.labels == {"a": "b"}
    assert fetched.spec.containers[0].command == ["true"]


def test_get_missing_pod_is_404(v1: client.CoreV1Api, ns: str) -> None:
    with pytest.raises(ApiException) as excinfo:
        v1.read_namespaced_pod("ghost", ns)

    assert excinfo.value.status == 404
    assert _status(excinfo) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "ghost" not found',
        "reason": "NotFound",
        "details": {"name": "ghost", "kind": "pods"},
        "code": 404,
    }


def test_create_twice_is_409_already_exists(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod], pod_body: Callable[..., dict[str, Any]]
) -> None:
    make_pod("dup")

    with pytest.raises(ApiException) as excinfo:
        v1.create_namespaced_pod(ns, pod_body("dup"))

    assert excinfo.value.status == 409
    status = _status(excinfo)
    assert status["status"] == "Failure"
    assert status["reason"] == "AlreadyExists"
    assert status["message"] == 'pods "dup" already exists'
    assert status["details"] == {"name": "dup", "kind": "pods"}
    assert status["code"] == 409


def test_same_name_in_another_namespace_is_fine(v1: client.CoreV1Api, make_pod: Callable[..., client.V1Pod]) -> None:
    v1.create_namespace({"metadata": {"name": "other"}})
    make_pod("twin")
    make_pod("twin", namespace="other")

    assert len(v1.list_pod_for_all_namespaces(field_selector="metadata.name=twin").items) == 2


def test_namespace_in_body_must_match_the_url(
    v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]
) -> None:
    body = pod_body("elsewhere")
    body["metadata"]["namespace"] = "default"

    with pytest.raises(ApiException) as excinfo:
        v1.create_namespaced_pod(ns, body)

    assert excinfo.value.status == 400
    assert _status(excinfo)["reason"] == "BadRequest"
    assert _status(excinfo)["message"] == (
        "the namespace of the provided object does not match the namespace sent on the request"
    )


def test_delete_unscheduled_pod_removes_it_at_once_and_answers_the_pod(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    created = make_pod("doomed")

    answer = v1.delete_namespaced_pod("doomed", ns)

    assert isinstance(answer, client.V1Pod)
    assert answer.kind == "Pod"
    assert answer.metadata.name == "doomed"
    assert answer.metadata.uid == created.metadata.uid
    with pytest.raises(ApiException) as excinfo:
        v1.read_namespaced_pod("doomed", ns)
    assert excinfo.value.status == 404
    assert v1.list_namespaced_pod(ns).items == []


def test_delete_missing_pod_is_404(v1: client.CoreV1Api, ns: str) -> None:
    with pytest.raises(ApiException) as excinfo:
        v1.delete_namespaced_pod("ghost", ns)

    assert excinfo.value.status == 404
    assert _status(excinfo)["reason"] == "NotFound"
    assert _status(excinfo)["message"] == 'pods "ghost" not found'
    assert _status(excinfo)["details"] == {"name": "ghost", "kind": "pods"}


def test_delete_of_a_pod_on_a_node_is_graceful(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    make_pod("bound", nodeName="node-1", terminationGracePeriodSeconds=20)

    answer = v1.delete_namespaced_pod("bound", ns)

    assert answer.metadata.deletion_timestamp is not None
    assert answer.metadata.deletion_grace_period_seconds == 20
    still_there = v1.read_namespaced_pod("bound", ns)
    assert still_there.metadata.deletion_grace_period_seconds == 20
    # A longer grace period does not lengthen a deletion under way; a shorter one shortens it.
    assert v1.delete_namespaced_pod("bound", ns, grace_period_seconds=60).metadata.deletion_grace_period_seconds == 20
    assert v1.delete_namespaced_pod("bound", ns, grace_period_seconds=5).metadata.deletion_grace_period_seconds == 5
    v1.delete_namespaced_pod("bound", ns, grace_period_seconds=0)
    with pytest.raises(ApiException) as excinfo:
        v1.read_namespaced_pod("bound", ns)
    assert excinfo.value.status == 404


def test_delete_of_a_finished_pod_on_a_node_is_immediate(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    make_pod("done", nodeName="node-1")
    v1.patch_namespaced_pod_status("done", ns, {"status": {"phase": "Succeeded"}})

    v1.delete_namespaced_pod("done", ns)

    assert v1.list_namespaced_pod(ns).items == []


def test_delete_with_a_stale_uid_precondition_is_409(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    created = make_pod("guarded")
    options = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="not-the-uid"))

    with pytest.raises(ApiException) as excinfo:
        v1.delete_namespaced_pod("guarded", ns, body=options)

    assert excinfo.value.status == 409
    status = _status(excinfo)
    assert status["reason"] == "Conflict"
    assert status["message"] == (
        'Operation cannot be fulfilled on Pod "guarded": the UID in the precondition (not-the-uid) does not match '
        f"the UID in record ({created.metadata.uid}). The object might have been deleted and then recreated"
    )
    assert status["details"] == {"name": "guarded", "kind": "Pod"}
    right = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=created.metadata.uid))
    assert v1.delete_namespaced_pod("guarded", ns, body=right).metadata.name == "guarded"


def test_a_pod_with_finalizers_waits_for_them(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod], pod_body: Callable[..., dict[str, Any]]
) -> None:
    body = pod_body("held")
    body["metadata"]["finalizers"] = ["example.com/keep"]
    v1.create_namespaced_pod(ns, body)

    answer = v1.delete_namespaced_pod("held", ns)

    assert answer.metadata.deletion_timestamp is not None
    assert answer.metadata.deletion_grace_period_seconds == 0
    assert v1.read_namespaced_pod("held", ns).metadata.finalizers == ["example.com/keep"]
    # Taking the last finalizer off removes it.
    v1.patch_namespaced_pod("held", ns, [{"op": "remove", "path": "/metadata/finalizers"}])
    with pytest.raises(ApiException) as excinfo:
        v1.read_namespaced_pod("held", ns)
    assert excinfo.value.status == 404

"""Deletion as kube-apiserver v1.36 answers it, checked against its sources.

- rest.BeforeDelete (staging/src/k8s.io/apiserver/pkg/registry/rest/delete.go): a first graceful
  delete sets deletionTimestamp (now + grace) and deletionGracePeriodSeconds and bumps a set
  generation; a later delete may only shorten the period, moving the timestamp back by the
  difference; a longer one, or none, leaves a pending deletion as it is.
- Store.Delete and updateForGracefulDeletionAndFinalizers (registry/generic/registry/store.go):
  that mark is one write (MODIFIED), and a period of 0 is then removed (DELETED) in a second.
- ValidateDeleteOptions, from the delete handler (endpoints/handlers/delete.go): 422 on the
  DeleteOptions; a query the parameter codec cannot convert is 400 with strconv's words.
- The namespace storage's Delete (pkg/registry/core/namespace/storage/storage.go): both
  preconditions checked with its own words, and a namespace already terminating answered as it
  is (200) since kubernetes#84122, not 409.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client import ApiException

from tests.testing.kube.conftest import Kube


def _events(v1: client.CoreV1Api, ns: str, since: str, count: int) -> list[tuple[str, dict[str, Any]]]:
    watcher = watch.Watch()
    stream: Iterator[dict[str, Any]] = watcher.stream(
        v1.list_namespaced_pod, ns, resource_version=since, timeout_seconds=5
    )
    try:
        return [(event["type"], event["raw_object"]) for _, event in zip(range(count), stream, strict=False)]
    finally:
        watcher.stop()


def _moment(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")


def test_a_forced_delete_in_the_grace_period_writes_the_shortened_mark_then_removes(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    make_pod("bound", nodeName="node-1")  # no kubelet here: the pod stays until deleted again
    since = v1.list_namespaced_pod(ns).metadata.resource_version

    first = v1.delete_namespaced_pod("bound", ns)
    v1.delete_namespaced_pod("bound", ns, grace_period_seconds=0)

    (kind1, marked), (kind2, forced), (kind3, gone) = _events(v1, ns, since, 3)
    assert (kind1, kind2, kind3) == ("MODIFIED", "MODIFIED", "DELETED")
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 30
    assert marked["metadata"]["generation"] == 2  # the first graceful delete bumps it
    assert marked["metadata"]["deletionTimestamp"] == first.metadata.deletion_timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    # The timestamp moves back by the 30 s the period lost: the moment of the first delete.
    shortened = _moment(forced["metadata"]["deletionTimestamp"])
    assert shortened == _moment(marked["metadata"]["deletionTimestamp"]) - timedelta(seconds=30)
    assert forced["metadata"]["deletionGracePeriodSeconds"] == 0
    assert forced["metadata"]["generation"] == 2  # only the first mark bumps it
    assert gone["metadata"]["deletionTimestamp"] == forced["metadata"]["deletionTimestamp"]
    assert gone["metadata"]["deletionGracePeriodSeconds"] == 0
    assert int(gone["metadata"]["resourceVersion"]) == int(forced["metadata"]["resourceVersion"]) + 1


def test_a_default_delete_of_a_marked_pod_that_has_finished_is_still_pending(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    # CheckGracefulDelete (grace 0 for a finished pod) is only asked on the first delete; once
    # marked, a delete without a period is pending and changes nothing.
    make_pod("bound", nodeName="node-1")
    marked = v1.delete_namespaced_pod("bound", ns)
    finished = v1.patch_namespaced_pod_status("bound", ns, {"status": {"phase": "Succeeded"}})

    again = v1.delete_namespaced_pod("bound", ns)

    assert again.metadata.resource_version == finished.metadata.resource_version
    assert again.metadata.deletion_grace_period_seconds == 30
    assert again.metadata.deletion_timestamp == marked.metadata.deletion_timestamp
    assert v1.read_namespaced_pod("bound", ns).status.phase == "Succeeded"


def test_a_longer_grace_period_leaves_the_pending_deletion_alone(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    make_pod("bound", nodeName="node-1")
    marked = v1.delete_namespaced_pod("bound", ns, grace_period_seconds=10)

    again = v1.delete_namespaced_pod("bound", ns, grace_period_seconds=60)

    assert again.metadata.resource_version == marked.metadata.resource_version
    assert again.metadata.deletion_grace_period_seconds == 10


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"propagationPolicy": "Sideways"},
            'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "Sideways": '
            'supported values: "Foreground", "Background", "Orphan", "nil"',
        ),
        (
            {"propagationPolicy": "Background", "orphanDependents": True},
            'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Invalid value: "Background": '
            "orphanDependents and deletionPropagation cannot be both set",
        ),
        (
            {"propagationPolicy": "Sideways", "dryRun": ["Some"]},
            'DeleteOptions.meta.k8s.io "" is invalid: [propagationPolicy: Unsupported value: "Sideways": '
            'supported values: "Foreground", "Background", "Orphan", "nil", dryRun: Unsupported value: '
            '["Some"]: supported values: "All"]',
        ),
    ],
)
def test_delete_options_are_validated_as_the_handler_does(
    kube: Kube, ns: str, make_pod: Callable[..., client.V1Pod], options: dict[str, Any], message: str
) -> None:
    make_pod("kept")

    code, body = kube.raw("DELETE", f"/api/v1/namespaces/{ns}/pods/kept", json.dumps(options).encode())

    assert code == 422
    status = json.loads(body)
    assert (status["reason"], status["message"]) == ("Invalid", message)
    assert status["details"]["group"] == "meta.k8s.io"
    assert status["details"]["kind"] == "DeleteOptions"
    assert kube.v1.read_namespaced_pod("kept", ns).metadata.deletion_timestamp is None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("gracePeriodSeconds=soon", 'strconv.ParseInt: parsing "soon": invalid syntax'),
        ("orphanDependents=perhaps", 'strconv.ParseBool: parsing "perhaps": invalid syntax'),
    ],
)
def test_a_query_the_parameter_codec_cannot_convert_is_400(
    kube: Kube, ns: str, make_pod: Callable[..., client.V1Pod], query: str, message: str
) -> None:
    make_pod("kept")

    code, body = kube.raw("DELETE", f"/api/v1/namespaces/{ns}/pods/kept?{query}")

    assert code == 400
    assert (json.loads(body)["reason"], json.loads(body)["message"]) == ("BadRequest", message)


def test_orphan_dependents_and_a_policy_in_the_query_are_both_set(
    kube: Kube, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    make_pod("kept")

    query = "orphanDependents=false&propagationPolicy=Orphan"
    code, body = kube.raw("DELETE", f"/api/v1/namespaces/{ns}/pods/kept?{query}")

    assert code == 422
    assert json.loads(body)["message"].endswith("orphanDependents and deletionPropagation cannot be both set")


def test_a_namespace_resource_version_precondition_is_checked(v1: client.CoreV1Api, ns: str) -> None:
    current = v1.read_namespace(ns).metadata.resource_version
    options = client.V1DeleteOptions(preconditions=client.V1Preconditions(resource_version="1"))

    with pytest.raises(ApiException) as excinfo:
        v1.delete_namespace(ns, body=options)

    assert excinfo.value.status == 409
    status = json.loads(excinfo.value.body)
    assert status["reason"] == "Conflict"
    assert status["message"] == (
        f'Operation cannot be fulfilled on namespaces "{ns}": Precondition failed: ResourceVersion in precondition: '
        f"1, ResourceVersion in object meta: {current}"
    )
    assert v1.read_namespace(ns).status.phase == "Active"


def test_a_second_delete_of_a_terminating_namespace_answers_it_as_it_is(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    make_pod("bound", nodeName="node-1")  # its graceful deletion holds the namespace
    first = json.loads(v1.delete_namespace(ns, _preload_content=False).data)

    again = json.loads(v1.delete_namespace(ns, _preload_content=False).data)

    assert again["kind"] == "Namespace"
    assert again["status"]["phase"] == "Terminating"
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert again["metadata"]["deletionTimestamp"] == first["metadata"]["deletionTimestamp"]

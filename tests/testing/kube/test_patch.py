"""PATCH: JSON merge, strategic merge and JSON patch; the status subresource; what a pod update may change."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiException

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"


def _status(excinfo: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(excinfo.value.body)
    return body


@pytest.fixture
def pod(make_pod: Callable[..., client.V1Pod], pod_body: Callable[..., dict[str, Any]]) -> client.V1Pod:
    return make_pod("target", labels={"keep": "1", "drop": "2", "change": "old"})


@pytest.mark.parametrize("content_type", [MERGE, STRATEGIC])
def test_merge_patches_of_labels_and_annotations(
    v1: client.CoreV1Api, ns: str, pod: client.V1Pod, content_type: str
) -> None:
    patch = {
        "metadata": {
            "labels": {"drop": None, "change": "new", "added": "3"},
            "annotations": {"note": "hello", "example.com/owner": "team"},
        }
    }

    patched = v1.patch_namespaced_pod("target", ns, patch, _content_type=content_type)

    assert patched.metadata.labels == {"keep": "1", "change": "new", "added": "3"}
    assert patched.metadata.annotations == {"note": "hello", "example.com/owner": "team"}
    assert patched.metadata.resource_version != pod.metadata.resource_version
    assert v1.read_namespaced_pod("target", ns).metadata.labels == patched.metadata.labels
    removed = v1.patch_namespaced_pod(
        "target", ns, {"metadata": {"annotations": {"note": None}}}, _content_type=content_type
    )
    assert removed.metadata.annotations == {"example.com/owner": "team"}


def test_the_client_sends_a_dict_as_a_strategic_merge_patch(v1: client.CoreV1Api, ns: str, pod: client.V1Pod) -> None:
    patched = v1.patch_namespaced_pod("target", ns, {"metadata": {"labels": {"drop": None}}})

    assert patched.metadata.labels == {"keep": "1", "change": "old"}


def test_json_patch(v1: client.CoreV1Api, ns: str, pod: client.V1Pod) -> None:
    patch = [
        {"op": "add", "path": "/metadata/labels/added", "value": "3"},
        {"op": "replace", "path": "/metadata/labels/change", "value": "new"},
        {"op": "remove", "path": "/metadata/labels/drop"},
        {"op": "add", "path": "/metadata/annotations", "value": {"note": "hi"}},
        {"op": "test", "path": "/metadata/labels/keep", "value": "1"},
    ]

    patched = v1.patch_namespaced_pod("target", ns, patch)

    assert patched.metadata.labels == {"keep": "1", "change": "new", "added": "3"}
    assert patched.metadata.annotations == {"note": "hi"}


def test_json_patch_that_cannot_apply_is_422(v1: client.CoreV1Api, ns: str, pod: client.V1Pod) -> None:
    with pytest.raises(ApiException) as excinfo:
        v1.patch_namespaced_pod("target", ns, [{"op": "remove", "path": "/metadata/labels/absent"}])

    assert excinfo.value.status == 422
    status = _status(excinfo)
    assert status["reason"] == "Invalid"
    assert status["message"] == "the server rejected our request due to an error in our request"
    [cause] = status["details"]["causes"]
    assert cause["reason"] == "UnexpectedServerResponse"
    assert cause["message"]
    assert v1.read_namespaced_pod("target", ns).metadata.labels == pod.metadata.labels


def test_json_patch_body_must_be_a_list(kube: Any, ns: str, pod: client.V1Pod) -> None:
    code, raw = kube.raw("PATCH", f"/api/v1/namespaces/{ns}/pods/target", b"{}", JSON_PATCH)

    assert code == 400
    assert json.loads(raw)["message"] == "json: cannot unmarshal object into Go value of type jsonpatch.Patch"


def test_strategic_patch_that_is_not_json_is_400(kube: Any, ns: str, pod: client.V1Pod) -> None:
    code, raw = kube.raw("PATCH", f"/api/v1/namespaces/{ns}/pods/target", b"{labels: 1}", STRATEGIC)

    assert code == 400
    assert json.loads(raw)["reason"] == "BadRequest"
    assert json.loads(raw)["message"] == "invalid character 'l' looking for beginning of object key string"


def test_merge_patch_that_is_not_json_is_400(kube: Any, ns: str, pod: client.V1Pod) -> None:
    code, raw = kube.raw("PATCH", f"/api/v1/namespaces/{ns}/pods/target", b"nonsense", MERGE)

    assert code == 400
    assert json.loads(raw)["message"] == "Invalid JSON Patch"


def test_unknown_patch_type_is_415(kube: Any, ns: str, pod: client.V1Pod) -> None:
    code, raw = kube.raw("PATCH", f"/api/v1/namespaces/{ns}/pods/target", b"{}", "text/plain")

    assert code == 415
    status = json.loads(raw)
    assert status["reason"] == "UnsupportedMediaType"
    assert status["message"].startswith(
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json"
    )


def test_patch_of_a_missing_pod_is_404(v1: client.CoreV1Api, ns: str) -> None:
    with pytest.raises(ApiException) as excinfo:
        v1.patch_namespaced_pod("ghost", ns, {"metadata": {"labels": {"a": "b"}}})

    assert excinfo.value.status == 404
    assert _status(excinfo)["message"] == 'pods "ghost" not found'


def test_patch_with_an_invalid_label_is_422(v1: client.CoreV1Api, ns: str, pod: client.V1Pod) -> None:
    with pytest.raises(ApiException) as excinfo:
        v1.patch_namespaced_pod("target", ns, {"metadata": {"labels": {"bad key": "v"}}})

    assert excinfo.value.status == 422
    assert _status(excinfo)["message"].startswith('Pod "target" is invalid: metadata.labels: Invalid value: "bad key"')


def test_status_subresource_changes_only_the_status(v1: client.CoreV1Api, ns: str, pod: client.V1Pod) -> None:
    patch = {
        "spec": {"activeDeadlineSeconds": 5, "containers": [{"name": "main", "image": "other:1"}]},
        "status": {"phase": "Running", "podIP": "10.0.0.7", "conditions": [{"type": "Ready", "status": "True"}]},
    }

    patched = v1.patch_namespaced_pod_status("target", ns, patch)

    assert patched.status.phase == "Running"
    assert patched.status.pod_ip == "10.0.0.7"
    assert [(c.type, c.status) for c in patched.status.conditions] == [("Ready", "True")]
    assert patched.status.qos_class == "BestEffort"
    assert patched.spec.active_deadline_seconds is None
    assert patched.spec.containers[0].image == pod.spec.containers[0].image
    read = v1.read_namespaced_pod_status("target", ns)
    assert read.status.phase == "Running"
    assert read.metadata.resource_version == patched.metadata.resource_version
    assert v1.read_namespaced_pod("target", ns).status.pod_ip == "10.0.0.7"


def test_status_subresource_keeps_the_qos_class(v1: client.CoreV1Api, ns: str, pod: client.V1Pod) -> None:
    patched = v1.patch_namespaced_pod_status(
        "target", ns, {"status": {"phase": "Failed", "qosClass": None}}, _content_type=MERGE
    )

    assert patched.status.phase == "Failed"
    assert patched.status.qos_class == "BestEffort"  # immutable: the server fills it back in


def test_main_resource_patch_cannot_change_the_status(v1: client.CoreV1Api, ns: str, pod: client.V1Pod) -> None:
    patched = v1.patch_namespaced_pod(
        "target", ns, {"metadata": {"labels": {"seen": "yes"}}, "status": {"phase": "Succeeded"}}
    )

    assert patched.status.phase == "Pending"
    assert patched.metadata.labels["seen"] == "yes"
    assert v1.read_namespaced_pod("target", ns).status.phase == "Pending"


def test_status_only_patch_of_the_main_resource_changes_nothing(
    kube: Any, v1: client.CoreV1Api, ns: str, pod: client.V1Pod
) -> None:
    revision = kube.api.resource_version

    patched = v1.patch_namespaced_pod("target", ns, {"status": {"phase": "Succeeded"}})

    assert patched.metadata.resource_version == pod.metadata.resource_version
    assert kube.api.resource_version == revision


def test_image_may_change(v1: client.CoreV1Api, ns: str, pod: client.V1Pod) -> None:
    patch = {"spec": {"containers": [{"name": "main", "image": "busybox:1.37"}]}}

    patched = v1.patch_namespaced_pod("target", ns, patch)

    assert patched.spec.containers[0].image == "busybox:1.37"
    assert patched.spec.containers[0].command == ["true"]  # strategic merge: the container merges by name
    assert patched.metadata.generation == 2


def test_spec_change_other_than_image_is_422(v1: client.CoreV1Api, ns: str, pod: client.V1Pod) -> None:
    patch = {"spec": {"containers": [{"name": "main", "command": ["false"]}]}}

    with pytest.raises(ApiException) as excinfo:
        v1.patch_namespaced_pod("target", ns, patch)

    assert excinfo.value.status == 422
    status = _status(excinfo)
    assert status["reason"] == "Invalid"
    assert status["message"].startswith(
        'Pod "target" is invalid: spec: Forbidden: pod updates may not change fields other than '
        "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
        "`spec.tolerations` (only additions to existing tolerations),"
        "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
    )
    assert status["details"]["causes"][0]["reason"] == "FieldValueForbidden"
    assert status["details"]["causes"][0]["field"] == "spec"
    assert v1.read_namespaced_pod("target", ns).spec.containers[0].command == ["true"]


def test_image_cannot_be_emptied(v1: client.CoreV1Api, ns: str, pod: client.V1Pod) -> None:
    with pytest.raises(ApiException) as excinfo:
        v1.patch_namespaced_pod("target", ns, [{"op": "replace", "path": "/spec/containers/0/image", "value": ""}])

    assert excinfo.value.status == 422
    assert _status(excinfo)["message"] == 'Pod "target" is invalid: spec.containers[0].image: Required value'


def test_patch_that_breaks_a_quantity_is_422_on_the_patch(v1: client.CoreV1Api, ns: str, pod: client.V1Pod) -> None:
    patch = [{"op": "add", "path": "/spec/containers/0/resources/limits", "value": {"cpu": "lots"}}]

    with pytest.raises(ApiException) as excinfo:
        v1.patch_namespaced_pod("target", ns, patch)

    assert excinfo.value.status == 422
    status = _status(excinfo)
    assert status["message"].startswith(' "" is invalid: patch: Invalid value: "{')
    assert status["message"].endswith(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )
    assert [cause["field"] for cause in status["details"]["causes"]] == ["patch"]


def test_no_op_patch_keeps_the_resource_version(kube: Any, v1: client.CoreV1Api, ns: str, pod: client.V1Pod) -> None:
    revision = kube.api.resource_version

    same = v1.patch_namespaced_pod("target", ns, {"metadata": {"labels": {"keep": "1"}}})
    also_same = v1.patch_namespaced_pod_status("target", ns, {"status": {"phase": "Pending"}})

    assert same.metadata.resource_version == pod.metadata.resource_version
    assert also_same.metadata.resource_version == pod.metadata.resource_version
    assert kube.api.resource_version == revision


def test_patch_with_a_stale_resource_version_is_409(v1: client.CoreV1Api, ns: str, pod: client.V1Pod) -> None:
    v1.patch_namespaced_pod("target", ns, {"metadata": {"labels": {"moved": "on"}}})
    stale = {"metadata": {"resourceVersion": pod.metadata.resource_version, "labels": {"late": "1"}}}

    with pytest.raises(ApiException) as excinfo:
        v1.patch_namespaced_pod("target", ns, stale, _content_type=MERGE)

    assert excinfo.value.status == 409
    assert _status(excinfo)["reason"] == "Conflict"
    assert _status(excinfo)["message"] == (
        'Operation cannot be fulfilled on pods "target": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )


def test_server_owned_metadata_survives_a_patch(v1: client.CoreV1Api, ns: str, pod: client.V1Pod) -> None:
    patch = {"metadata": {"uid": "forged", "creationTimestamp": "2001-01-01T00:00:00Z", "labels": {"x": "y"}}}

    patched = v1.patch_namespaced_pod("target", ns, patch, _content_type=MERGE)

    assert patched.metadata.uid == pod.metadata.uid
    assert patched.metadata.creation_timestamp == pod.metadata.creation_timestamp


def test_replace_keeps_the_status_and_checks_the_version(v1: client.CoreV1Api, ns: str, pod: client.V1Pod) -> None:
    current = v1.read_namespaced_pod("target", ns)
    current.metadata.labels = {"replaced": "yes"}
    current.status.phase = "Succeeded"

    replaced = v1.replace_namespaced_pod("target", ns, current)

    assert replaced.metadata.labels == {"replaced": "yes"}
    assert replaced.status.phase == "Pending"
    with pytest.raises(ApiException) as excinfo:
        v1.replace_namespaced_pod("target", ns, current)  # its resourceVersion is now stale
    assert excinfo.value.status == 409


def test_qos_class_is_immutable(v1: client.CoreV1Api, ns: str, pod: client.V1Pod) -> None:
    with pytest.raises(ApiException) as excinfo:
        v1.patch_namespaced_pod_status("target", ns, {"status": {"qosClass": "Guaranteed"}})

    assert excinfo.value.status == 422
    assert _status(excinfo)["message"] == (
        'Pod "target" is invalid: status.qosClass: Invalid value: "Guaranteed": field is immutable'
    )


def test_status_subresource_may_change_labels(v1: client.CoreV1Api, ns: str, pod: client.V1Pod) -> None:
    # The pod status strategy keeps metadata changes (all but ownerReferences), as kubelets rely on.
    patched = v1.patch_namespaced_pod_status(
        "target", ns, {"metadata": {"labels": {"from-status": "yes"}}, "status": {"phase": "Running"}}
    )

    assert patched.metadata.labels["from-status"] == "yes"
    assert patched.status.phase == "Running"


def test_namespace_patch_cannot_drop_its_name_label_or_finalizers(v1: client.CoreV1Api, ns: str) -> None:
    patched = v1.patch_namespace(
        ns,
        {"metadata": {"labels": {"kubernetes.io/metadata.name": None, "team": "a"}}, "spec": {"finalizers": None}},
        _content_type=MERGE,
    )

    assert patched.metadata.labels == {"kubernetes.io/metadata.name": ns, "team": "a"}
    assert patched.spec.finalizers == ["kubernetes"]


def test_patch_with_a_spec_of_the_wrong_type_is_422(v1: client.CoreV1Api, ns: str, pod: client.V1Pod) -> None:
    with pytest.raises(ApiException) as excinfo:
        v1.patch_namespaced_pod("target", ns, {"status": "broken"}, _content_type=MERGE)

    assert excinfo.value.status == 422
    assert _status(excinfo)["message"].endswith(
        "json: cannot unmarshal string into Go struct field Pod.status of type v1.PodStatus"
    )


def test_strategic_merge_follows_each_list_s_patch_strategy(v1: client.CoreV1Api, ns: str, pod: client.V1Pod) -> None:
    v1.patch_namespaced_pod_status(
        "target",
        ns,
        {
            "status": {
                "conditions": [{"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}],
                "containerStatuses": [
                    {"name": "main", "ready": False, "restartCount": 0, "image": "busybox", "imageID": ""},
                    {"name": "extra", "ready": False, "restartCount": 0, "image": "busybox", "imageID": ""},
                ],
            }
        },
    )

    patched = v1.patch_namespaced_pod_status(
        "target",
        ns,
        {
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],  # merged by type
                "containerStatuses": [  # no patch strategy: replaced whole
                    {"name": "main", "ready": True, "restartCount": 0, "image": "busybox", "imageID": ""}
                ],
            }
        },
    )

    assert [(c.type, c.status) for c in patched.status.conditions] == [("Ready", "True"), ("Initialized", "True")]
    assert [(s.name, s.ready) for s in patched.status.container_statuses] == [("main", True)]


def test_strategic_merge_of_finalizers(v1: client.CoreV1Api, ns: str, pod: client.V1Pod) -> None:
    v1.patch_namespaced_pod("target", ns, {"metadata": {"finalizers": ["example.com/a"]}})
    added = v1.patch_namespaced_pod("target", ns, {"metadata": {"finalizers": ["example.com/b"]}})
    assert added.metadata.finalizers == ["example.com/a", "example.com/b"]  # merged, not replaced

    removed = v1.patch_namespaced_pod(
        "target", ns, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a"]}}
    )
    assert removed.metadata.finalizers == ["example.com/b"]

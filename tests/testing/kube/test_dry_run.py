"""dryRun=All: the whole request runs (decoding, defaulting, validation, admission, quota, name
generation) and answers what would have been stored, but nothing is: no resourceVersion, no watch
event, no kubelet run, no quota use. Any other dryRun value is the options' 422.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client import ApiException


def _status(excinfo: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(excinfo.value.body)
    return body


def _quota(name: str, **hard: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": name}, "spec": {"hard": hard}}


# --- create ---------------------------------------------------------------------------------


def test_create_answers_201_with_the_object_as_it_would_be_stored(
    kube: Any, ns: str, pod_body: Callable[..., dict[str, Any]]
) -> None:
    code, raw = kube.raw("POST", f"/api/v1/namespaces/{ns}/pods?dryRun=All", json.dumps(pod_body("p")).encode())

    assert code == 201
    pod = json.loads(raw)
    metadata = pod["metadata"]
    assert (pod["kind"], pod["apiVersion"]) == ("Pod", "v1")
    assert (metadata["name"], metadata["namespace"]) == ("p", ns)
    assert metadata["uid"]
    assert metadata["creationTimestamp"]
    assert "resourceVersion" not in metadata  # never written to storage, so it has none
    assert metadata["generation"] == 1
    assert pod["spec"]["restartPolicy"] == "Always"  # defaulted
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


def test_create_leaves_no_pod_and_no_new_resource_version(
    kube: Any, v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]
) -> None:
    before = kube.api.resource_version

    answered = v1.create_namespaced_pod(ns, pod_body("ghost"), dry_run="All")

    assert answered.metadata.name == "ghost"
    assert answered.metadata.resource_version is None
    assert kube.api.resource_version == before
    assert kube.api.pods(ns) == []
    assert v1.list_namespaced_pod(ns).items == []
    with pytest.raises(ApiException) as excinfo:
        v1.read_namespaced_pod("ghost", ns)
    assert excinfo.value.status == 404


def test_create_sends_no_watch_event(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod], pod_body: Callable[..., dict[str, Any]]
) -> None:
    since = v1.list_namespaced_pod(ns).metadata.resource_version
    v1.create_namespaced_pod(ns, pod_body("ghost"), dry_run="All")
    make_pod("real")

    watcher = watch.Watch()
    events = [
        (event["type"], event["raw_object"]["metadata"]["name"])
        for event in watcher.stream(v1.list_namespaced_pod, ns, resource_version=since, timeout_seconds=1)
    ]

    assert events == [("ADDED", "real")]


def test_generate_name_is_filled_but_names_no_pod(
    v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]
) -> None:
    answered = v1.create_namespaced_pod(ns, pod_body(generate_name="worker-"), dry_run="All")

    assert answered.metadata.name.startswith("worker-")
    assert len(answered.metadata.name) == len("worker-") + 5
    assert answered.metadata.generate_name == "worker-"
    assert v1.list_namespaced_pod(ns).items == []


def test_the_same_dry_run_twice_answers_twice_with_different_uids(
    v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]
) -> None:
    first = v1.create_namespaced_pod(ns, pod_body("p"), dry_run="All")
    second = v1.create_namespaced_pod(ns, pod_body("p"), dry_run="All")

    assert first.metadata.uid != second.metadata.uid


def test_create_of_a_taken_name_is_409(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod], pod_body: Callable[..., dict[str, Any]]
) -> None:
    make_pod("taken")

    with pytest.raises(ApiException) as excinfo:
        v1.create_namespaced_pod(ns, pod_body("taken"), dry_run="All")

    assert excinfo.value.status == 409
    assert _status(excinfo)["message"] == 'pods "taken" already exists'


def test_invalid_pod_is_the_same_422_as_a_real_create(
    v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]
) -> None:
    body = pod_body("Bad_Name")
    body["spec"]["containers"][0]["image"] = ""

    with pytest.raises(ApiException) as dry:
        v1.create_namespaced_pod(ns, body, dry_run="All")
    with pytest.raises(ApiException) as real:
        v1.create_namespaced_pod(ns, body)

    assert dry.value.status == 422
    assert _status(dry) == _status(real)
    assert [cause["field"] for cause in _status(dry)["details"]["causes"]] == [
        "metadata.name",
        "spec.containers[0].image",
    ]


def test_undecodable_body_is_the_same_400_as_a_real_create(kube: Any, ns: str) -> None:
    dry = kube.raw("POST", f"/api/v1/namespaces/{ns}/pods?dryRun=All", b"hello")
    real = kube.raw("POST", f"/api/v1/namespaces/{ns}/pods", b"hello")

    assert dry[0] == 400
    assert dry == real


def test_create_in_a_missing_namespace_is_404(v1: client.CoreV1Api, pod_body: Callable[..., dict[str, Any]]) -> None:
    with pytest.raises(ApiException) as excinfo:
        v1.create_namespaced_pod("nowhere", pod_body("p"), dry_run="All")

    assert excinfo.value.status == 404
    assert _status(excinfo)["message"] == 'namespaces "nowhere" not found'


def test_create_in_a_terminating_namespace_is_403(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod], pod_body: Callable[..., dict[str, Any]]
) -> None:
    make_pod("bound", nodeName="node-1")  # its graceful deletion keeps the namespace terminating
    v1.delete_namespace(ns)

    with pytest.raises(ApiException) as excinfo:
        v1.create_namespaced_pod(ns, pod_body("late"), dry_run="All")

    assert excinfo.value.status == 403
    assert _status(excinfo)["message"] == (
        f'pods "late" is forbidden: unable to create new content in namespace {ns} because it is being terminated'
    )


# --- quota ----------------------------------------------------------------------------------


def test_create_that_would_exceed_the_quota_is_the_quota_403(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod], pod_body: Callable[..., dict[str, Any]]
) -> None:
    v1.create_namespaced_resource_quota(ns, _quota("pods", pods="1"))
    make_pod("first")

    with pytest.raises(ApiException) as excinfo:
        v1.create_namespaced_pod(ns, pod_body("second"), dry_run="All")

    assert excinfo.value.status == 403
    status = _status(excinfo)
    assert status["reason"] == "Forbidden"
    assert status["message"] == (
        'pods "second" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=1, limited: pods=1'
    )


def test_create_within_the_quota_uses_none_of_it(
    kube: Any, v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]
) -> None:
    v1.create_namespaced_resource_quota(ns, _quota("pods", pods="1"))
    quota_version = v1.read_namespaced_resource_quota("pods", ns).metadata.resource_version

    for _ in range(3):  # over the limit together, but none of them counts
        v1.create_namespaced_pod(ns, pod_body(generate_name="p-"), dry_run="All")

    quota = v1.read_namespaced_resource_quota("pods", ns)
    assert quota.status.used == {"pods": "0"}
    assert quota.metadata.resource_version == quota_version
    v1.create_namespaced_pod(ns, pod_body("real"))  # the one pod the quota allows is still free
    assert v1.read_namespaced_resource_quota("pods", ns).status.used == {"pods": "1"}


# --- the kubelet ----------------------------------------------------------------------------


def test_the_kubelet_never_runs_a_dry_run_pod(
    make_kube: Callable[..., Any], tmp_path: Path, pod_body: Callable[..., dict[str, Any]]
) -> None:
    kube = make_kube(kubelet=True)
    marker = tmp_path / "ran"
    ghost = pod_body("ghost")
    ghost["spec"]["containers"][0]["command"] = ["sh", "-c", f"touch {marker}"]
    kube.v1.create_namespaced_pod("default", ghost, dry_run="All")
    kube.v1.create_namespaced_pod("default", pod_body("real"))

    deadline = time.monotonic() + 10
    while kube.v1.read_namespaced_pod("real", "default").status.phase != "Succeeded":
        assert time.monotonic() < deadline, "the real pod never finished"
        time.sleep(0.05)

    assert not marker.exists()
    assert [pod["metadata"]["name"] for pod in kube.api.pods("default")] == ["real"]


# --- an unsupported value -------------------------------------------------------------------


def test_an_unsupported_value_on_create_is_422_naming_the_create_options(
    v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]
) -> None:
    with pytest.raises(ApiException) as excinfo:
        v1.create_namespaced_pod(ns, pod_body("p"), dry_run="Yes")

    assert excinfo.value.status == 422
    assert _status(excinfo) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": (
            'CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: ["Yes"]: supported values: "All"'
        ),
        "reason": "Invalid",
        "code": 422,
        "details": {
            "group": "meta.k8s.io",
            "kind": "CreateOptions",
            "causes": [
                {
                    "reason": "FieldValueNotSupported",
                    "message": 'Unsupported value: ["Yes"]: supported values: "All"',
                    "field": "dryRun",
                }
            ],
        },
    }


def test_the_options_are_checked_before_the_body(kube: Any, ns: str) -> None:
    code, raw = kube.raw("POST", f"/api/v1/namespaces/{ns}/pods?dryRun=All&dryRun=Some", b"not json")

    assert code == 422
    assert json.loads(raw)["message"] == (
        'CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: ["All","Some"]: supported values: "All"'
    )


@pytest.mark.parametrize(
    ("method", "suffix", "options"),
    [("DELETE", "/p", "DeleteOptions"), ("PUT", "/p", "UpdateOptions"), ("DELETE", "", "DeleteOptions")],
)
def test_an_unsupported_value_names_the_verbs_options(
    kube: Any,
    ns: str,
    make_pod: Callable[..., client.V1Pod],
    method: str,
    suffix: str,
    options: str,
    pod_body: Callable[..., dict[str, Any]],
) -> None:
    make_pod("p")

    code, raw = kube.raw(
        method,
        f"/api/v1/namespaces/{ns}/pods{suffix}?dryRun=maybe",
        json.dumps(pod_body("p")).encode() if method == "PUT" else None,
    )

    assert code == 422
    assert json.loads(raw)["message"] == (
        f'{options}.meta.k8s.io "" is invalid: dryRun: Unsupported value: ["maybe"]: supported values: "All"'
    )
    assert [p["metadata"]["name"] for p in kube.api.pods(ns)] == ["p"]


def test_an_unsupported_value_on_patch_is_422_and_comes_after_the_media_type(
    kube: Any, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    make_pod("p")
    path = f"/api/v1/namespaces/{ns}/pods/p?dryRun=maybe"

    wrong_type = kube.raw("PATCH", path, b"{}", "text/plain")
    bad_option = kube.raw("PATCH", path, b"{}", "application/merge-patch+json")

    assert wrong_type[0] == 415
    assert bad_option[0] == 422
    assert json.loads(bad_option[1])["details"]["kind"] == "PatchOptions"


# --- delete, patch, replace -----------------------------------------------------------------


def test_delete_answers_the_pod_and_keeps_it(
    kube: Any, v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    created = make_pod("kept")
    before = kube.api.resource_version

    answered = v1.delete_namespaced_pod("kept", ns, dry_run="All")

    assert answered.metadata.uid == created.metadata.uid
    # Store.Delete answers a dry run with the mark its update would write (grace 0: never scheduled).
    assert answered.metadata.deletion_timestamp is not None
    assert answered.metadata.deletion_grace_period_seconds == 0
    assert kube.api.resource_version == before
    assert v1.read_namespaced_pod("kept", ns).metadata.resource_version == created.metadata.resource_version


def test_graceful_delete_answers_the_deletion_it_would_start(
    kube: Any, v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    created = make_pod("bound", nodeName="node-1")

    answered = v1.delete_namespaced_pod("bound", ns, body=client.V1DeleteOptions(dry_run=["All"]))

    assert answered.metadata.deletion_timestamp is not None
    assert answered.metadata.deletion_grace_period_seconds == 30
    assert answered.metadata.resource_version == created.metadata.resource_version
    stored = v1.read_namespaced_pod("bound", ns)
    assert stored.metadata.deletion_timestamp is None
    assert stored.metadata.resource_version == created.metadata.resource_version


def test_delete_options_in_the_body_win_over_the_query(
    kube: Any, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    # The delete handler reads the query's options only when the request has no body.
    make_pod("p")

    code, _ = kube.raw("DELETE", f"/api/v1/namespaces/{ns}/pods/p?dryRun=All", b"{}")

    assert code == 200
    assert kube.api.pods(ns) == []


def test_delete_collection_keeps_every_pod(
    kube: Any, v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    make_pod("a")
    make_pod("b")

    response = v1.delete_collection_namespaced_pod(ns, dry_run="All", _preload_content=False)

    answered = json.loads(response.data)
    assert answered["kind"] == "PodList"
    assert sorted(pod["metadata"]["name"] for pod in answered["items"]) == ["a", "b"]
    assert sorted(pod["metadata"]["name"] for pod in kube.api.pods(ns)) == ["a", "b"]


def test_patch_answers_the_patched_pod_and_stores_nothing(
    kube: Any, v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    created = make_pod("p")
    before = kube.api.resource_version

    answered = v1.patch_namespaced_pod("p", ns, {"metadata": {"labels": {"tried": "yes"}}}, dry_run="All")

    assert answered.metadata.labels == {"tried": "yes"}
    assert answered.metadata.resource_version == created.metadata.resource_version
    assert kube.api.resource_version == before
    assert v1.read_namespaced_pod("p", ns).metadata.labels is None


def test_patch_that_breaks_a_rule_is_the_same_422(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    make_pod("p")
    patch = {"spec": {"containers": [{"name": "main", "command": ["false"]}]}}

    with pytest.raises(ApiException) as dry:
        v1.patch_namespaced_pod("p", ns, patch, dry_run="All")
    with pytest.raises(ApiException) as real:
        v1.patch_namespaced_pod("p", ns, patch)

    assert dry.value.status == 422
    assert _status(dry) == _status(real)


def test_replace_answers_the_update_and_stores_nothing(
    kube: Any, v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    make_pod("p")
    pod = v1.read_namespaced_pod("p", ns)
    pod.spec.containers[0].image = "busybox:1.37"

    answered = v1.replace_namespaced_pod("p", ns, pod, dry_run="All")

    assert answered.spec.containers[0].image == "busybox:1.37"
    assert answered.metadata.generation == 2
    assert v1.read_namespaced_pod("p", ns).spec.containers[0].image == "busybox:1.36"
    assert [p["metadata"]["resourceVersion"] for p in kube.api.pods(ns)] == [pod.metadata.resource_version]

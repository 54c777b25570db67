"""Error answers: the Status body, 422 Invalid with its causes, 400 BadRequest for undecodable bodies."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiException

SUBDOMAIN = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
QUALIFIED_NAME_PART = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
LABEL_VALUE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
    "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
QUANTITY = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"


def _status(excinfo: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(excinfo.value.body)
    return body


def _create_refused(v1: client.CoreV1Api, ns: str, body: dict[str, Any], code: int) -> dict[str, Any]:
    """Create the pod ``body``, which the API must refuse with HTTP status ``code``; the Status body."""
    with pytest.raises(ApiException) as excinfo:
        v1.create_namespaced_pod(ns, body)
    assert excinfo.value.status == code
    return _status(excinfo)


# --- the Status body -----------------------------------------------------------------------------------


def test_not_found_status_body(kube: Any, ns: str) -> None:
    code, raw = kube.raw("GET", f"/api/v1/namespaces/{ns}/pods/nothing")

    assert code == 404
    assert json.loads(raw) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "nothing" not found',
        "reason": "NotFound",
        "details": {"name": "nothing", "kind": "pods"},
        "code": 404,
    }


def test_unknown_resource_path_is_404_with_empty_details(kube: Any) -> None:
    code, raw = kube.raw("GET", "/api/v1/namespaces/default/gizmos")

    assert code == 404
    assert json.loads(raw) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "the server could not find the requested resource",
        "reason": "NotFound",
        "details": {},
        "code": 404,
    }


def test_resource_quota_not_found(v1: client.CoreV1Api, ns: str) -> None:
    with pytest.raises(ApiException) as excinfo:
        v1.read_namespaced_resource_quota("none", ns)

    assert excinfo.value.status == 404
    assert _status(excinfo)["message"] == 'resourcequotas "none" not found'
    assert _status(excinfo)["details"] == {"name": "none", "kind": "resourcequotas"}


# --- 422 Invalid -----------------------------------------------------------------------------------------


def test_pod_name_must_be_a_dns_subdomain(
    v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]
) -> None:
    status = _create_refused(v1, ns, pod_body("Bad_Name"), 422)

    assert status["kind"] == "Status"
    assert status["status"] == "Failure"
    assert status["reason"] == "Invalid"
    assert status["code"] == 422
    assert status["message"] == f'Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN}'
    assert status["details"] == {
        "name": "Bad_Name",
        "kind": "Pod",
        "causes": [
            {
                "reason": "FieldValueInvalid",
                "message": f'Invalid value: "Bad_Name": {SUBDOMAIN}',
                "field": "metadata.name",
            }
        ],
    }


def test_invalid_generate_name(v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]) -> None:
    status = _create_refused(v1, ns, pod_body(generate_name="Bad-"), 422)

    fields = [cause["field"] for cause in status["details"]["causes"]]
    assert fields == ["metadata.generateName", "metadata.name"]
    generated = status["details"]["name"]
    assert generated.startswith("Bad-")
    assert len(generated) == len("Bad-") + 5
    assert status["message"].startswith(
        f'Pod "{generated}" is invalid: [metadata.generateName: Invalid value: "Bad-": '
    )


def test_invalid_label_key(v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]) -> None:
    status = _create_refused(v1, ns, pod_body("p", labels={"bad key": "v"}), 422)

    assert status["message"] == f'Pod "p" is invalid: metadata.labels: Invalid value: "bad key": {QUALIFIED_NAME_PART}'
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": f'Invalid value: "bad key": {QUALIFIED_NAME_PART}',
            "field": "metadata.labels",
        }
    ]


def test_invalid_label_key_prefix(v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]) -> None:
    status = _create_refused(v1, ns, pod_body("p", labels={"Example.com/app": "v"}), 422)

    assert status["message"].startswith(
        'Pod "p" is invalid: metadata.labels: Invalid value: "Example.com/app": prefix part a lowercase RFC 1123'
    )


def test_invalid_label_value(v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]) -> None:
    status = _create_refused(v1, ns, pod_body("p", labels={"app": "bad value!"}), 422)

    assert status["message"] == f'Pod "p" is invalid: metadata.labels: Invalid value: "bad value!": {LABEL_VALUE}'
    assert [c["field"] for c in status["details"]["causes"]] == ["metadata.labels"]


def test_label_value_too_long(v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]) -> None:
    status = _create_refused(v1, ns, pod_body("p", labels={"app": "x" * 64}), 422)

    assert status["message"] == (
        f'Pod "p" is invalid: metadata.labels: Invalid value: "{"x" * 64}": must be no more than 63 characters'
    )


def test_annotation_keys_are_checked_in_lower_case(
    v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]
) -> None:
    body = pod_body("annotated")
    body["metadata"]["annotations"] = {"Example.com/Note": "anything at all: {}"}
    assert v1.create_namespaced_pod(ns, body).metadata.annotations == {"Example.com/Note": "anything at all: {}"}

    body = pod_body("badly-annotated")
    body["metadata"]["annotations"] = {"no spaces": "x"}
    status = _create_refused(v1, ns, body, 422)

    assert [c["field"] for c in status["details"]["causes"]] == ["metadata.annotations"]


def test_no_containers(v1: client.CoreV1Api, ns: str) -> None:
    status = _create_refused(v1, ns, {"metadata": {"name": "empty"}, "spec": {"containers": []}}, 422)

    assert status["message"] == 'Pod "empty" is invalid: spec.containers: Required value'
    assert status["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers"}
    ]


def test_container_without_image(v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]) -> None:
    body = pod_body("imageless")
    del body["spec"]["containers"][0]["image"]

    status = _create_refused(v1, ns, body, 422)

    assert status["message"] == 'Pod "imageless" is invalid: spec.containers[0].image: Required value'
    assert status["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers[0].image"}
    ]


def test_container_name_with_capitals(v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]) -> None:
    body = pod_body("caps")
    body["spec"]["containers"][0]["name"] = "Main"

    status = _create_refused(v1, ns, body, 422)

    assert status["message"] == f'Pod "caps" is invalid: spec.containers[0].name: Invalid value: "Main": {LABEL}'
    assert [c["field"] for c in status["details"]["causes"]] == ["spec.containers[0].name"]


def test_duplicate_container_names(v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]) -> None:
    body = pod_body("twins")
    body["spec"]["containers"].append({"name": "main", "image": "busybox"})

    status = _create_refused(v1, ns, body, 422)

    assert status["message"] == 'Pod "twins" is invalid: spec.containers[1].name: Duplicate value: "main"'
    assert status["details"]["causes"][0]["reason"] == "FieldValueDuplicate"


def test_requests_above_limits(v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]) -> None:
    body = pod_body("greedy")
    body["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}

    status = _create_refused(v1, ns, body, 422)

    assert status["message"] == (
        'Pod "greedy" is invalid: spec.containers[0].resources.requests: Invalid value: "2": '
        "must be less than or equal to cpu limit of 1"
    )
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "2": must be less than or equal to cpu limit of 1',
            "field": "spec.containers[0].resources.requests",
        }
    ]


def test_requests_above_limits_are_written_as_canonical_quantities(
    v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]
) -> None:
    body = pod_body("greedy")
    body["spec"]["containers"][0]["resources"] = {
        "requests": {"memory": "2048Mi"},
        "limits": {"memory": "1024Mi"},
    }

    status = _create_refused(v1, ns, body, 422)

    assert status["message"] == (
        'Pod "greedy" is invalid: spec.containers[0].resources.requests: Invalid value: "2Gi": '
        "must be less than or equal to memory limit of 1Gi"
    )


def test_several_errors_are_joined_in_brackets(v1: client.CoreV1Api, ns: str) -> None:
    body = {
        "metadata": {"name": "many", "labels": {"app": "bad value!"}},
        "spec": {"containers": [{"name": "Main"}]},
    }

    status = _create_refused(v1, ns, body, 422)

    assert status["message"] == (
        'Pod "many" is invalid: ['
        f'metadata.labels: Invalid value: "bad value!": {LABEL_VALUE}, '
        f'spec.containers[0].name: Invalid value: "Main": {LABEL}, '
        "spec.containers[0].image: Required value]"
    )
    assert [c["field"] for c in status["details"]["causes"]] == [
        "metadata.labels",
        "spec.containers[0].name",
        "spec.containers[0].image",
    ]


def test_unsupported_restart_policy(v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]) -> None:
    status = _create_refused(v1, ns, pod_body("p", restartPolicy="Sometimes"), 422)

    assert status["message"] == (
        'Pod "p" is invalid: spec.restartPolicy: Unsupported value: "Sometimes": '
        'supported values: "Always", "Never", "OnFailure"'
    )
    assert status["details"]["causes"][0]["reason"] == "FieldValueNotSupported"


def test_a_failed_create_stores_nothing(
    kube: Any, v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]
) -> None:
    before = kube.api.resource_version

    _create_refused(v1, ns, pod_body("Bad_Name"), 422)

    assert kube.api.resource_version == before
    assert v1.list_namespaced_pod(ns).items == []


# --- 400 BadRequest --------------------------------------------------------------------------------------


def test_body_that_is_not_json(kube: Any, ns: str) -> None:
    code, raw = kube.raw("POST", f"/api/v1/namespaces/{ns}/pods", b"hello")

    assert code == 400
    assert json.loads(raw) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": (
            "the object provided is unrecognized (must be of type Pod): couldn't get version/kind; "
            "json parse error: invalid character 'h' looking for beginning of value (68656c6c6f)"
        ),
        "reason": "BadRequest",
        "code": 400,
    }


@pytest.mark.parametrize(
    ("body", "detail", "summary"),
    [
        (b"", "unexpected end of JSON input", "<empty>"),
        (b"not json", "invalid character 'o' in literal null (expecting 'u')", "6e6f74206a736f6e"),
        (b'{"metadata": ', "unexpected end of JSON input", '{"metadata": '),
        (b'{"metadata" {}}', "invalid character '{' after object key", '{"metadata" {}}'),
        (
            b'{"kind": "Pod", "metadata": {"name": "p"}} trailing',
            "invalid character 't' after top-level value",
            '{"kind": "Pod", "metadata": {" ...',
        ),
    ],
)
def test_syntax_errors_are_worded_as_go_words_them(kube: Any, ns: str, body: bytes, detail: str, summary: str) -> None:
    code, raw = kube.raw("POST", f"/api/v1/namespaces/{ns}/pods", body)

    assert code == 400
    assert json.loads(raw)["message"] == (
        f"the object provided is unrecognized (must be of type Pod): couldn't get version/kind; "
        f"json parse error: {detail} ({summary})"
    )


def test_body_that_is_a_json_array(kube: Any, ns: str) -> None:
    code, raw = kube.raw("POST", f"/api/v1/namespaces/{ns}/pods", b"[]")

    assert code == 400
    assert json.loads(raw)["message"] == (
        "the object provided is unrecognized (must be of type Pod): couldn't get version/kind; json parse error: "
        "json: cannot unmarshal array into Go value of type "
        'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" } (5b5d)'
    )


def test_body_of_another_kind(v1: client.CoreV1Api, ns: str) -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}}

    status = _create_refused(v1, ns, service, 400)

    assert status["reason"] == "BadRequest"
    assert status["message"] == (
        'Service in version "v1" cannot be handled as a Pod: converting (v1.Service) to (core.Pod): unknown conversion'
    )
    assert "details" not in status


def test_body_of_another_group(v1: client.CoreV1Api, ns: str) -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}

    status = _create_refused(v1, ns, deployment, 400)

    assert status["message"] == (
        'Deployment in version "v1" cannot be handled as a Pod: converting (v1.Deployment) to (core.Pod): '
        "unknown conversion"
    )


def test_body_of_an_unknown_kind(v1: client.CoreV1Api, ns: str) -> None:
    status = _create_refused(v1, ns, {"apiVersion": "v1", "kind": "pod", "metadata": {"name": "p"}}, 400)

    assert status["message"] == (
        'pod in version "v1" cannot be handled as a Pod: no kind "pod" is registered for version "v1" '
        'in scheme "k8s.io/kubernetes/pkg/api/legacyscheme/scheme.go:30"'
    )


def test_unparsable_quantity(v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]) -> None:
    body = pod_body("odd")
    body["spec"]["containers"][0]["resources"] = {"limits": {"memory": "lots"}}

    status = _create_refused(v1, ns, body, 400)

    assert status["reason"] == "BadRequest"
    assert status["message"] == f'Pod in version "v1" cannot be handled as a Pod: {QUANTITY}'


def test_field_of_the_wrong_json_type(v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]) -> None:
    body = pod_body("typed")
    body["spec"]["containers"][0]["command"] = ["sleep", 1200]

    status = _create_refused(v1, ns, body, 400)

    assert status["message"] == (
        'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal number into Go struct field '
        "Container.spec.containers.command of type string"
    )


def test_namespace_body_that_is_not_json(kube: Any) -> None:
    code, raw = kube.raw("POST", "/api/v1/namespaces", b"<xml/>")

    assert code == 400
    assert json.loads(raw)["message"] == (
        "the object provided is unrecognized (must be of type Namespace): couldn't get version/kind; "
        "json parse error: invalid character '<' looking for beginning of value (3c786d6c2f3e)"
    )


def test_kind_of_the_wrong_json_type(v1: client.CoreV1Api, ns: str) -> None:
    status = _create_refused(v1, ns, {"kind": 5, "metadata": {"name": "p"}}, 400)

    assert status["message"].startswith(
        "the object provided is unrecognized (must be of type Pod): couldn't get version/kind; json parse error: "
        "json: cannot unmarshal number into Go struct field .kind of type string"
    )


def test_invalid_utf8_in_a_string_is_not_a_syntax_error(kube: Any, ns: str) -> None:
    body = b'{"metadata": {"name": "utf", "annotations": {"note": "\xff"}}, '
    body += b'"spec": {"containers": [{"name": "c", "image": "busybox"}]}}'

    code, raw = kube.raw("POST", f"/api/v1/namespaces/{ns}/pods", body)

    assert code == 201
    assert json.loads(raw)["metadata"]["annotations"] == {"note": "\ufffd"}

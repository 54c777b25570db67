"""Authorization: SelfSubjectAccessReview, the 403 of a denied request, discovery and /version.

The local API's caller is ``system:admin`` (a superuser: everything allowed, with no reason given);
``LocalKubeAPI.authorization`` takes permissions away, and then the real verbs answer the
authorization filter's 403 while a review reports the permission as not allowed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client import ApiException

USER = "system:admin"
REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


def _status(excinfo: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(excinfo.value.body)
    return body


@pytest.fixture
def authz(kube: Any) -> client.AuthorizationV1Api:
    return client.AuthorizationV1Api(kube.api_client)


def _can(
    authz: client.AuthorizationV1Api, verb: str, resource: str, **attributes: Any
) -> client.V1SelfSubjectAccessReview:
    spec = client.V1SelfSubjectAccessReviewSpec(
        resource_attributes=client.V1ResourceAttributes(verb=verb, resource=resource, **attributes)
    )
    return authz.create_self_subject_access_review(client.V1SelfSubjectAccessReview(spec=spec))


def _can_reach(authz: client.AuthorizationV1Api, verb: str, path: str) -> client.V1SelfSubjectAccessReview:
    spec = client.V1SelfSubjectAccessReviewSpec(
        non_resource_attributes=client.V1NonResourceAttributes(path=path, verb=verb)
    )
    return authz.create_self_subject_access_review(client.V1SelfSubjectAccessReview(spec=spec))


# --- SelfSubjectAccessReview ----------------------------------------------------------------


def test_a_review_is_201_with_the_spec_echoed_and_allowed_by_default(kube: Any, ns: str) -> None:
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"namespace": ns, "verb": "create", "resource": "pods", "group": ""}},
    }

    code, raw = kube.raw("POST", REVIEWS, json.dumps(body).encode())

    assert code == 201
    assert json.loads(raw) == {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {},
        "spec": {"resourceAttributes": {"namespace": ns, "verb": "create", "resource": "pods"}},  # "" is omitted
        "status": {"allowed": True},  # a superuser's allow gives no reason
    }


def test_the_official_client_reads_a_review(authz: client.AuthorizationV1Api, ns: str) -> None:
    review = _can(authz, "get", "pods", namespace=ns, subresource="log", name="p")

    assert review.kind == "SelfSubjectAccessReview"
    assert review.spec.resource_attributes.subresource == "log"
    assert review.status.allowed is True
    assert review.status.denied is None
    assert review.status.reason is None


def test_a_non_resource_review_is_allowed_by_default(authz: client.AuthorizationV1Api) -> None:
    review = _can_reach(authz, "get", "/healthz")

    assert review.spec.non_resource_attributes.path == "/healthz"
    assert review.status.allowed is True


def test_a_review_with_neither_kind_of_attributes_is_422(authz: client.AuthorizationV1Api) -> None:
    with pytest.raises(ApiException) as excinfo:
        authz.create_self_subject_access_review(
            client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec())
        )

    assert excinfo.value.status == 422
    detail = "exactly one of nonResourceAttributes or resourceAttributes must be specified"
    assert _status(excinfo) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'.authorization.k8s.io "" is invalid: spec.resourceAttributes: Invalid value: null: {detail}',
        "reason": "Invalid",
        "code": 422,
        "details": {
            "group": "authorization.k8s.io",
            "causes": [
                {
                    "reason": "FieldValueInvalid",
                    "message": f"Invalid value: null: {detail}",
                    "field": "spec.resourceAttributes",
                }
            ],
        },
    }


def test_a_review_with_both_kinds_of_attributes_is_422(authz: client.AuthorizationV1Api) -> None:
    spec = client.V1SelfSubjectAccessReviewSpec(
        resource_attributes=client.V1ResourceAttributes(verb="get", resource="pods"),
        non_resource_attributes=client.V1NonResourceAttributes(path="/version", verb="get"),
    )

    with pytest.raises(ApiException) as excinfo:
        authz.create_self_subject_access_review(client.V1SelfSubjectAccessReview(spec=spec))

    assert excinfo.value.status == 422
    status = _status(excinfo)
    assert status["message"] == (
        '.authorization.k8s.io "" is invalid: spec.nonResourceAttributes: Invalid value: '
        '{"Path":"/version","Verb":"get"}: cannot be specified in combination with resourceAttributes'
    )
    assert [cause["field"] for cause in status["details"]["causes"]] == ["spec.nonResourceAttributes"]


def test_a_review_with_metadata_is_422(authz: client.AuthorizationV1Api) -> None:
    review = client.V1SelfSubjectAccessReview(
        metadata=client.V1ObjectMeta(name="mine"),
        spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(verb="get", resource="pods")
        ),
    )

    with pytest.raises(ApiException) as excinfo:
        authz.create_self_subject_access_review(review)

    assert excinfo.value.status == 422
    assert _status(excinfo)["details"]["causes"][0]["field"] == "metadata"
    assert _status(excinfo)["message"].endswith(": must be empty")


def test_a_review_with_a_selector_lacking_both_forms_is_422(kube: Any) -> None:
    body = {"spec": {"resourceAttributes": {"verb": "list", "resource": "pods", "labelSelector": {}}}}

    code, raw = kube.raw("POST", REVIEWS, json.dumps(body).encode())

    assert code == 422
    assert json.loads(raw)["message"] == (
        '.authorization.k8s.io "" is invalid: spec.resourceAttributes.labelSelector.requirements: Required value: '
        "when spec.resourceAttributes.labelSelector is specified, requirements or rawSelector is required"
    )


def test_a_review_field_of_the_wrong_type_is_400(kube: Any) -> None:
    body = b'{"spec": {"resourceAttributes": {"verb": 1, "resource": "pods"}}}'

    code, raw = kube.raw("POST", REVIEWS, body)

    assert code == 400
    assert json.loads(raw)["message"] == (
        'SelfSubjectAccessReview in version "v1" cannot be handled as a SelfSubjectAccessReview: json: cannot '
        "unmarshal number into Go struct field ResourceAttributes.spec.resourceAttributes.verb of type string"
    )


def test_a_review_of_another_kind_is_400(kube: Any) -> None:
    code, raw = kube.raw("POST", REVIEWS, b'{"apiVersion": "v1", "kind": "Pod"}')

    assert code == 400
    assert json.loads(raw)["message"] == (
        'Pod in version "v1" cannot be handled as a SelfSubjectAccessReview: '
        "converting (v1.Pod) to (authorization.SelfSubjectAccessReview): unknown conversion"
    )


def test_reviews_can_only_be_created(kube: Any) -> None:
    code, raw = kube.raw("GET", REVIEWS)

    assert code == 405
    assert json.loads(raw)["reason"] == "MethodNotAllowed"


# --- denying --------------------------------------------------------------------------------


def test_a_denied_create_is_the_authorization_403(
    kube: Any, v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]
) -> None:
    kube.api.authorization.deny("create", "pods", namespace=ns)

    with pytest.raises(ApiException) as excinfo:
        v1.create_namespaced_pod(ns, pod_body("p"))

    assert excinfo.value.status == 403
    assert _status(excinfo) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": (
            f'pods is forbidden: User "{USER}" cannot create resource "pods" in API group "" in the namespace "{ns}"'
        ),
        "reason": "Forbidden",
        "code": 403,
        "details": {"kind": "pods"},
    }
    assert kube.api.pods(ns) == []


def test_a_review_reports_the_denied_verb_and_only_it(
    kube: Any, authz: client.AuthorizationV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]
) -> None:
    kube.api.authorization.deny("create", "pods", namespace=ns)

    denied = _can(authz, "create", "pods", namespace=ns)

    assert denied.status.allowed is False
    assert denied.status.denied is None  # RBAC's "no opinion", not an explicit deny
    assert denied.status.reason is None
    assert _can(authz, "create", "pods", namespace="default").status.allowed is True
    assert _can(authz, "delete", "pods", namespace=ns).status.allowed is True
    assert _can(authz, "*", "pods", namespace=ns).status.allowed is False  # not every verb
    assert _can(authz, "create", "pods").status.allowed is False  # not in every namespace
    kube.v1.create_namespaced_pod("default", pod_body("elsewhere"))  # the real verbs agree


def test_a_subresource_is_denied_apart_from_its_resource(
    kube: Any, v1: client.CoreV1Api, ns: str, authz: client.AuthorizationV1Api, make_pod: Callable[..., client.V1Pod]
) -> None:
    make_pod("p")
    kube.api.authorization.deny("get", "pods", subresource="log")

    with pytest.raises(ApiException) as excinfo:
        v1.read_namespaced_pod_log("p", ns)

    assert excinfo.value.status == 403
    status = _status(excinfo)
    assert status["message"] == (
        f'pods "p" is forbidden: User "{USER}" cannot get resource "pods/log" in API group "" in the namespace "{ns}"'
    )
    assert status["details"] == {"name": "p", "kind": "pods"}
    assert v1.read_namespaced_pod("p", ns).metadata.name == "p"
    assert _can(authz, "get", "pods", namespace=ns, subresource="log", name="p").status.allowed is False
    assert _can(authz, "get", "pods", namespace=ns, name="p").status.allowed is True


def test_authorization_comes_before_the_object_is_looked_up(kube: Any, v1: client.CoreV1Api, ns: str) -> None:
    kube.api.authorization.deny("get", "pods")

    with pytest.raises(ApiException) as excinfo:
        v1.read_namespaced_pod("missing", ns)

    assert excinfo.value.status == 403
    assert _status(excinfo)["message"].startswith('pods "missing" is forbidden: ')


def test_cluster_scoped_and_all_namespace_requests_are_worded_at_the_cluster_scope(
    kube: Any, v1: client.CoreV1Api, ns: str
) -> None:
    kube.api.authorization.deny("list", "namespaces")
    kube.api.authorization.deny("list", "pods", namespace=ns)

    with pytest.raises(ApiException) as namespaces:
        v1.list_namespace()
    with pytest.raises(ApiException) as pods:
        v1.list_pod_for_all_namespaces()

    assert _status(namespaces)["message"] == (
        f'namespaces is forbidden: User "{USER}" cannot list resource "namespaces" in API group "" at the cluster scope'
    )
    assert _status(pods)["message"] == (
        f'pods is forbidden: User "{USER}" cannot list resource "pods" in API group "" at the cluster scope'
    )
    assert v1.list_namespaced_pod("default").items == []


def test_a_namespace_is_its_own_namespace(kube: Any, v1: client.CoreV1Api, ns: str) -> None:
    kube.api.authorization.deny("get", "namespaces", name=ns)

    with pytest.raises(ApiException) as excinfo:
        v1.read_namespace(ns)

    assert _status(excinfo)["message"] == (
        f'namespaces "{ns}" is forbidden: User "{USER}" cannot get resource "namespaces" in API group "" '
        f'in the namespace "{ns}"'
    )
    assert v1.read_namespace("default").metadata.name == "default"


def test_watch_is_a_verb_of_its_own(kube: Any, v1: client.CoreV1Api, ns: str) -> None:
    kube.api.authorization.deny("watch", "pods", namespace=ns)

    listed = v1.list_namespaced_pod(ns)
    with pytest.raises(ApiException) as excinfo:
        next(iter(watch.Watch().stream(v1.list_namespaced_pod, ns, timeout_seconds=1)))

    assert listed.items == []
    assert excinfo.value.status == 403
    assert "cannot watch resource" in _status(excinfo)["message"]


def test_a_list_of_one_name_is_authorized_as_that_name(kube: Any, v1: client.CoreV1Api, ns: str) -> None:
    kube.api.authorization.deny("list", "pods", name="p")

    with pytest.raises(ApiException) as excinfo:
        v1.list_namespaced_pod(ns, field_selector="metadata.name=p")

    assert _status(excinfo)["message"].startswith('pods "p" is forbidden: ')
    assert v1.list_namespaced_pod(ns, field_selector="metadata.name=q").items == []


def test_a_reason_and_an_explicit_deny_show_in_the_403_and_the_review(
    kube: Any, v1: client.CoreV1Api, authz: client.AuthorizationV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    make_pod("p")
    kube.api.authorization.deny("delete", "pods", reason="deletions are frozen", explicit=True)

    with pytest.raises(ApiException) as excinfo:
        v1.delete_namespaced_pod("p", ns)
    review = _can(authz, "delete", "pods", namespace=ns, name="p")

    assert _status(excinfo)["message"] == (
        f'pods "p" is forbidden: User "{USER}" cannot delete resource "pods" in API group "" in the namespace "{ns}": '
        "deletions are frozen"
    )
    assert (review.status.allowed, review.status.denied, review.status.reason) == (False, True, "deletions are frozen")


def test_a_denied_path_is_a_forbidden_non_resource_url(kube: Any, authz: client.AuthorizationV1Api) -> None:
    kube.api.authorization.deny_path("/version*")  # the client asks for "/version/", another URL than "/version"

    with pytest.raises(ApiException) as excinfo:
        client.VersionApi(kube.api_client).get_code()

    assert excinfo.value.status == 403
    status = _status(excinfo)
    assert status["message"] == f'forbidden: User "{USER}" cannot get path "/version/"'
    assert status["details"] == {}
    assert _can_reach(authz, "get", "/version").status.allowed is False
    assert _can_reach(authz, "get", "/healthz").status.allowed is True


def test_reviews_themselves_can_be_denied(kube: Any, authz: client.AuthorizationV1Api) -> None:
    kube.api.authorization.deny("create", "selfsubjectaccessreviews", group="authorization.k8s.io")

    with pytest.raises(ApiException) as excinfo:
        _can(authz, "get", "pods")

    assert excinfo.value.status == 403
    status = _status(excinfo)
    assert status["message"] == (
        f'selfsubjectaccessreviews.authorization.k8s.io is forbidden: User "{USER}" cannot create resource '
        '"selfsubjectaccessreviews" in API group "authorization.k8s.io" at the cluster scope'
    )
    assert status["details"] == {"group": "authorization.k8s.io", "kind": "selfsubjectaccessreviews"}


def test_removing_a_rule_gives_the_permission_back_and_the_rule_counts_its_hits(
    kube: Any, v1: client.CoreV1Api, ns: str, pod_body: Callable[..., dict[str, Any]]
) -> None:
    rule = kube.api.authorization.deny("create", "pods")
    with pytest.raises(ApiException):
        v1.create_namespaced_pod(ns, pod_body("p"))

    kube.api.authorization.remove(rule)

    assert rule.hits == 1
    assert v1.create_namespaced_pod(ns, pod_body("p")).metadata.name == "p"
    assert kube.api.authorization.rules == []


# --- discovery and version ------------------------------------------------------------------


def test_version(kube: Any) -> None:
    info = client.VersionApi(kube.api_client).get_code()

    assert (info.major, info.minor) == ("1", "36")
    assert (info.emulation_major, info.emulation_minor) == ("1", "36")
    assert (info.min_compatibility_major, info.min_compatibility_minor) == ("1", "35")
    assert info.git_version.startswith("v1.36.")
    assert info.platform == "linux/amd64"


def test_discovery_lists_the_authorization_group(kube: Any) -> None:
    groups = client.ApisApi(kube.api_client).get_api_versions()
    group = client.AuthorizationApi(kube.api_client).get_api_group()
    resources = client.AuthorizationV1Api(kube.api_client).get_api_resources()

    assert [g.name for g in groups.groups] == ["authorization.k8s.io"]
    assert group.preferred_version.group_version == "authorization.k8s.io/v1"
    assert [(r.name, r.kind, r.namespaced, r.verbs) for r in resources.resources] == [
        ("selfsubjectaccessreviews", "SelfSubjectAccessReview", False, ["create"])
    ]


def test_discovery_lists_the_core_resources(kube: Any) -> None:
    resources = client.CoreV1Api(kube.api_client).get_api_resources()

    assert [r.name for r in resources.resources] == [
        "limitranges",
        "namespaces",
        "namespaces/status",
        "pods",
        "pods/log",
        "pods/status",
        "resourcequotas",
        "resourcequotas/status",
        "serviceaccounts",
    ]


def test_a_rule_for_no_namespace_takes_away_only_the_cluster_scope(kube: Any, v1: client.CoreV1Api, ns: str) -> None:
    # A scheduler bound by a RoleBinding in each namespace but by no ClusterRoleBinding.
    kube.api.authorization.deny("*", "pods", namespace="")

    with pytest.raises(ApiException) as listed:
        v1.list_pod_for_all_namespaces()
    with pytest.raises(ApiException) as watched:
        v1.list_pod_for_all_namespaces(watch=True, timeout_seconds=1, _preload_content=False)

    assert (listed.value.status, watched.value.status) == (403, 403)
    assert _status(watched)["message"] == (
        f'pods is forbidden: User "{USER}" cannot watch resource "pods" in API group "" at the cluster scope'
    )
    assert v1.list_namespaced_pod(ns).items == []

"""What refused a pod: parse_refusal() and the kind classify() derives from it.

Every message of a real kube-apiserver v1.36.2 recorded in ../shared/kubernetes-refusals.md is
here verbatim, with what it means; the other wordings are the kube-apiserver sources' (LimitRanger,
ResourceQuota, webhook and ValidatingAdmissionPolicy admission, the authorization filter). The last
tests send them through the official client from the local Kubernetes API (its own quota and
namespace lifecycle, and fault rules answering the real messages), so classify() reads the
client's real exceptions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import urllib3
from kube_test_support import NS, SECRET, ConnectionSettings
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hybrid_executor.kubernetes.errors import (
    ApiErrorKind,
    KubeApiError,
    LimitRangeViolation,
    QuotaResource,
    Refusal,
    RefusalKind,
    StatusCause,
    classify,
    from_status,
    parse_refusal,
    quantity,
)
from hybrid_executor.testing.kube import LocalKubeAPI

SCHEDULER = "system:serviceaccount:airflow-airflow:airflow-scheduler"


def status(
    code: int, message: str, reason: str = "Forbidden", causes: list[dict[str, str]] | None = None
) -> KubeApiError:
    details: dict[str, Any] = {"name": "msg", "kind": "pods"}
    if causes:
        details["causes"] = causes
    return from_status(
        {"kind": "Status", "status": "Failure", "code": code, "reason": reason, "message": message, "details": details}
    )


def refusal_of(message: str, code: int = 403) -> Refusal:
    refusal = parse_refusal(code, message)
    assert refusal is not None
    return refusal


# --- every refusal of the recorded document, verbatim -------------------------------------------

RECORDED: dict[str, tuple[str, RefusalKind, ApiErrorKind]] = {
    "rbac, a namespace without a Role": (
        f'pods is forbidden: User "{SCHEDULER}" cannot create resource "pods" in API group "" '
        'in the namespace "default"',
        RefusalKind.RBAC,
        ApiErrorKind.RETRYABLE,
    ),
    "rbac, a namespace that does not exist": (
        f'pods is forbidden: User "{SCHEDULER}" cannot create resource "pods" in API group "" '
        'in the namespace "no-such-ns"',
        RefusalKind.RBAC,
        ApiErrorKind.RETRYABLE,
    ),
    "quota pods=0, real create": (
        'pods "msg-3" is forbidden: exceeded quota: zero-pods, requested: pods=1, used: pods=0, limited: pods=0',
        RefusalKind.QUOTA_EXCEEDS_LIMIT,
        ApiErrorKind.FATAL,
    ),
    "quota pods=0, dry run": (
        'pods "msg-4" is forbidden: exceeded quota: zero-pods, requested: pods=1, used: pods=0, limited: pods=0',
        RefusalKind.QUOTA_EXCEEDS_LIMIT,
        ApiErrorKind.FATAL,
    ),
    "limit range cpu max (before the quota)": (
        'pods "msg-5" is forbidden: maximum cpu usage per Container is 8, but limit is 60',
        RefusalKind.LIMIT_RANGE,
        ApiErrorKind.FATAL,
    ),
    "limit range memory max": (
        'pods "msg-6" is forbidden: maximum memory usage per Container is 16Gi, but limit is 32Gi',
        RefusalKind.LIMIT_RANGE,
        ApiErrorKind.FATAL,
    ),
    "limit range memory min": (
        'pods "msg-7" is forbidden: minimum memory usage per Container is 64Mi, but request is 16Mi',
        RefusalKind.LIMIT_RANGE,
        ApiErrorKind.FATAL,
    ),
    "quota must specify": (
        'pods "msg-8" is forbidden: failed quota: q: must specify limits.memory for: base; requests.cpu for: base',
        RefusalKind.QUOTA_MUST_SPECIFY,
        ApiErrorKind.FATAL,
    ),
    "pod security hostNetwork": (
        'pods "msg-11" is forbidden: violates PodSecurity "restricted:latest": host namespaces (hostNetwork=true)',
        RefusalKind.POD_SECURITY,
        ApiErrorKind.FATAL,
    ),
    "pod security without securityContext": (
        'pods "msg-12" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false '
        '(container "base" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities '
        '(container "base" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or '
        'container "base" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "base" '
        'must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")',
        RefusalKind.POD_SECURITY,
        ApiErrorKind.FATAL,
    ),
    "pod security hostNetwork, real create": (
        'pods "msg-13" is forbidden: violates PodSecurity "restricted:latest": host namespaces (hostNetwork=true)',
        RefusalKind.POD_SECURITY,
        ApiErrorKind.FATAL,
    ),
    "missing service account": (
        'pods "msg-14" is forbidden: error looking up service account airflow-workers/airflow-worker: '
        'serviceaccount "airflow-worker" not found',
        RefusalKind.SERVICE_ACCOUNT_MISSING,
        ApiErrorKind.RETRYABLE,
    ),
    "quota requests.cpu over the chart quota": (
        'pods "msg-0" is forbidden: exceeded quota: hybrid-executor-workers, requested: requests.cpu=30, '
        "used: requests.cpu=0, limited: requests.cpu=20",
        RefusalKind.QUOTA_EXCEEDS_LIMIT,
        ApiErrorKind.FATAL,
    ),
    "quota requests.memory over the chart quota": (
        'pods "msg-1" is forbidden: exceeded quota: hybrid-executor-workers, requested: requests.memory=80Gi, '
        "used: requests.memory=0, limited: requests.memory=64Gi",
        RefusalKind.QUOTA_EXCEEDS_LIMIT,
        ApiErrorKind.FATAL,
    ),
    "pod security runAsUser 0": (
        'pods "msg-3" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true (pod must not set '
        "securityContext.runAsNonRoot=false), runAsUser=0 (pod must not set runAsUser=0)",
        RefusalKind.POD_SECURITY,
        ApiErrorKind.FATAL,
    ),
    "pod security hostPath": (
        'pods "msg-4" is forbidden: violates PodSecurity "restricted:latest": restricted volume types '
        '(volume "h" uses restricted volume type "hostPath")',
        RefusalKind.POD_SECURITY,
        ApiErrorKind.FATAL,
    ),
    "namespace being terminated": (
        'pods "msg-6" is forbidden: unable to create new content in namespace workers-old '
        "because it is being terminated",
        RefusalKind.NAMESPACE_TERMINATING,
        ApiErrorKind.FATAL,
    ),
}


@pytest.mark.parametrize(("message", "refusal_kind", "kind"), RECORDED.values(), ids=list(RECORDED))
def test_every_recorded_refusal_is_told_apart(message: str, refusal_kind: RefusalKind, kind: ApiErrorKind) -> None:
    error = status(403, message)

    assert error.refusal is not None
    assert error.refusal.kind is refusal_kind
    assert error.kind is kind
    assert error.refusal.retryable is (kind is ApiErrorKind.RETRYABLE)
    assert error.message == message  # the API's own words reach the task's event log
    assert str(error) == f"{message} (HTTP 403 Forbidden)"
    assert error.refusal.hint
    assert "\n" not in error.refusal.hint


def test_the_recorded_422s_stay_fatal_and_are_no_refusal() -> None:
    privileged = status(
        422,
        'Pod "msg-10" is invalid: spec.containers[0].securityContext.privileged: '
        "Forbidden: disallowed by cluster policy",
        "Invalid",
        [
            {
                "reason": "FieldValueForbidden",
                "message": "Forbidden: disallowed by cluster policy",
                "field": "spec.containers[0].securityContext.privileged",
            }
        ],
    )
    assert privileged.kind is ApiErrorKind.FATAL
    assert privileged.refusal is None
    assert privileged.causes[0].field == "spec.containers[0].securityContext.privileged"


def test_the_recorded_404_for_a_missing_namespace_is_not_found() -> None:
    error = status(404, 'namespaces "no-such-ns" not found', "NotFound")
    assert error.kind is ApiErrorKind.NOT_FOUND
    assert error.refusal is None


# --- the fields each refusal names ----------------------------------------------------------------


def test_rbac_names_the_identity_the_verb_the_resource_and_the_namespace() -> None:
    refusal = refusal_of(RECORDED["rbac, a namespace that does not exist"][0])

    assert (refusal.user, refusal.verb, refusal.resource, refusal.api_group, refusal.namespace) == (
        SCHEDULER,
        "create",
        "pods",
        "",
        "no-such-ns",
    )
    assert refusal.hint == (
        f"grant {SCHEDULER} the verb create on pods in namespace no-such-ns (a Role and a RoleBinding there)"
    )


def test_rbac_at_the_cluster_scope_on_a_subresource_with_the_authorizers_reason() -> None:
    message = (
        'pods "p" is forbidden: User "jane" cannot get resource "pods/log" in API group "" at the cluster scope: '
        'RBAC: clusterrole.rbac.authorization.k8s.io "log-reader" not found'
    )
    refusal = refusal_of(message)

    assert refusal.kind is RefusalKind.RBAC
    assert (refusal.user, refusal.verb, refusal.resource, refusal.namespace) == ("jane", "get", "pods/log", "")
    assert (
        refusal.hint
        == "grant jane the verb get on pods/log at the cluster scope (a ClusterRole and a ClusterRoleBinding)"
    )

    grouped = refusal_of(
        'deployments.apps is forbidden: User "u" cannot list resource "deployments" in API group "apps" '
        'in the namespace "n"'
    )
    assert grouped.api_group == "apps"
    assert "on deployments (API group apps) in namespace n" in grouped.hint

    path = refusal_of('forbidden: User "system:anonymous" cannot get path "/version"')
    assert (path.kind, path.user, path.verb, path.path) == (RefusalKind.RBAC, "system:anonymous", "get", "/version")


def test_a_user_name_with_an_escaped_quote_is_unquoted() -> None:
    refusal = refusal_of(
        r'pods is forbidden: User "a\"b" cannot create resource "pods" in API group "" in the namespace "n"'
    )
    assert refusal.user == 'a"b'


def test_a_quota_full_only_because_of_others_use_is_retryable_with_its_numbers() -> None:
    message = (
        'pods "t" is forbidden: exceeded quota: hybrid-executor-workers, '
        "requested: requests.cpu=500m,requests.memory=512Mi, "
        "used: requests.cpu=19800m,requests.memory=99Gi, limited: requests.cpu=20,requests.memory=100Gi"
    )
    error = status(403, message)

    assert error.kind is ApiErrorKind.RETRYABLE
    assert error.refusal is not None
    assert error.refusal.kind is RefusalKind.QUOTA_FULL
    assert error.refusal.quota == "hybrid-executor-workers"
    assert error.refusal.resources == (
        QuotaResource("requests.cpu", "500m", "19800m", "20"),
        QuotaResource("requests.memory", "512Mi", "99Gi", "100Gi"),
    )
    assert error.refusal.hint == (
        "ResourceQuota hybrid-executor-workers is full (requests.cpu: requested 500m, used 19800m, limited 20; "
        "requests.memory: requested 512Mi, used 99Gi, limited 100Gi): the pod fits once running pods finish; "
        "raise the quota if this lasts"
    )


def test_a_pod_that_alone_exceeds_one_resource_of_the_quota_is_fatal() -> None:
    message = (
        'pods "t" is forbidden: exceeded quota: q, requested: limits.memory=300Gi,pods=1, '
        "used: limits.memory=10Gi,pods=99, limited: limits.memory=200Gi,pods=100"
    )
    refusal = refusal_of(message)

    assert refusal.kind is RefusalKind.QUOTA_EXCEEDS_LIMIT
    assert not refusal.retryable
    assert [resource.fits_alone for resource in refusal.resources] == [False, True]
    assert refusal.hint == (
        "the pod alone asks for more than ResourceQuota q allows (limits.memory: requested 300Gi, limited 200Gi): "
        "lower it in the pod template or the task's pod_override, or raise the quota"
    )


def test_a_quota_lowered_below_its_use_is_still_only_full() -> None:
    refusal = refusal_of('pods "t" is forbidden: exceeded quota: q, requested: pods=1, used: pods=12, limited: pods=10')
    assert refusal.kind is RefusalKind.QUOTA_FULL  # pods finishing bring the use below the new limit


def test_a_quota_quantity_that_does_not_parse_is_taken_as_full() -> None:
    refusal = refusal_of('pods "t" is forbidden: exceeded quota: q, requested: x=lots, used: x=0, limited: x=1')
    assert refusal.resources[0].fits_alone is None
    assert refusal.kind is RefusalKind.QUOTA_FULL  # unknown: retried, as every 403 was before


def test_must_specify_names_each_resource_and_its_containers() -> None:
    refusal = refusal_of(
        'pods "t" is forbidden: failed quota: compute: must specify limits.cpu for: base,sidecar; '
        "requests.memory for: init"
    )
    assert refusal.quota == "compute"
    assert refusal.missing == (("limits.cpu", ("base", "sidecar")), ("requests.memory", ("init",)))
    assert refusal.hint == (
        "ResourceQuota compute counts resources the pod does not set: set limits.cpu for base, sidecar and "
        "requests.memory for init in the pod template or pod_override "
        "(or give the namespace a LimitRange with defaults)"
    )


def test_a_quota_whose_usage_is_not_counted_yet_is_retryable() -> None:
    error = status(403, 'pods "t" is forbidden: status unknown for quota: q, resources: pods,requests.cpu')
    assert error.refusal is not None
    assert error.refusal.kind is RefusalKind.QUOTA_STATUS_UNKNOWN
    assert [resource.name for resource in error.refusal.resources] == ["pods", "requests.cpu"]
    assert error.kind is ApiErrorKind.RETRYABLE


LIMIT_RANGER_WORDINGS = {
    "max limit": (
        "maximum cpu usage per Container is 8, but limit is 60",
        LimitRangeViolation("maximum", "cpu", "Container", "8", "limit", "60"),
    ),
    "max request": (
        "maximum memory usage per Pod is 2Gi, but request is 3Gi",
        LimitRangeViolation("maximum", "memory", "Pod", "2Gi", "request", "3Gi"),
    ),
    "max, no limit": (
        "maximum memory usage per Container is 16Gi.  No limit is specified",
        LimitRangeViolation("maximum", "memory", "Container", "16Gi", "limit", None),
    ),
    "min request": (
        "minimum memory usage per Container is 64Mi, but request is 16Mi",
        LimitRangeViolation("minimum", "memory", "Container", "64Mi", "request", "16Mi"),
    ),
    "min limit": (
        "minimum cpu usage per Pod is 100m, but limit is 50m",
        LimitRangeViolation("minimum", "cpu", "Pod", "100m", "limit", "50m"),
    ),
    "min, no request": (
        "minimum cpu usage per Container is 100m.  No request is specified",
        LimitRangeViolation("minimum", "cpu", "Container", "100m", "request", None),
    ),
    "ratio": (
        "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000",
        LimitRangeViolation("max limit to request ratio", "cpu", "Container", "2", "ratio", "4.000000"),
    ),
    "ratio, no request": (
        "memory max limit to request ratio per Container is 1500m, but no request is specified or request is 0",
        LimitRangeViolation("max limit to request ratio", "memory", "Container", "1500m", "request", None),
    ),
    "ratio, no limit": (
        "memory max limit to request ratio per Pod is 2, but no limit is specified or limit is 0",
        LimitRangeViolation("max limit to request ratio", "memory", "Pod", "2", "limit", None),
    ),
    "an older server's capital and period": (
        "Maximum cpu usage per Container is 500m, but limit is 1.",
        LimitRangeViolation("maximum", "cpu", "Container", "500m", "limit", "1"),
    ),
}


@pytest.mark.parametrize(("text", "violation"), LIMIT_RANGER_WORDINGS.values(), ids=list(LIMIT_RANGER_WORDINGS))
def test_each_limit_ranger_wording(text: str, violation: LimitRangeViolation) -> None:
    error = status(403, f'pods "t" is forbidden: {text}')

    assert error.refusal is not None
    assert error.refusal.kind is RefusalKind.LIMIT_RANGE
    assert error.refusal.limits == (violation,)
    assert error.kind is ApiErrorKind.FATAL


def test_several_limit_range_violations_in_one_aggregate() -> None:
    # utilerrors.NewAggregate: "[a, b, c]" when there are several.
    refusal = refusal_of(
        'pods "t" is forbidden: [maximum cpu usage per Container is 8, but limit is 60, '
        "maximum memory usage per Container is 16Gi.  No limit is specified, "
        "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000]"
    )
    assert [(v.constraint, v.resource, v.value) for v in refusal.limits] == [
        ("maximum", "cpu", "60"),
        ("maximum", "memory", None),
        ("max limit to request ratio", "cpu", "4.000000"),
    ]
    assert refusal.hint == (
        "the namespace's LimitRange refuses the pod (cpu per Container at most 8, the pod's limit is 60; "
        "memory per Container at most 16Gi, the pod sets no limit; cpu limit/request ratio per Container at most 2, "
        "the pod's is 4.000000): change its resources in the pod template or the task's pod_override, or the LimitRange"
    )


def test_pod_security_names_the_enforced_level() -> None:
    refusal = refusal_of(RECORDED["pod security hostPath"][0])
    assert refusal.policy == "restricted:latest"
    assert refusal.detail.startswith('violates PodSecurity "restricted:latest": restricted volume types')
    assert "Pod Security Standard restricted:latest" in refusal.hint


def test_a_missing_service_account_names_it_and_its_namespace() -> None:
    refusal = refusal_of(RECORDED["missing service account"][0])
    assert (refusal.namespace, refusal.service_account) == ("airflow-workers", "airflow-worker")
    assert refusal.hint == (
        "create the ServiceAccount airflow-worker in namespace airflow-workers (the hybrid-executor chart does, with "
        "podTemplate.serviceAccount.create), or set the pod template's serviceAccountName to one that exists there"
    )
    # An older server's wording, and a lookup that failed for another reason (not known to be missing).
    old = refusal_of(
        'pods "t" is forbidden: service account ns/sa was not found, retry after the service account is created'
    )
    assert (old.kind, old.namespace, old.service_account) == (RefusalKind.SERVICE_ACCOUNT_MISSING, "ns", "sa")
    failed = refusal_of('pods "t" is forbidden: error looking up service account ns/sa: the server is shutting down')
    assert failed.kind is RefusalKind.OTHER


def test_a_terminating_namespace_is_known_by_its_cause_alone() -> None:
    cause = {
        "reason": "NamespaceTerminating",
        "message": "namespace workers-old is being terminated",
        "field": "metadata.namespace",
    }
    error = status(403, 'pods "msg-6" is forbidden: some future wording', causes=[cause])

    assert error.refusal is not None
    assert error.refusal.kind is RefusalKind.NAMESPACE_TERMINATING
    assert error.refusal.namespace == "workers-old"
    assert error.kind is ApiErrorKind.FATAL
    assert error.causes == (StatusCause("metadata.namespace", "NamespaceTerminating", cause["message"]),)


def test_a_webhooks_denial_whatever_its_code() -> None:
    message = (
        'pods "t" is forbidden: admission webhook "validation.gatekeeper.sh" denied the request: '
        '[must-have-team] you must provide labels: {"team"}'
    )
    error = status(403, message)
    assert error.refusal is not None
    assert (error.refusal.kind, error.refusal.policy) == (RefusalKind.WEBHOOK, "validation.gatekeeper.sh")
    assert error.refusal.detail == '[must-have-team] you must provide labels: {"team"}'
    assert error.kind is ApiErrorKind.FATAL
    assert error.refusal.hint == (
        "the admission webhook validation.gatekeeper.sh refuses this pod: change the pod as its message says, "
        "or ask its owners"
    )
    # The webhook chooses its code (400 when it set none, in older servers, and no prefix then).
    bare = status(400, 'admission webhook "policy.example.com" denied the request without explanation', "BadRequest")
    assert bare.refusal is not None
    assert (bare.refusal.kind, bare.refusal.policy, bare.refusal.detail) == (
        RefusalKind.WEBHOOK,
        "policy.example.com",
        "",
    )
    assert bare.kind is ApiErrorKind.FATAL
    # A webhook that answers 500 asks for a retry; the refusal still says who it was.
    busy = status(500, 'Internal error occurred: admission webhook "w" denied the request: busy', "InternalError")
    assert busy.refusal is not None
    assert busy.refusal.kind is RefusalKind.WEBHOOK
    assert busy.kind is ApiErrorKind.RETRYABLE


def test_a_webhook_that_cannot_be_called_is_no_denial() -> None:
    message = (
        'Internal error occurred: failed calling webhook "w.example.com": failed to call webhook: '
        'Post "https://w.example.com/validate": dial tcp 10.0.0.1:443: connect: connection refused'
    )
    error = status(500, message, "InternalError")
    assert error.refusal is None
    assert error.kind is ApiErrorKind.RETRYABLE


def test_a_webhook_without_dry_run_support() -> None:
    error = status(400, 'admission webhook "mutate.example.com" does not support dry run', "BadRequest")
    assert error.refusal is not None
    assert (error.refusal.kind, error.refusal.policy) == (RefusalKind.DRY_RUN_UNSUPPORTED, "mutate.example.com")
    assert error.kind is ApiErrorKind.FATAL


def test_a_validating_admission_policys_denial() -> None:
    forbidden = status(
        403,
        "pods \"t\" is forbidden: ValidatingAdmissionPolicy 'no-host-network' with binding 'workers' denied request: "
        "hostNetwork is not allowed",
    )
    assert forbidden.refusal is not None
    assert (forbidden.refusal.kind, forbidden.refusal.policy, forbidden.refusal.binding) == (
        RefusalKind.ADMISSION_POLICY,
        "no-host-network",
        "workers",
    )
    assert forbidden.refusal.detail == "hostNetwork is not allowed"
    assert forbidden.kind is ApiErrorKind.FATAL
    invalid = status(
        422, "pods \"t\" is forbidden: ValidatingAdmissionPolicy 'p' denied request: no", "Invalid"
    )  # its default reason is Invalid
    assert invalid.refusal is not None
    assert (invalid.refusal.kind, invalid.refusal.binding) == (RefusalKind.ADMISSION_POLICY, "")
    assert invalid.kind is ApiErrorKind.FATAL


@pytest.mark.parametrize(
    "message",
    [
        "injected 403",
        "pods is forbidden: no watch for you",
        'pods "t" is forbidden: not yet ready to handle request',
        'pods "t" is forbidden: insufficient quota to consume: requests.nvidia.com/gpu',
        "",
    ],
)
def test_any_other_403_stays_retryable_but_says_it_is_unknown(message: str) -> None:
    error = status(403, message)
    assert error.refusal is not None
    assert error.refusal.kind is RefusalKind.OTHER
    assert error.refusal.retryable
    assert error.kind is ApiErrorKind.RETRYABLE


def test_a_403_without_a_status_body_is_an_unknown_refusal() -> None:
    response = urllib3.HTTPResponse(body=b"<html>403 Forbidden</html>", status=403, preload_content=True)
    error = classify(ApiException(http_resp=response))
    assert error.refusal is not None
    assert error.refusal.kind is RefusalKind.OTHER
    assert error.kind is ApiErrorKind.RETRYABLE


@pytest.mark.parametrize("code", [400, 401, 404, 409, 410, 422, 429, 500, 503])
def test_other_codes_carry_no_refusal(code: int) -> None:
    assert status(code, "exceeded quota: q, requested: pods=1, used: pods=0, limited: pods=0").refusal is None


def test_no_token_reaches_a_refusal() -> None:
    message = f'pods "t" is forbidden: admission webhook "w" denied the request: args contain {SECRET}'
    error = status(403, message)
    assert error.refusal is not None
    assert SECRET not in error.message
    assert SECRET not in error.refusal.detail
    assert SECRET not in error.refusal.hint
    assert SECRET not in repr(error)


def test_a_refused_error_survives_pickling() -> None:
    import pickle

    error = status(403, RECORDED["missing service account"][0])
    copy = pickle.loads(pickle.dumps(error))
    assert copy.refusal == error.refusal
    assert copy.kind is ApiErrorKind.RETRYABLE


# --- quantities --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", Decimal(1)),
        ("500m", Decimal("0.5")),
        ("19800m", Decimal("19.8")),
        ("64Gi", Decimal(64 * 2**30)),
        ("100Gi", Decimal(100 * 2**30)),
        ("1Ki", Decimal(1024)),
        ("1k", Decimal(1000)),
        ("1M", Decimal(10**6)),
        ("1e3", Decimal(1000)),
        ("1E3", Decimal(1000)),
        ("1.5", Decimal("1.5")),
        (".5", Decimal("0.5")),
        ("+2", Decimal(2)),
        ("0", Decimal(0)),
        ("10n", Decimal("1E-8")),
        ("250u", Decimal("0.00025")),
        ("1E", Decimal(10**18)),  # E alone is exa, as in Kubernetes
        ("1Ei", Decimal(2**60)),
    ],
)
def test_quantities_parse_as_kubernetes_reads_them(text: str, value: Decimal) -> None:
    assert quantity(text) == value


@pytest.mark.parametrize("text", ["", "lots", "1e", "1KI", "1ki", "NaN", "Infinity", "2 GB"])
def test_what_is_not_a_quantity(text: str) -> None:
    assert quantity(text) is None


@pytest.mark.parametrize(
    ("requested", "limited", "fits"),
    [
        ("500m", "1", True),
        ("1", "1000m", True),  # equal: the pod alone fits exactly
        ("1001m", "1", False),
        ("1Gi", "1024Mi", True),
        ("1Gi", "1G", False),  # 2^30 > 10^9
        ("1e3", "1k", True),
        ("2", "1.5", False),
    ],
)
def test_fits_alone_compares_the_quantities_not_the_text(requested: str, limited: str, fits: bool) -> None:
    assert QuotaResource("r", requested, "0", limited).fits_alone is fits


# --- through the official client, from the local Kubernetes API -----------------------------------


@pytest.fixture
def kube() -> Iterator[LocalKubeAPI]:
    with LocalKubeAPI(fault_seed=5) as started:
        yield started


@pytest.fixture
def v1(kube: LocalKubeAPI) -> Iterator[client.CoreV1Api]:
    from hybrid_executor.kubernetes.api import KubeApi

    api = KubeApi.from_settings(ConnectionSettings(config_file=str(kube.kubeconfig)))
    yield api.core
    api.close()


def pod(name: str, **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **metadata},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "base", "image": "busybox:1.36"}]},
    }


def created_error(v1: client.CoreV1Api, namespace: str, body: dict[str, Any], **extra: Any) -> KubeApiError:
    with pytest.raises(ApiException) as raised:
        v1.create_namespaced_pod(namespace, body, **extra)
    return classify(raised.value)


def test_the_local_apis_full_and_zero_pod_quotas(v1: client.CoreV1Api) -> None:
    v1.create_namespaced_resource_quota(NS, {"metadata": {"name": "one-pod"}, "spec": {"hard": {"pods": "1"}}})
    v1.create_namespaced_pod(NS, pod("first"))

    full = created_error(v1, NS, pod("second"))
    assert full.refusal is not None
    assert full.refusal.kind is RefusalKind.QUOTA_FULL
    assert full.kind is ApiErrorKind.RETRYABLE

    v1.create_namespace({"metadata": {"name": "zero"}})
    v1.create_namespaced_resource_quota("zero", {"metadata": {"name": "zero-pods"}, "spec": {"hard": {"pods": "0"}}})
    never = created_error(v1, "zero", pod("any"), dry_run="All")
    assert never.refusal is not None
    assert never.refusal.kind is RefusalKind.QUOTA_EXCEEDS_LIMIT
    assert never.kind is ApiErrorKind.FATAL


def test_the_local_apis_terminating_namespace(kube: LocalKubeAPI, v1: client.CoreV1Api) -> None:
    v1.create_namespace({"metadata": {"name": "workers-old"}})
    v1.create_namespaced_pod("workers-old", pod("held", finalizers=["example.com/hold"]))
    v1.delete_namespace("workers-old")

    error = created_error(v1, "workers-old", pod("late"))

    assert error.refusal is not None
    assert (error.refusal.kind, error.refusal.namespace) == (RefusalKind.NAMESPACE_TERMINATING, "workers-old")
    assert error.kind is ApiErrorKind.FATAL
    assert [cause.reason for cause in error.causes] == ["NamespaceTerminating"]


def test_the_local_apis_rbac_refusal(kube: LocalKubeAPI, v1: client.CoreV1Api) -> None:
    rule = kube.authorization.deny("create", "pods", namespace=NS)
    try:
        error = created_error(v1, NS, pod("p"))
    finally:
        kube.authorization.remove(rule)

    assert error.refusal is not None
    assert error.refusal.kind is RefusalKind.RBAC
    assert (error.refusal.user, error.refusal.verb, error.refusal.resource, error.refusal.namespace) == (
        "system:admin",
        "create",
        "pods",
        NS,
    )
    assert error.kind is ApiErrorKind.RETRYABLE


@pytest.mark.parametrize(("message", "refusal_kind", "kind"), RECORDED.values(), ids=list(RECORDED))
def test_the_recorded_refusals_through_the_client(
    kube: LocalKubeAPI, v1: client.CoreV1Api, message: str, refusal_kind: RefusalKind, kind: ApiErrorKind
) -> None:
    kube.faults.add("create", "pods", f"/api/v1/namespaces/{NS}/pods", status=403, message=message, times=1)

    error = created_error(v1, NS, pod("p"))

    assert (error.code, error.reason, error.message) == (403, "Forbidden", message)
    assert error.refusal is not None
    assert error.refusal.kind is refusal_kind
    assert error.kind is kind


def test_the_status_body_is_read_as_the_client_gets_it(kube: LocalKubeAPI, v1: client.CoreV1Api) -> None:
    message = RECORDED["quota must specify"][0]
    kube.faults.add("create", "pods", status=403, message=message, times=1)
    with pytest.raises(ApiException) as raised:
        v1.create_namespaced_pod(NS, pod("p"))
    body = json.loads(raised.value.body)
    assert (body["kind"], body["code"], body["reason"], body["message"]) == ("Status", 403, "Forbidden", message)


def test_every_403_of_the_recorded_document_is_here() -> None:
    """Where ../shared/kubernetes-refusals.md exists (CI clones this repository alone), its 403s are all above."""
    import re
    from pathlib import Path

    document = Path(__file__).resolve().parents[3] / "shared" / "kubernetes-refusals.md"
    if not document.exists():
        pytest.skip(f"{document} is not here")
    recorded = re.findall(r"HTTP \*\*403\*\*[^\n]*\n(?:[^\n`]*\n)*?```\n(.*?)\n```", document.read_text())
    assert len(recorded) == len(RECORDED)
    assert set(recorded) == {message for message, _, _ in RECORDED.values()}

"""PodSecurity admission by namespace label, and the server's --allow-privileged.

The refusal wordings are the ones recorded from a real v1.36 server (/work/shared/kubernetes-refusals.md),
or upstream's where noted (pod-security-admission/policy).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

Refusal = Callable[..., dict[str, Any]]

CHART_VALUES = Path(__file__).resolve().parents[3] / "charts" / "hybrid-executor" / "values.yaml"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}
# What the restricted level asks of a pod, as the chart's template sets it.
COMPLIANT_POD_CONTEXT = {"runAsNonRoot": True, "runAsUser": 50000, "seccompProfile": {"type": "RuntimeDefault"}}
COMPLIANT_CONTEXT = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def _namespace(v1: client.CoreV1Api, name: str, labels: dict[str, str]) -> str:
    v1.create_namespace({"metadata": {"name": name, "labels": labels}})
    return name


def _pod(
    name: str,
    *,
    pod_context: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "base", "image": "apache/airflow:3.3.2"}
    if context is not None:
        container["securityContext"] = copy.deepcopy(context)
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container]},
    }
    if pod_context is not None:
        body["spec"]["securityContext"] = copy.deepcopy(pod_context)
    body["spec"].update(spec)
    return body


def _compliant(name: str, **spec: Any) -> dict[str, Any]:
    return _pod(name, pod_context=COMPLIANT_POD_CONTEXT, context=COMPLIANT_CONTEXT, **spec)


def _chart_template() -> dict[str, Any]:
    """The chart's default pod template's security settings and resources (values.yaml podTemplate)."""
    values = yaml.safe_load(CHART_VALUES.read_text())["podTemplate"]
    image = values["image"]
    container = {
        "name": "base",
        "image": f"{image['repository']}:{image['tag']}",
        "resources": values["resources"],
        "securityContext": values["containerSecurityContext"],
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "msg-9"},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": values["securityContext"],
            "containers": [container],
        },
    }


# --- recorded answers ------------------------------------------------------------------------


def test_the_charts_template_is_accepted_in_a_restricted_namespace(kube: Any, v1: client.CoreV1Api) -> None:
    ns = _namespace(v1, "workers", RESTRICTED)

    answered = v1.create_namespaced_pod(ns, _chart_template(), dry_run="All")

    assert answered.metadata.name == "msg-9"
    assert kube.api.pods(ns) == []
    assert v1.create_namespaced_pod(ns, _chart_template()).metadata.uid


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        (
            "msg-11",
            _compliant("msg-11", hostNetwork=True),
            'pods "msg-11" is forbidden: violates PodSecurity "restricted:latest": host namespaces (hostNetwork=true)',
        ),
        (
            "msg-12",
            _pod("msg-12"),
            'pods "msg-12" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false '
            '(container "base" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities '
            '(container "base" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true '
            '(pod or container "base" must set securityContext.runAsNonRoot=true), seccompProfile '
            '(pod or container "base" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")',
        ),
        (
            "msg-3",
            _pod(
                "msg-3",
                pod_context={"runAsUser": 0, "runAsNonRoot": False, "seccompProfile": {"type": "RuntimeDefault"}},
                context=COMPLIANT_CONTEXT,
            ),
            'pods "msg-3" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true (pod must not '
            "set securityContext.runAsNonRoot=false), runAsUser=0 (pod must not set runAsUser=0)",
        ),
        (
            "msg-4",
            _compliant("msg-4", volumes=[{"name": "h", "hostPath": {"path": "/var/log"}}]),
            'pods "msg-4" is forbidden: violates PodSecurity "restricted:latest": restricted volume types '
            '(volume "h" uses restricted volume type "hostPath")',
        ),
    ],
)
@pytest.mark.parametrize("dry_run", [None, "All"])
def test_recorded_pod_security_refusals(
    kube: Any,
    v1: client.CoreV1Api,
    refusal: Refusal,
    name: str,
    body: dict[str, Any],
    message: str,
    dry_run: str | None,
) -> None:
    ns = _namespace(v1, "workers", RESTRICTED)
    before = kube.api.resource_version

    status = refusal(v1.create_namespaced_pod, ns, body, dry_run=dry_run)

    assert (status["code"], status["reason"]) == (403, "Forbidden")
    assert status["message"] == message
    assert status["details"] == {"name": name, "kind": "pods"}
    assert kube.api.pods(ns) == []
    assert kube.api.resource_version == before


def test_recorded_host_network_real_create(kube: Any, v1: client.CoreV1Api, refusal: Refusal) -> None:
    ns = _namespace(v1, "workers", RESTRICTED)

    status = refusal(v1.create_namespaced_pod, ns, _compliant("msg-13", hostNetwork=True))

    assert status["message"] == (
        'pods "msg-13" is forbidden: violates PodSecurity "restricted:latest": host namespaces (hostNetwork=true)'
    )
    assert kube.api.pods(ns) == []


@pytest.mark.parametrize(
    ("name", "labels", "message"),
    [
        (
            "msg-10",
            RESTRICTED,
            'Pod "msg-10" is invalid: spec.containers[0].securityContext.privileged: Forbidden: disallowed by cluster '
            "policy",
        ),
        (
            "msg-2",
            {},
            'Pod "msg-2" is invalid: spec.containers[0].securityContext.privileged: Forbidden: disallowed by cluster '
            "policy",
        ),
    ],
    ids=["restricted", "no-pod-security-labels"],
)
def test_recorded_privileged_refusal_without_allow_privileged(
    make_kube: Callable[..., Any], refusal: Refusal, name: str, labels: dict[str, str], message: str
) -> None:
    kube = make_kube(allow_privileged=False)
    ns = _namespace(kube.v1, "workers", labels)
    body = _compliant(name)
    body["spec"]["containers"][0]["securityContext"] = {"privileged": True}

    status = refusal(kube.v1.create_namespaced_pod, ns, body)

    assert (status["code"], status["reason"]) == (422, "Invalid")
    assert status["message"] == message
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueForbidden",
            "message": "Forbidden: disallowed by cluster policy",
            "field": "spec.containers[0].securityContext.privileged",
        }
    ]
    assert kube.api.pods(ns) == []


def test_recorded_invalid_container_name(v1: client.CoreV1Api, ns: str, refusal: Refusal) -> None:
    body = _pod("msg-15")
    body["spec"]["containers"][0]["name"] = "Bad_Name"

    status = refusal(v1.create_namespaced_pod, ns, body, dry_run="All")

    assert status["message"] == (
        'Pod "msg-15" is invalid: spec.containers[0].name: Invalid value: "Bad_Name": a lowercase RFC 1123 label must '
        "consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character "
        "(e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
    )


# --- upstream wording beyond the record ------------------------------------------------------


def test_a_privileged_container_allowed_by_the_server_is_refused_by_pod_security(
    v1: client.CoreV1Api, refusal: Refusal
) -> None:
    ns = _namespace(v1, "workers", RESTRICTED)
    body = _compliant("priv")
    body["spec"]["containers"][0]["securityContext"] = {"privileged": True, "capabilities": {"drop": ["ALL"]}}

    status = refusal(v1.create_namespaced_pod, ns, body)

    # privileged=true cannot go with allowPrivilegeEscalation=false, so both are reported.
    assert status["message"] == (
        'pods "priv" is forbidden: violates PodSecurity "restricted:latest": privileged (container "base" must not set '
        'securityContext.privileged=true), allowPrivilegeEscalation != false (container "base" must set '
        "securityContext.allowPrivilegeEscalation=false)"
    )


def test_a_privileged_pod_is_created_where_nothing_enforces(v1: client.CoreV1Api, ns: str) -> None:
    body = _pod("priv", context={"privileged": True})

    assert v1.create_namespaced_pod(ns, body).spec.containers[0].security_context.privileged is True


def test_baseline_checks_host_access_but_not_the_restricted_settings(v1: client.CoreV1Api, refusal: Refusal) -> None:
    ns = _namespace(v1, "base-ns", {"pod-security.kubernetes.io/enforce": "baseline"})
    assert v1.create_namespaced_pod(ns, _pod("plain")).metadata.name == "plain"
    body = _pod(
        "hosty",
        context={"capabilities": {"add": ["NET_ADMIN", "CHOWN", "SYS_TIME"]}, "privileged": True},
        hostPID=True,
        hostIPC=True,
        volumes=[{"name": "logs", "hostPath": {"path": "/var/log"}}, {"name": "root", "hostPath": {"path": "/"}}],
    )
    body["spec"]["containers"][0]["ports"] = [
        {"containerPort": 80, "hostPort": 8080},
        {"containerPort": 9, "hostPort": 443},
    ]
    body["spec"]["initContainers"] = [
        {"name": "init", "image": "busybox:1.36", "securityContext": {"privileged": True}}
    ]

    status = refusal(v1.create_namespaced_pod, ns, body)

    assert status["message"] == (
        'pods "hosty" is forbidden: violates PodSecurity "baseline:latest": non-default capabilities '
        '(container "base" must not include "NET_ADMIN", "SYS_TIME" in securityContext.capabilities.add), '
        "host namespaces (hostIPC=true, hostPID=true), "
        'hostPath volumes (volumes "logs", "root"), hostPort (container "base" uses hostPorts 443, 8080), '
        'privileged (containers "init", "base" must not set securityContext.privileged=true)'
    )


def test_restricted_covers_init_containers_and_bad_values(v1: client.CoreV1Api, refusal: Refusal) -> None:
    ns = _namespace(v1, "workers", RESTRICTED)
    body = _compliant(
        "init", volumes=[{"name": "nfs", "nfs": {"server": "x", "path": "/"}}, {"name": "e", "emptyDir": {}}]
    )
    body["spec"]["initContainers"] = [
        {
            "name": "setup",
            "image": "busybox:1.36",
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE", "SYS_ADMIN"]},
                "runAsNonRoot": False,
                "runAsUser": 0,
                "seccompProfile": {"type": "Unconfined"},
            },
        }
    ]

    status = refusal(v1.create_namespaced_pod, ns, body)

    assert status["message"] == (
        'pods "init" is forbidden: violates PodSecurity "restricted:latest": unrestricted capabilities '
        '(container "setup" must not include "SYS_ADMIN" in securityContext.capabilities.add), '
        'restricted volume types (volume "nfs" uses restricted volume type "nfs"), '
        'runAsNonRoot != true (container "setup" must not set securityContext.runAsNonRoot=false), '
        'runAsUser=0 (container "setup" must not set runAsUser=0), '
        'seccompProfile (container "setup" must not set securityContext.seccompProfile.type to "Unconfined")'
    )


def test_the_version_label_picks_the_checks_and_names_the_policy(v1: client.CoreV1Api, refusal: Refusal) -> None:
    # capabilities (1.22+), runAsUser (1.23+) are not part of restricted v1.21.
    labels = {**RESTRICTED, "pod-security.kubernetes.io/enforce-version": "v1.21"}
    ns = _namespace(v1, "old-policy", labels)
    body = _pod(
        "old",
        pod_context={"runAsNonRoot": True, "runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}},
        context={"allowPrivilegeEscalation": False},
    )

    assert v1.create_namespaced_pod(ns, body).metadata.name == "old"
    status = refusal(v1.create_namespaced_pod, ns, _compliant("host", hostNetwork=True))
    assert status["message"] == (
        'pods "host" is forbidden: violates PodSecurity "restricted:v1.21": host namespaces (hostNetwork=true)'
    )


def test_a_privileged_namespace_enforces_nothing(v1: client.CoreV1Api) -> None:
    ns = _namespace(v1, "anything", {"pod-security.kubernetes.io/enforce": "privileged"})

    assert v1.create_namespaced_pod(ns, _pod("host", hostNetwork=True)).spec.host_network is True


def test_a_namespace_with_a_level_that_does_not_parse_is_422(v1: client.CoreV1Api, refusal: Refusal) -> None:
    labels = {"pod-security.kubernetes.io/enforce": "strict", "pod-security.kubernetes.io/enforce-version": "1.30"}

    status = refusal(v1.create_namespace, {"metadata": {"name": "typo", "labels": labels}})

    assert (status["code"], status["reason"]) == (422, "Invalid")
    assert status["message"] == (
        'Namespace "typo" is invalid: ['
        'metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": '
        "must be one of privileged, baseline, restricted, "
        'metadata.labels[pod-security.kubernetes.io/enforce-version]: Invalid value: "1.30": '
        'must be "latest" or "v1.x"]'
    )
    assert [n.metadata.name for n in v1.list_namespace().items if n.metadata.name == "typo"] == []


def test_labelling_a_namespace_restricted_applies_to_the_next_pod(
    v1: client.CoreV1Api, ns: str, refusal: Refusal
) -> None:
    v1.create_namespaced_pod(ns, _pod("before", hostNetwork=True))

    v1.patch_namespace(ns, {"metadata": {"labels": RESTRICTED}})

    status = refusal(v1.create_namespaced_pod, ns, _compliant("after", hostNetwork=True))
    assert status["message"].startswith('pods "after" is forbidden: violates PodSecurity "restricted:latest"')
    bad = refusal(v1.patch_namespace, ns, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "nope"}}})
    assert bad["message"] == (
        f'Namespace "{ns}" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "nope": '
        "must be one of privileged, baseline, restricted"
    )

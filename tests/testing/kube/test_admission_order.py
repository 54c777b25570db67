"""The order in which a pod create is refused, as kube-apiserver's: authorization, then mutating admission
(NamespaceLifecycle, LimitRanger's defaults, ServiceAccount), validation (422), then validating admission
(LimitRanger, PodSecurity, ResourceQuota last).

The refusal wordings are the ones recorded from a real v1.36 server (/work/shared/kubernetes-refusals.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

Refusal = Callable[..., dict[str, Any]]
SCHEDULER = "system:serviceaccount:airflow-airflow:airflow-scheduler"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


def _pod(name: str, resources: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "base", "image": "apache/airflow:3.3.2"}
    if resources is not None:
        container["resources"] = resources
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [container], **spec}}


def _everything_wrong(name: str) -> dict[str, Any]:
    """A pod every admission plugin and validation would refuse."""
    body = _pod(name, {"limits": {"cpu": "60"}}, serviceAccountName="nobody", hostNetwork=True)
    body["spec"]["containers"][0]["name"] = "Bad_Name"
    return body


def _terminating(v1: client.CoreV1Api, name: str) -> None:
    """A namespace being deleted: a pod on a node holds it (its graceful deletion takes a while)."""
    v1.create_namespace({"metadata": {"name": name}})
    v1.create_namespaced_pod(name, _pod("bound", nodeName="node-1"))
    v1.delete_namespace(name)
    assert v1.read_namespace(name).status.phase == "Terminating"


@pytest.mark.parametrize("dry_run", [None, "All"])
def test_recorded_terminating_namespace_refusal_comes_first(
    kube: Any, v1: client.CoreV1Api, refusal: Refusal, dry_run: str | None
) -> None:
    _terminating(v1, "workers-old")
    before = kube.api.resource_version

    status = refusal(v1.create_namespaced_pod, "workers-old", _everything_wrong("msg-6"), dry_run=dry_run)

    assert (status["code"], status["reason"]) == (403, "Forbidden")
    assert status["message"] == (
        'pods "msg-6" is forbidden: unable to create new content in namespace workers-old '
        "because it is being terminated"
    )
    assert status["details"] == {
        "name": "msg-6",
        "kind": "pods",
        "causes": [
            {
                "reason": "NamespaceTerminating",
                "message": "namespace workers-old is being terminated",
                "field": "metadata.namespace",
            }
        ],
    }
    assert [p["metadata"]["name"] for p in kube.api.pods("workers-old")] == ["bound"]
    assert kube.api.resource_version == before


def test_a_terminating_namespace_refuses_every_kind_of_object(v1: client.CoreV1Api, refusal: Refusal) -> None:
    _terminating(v1, "workers-old")

    for create, body in (
        (v1.create_namespaced_service_account, {"metadata": {"name": "sa"}}),
        (v1.create_namespaced_limit_range, {"metadata": {"name": "lr"}, "spec": {"limits": []}}),
        (v1.create_namespaced_resource_quota, {"metadata": {"name": "q"}, "spec": {"hard": {"pods": "1"}}}),
    ):
        status = refusal(create, "workers-old", body)
        assert status["code"] == 403
        assert status["message"].endswith(
            "is forbidden: unable to create new content in namespace workers-old because it is being terminated"
        )


@pytest.mark.parametrize(
    ("namespace", "message"),
    [
        (
            "default",
            'pods is forbidden: User "system:serviceaccount:airflow-airflow:airflow-scheduler" cannot create resource '
            '"pods" in API group "" in the namespace "default"',
        ),
        (
            "no-such-ns",
            'pods is forbidden: User "system:serviceaccount:airflow-airflow:airflow-scheduler" cannot create resource '
            '"pods" in API group "" in the namespace "no-such-ns"',
        ),
    ],
)
def test_recorded_rbac_refusals_come_before_the_namespace(
    kube: Any, v1: client.CoreV1Api, refusal: Refusal, namespace: str, message: str
) -> None:
    kube.api.authorization.user = SCHEDULER
    kube.api.authorization.deny("create", "pods", namespace=namespace)

    status = refusal(v1.create_namespaced_pod, namespace, _everything_wrong("p"))

    assert (status["code"], status["reason"]) == (403, "Forbidden")
    assert status["message"] == message


def test_recorded_missing_namespace_past_rbac_is_404(v1: client.CoreV1Api, refusal: Refusal) -> None:
    status = refusal(v1.create_namespaced_pod, "no-such-ns", _everything_wrong("p"))

    assert (status["code"], status["reason"], status["message"]) == (
        404,
        "NotFound",
        'namespaces "no-such-ns" not found',
    )


def test_the_service_account_is_looked_up_before_the_pod_is_validated(
    v1: client.CoreV1Api, ns: str, refusal: Refusal
) -> None:
    status = refusal(v1.create_namespaced_pod, ns, _everything_wrong("p"))

    assert status["code"] == 403
    assert status["message"] == (
        f'pods "p" is forbidden: error looking up service account {ns}/nobody: serviceaccount "nobody" not found'
    )


def test_validation_comes_before_the_validating_admission(v1: client.CoreV1Api, refusal: Refusal) -> None:
    v1.create_namespace({"metadata": {"name": "strict", "labels": RESTRICTED}})
    v1.create_namespaced_resource_quota("strict", {"metadata": {"name": "none"}, "spec": {"hard": {"pods": "0"}}})
    body = _everything_wrong("p")
    del body["spec"]["serviceAccountName"]

    status = refusal(v1.create_namespaced_pod, "strict", body)

    assert (status["code"], status["reason"]) == (422, "Invalid")
    assert status["message"].startswith('Pod "p" is invalid: spec.containers[0].name: Invalid value: "Bad_Name"')


@pytest.mark.parametrize("dry_run", [None, "All"])
def test_recorded_limit_range_answers_before_the_quota(
    kube: Any, v1: client.CoreV1Api, ns: str, refusal: Refusal, dry_run: str | None
) -> None:
    v1.create_namespaced_resource_quota(
        ns, {"metadata": {"name": "hybrid-executor-workers"}, "spec": {"hard": {"requests.cpu": "50"}}}
    )
    limits = {"type": "Container", "max": {"cpu": "8", "memory": "16Gi"}, "min": {"memory": "64Mi"}}
    v1.create_namespaced_limit_range(ns, {"metadata": {"name": "limits"}, "spec": {"limits": [limits]}})

    status = refusal(v1.create_namespaced_pod, ns, _pod("msg-5", {"limits": {"cpu": "60"}}), dry_run=dry_run)

    assert status["message"] == 'pods "msg-5" is forbidden: maximum cpu usage per Container is 8, but limit is 60'
    assert kube.api.pods(ns) == []


def test_limit_range_answers_before_pod_security(v1: client.CoreV1Api, refusal: Refusal) -> None:
    v1.create_namespace({"metadata": {"name": "strict", "labels": RESTRICTED}})
    v1.create_namespaced_limit_range(
        "strict", {"metadata": {"name": "l"}, "spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}}]}}
    )

    status = refusal(v1.create_namespaced_pod, "strict", _pod("p", {"limits": {"cpu": "2"}}, hostNetwork=True))

    assert status["message"] == 'pods "p" is forbidden: maximum cpu usage per Container is 1, but limit is 2'


def test_pod_security_answers_before_the_quota(v1: client.CoreV1Api, refusal: Refusal) -> None:
    v1.create_namespace({"metadata": {"name": "strict", "labels": RESTRICTED}})
    v1.create_namespaced_resource_quota("strict", {"metadata": {"name": "none"}, "spec": {"hard": {"pods": "0"}}})

    status = refusal(v1.create_namespaced_pod, "strict", _pod("p"))

    assert status["message"].startswith('pods "p" is forbidden: violates PodSecurity "restricted:latest": ')


def test_a_validating_refusal_names_the_generated_name(v1: client.CoreV1Api, ns: str, refusal: Refusal) -> None:
    v1.create_namespaced_resource_quota(ns, {"metadata": {"name": "none"}, "spec": {"hard": {"pods": "0"}}})
    body = _pod("ignored")
    body["metadata"] = {"generateName": "job-"}

    status = refusal(v1.create_namespaced_pod, ns, body, dry_run="All")

    name = status["details"]["name"]
    assert name.startswith("job-")
    assert len(name) == len("job-") + 5
    assert status["message"] == (
        f'pods "{name}" is forbidden: exceeded quota: none, requested: pods=1, used: pods=0, limited: pods=0'
    )

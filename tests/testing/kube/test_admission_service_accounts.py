"""ServiceAccounts: the object's verbs, the "default" one of every namespace, and the ServiceAccount admission.

The refusal wording is the one recorded from a real v1.36 server (/work/shared/kubernetes-refusals.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

Refusal = Callable[..., dict[str, Any]]


def _pod(name: str | None, account: str | None = None, *, generate_name: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name} if name else {"generateName": generate_name}
    spec: dict[str, Any] = {"containers": [{"name": "base", "image": "apache/airflow:3.3.2"}]}
    if account is not None:
        spec["serviceAccountName"] = account
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def test_every_namespace_has_a_default_service_account(v1: client.CoreV1Api) -> None:
    v1.create_namespace({"metadata": {"name": "fresh"}})

    accounts = v1.list_service_account_for_all_namespaces().items

    assert sorted((a.metadata.namespace, a.metadata.name) for a in accounts) == [
        ("default", "default"),
        ("fresh", "default"),
        ("kube-node-lease", "default"),
        ("kube-public", "default"),
        ("kube-system", "default"),
    ]
    default = v1.read_namespaced_service_account("default", "fresh")
    assert default.metadata.uid
    assert default.secrets is None


def test_create_get_list_and_delete(v1: client.CoreV1Api, ns: str) -> None:
    created = v1.create_namespaced_service_account(
        ns, {"metadata": {"name": "airflow-worker"}, "automountServiceAccountToken": False}
    )

    assert created.kind == "ServiceAccount"
    assert created.automount_service_account_token is False
    assert v1.read_namespaced_service_account("airflow-worker", ns).metadata.uid == created.metadata.uid
    assert [a.metadata.name for a in v1.list_namespaced_service_account(ns).items] == ["airflow-worker", "default"]
    assert v1.list_namespaced_service_account(ns).kind == "ServiceAccountList"

    v1.delete_namespaced_service_account("airflow-worker", ns)

    assert [a.metadata.name for a in v1.list_namespaced_service_account(ns).items] == ["default"]


def test_a_service_account_name_must_be_a_dns_subdomain(v1: client.CoreV1Api, ns: str, refusal: Refusal) -> None:
    status = refusal(v1.create_namespaced_service_account, ns, {"metadata": {"name": "Airflow_Worker"}})

    assert (status["code"], status["reason"]) == (422, "Invalid")
    assert status["message"].startswith(
        'ServiceAccount "Airflow_Worker" is invalid: metadata.name: Invalid value: "Airflow_Worker": '
        "a lowercase RFC 1123 subdomain"
    )


def test_twice_is_409(v1: client.CoreV1Api, ns: str, refusal: Refusal) -> None:
    status = refusal(v1.create_namespaced_service_account, ns, {"metadata": {"name": "default"}})

    assert (status["code"], status["message"]) == (409, 'serviceaccounts "default" already exists')


def test_a_pod_gets_the_default_service_account(v1: client.CoreV1Api, ns: str) -> None:
    pod = v1.create_namespaced_pod(ns, _pod("plain"))

    assert pod.spec.service_account_name == "default"
    assert pod.spec.service_account == "default"


def test_a_pod_gets_its_service_accounts_image_pull_secrets(v1: client.CoreV1Api, ns: str) -> None:
    v1.create_namespaced_service_account(
        ns, {"metadata": {"name": "puller"}, "imagePullSecrets": [{"name": "registry"}]}
    )

    pod = v1.create_namespaced_pod(ns, _pod("pulled", "puller"))

    assert [s.name for s in pod.spec.image_pull_secrets] == ["registry"]


@pytest.mark.parametrize("dry_run", [None, "All"])
def test_recorded_missing_service_account_refusal(
    kube: Any, v1: client.CoreV1Api, refusal: Refusal, dry_run: str | None
) -> None:
    v1.create_namespace({"metadata": {"name": "airflow-workers"}})
    before = kube.api.resource_version

    status = refusal(v1.create_namespaced_pod, "airflow-workers", _pod("msg-14", "airflow-worker"), dry_run=dry_run)

    assert (status["code"], status["reason"]) == (403, "Forbidden")
    assert status["message"] == (
        'pods "msg-14" is forbidden: error looking up service account airflow-workers/airflow-worker: '
        'serviceaccount "airflow-worker" not found'
    )
    assert status["details"] == {"name": "msg-14", "kind": "pods"}
    assert kube.api.pods("airflow-workers") == []
    assert kube.api.resource_version == before


def test_the_pod_is_admitted_once_the_service_account_exists(v1: client.CoreV1Api, ns: str, refusal: Refusal) -> None:
    refusal(v1.create_namespaced_pod, ns, _pod("waiting", "airflow-worker"))

    v1.create_namespaced_service_account(ns, {"metadata": {"name": "airflow-worker"}})

    assert v1.create_namespaced_pod(ns, _pod("waiting", "airflow-worker")).spec.service_account_name == "airflow-worker"


def test_a_pod_with_only_a_generate_name_is_refused_under_the_prefix(
    v1: client.CoreV1Api, ns: str, refusal: Refusal
) -> None:
    # The ServiceAccount admission is a mutating one: it runs before the name is generated.
    status = refusal(v1.create_namespaced_pod, ns, _pod(None, "missing", generate_name="job-"))

    assert status["message"] == (
        f'pods "job-" is forbidden: error looking up service account {ns}/missing: serviceaccount "missing" not found'
    )
    assert status["details"] == {"name": "job-", "kind": "pods"}


def test_a_pod_in_a_namespace_whose_default_was_deleted_is_refused(
    v1: client.CoreV1Api, ns: str, refusal: Refusal
) -> None:
    v1.delete_namespaced_service_account("default", ns)

    status = refusal(v1.create_namespaced_pod, ns, _pod("orphan"))

    assert status["message"] == (
        f'pods "orphan" is forbidden: error looking up service account {ns}/default: serviceaccount "default" not found'
    )


def test_deleting_the_namespace_deletes_its_service_accounts_and_limit_ranges(v1: client.CoreV1Api, ns: str) -> None:
    v1.create_namespaced_service_account(ns, {"metadata": {"name": "robot"}})
    v1.create_namespaced_limit_range(ns, {"metadata": {"name": "l"}, "spec": {"limits": [{"type": "Container"}]}})

    v1.delete_namespace(ns)

    assert [a.metadata.namespace for a in v1.list_service_account_for_all_namespaces().items].count(ns) == 0
    assert v1.list_limit_range_for_all_namespaces().items == []

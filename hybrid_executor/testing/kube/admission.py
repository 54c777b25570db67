"""The admission chain of a create, in kube-apiserver's order (pkg/kubeapiserver/options/plugins.go).

Mutating admission runs on the object as decoded and defaulted, before its name is generated and
before it is validated: NamespaceLifecycle (a missing namespace is 404, a terminating one 403),
LimitRanger's defaults, ServiceAccount (default name, and a 403 when it does not exist). Then the
object is named and validated (422), then validating admission runs on the named object:
LimitRanger's bounds, PodSecurity, and ResourceQuota last.

A refusal from the mutating phase names the object as admission.NewForbidden does when no name has
been generated yet: by its name, else its generateName (``pods "job-" is forbidden: ...``), else
``Unknown``. One from the validating phase names the generated name.
"""

from __future__ import annotations

from typing import Any

from hybrid_executor.testing.kube import limitranger, podsecurity, quota, serviceaccounts
from hybrid_executor.testing.kube.errors import forbidden, not_found
from hybrid_executor.testing.kube.store import Store


def refused_as(obj: dict[str, Any]) -> str:
    """admission's extractResourceName before the name is generated: name, generateName or "Unknown"."""
    metadata = obj.get("metadata") or {}
    return str(metadata.get("name") or metadata.get("generateName") or "Unknown")


def namespace_lifecycle(store: Store, resource: str, namespace: str, obj: dict[str, Any]) -> None:
    """NamespaceLifecycle for a create in ``namespace``: it must exist, and must not be terminating."""
    found = store.find("namespaces", "", namespace)
    if found is None:
        raise not_found("namespaces", namespace)
    if (found.get("status") or {}).get("phase") == "Terminating":
        why = f"unable to create new content in namespace {namespace} because it is being terminated"
        error = forbidden(resource, refused_as(obj), why)
        assert error.details is not None
        error.details["causes"] = [
            {
                "reason": "NamespaceTerminating",
                "message": f"namespace {namespace} is being terminated",
                "field": "metadata.namespace",
            }
        ]
        raise error


def mutate_pod(store: Store, namespace: str, pod: dict[str, Any]) -> None:
    """The mutating admission of a new pod: NamespaceLifecycle, LimitRanger's defaults, ServiceAccount."""
    namespace_lifecycle(store, "pods", namespace, pod)
    limitranger.default_pod(store, namespace, pod)
    serviceaccounts.admit_pod(store, namespace, pod, refused_as(pod))


def validate_pod(store: Store, namespace: str, pod: dict[str, Any]) -> None:
    """The validating admission of a new (named, valid) pod: LimitRanger, PodSecurity, ResourceQuota."""
    limitranger.check_pod(store, namespace, pod)
    podsecurity.check_pod(store.find("namespaces", "", namespace), pod)
    quota.admit_pod(store, namespace, pod)

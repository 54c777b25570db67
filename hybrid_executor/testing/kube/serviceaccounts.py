"""ServiceAccounts: the object (core/v1 ``serviceaccounts``), the ``default`` one of every namespace, the admission.

The ServiceAccount controller gives every new namespace a ``default`` ServiceAccount (the real
one a moment later; here at once). The ServiceAccount admission, on a new pod, sets
``spec.serviceAccountName`` to ``default`` when it is empty, refuses a pod whose ServiceAccount
does not exist (403), and copies the ServiceAccount's ``imagePullSecrets`` to a pod that has none.
"""

from __future__ import annotations

from typing import Any

from hybrid_executor.testing.kube.errors import FieldError, forbidden
from hybrid_executor.testing.kube.store import Store
from hybrid_executor.testing.kube.validation import validate_object_meta

DEFAULT = "default"


def default_service_account(namespace: str) -> dict[str, Any]:
    """What the ServiceAccount controller creates in a new namespace (no token Secret since 1.24)."""
    return {"kind": "ServiceAccount", "apiVersion": "v1", "metadata": {"name": DEFAULT, "namespace": namespace}}


def service_account_errors(account: dict[str, Any]) -> list[FieldError]:
    """ValidateServiceAccount: the metadata (a DNS-subdomain name)."""
    return validate_object_meta(account, namespaced=True)


def admit_pod(store: Store, namespace: str, pod: dict[str, Any], refused_as: str) -> None:
    """The ServiceAccount admission's Admit for a new pod; ``refused_as`` is the name its 403 gives the pod.

    It runs before the pod's name is generated, so a pod with only a ``generateName`` is refused
    under that prefix (admission.NewForbidden names the object by its generateName then).
    """
    spec = pod.setdefault("spec", {})
    if not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = DEFAULT
    name = spec["serviceAccountName"]
    spec["serviceAccount"] = name  # the deprecated field is written from the current one
    account = store.find("serviceaccounts", namespace, name)
    if account is None:
        why = f'error looking up service account {namespace}/{name}: serviceaccount "{name}" not found'
        raise forbidden("pods", refused_as, why)
    if not spec.get("imagePullSecrets") and account.get("imagePullSecrets"):
        spec["imagePullSecrets"] = [{"name": ref.get("name", "")} for ref in account["imagePullSecrets"]]

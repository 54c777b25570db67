"""An update (replace, patch, status) as the resources' update strategies make it: what is kept, what is checked.

The server owns uid, name, namespace, creationTimestamp, deletionTimestamp and generation; the main
resource keeps its status and the status subresource its spec; a pod's spec may only change where
the pod strategy allows; a namespace's finalizers and name label stay. Then the object is validated
as for a create (422) and its quantities written canonically.
"""

from __future__ import annotations

import copy
from typing import Any

from hybrid_executor.testing.kube import podsecurity
from hybrid_executor.testing.kube.errors import FieldError, bad_request, conflict, invalid
from hybrid_executor.testing.kube.kinds import KINDS
from hybrid_executor.testing.kube.limitranges import canonicalize_limit_range, default_limit_range, limit_range_errors
from hybrid_executor.testing.kube.validation import canonicalize_quantities, pod_errors, validate_object_meta

_POD_UPDATE_FORBIDDEN = (
    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,"
    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def updated_object(
    resource: str,
    original: dict[str, Any],
    candidate: dict[str, Any],
    subresource: str,
    *,
    allow_privileged: bool = True,
) -> dict[str, Any]:
    """The object ``candidate`` makes of ``original`` (409 on a stale resourceVersion, 422 if invalid)."""
    name = original["metadata"]["name"]
    wanted_version = candidate.get("metadata", {}).get("resourceVersion")
    if wanted_version and wanted_version != original["metadata"]["resourceVersion"]:
        raise conflict(
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    updated = copy.deepcopy(candidate)
    updated["kind"] = KINDS[resource]
    updated["apiVersion"] = "v1"
    metadata = updated.setdefault("metadata", {})
    if not isinstance(metadata, dict):
        raise bad_request("the object's metadata must be an object")
    for owned in ("uid", "creationTimestamp", "namespace", "name", "deletionTimestamp", "generation"):
        if owned in original["metadata"]:
            metadata[owned] = original["metadata"][owned]
        else:
            metadata.pop(owned, None)
    if "deletionGracePeriodSeconds" in original["metadata"]:  # an update can never remove or change it
        metadata["deletionGracePeriodSeconds"] = original["metadata"]["deletionGracePeriodSeconds"]
    if subresource == "status":
        # The status strategies: the spec stays as it was; metadata may change (labels, annotations).
        _keep(updated, original, "spec")
        errors = validate_object_meta(updated, namespaced=resource != "namespaces")
        if resource == "pods":
            _keep(metadata, original["metadata"], "ownerReferences")
            updated["status"] = status = updated.get("status") or {}
            old_qos = (original.get("status") or {}).get("qosClass")
            if not status.get("qosClass") and old_qos:
                status["qosClass"] = old_qos
            if status.get("qosClass") != old_qos:
                errors.append(FieldError("Invalid", "status.qosClass", status["qosClass"], "field is immutable"))
    else:
        # The main resource's strategies: status stays as it was.
        _keep(updated, original, "status")
        if resource == "pods":
            errors = pod_errors(updated, allow_privileged=allow_privileged)
            if _spec_without_mutable(updated) != _spec_without_mutable(original):
                errors.append(FieldError("Forbidden", "spec", detail=_POD_UPDATE_FORBIDDEN))
            elif updated.get("spec") != original.get("spec"):
                metadata["generation"] = int(original["metadata"].get("generation", 1)) + 1
        else:
            if resource == "namespaces":
                # The namespace strategy: finalizers change only through /finalize, and the name label stays.
                _keep(updated, original, "spec")
                metadata["labels"] = {**(metadata.get("labels") or {}), "kubernetes.io/metadata.name": name}
            if resource == "limitranges":
                default_limit_range(updated)
                canonicalize_limit_range(updated)
                errors = limit_range_errors(updated)
            else:
                errors = validate_object_meta(updated, namespaced=resource != "namespaces")
            if resource == "namespaces" and not errors:
                errors = podsecurity.check_namespace_labels(original, updated)
    if errors:
        raise invalid(KINDS[resource], name, errors)
    canonicalize_quantities(resource, updated)
    updated["metadata"]["resourceVersion"] = original["metadata"]["resourceVersion"]
    return updated


def _keep(target: dict[str, Any], source: dict[str, Any], key: str) -> None:
    """Set ``target[key]`` to a copy of ``source[key]``, or drop it if ``source`` has none."""
    if key in source:
        target[key] = copy.deepcopy(source[key])
    else:
        target.pop(key, None)


def _spec_without_mutable(pod: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(pod.get("spec") or {})
    for list_name in ("containers", "initContainers"):
        for container in spec.get(list_name) or []:
            container.pop("image", None)
    for mutable in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        spec.pop(mutable, None)
    return spec

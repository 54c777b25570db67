"""The API verbs with the real server's semantics: admission, defaulting, validation, quota, graceful delete.

The HTTP layer parses requests into these calls; the kubelet uses them too, so whatever reaches
the store went through the same rules whichever way it came. Quota admission and accounting live
in ``quota``, the list verb's revisions and paging in ``listing``.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from typing import Any

from hybrid_executor.testing.kube import patching
from hybrid_executor.testing.kube.errors import (
    FieldError,
    bad_request,
    conflict,
    forbidden,
    invalid,
    not_found,
)
from hybrid_executor.testing.kube.listing import list_objects
from hybrid_executor.testing.kube.podstatus import TERMINAL_PHASES
from hybrid_executor.testing.kube.quantity import parse_quantity
from hybrid_executor.testing.kube.quota import admit_pod, quota_used, refresh_quota, refresh_quotas
from hybrid_executor.testing.kube.selectors import FieldSelector, LabelSelector
from hybrid_executor.testing.kube.store import Change, Store
from hybrid_executor.testing.kube.validation import (
    KINDS,
    canonicalize_quantities,
    pod_errors,
    type_problem,
    validate,
    validate_object_meta,
)

IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")
_NAMESPACE_BEING_EMPTIED = (
    "The system is ensuring all content is removed from this namespace.  "
    "Upon completion, this namespace will automatically be purged by the system."
)
_POD_UPDATE_FORBIDDEN = (
    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,"
    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def pod_qos_class(pod: dict[str, Any]) -> str:
    containers = pod["spec"].get("containers", []) + pod["spec"].get("initContainers", [])
    guaranteed = True
    anything = False
    for container in containers:
        resources = container.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        if requests or limits:
            anything = True
        for name in ("cpu", "memory"):
            limit = limits.get(name)
            request = requests.get(name, limit)
            if limit is None or parse_quantity(request) != parse_quantity(limit):
                guaranteed = False
    if not anything:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def default_pod(pod: dict[str, Any]) -> None:
    """The defaults the real API server (and its ServiceAccount admission) fills into a new Pod."""
    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    for list_name in ("initContainers", "containers"):
        for container in spec.get(list_name) or []:
            container.setdefault("resources", {})
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            image = container.get("image") or ""
            tagged = ":" in image.rsplit("/", 1)[-1] or "@" in image
            latest = not tagged or image.endswith(":latest")
            container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")


class Cluster:
    """The verbs of core/v1 namespaces, pods and resourcequotas over one Store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.add_listener(self._after_change)

    # --- namespaces ----------------------------------------------------------------------

    def create_namespace(self, body: dict[str, Any]) -> dict[str, Any]:
        namespace = self._clean_for_create("namespaces", body, "")
        namespace.setdefault("spec", {})["finalizers"] = ["kubernetes"]
        namespace["status"] = {"phase": "Active"}
        self._generate_name("namespaces", namespace, "")
        labels = namespace["metadata"].setdefault("labels", {})
        if namespace["metadata"].get("name"):
            labels["kubernetes.io/metadata.name"] = namespace["metadata"]["name"]
        validate("namespaces", namespace)
        return self.store.create("namespaces", namespace)

    def delete_namespace(self, name: str, preconditions: dict[str, Any] | None = None) -> dict[str, Any]:
        if name in IMMORTAL_NAMESPACES:  # the NamespaceLifecycle admission's rule
            raise forbidden("namespaces", name, "this namespace may not be deleted")
        namespace = self.store.get("namespaces", "", name)
        wanted_uid = (preconditions or {}).get("uid")
        if wanted_uid and wanted_uid != namespace["metadata"]["uid"]:
            uid = namespace["metadata"]["uid"]
            why = f"Precondition failed: UID in precondition: {wanted_uid}, UID in object meta: {uid}"
            raise conflict("namespaces", name, why)
        if namespace["metadata"].get("deletionTimestamp"):
            # The namespace storage's answer while the namespace controller is still emptying it.
            raise conflict("namespaces", name, _NAMESPACE_BEING_EMPTIED)
        terminating = copy.deepcopy(namespace)
        terminating["metadata"]["deletionTimestamp"] = _timestamp()
        terminating["status"] = {"phase": "Terminating"}
        result = self.store.update("namespaces", terminating)
        for quota in self.store.items("resourcequotas", name):
            self.store.remove("resourcequotas", name, quota["metadata"]["name"])
        for pod in self.store.items("pods", name):
            self.delete_pod(name, pod["metadata"]["name"], None)
        self._finish_namespace_if_empty(name)
        return result

    def _finish_namespace_if_empty(self, name: str) -> None:
        namespace = self.store.find("namespaces", "", name)
        if namespace is None or not namespace["metadata"].get("deletionTimestamp"):
            return
        if not self.store.items("pods", name):
            self.store.remove("namespaces", "", name)

    def _require_namespace(self, resource: str, namespace: str, name: str) -> None:
        found = self.store.find("namespaces", "", namespace)
        if found is None:
            raise not_found("namespaces", namespace)
        if found["metadata"].get("deletionTimestamp"):
            why = f"unable to create new content in namespace {namespace} because it is being terminated"
            error = forbidden(resource, name, why)
            assert error.details is not None
            error.details["causes"] = [
                {
                    "reason": "NamespaceTerminating",
                    "message": f"namespace {namespace} is being terminated",
                    "field": "metadata.namespace",
                }
            ]
            raise error

    # --- pods ----------------------------------------------------------------------------

    def create_pod(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        pod = self._clean_for_create("pods", body, namespace)
        self._require_namespace("pods", namespace, pod["metadata"].get("name", ""))
        self._generate_name("pods", pod, namespace)
        default_pod(pod)
        canonicalize_quantities("pods", pod)
        pod["metadata"]["generation"] = 1  # the pod strategy's (PodObservedGenerationTracking, 1.33+)
        validate("pods", pod)
        pod["status"] = {"phase": "Pending", "qosClass": pod_qos_class(pod)}
        admit_pod(self.store, namespace, pod["metadata"]["name"])
        return self.store.create("pods", pod)

    def delete_pod(
        self, namespace: str, name: str, grace: int | None, preconditions: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        pod = self.store.get("pods", namespace, name)
        self._check_preconditions("pods", pod, preconditions)
        if grace is None:
            grace = int(pod["spec"].get("terminationGracePeriodSeconds", 30))
        # A pod no kubelet runs, or one that has finished, goes at once (the pod strategy's rule).
        if not pod["spec"].get("nodeName") or pod["status"].get("phase") in TERMINAL_PHASES:
            grace = 0
        return self._delete_gracefully("pods", pod, grace)

    def _delete_gracefully(self, resource: str, obj: dict[str, Any], grace: int) -> dict[str, Any]:
        """The generic store's delete: a grace period, then removal once no finalizer is left.

        An object with finalizers is only marked (deletionTimestamp, deletionGracePeriodSeconds) and
        answered as it now is; it goes when an update empties its finalizers.
        """
        metadata = obj["metadata"]
        current_grace = metadata.get("deletionGracePeriodSeconds")
        if current_grace is not None and current_grace <= grace:
            return obj  # a deletion is already under way with a period at least as short
        if grace == 0 and not metadata.get("finalizers"):
            return self.store.remove(resource, metadata.get("namespace", ""), metadata["name"])
        deleting = copy.deepcopy(obj)
        deleting["metadata"]["deletionTimestamp"] = _timestamp(seconds_from_now=grace)
        deleting["metadata"]["deletionGracePeriodSeconds"] = grace
        return self.store.update(resource, deleting)

    # --- resource quotas -----------------------------------------------------------------

    def create_resource_quota(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        quota = self._clean_for_create("resourcequotas", body, namespace)
        self._require_namespace("resourcequotas", namespace, quota["metadata"].get("name", ""))
        self._generate_name("resourcequotas", quota, namespace)
        validate("resourcequotas", quota)
        hard = dict((quota.get("spec") or {}).get("hard") or {})
        quota["status"] = {"hard": hard, "used": quota_used(self.store, namespace, hard)}
        canonicalize_quantities("resourcequotas", quota)
        return self.store.create("resourcequotas", quota)

    def _after_change(self, change: Change) -> None:
        if change.resource == "resourcequotas":
            # The controller recalculates a quota whose spec.hard changed (not on its own status updates).
            before = ((change.prev or {}).get("spec") or {}).get("hard")
            if change.type == "MODIFIED" and (change.obj.get("spec") or {}).get("hard") != before:
                refresh_quota(self.store, change.obj)
            return
        if change.resource != "pods":
            return
        namespace = change.key[0]
        phase_before = (change.prev or {}).get("status", {}).get("phase")
        phase_now = change.obj.get("status", {}).get("phase")
        if change.type != "MODIFIED" or phase_before != phase_now:
            refresh_quotas(self.store, namespace)
        if change.type == "DELETED":
            self._finish_namespace_if_empty(namespace)

    # --- shared verbs --------------------------------------------------------------------

    # Each takes ``dry_run``: the whole verb runs (defaulting, validation, admission, quota, name
    # generation) and answers what it would have stored, but the store commits nothing.

    def create(self, resource: str, namespace: str, body: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        with self.store.dry_run(dry_run):
            if resource == "pods":
                return self.create_pod(namespace, body)
            if resource == "resourcequotas":
                return self.create_resource_quota(namespace, body)
            return self.create_namespace(body)

    def delete(
        self, resource: str, namespace: str, name: str, options: dict[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        with self.store.dry_run(dry_run):
            return self._delete(resource, namespace, name, options)

    def _delete(self, resource: str, namespace: str, name: str, options: dict[str, Any]) -> dict[str, Any]:
        if resource == "pods":
            return self.delete_pod(namespace, name, options.get("gracePeriodSeconds"), options.get("preconditions"))
        if resource == "namespaces":
            return self.delete_namespace(name, options.get("preconditions"))
        obj = self.store.get(resource, namespace, name)
        self._check_preconditions(resource, obj, options.get("preconditions"))
        return self._delete_gracefully(resource, obj, 0)

    def patch(
        self,
        resource: str,
        namespace: str,
        name: str,
        content_type: str,
        body: bytes,
        subresource: str = "",
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        with self.store.dry_run(dry_run):
            return self._patch(resource, namespace, name, content_type, body, subresource)

    def _patch(
        self, resource: str, namespace: str, name: str, content_type: str, body: bytes, subresource: str
    ) -> dict[str, Any]:
        original = self.store.get(resource, namespace, name)
        patched = patching.apply_patch(content_type, original, body)
        if not isinstance(patched, dict):
            raise bad_request("the patch did not produce an object")
        problem = type_problem(patched, resource)
        if problem:
            # The patch handler cannot decode the patched JSON into the type: 422 on the field "patch".
            patched_json = json.dumps(patched, separators=(",", ":"))
            raise invalid("", "", [FieldError("Invalid", "patch", patched_json, problem)])
        return self._update(resource, original, patched, subresource)

    def replace(
        self,
        resource: str,
        namespace: str,
        name: str,
        body: dict[str, Any],
        subresource: str = "",
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        with self.store.dry_run(dry_run):
            return self._replace(resource, namespace, name, body, subresource)

    def _replace(
        self, resource: str, namespace: str, name: str, body: dict[str, Any], subresource: str
    ) -> dict[str, Any]:
        original = self.store.get(resource, namespace, name)
        body_metadata = body.setdefault("metadata", {})
        if body_metadata.get("name", name) != name:
            raise bad_request(
                f"the name of the object ({body_metadata.get('name')}) does not match the name on the URL ({name})"
            )
        body_metadata.setdefault("name", name)
        return self._update(resource, original, body, subresource)

    def _update(
        self,
        resource: str,
        original: dict[str, Any],
        candidate: dict[str, Any],
        subresource: str,
    ) -> dict[str, Any]:
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
                errors = pod_errors(updated)
                if _spec_without_mutable(updated) != _spec_without_mutable(original):
                    errors.append(FieldError("Forbidden", "spec", detail=_POD_UPDATE_FORBIDDEN))
                elif updated.get("spec") != original.get("spec"):
                    metadata["generation"] = int(original["metadata"].get("generation", 1)) + 1
            else:
                if resource == "namespaces":
                    # The namespace strategy: finalizers change only through /finalize, and the name label stays.
                    _keep(updated, original, "spec")
                    metadata["labels"] = {**(metadata.get("labels") or {}), "kubernetes.io/metadata.name": name}
                errors = validate_object_meta(updated, namespaced=resource != "namespaces")
        if errors:
            raise invalid(KINDS[resource], name, errors)
        canonicalize_quantities(resource, updated)
        updated["metadata"]["resourceVersion"] = original["metadata"]["resourceVersion"]
        if updated == original:
            return original  # a no-op write keeps its resourceVersion, as on the real server
        if resource != "namespaces" and _due_for_removal(original, updated):
            return self.store.remove(resource, metadata.get("namespace", ""), name)
        return self.store.update(resource, updated)

    def list(
        self,
        resource: str,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        limit: int = 0,
        continue_token: str = "",
        resource_version: str | None = None,
        resource_version_match: str | None = None,
    ) -> dict[str, Any]:
        return list_objects(
            self.store,
            resource,
            namespace,
            labels,
            fields,
            limit,
            continue_token,
            resource_version,
            resource_version_match,
        )

    # --- helpers -------------------------------------------------------------------------

    def _clean_for_create(self, resource: str, body: dict[str, Any], namespace: str) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        # The server always answers with the object's kind and version, whatever the body carried.
        obj["kind"] = KINDS[resource]
        obj["apiVersion"] = "v1"
        metadata = obj.setdefault("metadata", {})
        if namespace:
            if metadata.get("namespace") and metadata["namespace"] != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        for owned in (
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "selfLink",
        ):
            metadata.pop(owned, None)
        obj.pop("status", None)
        return obj

    def _generate_name(self, resource: str, obj: dict[str, Any], namespace: str) -> None:
        """rest.BeforeCreate: a generateName becomes a name before validation and validating admission."""
        metadata = obj["metadata"]
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = self.store.generate_name(resource, namespace, metadata["generateName"])

    def _check_preconditions(self, resource: str, obj: dict[str, Any], preconditions: dict[str, Any] | None) -> None:
        """DeleteOptions.preconditions, worded as rest.BeforeDelete does (it names the Kind, not the resource)."""
        if not preconditions:
            return
        metadata = obj["metadata"]
        kind = KINDS[resource]
        wanted_uid = preconditions.get("uid")
        if wanted_uid and wanted_uid != metadata.get("uid"):
            why = (
                f"the UID in the precondition ({wanted_uid}) does not match the UID in record ({metadata.get('uid')}). "
                "The object might have been deleted and then recreated"
            )
            raise conflict(kind, metadata["name"], why)
        wanted_version = preconditions.get("resourceVersion")
        if wanted_version and wanted_version != metadata.get("resourceVersion"):
            why = (
                f"the ResourceVersion in the precondition ({wanted_version}) does not match the ResourceVersion "
                f"in record ({metadata.get('resourceVersion')}). The object might have been modified"
            )
            raise conflict(kind, metadata["name"], why)


def _due_for_removal(original: dict[str, Any], updated: dict[str, Any]) -> bool:
    """ShouldDeleteDuringUpdate: an update took the last finalizer off an object whose deletion is due.

    (Namespaces also need an empty spec.finalizers: the namespace controller removes them instead.)
    """
    before = original["metadata"]
    return (
        bool(before.get("deletionTimestamp"))
        and not updated["metadata"].get("finalizers")
        and not before.get("deletionGracePeriodSeconds")
    )


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


def _timestamp(seconds_from_now: int = 0) -> str:
    moment = datetime.now(timezone.utc) + timedelta(seconds=seconds_from_now)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

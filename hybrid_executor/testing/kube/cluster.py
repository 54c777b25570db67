"""The API verbs with the real server's semantics: admission, defaulting, validation, quota, graceful delete.

The HTTP layer parses requests into these calls; the kubelet uses them too, so whatever reaches
the store went through the same rules whichever way it came. The admission chain lives in
``admission`` (and the plugins it calls), quota accounting in ``quota``, the list verb's revisions
and paging in ``listing``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hybrid_executor.testing.kube import admission, deleting, patching, podsecurity
from hybrid_executor.testing.kube.decoding import type_problem
from hybrid_executor.testing.kube.errors import FieldError, bad_request, forbidden, invalid
from hybrid_executor.testing.kube.limitranges import canonicalize_limit_range, default_limit_range, limit_range_errors
from hybrid_executor.testing.kube.listing import list_objects
from hybrid_executor.testing.kube.poddefaults import default_pod, pod_qos_class
from hybrid_executor.testing.kube.quota import quota_used, refresh_quota, refresh_quotas
from hybrid_executor.testing.kube.selectors import FieldSelector, LabelSelector
from hybrid_executor.testing.kube.serviceaccounts import default_service_account, service_account_errors
from hybrid_executor.testing.kube.store import Change, Store, now_rfc3339
from hybrid_executor.testing.kube.updating import updated_object
from hybrid_executor.testing.kube.validation import (
    KINDS,
    canonicalize_quantities,
    pod_errors,
    validate_namespace,
    validate_resource_quota,
)

IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")


class Cluster:
    """The verbs of core/v1 namespaces, pods, resourcequotas, limitranges and serviceaccounts over one Store.

    ``allow_privileged`` is kube-apiserver's ``--allow-privileged``: without it, a privileged
    container is invalid (422) in every namespace.
    """

    def __init__(self, store: Store, *, allow_privileged: bool = True) -> None:
        self.store = store
        self.allow_privileged = allow_privileged
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
        validate_namespace(namespace)
        label_errors = podsecurity.check_namespace_labels(None, namespace)  # the PodSecurity admission's
        if label_errors:
            raise invalid("Namespace", namespace["metadata"].get("name", ""), label_errors)
        created = self.store.create("namespaces", namespace)
        # The ServiceAccount controller's "default" account (the real one comes a moment later).
        self.store.create("serviceaccounts", default_service_account(created["metadata"]["name"]))
        return created

    def delete_namespace(self, name: str, preconditions: dict[str, Any] | None = None) -> dict[str, Any]:
        if name in IMMORTAL_NAMESPACES:  # the NamespaceLifecycle admission's rule
            raise forbidden("namespaces", name, "this namespace may not be deleted")
        namespace = self.store.get("namespaces", "", name)
        deleting.check_namespace_preconditions(namespace, preconditions)
        if namespace["metadata"].get("deletionTimestamp"):
            # Still being emptied (spec.finalizers held): answered as it is, not 409 (kubernetes#84122).
            return namespace
        terminating = copy.deepcopy(namespace)
        terminating["metadata"]["deletionTimestamp"] = now_rfc3339()
        terminating["status"] = {"phase": "Terminating"}
        result = self.store.update("namespaces", terminating)
        for resource in ("resourcequotas", "limitranges", "serviceaccounts"):
            for obj in self.store.items(resource, name):
                self.store.remove(resource, name, obj["metadata"]["name"])
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

    # --- pods ----------------------------------------------------------------------------

    def create_pod(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        pod = self._clean_for_create("pods", body, namespace)
        default_pod(pod)
        canonicalize_quantities("pods", pod)
        admission.mutate_pod(self.store, namespace, pod)
        self._generate_name("pods", pod, namespace)
        pod["metadata"]["generation"] = 1  # the pod strategy's (PodObservedGenerationTracking, 1.33+)
        errors = pod_errors(pod, allow_privileged=self.allow_privileged)
        if errors:
            raise invalid("Pod", pod["metadata"].get("name", ""), errors)
        pod["status"] = {"phase": "Pending", "qosClass": pod_qos_class(pod)}
        admission.validate_pod(self.store, namespace, pod)
        return self.store.create("pods", pod)

    def delete_pod(
        self, namespace: str, name: str, grace: int | None, preconditions: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        pod = self.store.get("pods", namespace, name)
        deleting.check_preconditions("pods", pod, preconditions)
        return deleting.delete_pod(self.store, pod, grace)

    # --- resource quotas -----------------------------------------------------------------

    def create_resource_quota(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        quota = self._clean_for_create("resourcequotas", body, namespace)
        admission.namespace_lifecycle(self.store, "resourcequotas", namespace, quota)
        self._generate_name("resourcequotas", quota, namespace)
        validate_resource_quota(quota)
        hard = dict((quota.get("spec") or {}).get("hard") or {})
        quota["status"] = {"hard": hard, "used": quota_used(self.store, namespace, hard)}
        canonicalize_quantities("resourcequotas", quota)
        return self.store.create("resourcequotas", quota)

    # --- limit ranges and service accounts -------------------------------------------------

    def create_limit_range(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        limit_range = self._clean_for_create("limitranges", body, namespace)
        default_limit_range(limit_range)
        canonicalize_limit_range(limit_range)
        admission.namespace_lifecycle(self.store, "limitranges", namespace, limit_range)
        self._generate_name("limitranges", limit_range, namespace)
        errors = limit_range_errors(limit_range)
        if errors:
            raise invalid("LimitRange", limit_range["metadata"].get("name", ""), errors)
        return self.store.create("limitranges", limit_range)

    def create_service_account(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        account = self._clean_for_create("serviceaccounts", body, namespace)
        admission.namespace_lifecycle(self.store, "serviceaccounts", namespace, account)
        self._generate_name("serviceaccounts", account, namespace)
        errors = service_account_errors(account)
        if errors:
            raise invalid("ServiceAccount", account["metadata"].get("name", ""), errors)
        return self.store.create("serviceaccounts", account)

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
        creators = {
            "pods": self.create_pod,
            "resourcequotas": self.create_resource_quota,
            "limitranges": self.create_limit_range,
            "serviceaccounts": self.create_service_account,
        }
        with self.store.dry_run(dry_run):
            if resource in creators:
                return creators[resource](namespace, body)
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
        deleting.check_preconditions(resource, obj, options.get("preconditions"))
        return deleting.delete_plain(self.store, resource, obj)

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
        updated = updated_object(resource, original, candidate, subresource, allow_privileged=self.allow_privileged)
        if updated == original:
            return original  # a no-op write keeps its resourceVersion, as on the real server
        metadata = updated["metadata"]
        if resource != "namespaces" and _due_for_removal(original, updated):
            return self.store.remove(resource, metadata.get("namespace", ""), metadata["name"])
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

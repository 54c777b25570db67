"""The API verbs with the real server's semantics: admission, defaulting, validation, quota, graceful delete.

The HTTP layer parses requests into these calls; the kubelet uses them too, so whatever reaches
the store went through the same rules whichever way it came.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
from datetime import datetime, timedelta, timezone
from typing import Any

from hybrid_executor.testing.kube import patching
from hybrid_executor.testing.kube.errors import (
    ApiError,
    FieldError,
    bad_request,
    conflict,
    expired,
    forbidden,
    invalid,
    not_found,
)
from hybrid_executor.testing.kube.quantity import parse_quantity
from hybrid_executor.testing.kube.selectors import FieldSelector, LabelSelector
from hybrid_executor.testing.kube.store import Change, Store
from hybrid_executor.testing.kube.validation import KINDS, validate, validate_object_meta

TERMINAL_PHASES = ("Succeeded", "Failed")
_LIST_KINDS = {"pods": "PodList", "namespaces": "NamespaceList", "resourcequotas": "ResourceQuotaList"}
_CONTINUE_TOO_OLD = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new "
    "list without the continue parameter, or use the continue token in this response to retrieve the "
    "remainder of the results. Continuing with the provided token results in an inconsistent list - "
    "objects that were created, modified, or deleted between the time the first chunk was returned and "
    "now may show up in the list."
)
_POD_UPDATE_FORBIDDEN = (
    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,"
    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def store_key(obj: dict[str, Any]) -> str:
    """The etcd-style key lists are ordered by and continue tokens point into."""
    metadata = obj["metadata"]
    namespace = metadata.get("namespace", "")
    return f"{namespace}/{metadata['name']}" if namespace else metadata["name"]


def encode_continue(revision: int, start: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": start}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded))
        revision, start = int(data["rv"]), str(data["start"])
        if data.get("v") != "meta.k8s.io/v1" or revision <= 0:
            raise ValueError(token)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise bad_request(f"continue key is not valid: {token!r}") from None
    return revision, start


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
        namespace = self._clean_for_create(body, "")
        namespace.setdefault("spec", {})["finalizers"] = ["kubernetes"]
        namespace["status"] = {"phase": "Active"}
        labels = namespace["metadata"].setdefault("labels", {})
        if namespace["metadata"].get("name"):
            labels["kubernetes.io/metadata.name"] = namespace["metadata"]["name"]
        validate("namespaces", namespace)
        return self.store.create("namespaces", namespace)

    def delete_namespace(self, name: str) -> dict[str, Any]:
        namespace = self.store.get("namespaces", "", name)
        if namespace["metadata"].get("deletionTimestamp"):
            return namespace
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
            raise forbidden(resource, name, why)

    # --- pods ----------------------------------------------------------------------------

    def create_pod(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        pod = self._clean_for_create(body, namespace)
        self._require_namespace("pods", namespace, pod["metadata"].get("name", ""))
        if not pod["metadata"].get("name") and pod["metadata"].get("generateName"):
            pod["metadata"]["name"] = self.store.generate_name("pods", namespace, pod["metadata"]["generateName"])
        default_pod(pod)
        validate("pods", pod)
        pod["status"] = {"phase": "Pending", "qosClass": pod_qos_class(pod)}
        self._admit_quota(namespace, pod["metadata"]["name"])
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
        current_grace = pod["metadata"].get("deletionGracePeriodSeconds")
        if grace == 0:
            return self.store.remove("pods", namespace, name)
        if current_grace is not None and current_grace <= grace:
            return pod  # a graceful deletion is already under way with a period at least as short
        deleting = copy.deepcopy(pod)
        deleting["metadata"]["deletionTimestamp"] = _timestamp(seconds_from_now=grace)
        deleting["metadata"]["deletionGracePeriodSeconds"] = grace
        return self.store.update("pods", deleting)

    def _admit_quota(self, namespace: str, name: str) -> None:
        """The ResourceQuota admission check for one more pod (pods not in a terminal phase count)."""
        quotas = self.store.items("resourcequotas", namespace)
        if not quotas:
            return
        used = self._pods_in_use(namespace)
        for quota in sorted(quotas, key=lambda q: q["metadata"]["name"]):
            hard = (quota.get("spec") or {}).get("hard") or {}
            for key in ("pods", "count/pods"):
                if key in hard and used + 1 > parse_quantity(hard[key]):
                    limit = hard[key]
                    why = (
                        f"exceeded quota: {quota['metadata']['name']}, requested: {key}=1, "
                        f"used: {key}={used}, limited: {key}={limit}"
                    )
                    raise forbidden("pods", name, why)

    def _pods_in_use(self, namespace: str) -> int:
        return sum(1 for p in self.store.items("pods", namespace) if p["status"].get("phase") not in TERMINAL_PHASES)

    # --- resource quotas -----------------------------------------------------------------

    def create_resource_quota(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        quota = self._clean_for_create(body, namespace)
        self._require_namespace("resourcequotas", namespace, quota["metadata"].get("name", ""))
        validate("resourcequotas", quota)
        hard = dict((quota.get("spec") or {}).get("hard") or {})
        quota["status"] = {"hard": hard, "used": self._quota_used(namespace, hard)}
        return self.store.create("resourcequotas", quota)

    def _quota_used(self, namespace: str, hard: dict[str, Any]) -> dict[str, str]:
        in_use = str(self._pods_in_use(namespace))
        return {key: in_use for key in hard if key in ("pods", "count/pods")}

    def _refresh_quotas(self, namespace: str) -> None:
        """What the quota controller does: keep each quota's status.used true to the pods in use."""
        for quota in self.store.items("resourcequotas", namespace):
            hard = (quota.get("status") or {}).get("hard") or {}
            used = self._quota_used(namespace, hard)
            if used != (quota.get("status") or {}).get("used"):
                refreshed = copy.deepcopy(quota)
                refreshed["status"]["used"] = used
                self.store.update("resourcequotas", refreshed)

    def _after_change(self, change: Change) -> None:
        if change.resource != "pods":
            return
        namespace = change.key[0]
        phase_before = (change.prev or {}).get("status", {}).get("phase")
        phase_now = change.obj.get("status", {}).get("phase")
        if change.type != "MODIFIED" or phase_before != phase_now:
            self._refresh_quotas(namespace)
        if change.type == "DELETED":
            self._finish_namespace_if_empty(namespace)

    # --- shared verbs --------------------------------------------------------------------

    def create(self, resource: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        if resource == "pods":
            return self.create_pod(namespace, body)
        if resource == "resourcequotas":
            return self.create_resource_quota(namespace, body)
        return self.create_namespace(body)

    def delete(self, resource: str, namespace: str, name: str, options: dict[str, Any]) -> dict[str, Any]:
        if resource == "pods":
            return self.delete_pod(namespace, name, options.get("gracePeriodSeconds"), options.get("preconditions"))
        if resource == "namespaces":
            return self.delete_namespace(name)
        self._check_preconditions(resource, self.store.get(resource, namespace, name), options.get("preconditions"))
        return self.store.remove(resource, namespace, name)

    def patch(
        self, resource: str, namespace: str, name: str, content_type: str, body: bytes, subresource: str = ""
    ) -> dict[str, Any]:
        original = self.store.get(resource, namespace, name)
        patched = patching.apply_patch(content_type, original, body)
        if not isinstance(patched, dict):
            raise bad_request("the patch did not produce an object")
        return self._update(resource, original, patched, subresource)

    def replace(
        self, resource: str, namespace: str, name: str, body: dict[str, Any], subresource: str = ""
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
        if subresource == "status":
            updated = copy.deepcopy(original)
            updated["status"] = copy.deepcopy(candidate.get("status") or {})
        else:
            updated = copy.deepcopy(candidate)
            updated["status"] = copy.deepcopy(original.get("status") or {})
            metadata = updated.setdefault("metadata", {})
            for owned in (
                "uid",
                "creationTimestamp",
                "namespace",
                "name",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            ):
                if owned in original["metadata"]:
                    metadata[owned] = original["metadata"][owned]
                else:
                    metadata.pop(owned, None)
            errors = validate_object_meta(updated, namespaced=resource != "namespaces")
            if resource == "pods" and _spec_without_mutable(updated) != _spec_without_mutable(original):
                errors.append(FieldError("Forbidden", "spec", detail=_POD_UPDATE_FORBIDDEN))
            if errors:
                raise invalid(KINDS[resource], name, errors)
        updated["metadata"]["resourceVersion"] = original["metadata"]["resourceVersion"]
        if updated == original:
            return original  # a no-op write keeps its resourceVersion, as on the real server
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
        start = ""
        if continue_token:
            if resource_version not in (None, ""):
                raise bad_request("specifying resource version is not allowed when using continue")
            revision, start = decode_continue(continue_token)
            try:
                objects = self.store.snapshot(resource, revision)
            except ApiError as exc:
                if exc.code != 410:
                    raise
                raise _continue_expired(start, self.store.revision) from None
        else:
            revision = self.store.revision
            requested = parse_revision(resource_version)
            if resource_version_match not in (None, "", "Exact", "NotOlderThan"):
                raise bad_request(f"resourceVersionMatch: Unsupported value: {resource_version_match!r}")
            if resource_version_match and not resource_version:
                raise bad_request("resourceVersionMatch is forbidden unless resourceVersion is provided")
            if resource_version_match == "Exact" and requested is not None:
                revision = requested
                objects = self.store.snapshot(resource, requested)
            else:
                if requested is not None and requested > self.store.revision:
                    objects = self.store.snapshot(resource, requested)  # raises "too large"
                objects = self.store.snapshot(resource, revision)
        selected = sorted(
            (
                obj
                for obj in objects.values()
                if (namespace is None or obj["metadata"].get("namespace", "") == namespace)
                and labels.matches(obj)
                and fields.matches(obj)
            ),
            key=store_key,
        )
        if start:
            selected = [obj for obj in selected if store_key(obj) >= start]
        metadata: dict[str, Any] = {"resourceVersion": str(revision)}
        if limit and len(selected) > limit:
            remaining = len(selected) - limit
            selected = selected[:limit]
            metadata["continue"] = encode_continue(revision, store_key(selected[-1]) + "\x00")
            if labels.empty and not fields.terms:
                metadata["remainingItemCount"] = remaining
        items = []
        for obj in selected:
            item = dict(obj)  # items of a typed list carry no kind/apiVersion of their own
            item.pop("kind", None)
            item.pop("apiVersion", None)
            items.append(item)
        return {"kind": _LIST_KINDS[resource], "apiVersion": "v1", "metadata": metadata, "items": items}

    # --- helpers -------------------------------------------------------------------------

    def _clean_for_create(self, body: dict[str, Any], namespace: str) -> dict[str, Any]:
        obj = copy.deepcopy(body)
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
            "selfLink",
        ):
            metadata.pop(owned, None)
        obj.pop("status", None)
        return obj

    def _check_preconditions(self, resource: str, obj: dict[str, Any], preconditions: dict[str, Any] | None) -> None:
        if not preconditions:
            return
        metadata = obj["metadata"]
        for field_name, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
            wanted = preconditions.get(field_name)
            if wanted and wanted != metadata.get(field_name):
                why = (
                    f"Precondition failed: {label} in precondition: {wanted}, "
                    f"{label} in object meta: {metadata.get(field_name)}"
                )
                raise conflict(resource, metadata["name"], why)


def _spec_without_mutable(pod: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(pod.get("spec") or {})
    for list_name in ("containers", "initContainers"):
        for container in spec.get(list_name) or []:
            container.pop("image", None)
    for mutable in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        spec.pop(mutable, None)
    return spec


def parse_revision(value: str | None) -> int | None:
    if value in (None, "", "0"):
        return None
    assert value is not None
    try:
        revision = int(value)
    except ValueError:
        raise bad_request(f"invalid resource version: strconv.ParseUint: parsing {value!r}: invalid syntax") from None
    if revision < 0:
        raise bad_request(f"invalid resource version: strconv.ParseUint: parsing {value!r}: invalid syntax")
    return revision


def _continue_expired(start: str, revision: int) -> ApiError:
    error = expired(_CONTINUE_TOO_OLD)
    error.metadata = {"continue": encode_continue(revision, start)}
    return error


def _timestamp(seconds_from_now: int = 0) -> str:
    moment = datetime.now(timezone.utc) + timedelta(seconds=seconds_from_now)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

"""Decoding a request body as the API server does: one that is not a well-typed object of its kind answers 400.

First the create handler's own checks (JSON, kind, version, the scheme's registered kinds), then
the JSON types of the fields users most often get wrong, worded as Go's ``json.Unmarshal`` words a
field it cannot decode into the Go type.
"""

from __future__ import annotations

import json
from typing import Any

from hybrid_executor.testing.kube.errors import bad_request, decode_error
from hybrid_executor.testing.kube.gojson import go_json_syntax_error
from hybrid_executor.testing.kube.kinds import KINDS
from hybrid_executor.testing.kube.quantity import QuantityError, parse_quantity

_JSON_TYPE_NAMES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "bool",
    int: "number",
    float: "number",
}


# What the legacy scheme (core/v1 and the built-in groups) can decode: a body of one of these kinds
# decodes, then fails to convert; any other kind is not registered at all.
_REGISTERED_KINDS = {
    "v1": {
        "Binding",
        "ConfigMap",
        "Endpoints",
        "Event",
        "LimitRange",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "Pod",
        "PodTemplate",
        "ReplicationController",
        "ResourceQuota",
        "Secret",
        "Service",
        "ServiceAccount",
    },
    "apps/v1": {"ControllerRevision", "DaemonSet", "Deployment", "ReplicaSet", "StatefulSet"},
    "batch/v1": {"CronJob", "Job"},
    "policy/v1": {"Eviction", "PodDisruptionBudget"},
    "authorization.k8s.io/v1": {
        "LocalSubjectAccessReview",
        "SelfSubjectAccessReview",
        "SelfSubjectRulesReview",
        "SubjectAccessReview",
    },
    "authorization.k8s.io/v1beta1": {
        "LocalSubjectAccessReview",
        "SelfSubjectAccessReview",
        "SelfSubjectRulesReview",
        "SubjectAccessReview",
    },
}
_SCHEME = "k8s.io/kubernetes/pkg/api/legacyscheme/scheme.go:30"
_FIND_KIND_TYPE = (
    'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }'
)


def decode(body: bytes, resource: str) -> dict[str, Any]:
    """Parse a request body into an object of ``resource``'s kind, or raise the server's 400."""
    kind = KINDS[resource]
    obj = decode_object(body, kind, "v1")
    problem = type_problem(obj, resource)
    if problem:
        raise decode_error(body, problem, kind, kind, "v1")
    return obj


def decode_object(body: bytes, kind: str, group_version: str) -> dict[str, Any]:
    """The create handler's decoding of a body meant to be ``kind`` in ``group_version``: JSON, kind, version."""
    try:
        # Go keeps invalid UTF-8 in strings as U+FFFD rather than refusing the body.
        obj = json.loads(body.decode("utf-8", "replace"), parse_constant=_reject_constant)
    except ValueError:
        detail = f"couldn't get version/kind; json parse error: {go_json_syntax_error(body)}"
        raise decode_error(body, detail, kind) from None
    if not isinstance(obj, dict):
        detail = (
            "couldn't get version/kind; json parse error: json: cannot unmarshal "
            f"{_json_type(obj)} into Go value of type {_FIND_KIND_TYPE}"
        )
        raise decode_error(body, detail, kind)
    for field_name in ("apiVersion", "kind"):
        if obj.get(field_name) is not None and not isinstance(obj[field_name], str):
            detail = (
                "couldn't get version/kind; json parse error: json: cannot unmarshal "
                f"{_json_type(obj[field_name])} into Go struct field .{field_name} of type string"
            )
            raise decode_error(body, detail, kind)
    data_kind = obj.get("kind") or kind
    data_group_version = obj.get("apiVersion") or group_version
    version = data_group_version.rsplit("/", 1)[-1]
    if data_kind not in _REGISTERED_KINDS.get(data_group_version, set()):
        detail = f'no kind "{data_kind}" is registered for version "{data_group_version}" in scheme "{_SCHEME}"'
        raise decode_error(body, detail, kind, data_kind, version)
    if data_kind == kind and data_group_version.rsplit("/", 1)[0] == group_version.rsplit("/", 1)[0]:
        if data_group_version != group_version:
            # Decoded and converted, then refused for being written in another version of the group.
            raise bad_request(
                f"the API version in the data ({data_group_version}) does not match "
                f"the expected API version ({group_version})"
            )
    elif (data_group_version, data_kind) != (group_version, kind):
        # Decoded as the other kind, then the conversion to the internal type of this resource fails.
        internal = group_version.split("/")[0].split(".")[0] if "/" in group_version else "core"
        detail = f"converting ({version}.{data_kind}) to ({internal}.{kind}): unknown conversion"
        raise decode_error(body, detail, kind, data_kind, version)
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_type(value: Any) -> str:
    return _JSON_TYPE_NAMES.get(type(value), "null")


def _unmarshal(value: Any, struct: str, path: str, go_type: str) -> str:
    return f"json: cannot unmarshal {_json_type(value)} into Go struct field {struct}.{path} of type {go_type}"


type_mismatch = _unmarshal  # for the other decoders (the access review's)


_PARTS = {"limitranges": ("spec",), "serviceaccounts": ()}  # the objects without a status (or a spec)
_LIMIT_LISTS = ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio")


def type_problem(obj: dict[str, Any], resource: str) -> str | None:
    """The first field whose JSON type cannot decode into the Go type (what users most often get wrong)."""
    metadata = obj.get("metadata", {})
    if not isinstance(metadata, dict):
        return _unmarshal(metadata, "Pod" if resource == "pods" else KINDS[resource], "metadata", "v1.ObjectMeta")
    for field_name in ("labels", "annotations"):
        mapping = metadata.get(field_name)
        if mapping is None:
            continue
        if not isinstance(mapping, dict):
            return _unmarshal(mapping, "ObjectMeta", f"metadata.{field_name}", "map[string]string")
        for value in mapping.values():
            if not isinstance(value, str):
                return _unmarshal(value, "ObjectMeta", f"metadata.{field_name}", "string")
    for part in _PARTS.get(resource, ("spec", "status")):
        if obj.get(part) is not None and not isinstance(obj[part], dict):
            go_type = f"v1.{KINDS[resource]}{part.capitalize()}"
            return _unmarshal(obj[part], KINDS[resource], part, go_type)
    if resource == "limitranges":
        return _limit_range_type_problem(obj.get("spec") or {})
    if resource == "serviceaccounts":
        return _service_account_type_problem(obj)
    if resource == "resourcequotas":
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if not isinstance(spec, dict):
            return _unmarshal(spec, "ResourceQuota", "spec", "v1.ResourceQuotaSpec")
        if not isinstance(status, dict):
            return _unmarshal(status, "ResourceQuota", "status", "v1.ResourceQuotaStatus")
        hard = [spec.get("hard")]
        return _resource_list_problem(hard, "ResourceQuotaSpec", "spec.hard") or _resource_list_problem(
            [status.get("hard"), status.get("used")], "ResourceQuotaStatus", "status"
        )
    if resource != "pods":
        return None
    spec = obj.get("spec", {})
    if not isinstance(spec, dict):
        return _unmarshal(spec, "Pod", "spec", "v1.PodSpec")
    for field_name in ("hostname", "subdomain"):
        if spec.get(field_name) is not None and not isinstance(spec[field_name], str):
            return _unmarshal(spec[field_name], "PodSpec", f"spec.{field_name}", "string")
    for list_name in ("containers", "initContainers"):
        containers = spec.get(list_name)
        if containers is None:
            continue
        if not isinstance(containers, list):
            return _unmarshal(containers, "PodSpec", f"spec.{list_name}", "[]v1.Container")
        for container in containers:
            if not isinstance(container, dict):
                return _unmarshal(container, "PodSpec", f"spec.{list_name}", "v1.Container")
            problem = _container_type_problem(container, list_name)
            if problem:
                return problem
    return None


def _container_type_problem(container: dict[str, Any], list_name: str) -> str | None:
    for field_name in ("name", "image"):
        value = container.get(field_name)
        if value is not None and not isinstance(value, str):
            return _unmarshal(value, "Container", f"spec.{list_name}.{field_name}", "string")
    for field_name in ("command", "args"):
        value = container.get(field_name)
        if value is None:
            continue
        if not isinstance(value, list):
            return _unmarshal(value, "Container", f"spec.{list_name}.{field_name}", "[]string")
        for item in value:
            if not isinstance(item, str):
                return _unmarshal(item, "Container", f"spec.{list_name}.{field_name}", "string")
    for field_name, go_type, item_type in (
        ("env", "[]v1.EnvVar", "v1.EnvVar"),
        ("volumeMounts", "[]v1.VolumeMount", "v1.VolumeMount"),
    ):
        items = container.get(field_name)
        if items is None:
            continue
        if not isinstance(items, list):
            return _unmarshal(items, "Container", f"spec.{list_name}.{field_name}", go_type)
        for item in items:
            if not isinstance(item, dict):
                return _unmarshal(item, "Container", f"spec.{list_name}.{field_name}", item_type)
    for env in container.get("env") or []:
        for field_name in ("name", "value"):
            if env.get(field_name) is not None and not isinstance(env[field_name], str):
                return _unmarshal(env[field_name], "EnvVar", f"spec.{list_name}.env.{field_name}", "string")
        problem = _env_source_type_problem(env.get("valueFrom"), f"spec.{list_name}.env.valueFrom")
        if problem:
            return problem
    resources = container.get("resources")
    if resources is not None and not isinstance(resources, dict):
        return _unmarshal(resources, "Container", f"spec.{list_name}.resources", "v1.ResourceRequirements")
    return _resource_list_problem(
        [(resources or {}).get("limits"), (resources or {}).get("requests")],
        "ResourceRequirements",
        f"spec.{list_name}.resources",
    )


def _env_source_type_problem(source: Any, path: str) -> str | None:
    """An EnvVarSource whose resourceFieldRef cannot decode (a divisor that does not parse: the parser's words)."""
    if source is None:
        return None
    if not isinstance(source, dict):
        return _unmarshal(source, "EnvVar", path, "v1.EnvVarSource")
    ref = source.get("resourceFieldRef")
    if ref is None:
        return None
    if not isinstance(ref, dict):
        return _unmarshal(ref, "EnvVarSource", f"{path}.resourceFieldRef", "v1.ResourceFieldSelector")
    for field_name in ("containerName", "resource"):
        if ref.get(field_name) is not None and not isinstance(ref[field_name], str):
            field_path = f"{path}.resourceFieldRef.{field_name}"
            return _unmarshal(ref[field_name], "ResourceFieldSelector", field_path, "string")
    if ref.get("divisor") is not None:
        try:
            parse_quantity(ref["divisor"])
        except QuantityError as exc:
            return str(exc)
    return None


def _resource_list_problem(lists: list[Any], struct: str, path: str) -> str | None:
    """A ResourceList that is not a map, or holds a value that does not parse as a Quantity."""
    for quantities in lists:
        if quantities is None:
            continue
        if not isinstance(quantities, dict):
            return _unmarshal(quantities, struct, path, "v1.ResourceList")
        for value in quantities.values():
            try:
                parse_quantity(value)
            except QuantityError as exc:
                return str(exc)
    return None


def _limit_range_type_problem(spec: dict[str, Any]) -> str | None:
    limits = spec.get("limits")
    if limits is None:
        return None
    if not isinstance(limits, list):
        return _unmarshal(limits, "LimitRangeSpec", "spec.limits", "[]v1.LimitRangeItem")
    for item in limits:
        if not isinstance(item, dict):
            return _unmarshal(item, "LimitRangeSpec", "spec.limits", "v1.LimitRangeItem")
        if item.get("type") is not None and not isinstance(item["type"], str):
            return _unmarshal(item["type"], "LimitRangeItem", "spec.limits.type", "v1.LimitType")
        for list_name in _LIMIT_LISTS:
            problem = _resource_list_problem([item.get(list_name)], "LimitRangeItem", f"spec.limits.{list_name}")
            if problem:
                return problem
    return None


def _service_account_type_problem(obj: dict[str, Any]) -> str | None:
    automount = obj.get("automountServiceAccountToken")
    if automount is not None and not isinstance(automount, bool):
        return _unmarshal(automount, "ServiceAccount", "automountServiceAccountToken", "bool")
    for list_name, item_type in (("secrets", "v1.ObjectReference"), ("imagePullSecrets", "v1.LocalObjectReference")):
        items = obj.get(list_name)
        if items is None:
            continue
        if not isinstance(items, list):
            return _unmarshal(items, "ServiceAccount", list_name, f"[]{item_type}")
        for item in items:
            if not isinstance(item, dict):
                return _unmarshal(item, "ServiceAccount", list_name, item_type)
    return None

"""What the API server checks before it stores an object, with its codes and its words.

Two stages, as in the real server: decoding (a body that is not a well-typed object of the
expected kind answers 400 BadRequest) and validation (a well-typed object that breaks a rule
answers 422 Invalid, one cause per field).
"""

from __future__ import annotations

import json
from typing import Any

from hybrid_executor.testing.kube.errors import ApiError, FieldError, bad_request, decode_error, invalid
from hybrid_executor.testing.kube.names import (
    dns1123_label_errors,
    dns1123_subdomain_errors,
    label_key_errors,
    label_value_errors,
)
from hybrid_executor.testing.kube.quantity import QuantityError, parse_quantity

KINDS = {"pods": "Pod", "namespaces": "Namespace", "resourcequotas": "ResourceQuota"}
_JSON_TYPE_NAMES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "bool",
    int: "number",
    float: "number",
}


def decode(body: bytes, resource: str) -> dict[str, Any]:
    """Parse a request body into an object of ``resource``'s kind, or raise the server's 400."""
    kind = KINDS[resource]
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        detail = f"couldn't get version/kind; json parse error: {_go_json_error(body, exc)}"
        raise decode_error(body, detail, kind) from None
    if not isinstance(obj, dict):
        detail = (
            "couldn't get version/kind; json parse error: json: cannot unmarshal "
            f"{_json_type(obj)} into Go value of type struct {{ APIVersion string; Kind string }}"
        )
        raise decode_error(body, detail, kind)
    data_kind = obj.get("kind") or kind
    data_version = obj.get("apiVersion") or "v1"
    if data_version != "v1":
        raise bad_request(f"the API version in the data ({data_version}) does not match the expected API version (v1)")
    if data_kind != kind:
        raise decode_error(
            body,
            f"converting (v1.{data_kind}) to (v1.{kind}): unknown conversion",
            kind,
            data_kind,
            data_version,
        )
    problem = _type_problem(obj, resource)
    if problem:
        raise decode_error(body, problem, kind, kind, "v1")
    return obj


def _go_json_error(body: bytes, exc: Exception) -> str:
    text = body.decode("utf-8", "replace").lstrip()
    if not text:
        return "unexpected end of JSON input"
    position = getattr(exc, "pos", 0) or 0
    stripped = body.decode("utf-8", "replace")
    char = stripped[position] if position < len(stripped) else ""
    if not char:
        return "unexpected end of JSON input"
    return f"invalid character {char!r} looking for beginning of value"


def _json_type(value: Any) -> str:
    return _JSON_TYPE_NAMES.get(type(value), "null")


def _unmarshal(value: Any, struct: str, path: str, go_type: str) -> str:
    return f"json: cannot unmarshal {_json_type(value)} into Go struct field {struct}.{path} of type {go_type}"


def _type_problem(obj: dict[str, Any], resource: str) -> str | None:
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
    if resource != "pods":
        return None
    spec = obj.get("spec", {})
    if not isinstance(spec, dict):
        return _unmarshal(spec, "Pod", "spec", "v1.PodSpec")
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
    for env in container.get("env") or []:
        if isinstance(env, dict) and env.get("value") is not None and not isinstance(env["value"], str):
            return _unmarshal(env["value"], "EnvVar", f"spec.{list_name}.env.value", "string")
    resources = container.get("resources") or {}
    for bucket in ("limits", "requests"):
        for value in (resources.get(bucket) or {}).values():
            try:
                parse_quantity(value)
            except QuantityError as exc:
                return str(exc)
    return None


def validate_object_meta(obj: dict[str, Any], namespaced: bool, name_rule: str = "subdomain") -> list[FieldError]:
    metadata = obj.setdefault("metadata", {})
    errors: list[FieldError] = []
    name = metadata.get("name") or ""
    if not name and not metadata.get("generateName"):
        errors.append(FieldError("Required", "metadata.name", detail="name or generateName is required"))
    elif name:
        check = dns1123_subdomain_errors if name_rule == "subdomain" else dns1123_label_errors
        errors.extend(FieldError("Invalid", "metadata.name", name, message) for message in check(name))
    for key, value in (metadata.get("labels") or {}).items():
        errors.extend(FieldError("Invalid", "metadata.labels", key, m) for m in label_key_errors(key))
        errors.extend(FieldError("Invalid", "metadata.labels", value, m) for m in label_value_errors(value))
    for key in metadata.get("annotations") or {}:
        errors.extend(FieldError("Invalid", "metadata.annotations", key, m) for m in label_key_errors(key))
    size = sum(len(k) + len(v) for k, v in (metadata.get("annotations") or {}).items())
    if size > 256 * 1024:
        errors.append(FieldError("TooLong", "metadata.annotations", detail=f"may not be more than {256 * 1024} bytes"))
    return errors


def validate_pod(pod: dict[str, Any]) -> None:
    """Raise 422 Invalid naming every broken field, as pkg/apis/core/validation does for a new Pod."""
    errors = validate_object_meta(pod, namespaced=True)
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    if not containers:
        errors.append(FieldError("Required", "spec.containers"))
    volumes = {v.get("name") for v in spec.get("volumes") or [] if isinstance(v, dict)}
    seen_names: set[str] = set()
    for list_name in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(list_name) or []):
            errors.extend(_validate_container(container, f"spec.{list_name}[{index}]", seen_names, volumes))
    restart = spec.get("restartPolicy")
    if restart is not None and restart not in ("Always", "OnFailure", "Never"):
        errors.append(
            FieldError("NotSupported", "spec.restartPolicy", restart, supported=("Always", "Never", "OnFailure"))
        )
    grace = spec.get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and grace < 0:
        errors.append(
            FieldError("Invalid", "spec.terminationGracePeriodSeconds", grace, "must be greater than or equal to 0")
        )
    if errors:
        raise invalid("Pod", pod["metadata"].get("name") or pod["metadata"].get("generateName", ""), errors)


def _validate_container(
    container: dict[str, Any], path: str, seen_names: set[str], volumes: set[Any]
) -> list[FieldError]:
    errors: list[FieldError] = []
    name = container.get("name") or ""
    if not name:
        errors.append(FieldError("Required", f"{path}.name"))
    else:
        errors.extend(FieldError("Invalid", f"{path}.name", name, m) for m in dns1123_label_errors(name))
        if name in seen_names:
            errors.append(FieldError("Duplicate", f"{path}.name", name))
        seen_names.add(name)
    if not (container.get("image") or "").strip():
        errors.append(FieldError("Required", f"{path}.image"))
    for index, env in enumerate(container.get("env") or []):
        if not env.get("name"):
            errors.append(FieldError("Required", f"{path}.env[{index}].name"))
    for index, mount in enumerate(container.get("volumeMounts") or []):
        if mount.get("name") not in volumes:
            errors.append(FieldError("NotFound", f"{path}.volumeMounts[{index}].name", mount.get("name")))
        if not mount.get("mountPath"):
            errors.append(FieldError("Required", f"{path}.volumeMounts[{index}].mountPath"))
    resources = container.get("resources") or {}
    limits = resources.get("limits") or {}
    for resource_name, request in (resources.get("requests") or {}).items():
        if resource_name in limits and parse_quantity(limits[resource_name]) < parse_quantity(request):
            errors.append(
                FieldError(
                    "Invalid",
                    f"{path}.resources.requests",
                    str(request),
                    f"must be less than or equal to {resource_name} limit of {limits[resource_name]}",
                )
            )
    return errors


def validate_namespace(namespace: dict[str, Any]) -> None:
    errors = validate_object_meta(namespace, namespaced=False, name_rule="label")
    if errors:
        raise invalid("Namespace", namespace["metadata"].get("name", ""), errors)


def validate_resource_quota(quota: dict[str, Any]) -> None:
    errors = validate_object_meta(quota, namespaced=True)
    for key, value in ((quota.get("spec") or {}).get("hard") or {}).items():
        try:
            if parse_quantity(value) < 0:
                errors.append(
                    FieldError("Invalid", f"spec.hard[{key}]", str(value), "must be greater than or equal to 0")
                )
        except QuantityError:
            errors.append(FieldError("Invalid", f"spec.hard[{key}]", str(value), "must be a valid quantity"))
    if errors:
        raise invalid("ResourceQuota", quota["metadata"].get("name", ""), errors)


def validate(resource: str, obj: dict[str, Any]) -> None:
    {"pods": validate_pod, "namespaces": validate_namespace, "resourcequotas": validate_resource_quota}[resource](obj)


__all__ = ["KINDS", "ApiError", "decode", "validate"]

"""What the API server checks before it stores an object (422 Invalid, one cause per field), with its words.

Decoding comes first (``decoding``: a body that is not a well-typed object answers 400); these
rules apply to a well-typed object, as pkg/apis/core/validation does.
"""

from __future__ import annotations

import contextlib
from typing import Any

from hybrid_executor.testing.kube.errors import FieldError, invalid
from hybrid_executor.testing.kube.kinds import KINDS
from hybrid_executor.testing.kube.names import (
    dns1123_label_errors,
    dns1123_subdomain_errors,
    label_key_errors,
    label_value_errors,
)
from hybrid_executor.testing.kube.quantity import QuantityError, canonical_quantity, parse_quantity


def validate_object_meta(obj: dict[str, Any], namespaced: bool, name_rule: str = "subdomain") -> list[FieldError]:
    metadata = obj.setdefault("metadata", {})
    errors: list[FieldError] = []
    name = metadata.get("name") or ""
    check = dns1123_subdomain_errors if name_rule == "subdomain" else dns1123_label_errors
    generate_name = metadata.get("generateName") or ""
    if generate_name:
        # A prefix may end in "-"; apimachinery's maskTrailingDash stands in for it before the check.
        masked = generate_name[:-2] + "a" if len(generate_name) > 1 and generate_name.endswith("-") else generate_name
        errors.extend(FieldError("Invalid", "metadata.generateName", generate_name, m) for m in check(masked))
    if not name:
        errors.append(FieldError("Required", "metadata.name", detail="name or generateName is required"))
    else:
        errors.extend(FieldError("Invalid", "metadata.name", name, message) for message in check(name))
    for key, value in (metadata.get("labels") or {}).items():
        errors.extend(FieldError("Invalid", "metadata.labels", key, m) for m in label_key_errors(key))
        errors.extend(FieldError("Invalid", "metadata.labels", value, m) for m in label_value_errors(value))
    for key in metadata.get("annotations") or {}:
        # ValidateAnnotations checks the key in lower case.
        errors.extend(FieldError("Invalid", "metadata.annotations", key, m) for m in label_key_errors(key.lower()))
    size = sum(len(k) + len(v) for k, v in (metadata.get("annotations") or {}).items())
    if size > 256 * 1024:
        errors.append(FieldError("TooLong", "metadata.annotations", detail=f"may not be more than {256 * 1024} bytes"))
    return errors


def validate_pod(pod: dict[str, Any]) -> None:
    """Raise 422 Invalid naming every broken field, as pkg/apis/core/validation does for a new Pod."""
    errors = pod_errors(pod)
    if errors:
        raise invalid("Pod", pod["metadata"].get("name") or pod["metadata"].get("generateName", ""), errors)


def pod_errors(pod: dict[str, Any], *, allow_privileged: bool = True) -> list[FieldError]:
    """Every rule a Pod's metadata and spec break (on create, and again on every update).

    ``allow_privileged`` is the server's ``--allow-privileged``: without it a privileged container
    is forbidden ("disallowed by cluster policy").
    """
    errors = validate_object_meta(pod, namespaced=True)
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    if not containers:
        errors.append(FieldError("Required", "spec.containers"))
    volumes = {v.get("name") for v in spec.get("volumes") or [] if isinstance(v, dict)}
    seen_names: set[str] = set()
    for list_name in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(list_name) or []):
            path = f"spec.{list_name}[{index}]"
            errors.extend(_validate_container(container, path, seen_names, volumes, allow_privileged))
    restart = spec.get("restartPolicy")
    if restart is not None and restart not in ("Always", "OnFailure", "Never"):
        errors.append(
            FieldError("NotSupported", "spec.restartPolicy", restart, supported=("Always", "Never", "OnFailure"))
        )
    for field_name in ("hostname", "subdomain"):  # what the kubelet makes the pod's hostname (and domain) of
        value = spec.get(field_name)
        if value:
            errors.extend(FieldError("Invalid", f"spec.{field_name}", value, m) for m in dns1123_label_errors(value))
    grace = spec.get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and grace < 0:
        errors.append(
            FieldError("Invalid", "spec.terminationGracePeriodSeconds", grace, "must be greater than or equal to 0")
        )
    return errors


def _validate_container(
    container: dict[str, Any], path: str, seen_names: set[str], volumes: set[Any], allow_privileged: bool = True
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
        errors.extend(_validate_env_source(env, f"{path}.env[{index}].valueFrom"))
    for index, mount in enumerate(container.get("volumeMounts") or []):
        if mount.get("name") not in volumes:
            errors.append(FieldError("NotFound", f"{path}.volumeMounts[{index}].name", mount.get("name")))
        if not mount.get("mountPath"):
            errors.append(FieldError("Required", f"{path}.volumeMounts[{index}].mountPath"))
    resources = container.get("resources") or {}
    limits = resources.get("limits") or {}
    for resource_name, request in (resources.get("requests") or {}).items():
        if resource_name in limits and parse_quantity(limits[resource_name]) < parse_quantity(request):
            limit = canonical_quantity(limits[resource_name])
            errors.append(
                FieldError(
                    "Invalid",
                    f"{path}.resources.requests",
                    canonical_quantity(request),
                    f"must be less than or equal to {resource_name} limit of {limit}",
                )
            )
    if not allow_privileged and (container.get("securityContext") or {}).get("privileged") is True:
        # ValidateSecurityContext, without --allow-privileged.
        privileged = f"{path}.securityContext.privileged"
        errors.append(FieldError("Forbidden", privileged, detail="disallowed by cluster policy"))
    return errors


# What a resourceFieldRef may select in env (validContainerResourceFieldPathExpressions), and the
# prefixes that select hugepages of any size; the NotSupported error lists only the former.
_RESOURCE_FIELD_PATHS = (
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
)
_HUGEPAGES_FIELD_PREFIXES = ("limits.hugepages-", "requests.hugepages-")
_BYTE_DIVISORS = ("1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei")
# validateContainerResourceDivisor: the divisors each resource allows (as the canonical quantity), and its noun.
_DIVISORS: dict[str, tuple[tuple[str, ...], str]] = {
    "cpu": (("1m", "1"), "the cpu resource"),
    "memory": (_BYTE_DIVISORS, "the memory resource"),
    "ephemeral-storage": (_BYTE_DIVISORS, "the local ephemeral storage resource"),
    "hugepages": (_BYTE_DIVISORS, "the hugepages resource"),
}
_ENV_SOURCES = ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")


def _validate_env_source(env: dict[str, Any], path: str) -> list[FieldError]:
    """validateEnvVarValueFrom: one source and no ``value`` beside it; a resourceFieldRef the node can resolve."""
    source = env.get("valueFrom")
    if not isinstance(source, dict):
        return []
    errors: list[FieldError] = []
    ref = source.get("resourceFieldRef")
    if isinstance(ref, dict):
        errors.extend(_validate_resource_field_ref(ref, f"{path}.resourceFieldRef"))
    sources = sum(1 for name in _ENV_SOURCES if source.get(name) is not None)
    if sources == 0:
        detail = "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"
        errors.append(FieldError("Invalid", path, "", detail))
    elif env.get("value"):
        errors.append(FieldError("Invalid", path, "", "may not be specified when `value` is not empty"))
    elif sources > 1:
        errors.append(FieldError("Invalid", path, "", "may not have more than one field specified at a time"))
    return errors


def _validate_resource_field_ref(ref: dict[str, Any], path: str) -> list[FieldError]:
    """validateContainerResourceFieldSelector and validateContainerResourceDivisor, for env."""
    errors: list[FieldError] = []
    resource = ref.get("resource") or ""
    if not resource:
        errors.append(FieldError("Required", f"{path}.resource"))
    elif resource not in _RESOURCE_FIELD_PATHS and not resource.startswith(_HUGEPAGES_FIELD_PREFIXES):
        errors.append(FieldError("NotSupported", f"{path}.resource", resource, supported=_RESOURCE_FIELD_PATHS))
    divisor = ref.get("divisor")
    try:
        if divisor is None or parse_quantity(divisor) == 0:
            return errors
        written = canonical_quantity(divisor)
    except QuantityError:
        return errors  # refused when the body was decoded
    name = resource.split(".", 1)[-1]
    kind = "hugepages" if resource.startswith(_HUGEPAGES_FIELD_PREFIXES) else name
    if resource in _RESOURCE_FIELD_PATHS or kind == "hugepages":
        allowed, noun = _DIVISORS[kind]
        if written not in allowed:
            detail = f"only divisor's values {' and '.join(allowed) if kind == 'cpu' else ', '.join(allowed)}"
            errors.append(FieldError("Invalid", f"{path}.divisor", resource, f"{detail} are supported with {noun}"))
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


def canonicalize_quantities(resource: str, obj: dict[str, Any]) -> None:
    """Write every quantity the way the server stores it (``1000m`` becomes ``1``), in place.

    The real server decodes quantities into resource.Quantity and encodes them back, so a client
    reads the canonical form whatever it sent. Values that do not parse are left for validation.
    """
    if resource == "pods":
        spec = obj.get("spec") or {}
        maps = [spec.get("overhead"), (spec.get("resources") or {}).get("requests")]
        maps.append((spec.get("resources") or {}).get("limits"))
        for list_name in ("initContainers", "containers"):
            for container in spec.get(list_name) or []:
                resources = container.get("resources") if isinstance(container, dict) else None
                if isinstance(resources, dict):
                    maps.extend((resources.get("requests"), resources.get("limits")))
                _canonicalize_divisors(container)
    elif resource == "resourcequotas":
        status = obj.get("status") or {}
        maps = [(obj.get("spec") or {}).get("hard"), status.get("hard"), status.get("used")]
    else:
        return
    for quantities in maps:
        if not isinstance(quantities, dict):
            continue
        for name, value in quantities.items():
            try:
                quantities[name] = canonical_quantity(value)
            except QuantityError:
                continue


def _canonicalize_divisors(container: Any) -> None:
    """Write each env resourceFieldRef's divisor canonical; an unset one as "0".

    ResourceFieldSelector.Divisor is a Quantity struct, not a pointer: ``omitempty`` cannot drop
    it, so the server writes an unset divisor as the zero Quantity, ``"0"`` (which means 1).
    """
    env = container.get("env") if isinstance(container, dict) else None
    for item in env if isinstance(env, list) else []:
        source = item.get("valueFrom") if isinstance(item, dict) else None
        ref = source.get("resourceFieldRef") if isinstance(source, dict) else None
        if isinstance(ref, dict):
            with contextlib.suppress(QuantityError):
                ref["divisor"] = "0" if ref.get("divisor") is None else canonical_quantity(ref["divisor"])


def validate(resource: str, obj: dict[str, Any]) -> None:
    {"pods": validate_pod, "namespaces": validate_namespace, "resourcequotas": validate_resource_quota}[resource](obj)


__all__ = ["KINDS", "canonicalize_quantities", "pod_errors", "validate"]

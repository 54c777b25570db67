"""The LimitRange object (core/v1 ``limitranges``): its API defaults and its validation (422), with the server's words.

A ``Container`` item's ``default`` (limit) defaults to its ``max``, and its ``defaultRequest`` to
the default or else the ``min`` (SetDefaults_LimitRangeItem); then ValidateLimitRange checks the
type, the resource names and that min <= defaultRequest <= default <= max. What the LimitRanger
admission makes of a LimitRange for a new pod is in ``limitranger``.
"""

from __future__ import annotations

import contextlib
from typing import Any

from hybrid_executor.testing.kube.errors import FieldError
from hybrid_executor.testing.kube.names import label_key_errors
from hybrid_executor.testing.kube.podusage import is_native
from hybrid_executor.testing.kube.quantity import QuantityError, canonical_quantity, parse_quantity
from hybrid_executor.testing.kube.validation import validate_object_meta

STANDARD_TYPES = ("Pod", "Container", "PersistentVolumeClaim")
QUANTITY_LISTS = ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio")
_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")


def default_limit_range(limit_range: dict[str, Any]) -> None:
    """SetDefaults_LimitRangeItem on every item, in place (an empty map is not written, as omitempty drops it)."""
    for item in (limit_range.get("spec") or {}).get("limits") or []:
        if not isinstance(item, dict) or item.get("type") != "Container":
            continue
        default = dict(item.get("default") or {})
        default_request = dict(item.get("defaultRequest") or {})
        for resource, value in (item.get("max") or {}).items():
            default.setdefault(resource, value)
        for resource, value in default.items():
            default_request.setdefault(resource, value)
        for resource, value in (item.get("min") or {}).items():
            default_request.setdefault(resource, value)
        for key, values in (("default", default), ("defaultRequest", default_request)):
            if values:
                item[key] = values


def canonicalize_limit_range(limit_range: dict[str, Any]) -> None:
    """Every quantity as the server writes it back, in place."""
    for item in (limit_range.get("spec") or {}).get("limits") or []:
        for list_name in QUANTITY_LISTS:
            quantities = item.get(list_name) if isinstance(item, dict) else None
            if not isinstance(quantities, dict):
                continue
            for resource, value in quantities.items():
                with contextlib.suppress(QuantityError):
                    quantities[resource] = canonical_quantity(value)


def limit_range_errors(limit_range: dict[str, Any]) -> list[FieldError]:
    """ValidateLimitRange: the metadata, then each item's type, resource names and the order of its bounds."""
    errors = validate_object_meta(limit_range, namespaced=True)
    seen_types: set[str] = set()
    for index, item in enumerate((limit_range.get("spec") or {}).get("limits") or []):
        path = f"spec.limits[{index}]"
        limit_type = item.get("type") or ""
        errors.extend(_type_errors(limit_type, f"{path}.type"))
        if limit_type in seen_types:
            errors.append(FieldError("Duplicate", f"{path}.type", limit_type))
        seen_types.add(limit_type)
        bounds: dict[str, dict[str, Any]] = {}
        for list_name in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
            quantities = item.get(list_name) or {}
            if limit_type == "Pod" and list_name in ("default", "defaultRequest"):
                if quantities:
                    detail = "may not be specified when `type` is 'Pod'"
                    errors.append(FieldError("Forbidden", f"{path}.{list_name}", detail=detail))
                continue
            for resource in sorted(quantities):
                errors.extend(_resource_name_errors(limit_type, resource, f"{path}.{list_name}[{resource}]"))
            bounds[list_name] = quantities
        if limit_type == "PersistentVolumeClaim" and "storage" not in (item.get("min") or {}) | (item.get("max") or {}):
            detail = "either minimum or maximum storage value is required, but neither was provided"
            errors.append(FieldError("Required", f"{path}.limits", detail=detail))
        for resource in sorted({name for quantities in bounds.values() for name in quantities}):
            errors.extend(_bound_errors(bounds, resource, path))
    return errors


def _type_errors(limit_type: str, path: str) -> list[FieldError]:
    """validateLimitRangeTypeName: a qualified name, and a standard type unless it has a domain."""
    errors = [FieldError("Invalid", path, limit_type, message) for message in label_key_errors(limit_type)]
    if not errors and "/" not in limit_type and limit_type not in STANDARD_TYPES:
        errors.append(FieldError("Invalid", path, limit_type, "must be a standard limit type or fully qualified"))
    return errors


def _resource_name_errors(limit_type: str, resource: str, path: str) -> list[FieldError]:
    """validateContainerResourceName, for the Pod and Container types (other types' names are not checked here)."""
    if limit_type not in ("Pod", "Container"):
        return []
    errors = [FieldError("Invalid", path, resource, message) for message in label_key_errors(resource)]
    if "/" not in resource:
        if resource not in _CONTAINER_RESOURCES and not resource.startswith("hugepages-"):
            errors.append(FieldError("Invalid", path, resource, "must be a standard resource for containers"))
    elif not is_native(resource) and resource.startswith("requests."):
        errors.append(FieldError("Invalid", path, resource, "doesn't follow extended resource name standard"))
    return errors


def _bound_errors(bounds: dict[str, dict[str, Any]], resource: str, path: str) -> list[FieldError]:
    """The order of one resource's bounds: min <= defaultRequest <= default <= max, and the ratio."""
    found = {name: parse_quantity(q[resource]) for name, q in bounds.items() if resource in q}
    shown = {name: canonical_quantity(q[resource]) for name, q in bounds.items() if resource in q}
    low, high = found.get("min"), found.get("max")
    default, request, ratio = found.get("default"), found.get("defaultRequest"), found.get("maxLimitRequestRatio")
    errors: list[FieldError] = []

    def invalid(list_name: str, value_of: str, detail: str) -> None:
        errors.append(FieldError("Invalid", f"{path}.{list_name}[{resource}]", shown[value_of], detail))

    if low is not None and high is not None and low > high:
        invalid("min", "min", f"min value {shown['min']} is greater than max value {shown['max']}")
    if request is not None and low is not None and low > request:
        detail = f"min value {shown['min']} is greater than default request value {shown['defaultRequest']}"
        invalid("defaultRequest", "defaultRequest", detail)
    if request is not None and high is not None and request > high:
        detail = f"default request value {shown['defaultRequest']} is greater than max value {shown['max']}"
        invalid("defaultRequest", "defaultRequest", detail)
    if request is not None and default is not None and request > default:
        detail = (
            f"default request value {shown['defaultRequest']} is greater than default limit value {shown['default']}"
        )
        invalid("defaultRequest", "defaultRequest", detail)
    if default is not None and low is not None and low > default:
        invalid("default", "min", f"min value {shown['min']} is greater than default value {shown['default']}")
    if default is not None and high is not None and default > high:
        invalid("default", "max", f"default value {shown['default']} is greater than max value {shown['max']}")
    if ratio is not None and ratio < 1:
        invalid("maxLimitRequestRatio", "maxLimitRequestRatio", f"ratio {shown['maxLimitRequestRatio']} is less than 1")
    if ratio is not None and low is not None and high is not None and low > 0 and ratio > high / low:
        detail = f"ratio {shown['maxLimitRequestRatio']} is greater than max/min = {float(high / low):f}"
        invalid("maxLimitRequestRatio", "maxLimitRequestRatio", detail)
    overcommit = is_native(resource) and not resource.startswith("hugepages-")  # IsOvercommitAllowed
    if not overcommit and default is not None and request is not None and default != request:
        detail = (
            f"default value {shown['default']} must equal to defaultRequest value {shown['defaultRequest']} "
            f"in {resource}"
        )
        invalid("defaultRequest", "defaultRequest", detail)
    return errors

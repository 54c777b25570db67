"""What a pod uses, as ResourceQuota counts it: the quota's pod evaluator (pkg/quota/v1/evaluator/core).

A pod's requests and limits are its containers' summed, with each init container taken alone
(plus the sidecars started before it) when that is more, then the pod's overhead and pod-level
resources (PodRequests / PodLimits). Its usage names them as quotas do (``requests.cpu``,
``limits.memory``, ``cpu`` and ``memory`` for the requests...). Terminal pods use nothing but
their ``count/pods``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hybrid_executor.testing.kube.podstatus import TERMINAL_PHASES
from hybrid_executor.testing.kube.quantity import Amount, QuantityError

Usage = dict[str, Amount]

# The resources the pod evaluator tracks, besides the hugepages and extended ones.
POD_RESOURCES = frozenset(
    {
        "count/pods",
        "cpu",
        "memory",
        "ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.ephemeral-storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
        "pods",
    }
)
# A quota on one of these makes every container name it (the evaluator's validationSet).
MUST_SPECIFY = frozenset({"cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"})
_HUGEPAGES = "hugepages-"
_REQUESTS = "requests."
_POD_LEVEL = ("cpu", "memory")  # what pod-level resources (spec.resources) may set


def is_native(name: str) -> bool:
    """helper.IsNativeResource: no domain, or one in kubernetes.io."""
    return "/" not in name or "kubernetes.io/" in name


def is_extended(name: str) -> bool:
    """helper.IsExtendedResourceName: a domain-qualified name outside kubernetes.io, not a quota name."""
    return not is_native(name) and not name.startswith(_REQUESTS)


def matching_resources(names: Iterable[str]) -> list[str]:
    """The quota resources, of ``names``, that pods use (MatchingResources)."""
    return [
        name
        for name in names
        if name in POD_RESOURCES
        or name.startswith((_HUGEPAGES, _REQUESTS + _HUGEPAGES))
        or (name.startswith(_REQUESTS) and not is_native(name))
    ]


def compute_usage(requests: Mapping[str, Amount], limits: Mapping[str, Amount]) -> Usage:
    """podComputeUsageHelper: quota names for a set of requests and limits (and one pod)."""
    usage: Usage = {"pods": Amount.of("1")}
    for resource in ("cpu", "memory", "ephemeral-storage"):
        if resource in requests:
            usage[resource] = usage[f"{_REQUESTS}{resource}"] = requests[resource]
        if resource in limits:
            usage[f"limits.{resource}"] = limits[resource]
    for resource, amount in requests.items():
        if resource.startswith(_HUGEPAGES):
            usage[resource] = usage[_REQUESTS + resource] = amount
        if is_extended(resource):
            usage[_REQUESTS + resource] = amount
    return usage


def missing_requirements(pod: dict[str, Any], required: Iterable[str]) -> str | None:
    """The evaluator's Constraints: "must specify R for: C; ..." when a container does not name what a quota tracks."""
    wanted = set(required) & MUST_SPECIFY
    missing: dict[str, set[str]] = {}
    spec = pod.get("spec") or {}
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        resources = container.get("resources") or {}
        named = compute_usage(amounts(resources.get("requests")), amounts(resources.get("limits")))
        for resource in wanted - set(named):
            missing.setdefault(resource, set()).add(container.get("name", ""))
    if not missing:
        return None
    parts = [f"{resource} for: {','.join(sorted(missing[resource]))}" for resource in sorted(missing)]
    return "must specify " + "; ".join(parts)


def pod_usage(pod: dict[str, Any]) -> Usage:
    """PodUsageFunc: ``count/pods`` always; the rest only while the pod is not terminal."""
    usage: Usage = {"count/pods": Amount.of("1")}
    if (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
        return usage
    usage.update(compute_usage(pod_totals(pod, "requests"), pod_totals(pod, "limits")))
    return usage


def pod_totals(pod: dict[str, Any], kind: str, *, overhead: bool = True) -> dict[str, Amount]:
    """PodRequests / PodLimits (``kind`` "requests" or "limits") of a pod's spec."""
    spec = pod.get("spec") or {}
    totals: dict[str, Amount] = {}
    for container in spec.get("containers") or []:
        _add(totals, amounts((container.get("resources") or {}).get(kind)))
    sidecars: dict[str, Amount] = {}
    init_peak: dict[str, Amount] = {}
    for container in spec.get("initContainers") or []:
        own = amounts((container.get("resources") or {}).get(kind))
        if container.get("restartPolicy") == "Always":
            _add(totals, own)
            _add(sidecars, own)
            while_starting = dict(sidecars)
        else:
            while_starting = dict(own)
            _add(while_starting, sidecars)
        _max(init_peak, while_starting)
    _max(totals, init_peak)
    pod_level = amounts((spec.get("resources") or {}).get(kind))
    for resource in _POD_LEVEL:
        if resource in pod_level:
            totals[resource] = pod_level[resource]
    if overhead:
        extra = amounts(spec.get("overhead"))
        # Overhead adds to every request, but only to the limits that are set.
        _add(totals, extra if kind == "requests" else {k: v for k, v in extra.items() if k in totals})
    return totals


def amounts(quantities: Any) -> dict[str, Amount]:
    """A ResourceList as Amounts (values that do not parse were refused when the body was decoded)."""
    result: dict[str, Amount] = {}
    for name, written in (quantities or {}).items():
        try:
            result[name] = Amount.of(written)
        except QuantityError:
            continue
    return result


def _add(into: dict[str, Amount], more: Mapping[str, Amount]) -> None:
    for name, amount in more.items():
        into[name] = into[name] + amount if name in into else amount


def _max(into: dict[str, Amount], other: Mapping[str, Amount]) -> None:
    for name, amount in other.items():
        if name not in into or amount.value > into[name].value:
            into[name] = amount

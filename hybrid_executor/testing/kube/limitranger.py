"""The LimitRanger admission for a new pod: defaults (mutating), then min/max/ratio (validating), with its words.

For each LimitRange of the namespace (by name), its ``Container`` items' ``default`` and
``defaultRequest`` fill the limits and requests each container (and init container) lacks, and
the pod is annotated ``kubernetes.io/limit-ranger`` with what was set. That happens before the
pod is validated and before the quota looks at it. Then every container must fall within each
``Container`` item's ``min``/``max``/``maxLimitRequestRatio``, and the pod's totals within a
``Pod`` item's; the first LimitRange with a violation refuses the pod with all of its violations.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hybrid_executor.testing.kube.errors import forbidden
from hybrid_executor.testing.kube.podusage import amounts, pod_totals
from hybrid_executor.testing.kube.quantity import Amount, milli_value, whole_value
from hybrid_executor.testing.kube.store import Store

ANNOTATION = "kubernetes.io/limit-ranger"
_MAX_MILLI = (2**63 - 1) // 1000  # resource.MaxMilliValue


def limit_ranges(store: Store, namespace: str) -> list[dict[str, Any]]:
    return sorted(store.items("limitranges", namespace), key=lambda r: r["metadata"]["name"])


def default_pod(store: Store, namespace: str, pod: dict[str, Any]) -> None:
    """PodMutateLimitFunc for every LimitRange: the defaults each container lacks, and the annotation."""
    for limit_range in limit_ranges(store, namespace):
        requests: dict[str, Any] = {}
        limits: dict[str, Any] = {}
        for item in (limit_range.get("spec") or {}).get("limits") or []:
            if item.get("type") == "Container":
                requests.update(item.get("defaultRequest") or {})
                limits.update(item.get("default") or {})
        notes: list[str] = []
        spec = pod.get("spec") or {}
        for list_name, noun in (("containers", "container"), ("initContainers", "init container")):
            for container in spec.get(list_name) or []:
                notes.extend(_merge_defaults(container, noun, requests, limits))
        if notes:
            annotations = pod["metadata"].setdefault("annotations", {})
            annotations[ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)


def _merge_defaults(
    container: dict[str, Any], noun: str, requests: dict[str, Any], limits: dict[str, Any]
) -> list[str]:
    """mergeContainerResources: each default the container lacks; what was set, as the annotation words it."""
    resources = container.setdefault("resources", {})
    added: dict[str, list[str]] = {}
    for kind, defaults in (("requests", requests), ("limits", limits)):
        present = dict(resources.get(kind) or {})
        added[kind] = sorted(name for name in defaults if name not in present)
        if added[kind]:
            resources[kind] = {**present, **{name: defaults[name] for name in added[kind]}}
    name = container.get("name", "")
    notes = []
    if added["requests"]:
        notes.append(f"{', '.join(added['requests'])} request for {noun} {name}")
    if added["limits"]:
        notes.append(f"{', '.join(added['limits'])} limit for {noun} {name}")
    return notes


def check_pod(store: Store, namespace: str, pod: dict[str, Any]) -> None:
    """PodValidateLimitFunc for every LimitRange; the first one with violations refuses the pod (403)."""
    spec = pod.get("spec") or {}
    containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    for limit_range in limit_ranges(store, namespace):
        problems: list[str] = []
        for item in (limit_range.get("spec") or {}).get("limits") or []:
            if item.get("type") == "Container":
                for container in containers:
                    resources = container.get("resources") or {}
                    requests, limits = amounts(resources.get("requests")), amounts(resources.get("limits"))
                    problems.extend(_item_problems(item, "Container", requests, limits))
            elif item.get("type") == "Pod":
                requests = pod_totals(pod, "requests", overhead=False)
                limits = pod_totals(pod, "limits", overhead=False)
                problems.extend(_item_problems(item, "Pod", requests, limits))
        if problems:
            # utilerrors.NewAggregate: one error as it is, more as "[a, b]".
            why = problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"
            raise forbidden("pods", pod["metadata"].get("name", ""), why)


def _item_problems(
    item: dict[str, Any], limit_type: str, requests: dict[str, Amount], limits: dict[str, Amount]
) -> list[str]:
    problems = []
    for resource, enforced in sorted(amounts(item.get("min")).items()):
        problems.extend(_min_problem(limit_type, resource, enforced, requests.get(resource), limits.get(resource)))
    for resource, enforced in sorted(amounts(item.get("max")).items()):
        problems.extend(_max_problem(limit_type, resource, enforced, requests.get(resource), limits.get(resource)))
    for resource, enforced in sorted(amounts(item.get("maxLimitRequestRatio")).items()):
        problems.extend(_ratio_problem(limit_type, resource, enforced, requests.get(resource), limits.get(resource)))
    return problems


def _min_problem(kind: str, resource: str, enforced: Amount, request: Amount | None, limit: Amount | None) -> list[str]:
    if request is None:
        return [f"minimum {resource} usage per {kind} is {enforced}.  No request is specified"]
    observed_request, observed_limit, bound = _comparable(request, limit, enforced)
    if observed_request < bound:
        return [f"minimum {resource} usage per {kind} is {enforced}, but request is {request}"]
    if limit is not None and observed_limit < bound:
        return [f"minimum {resource} usage per {kind} is {enforced}, but limit is {limit}"]
    return []


def _max_problem(kind: str, resource: str, enforced: Amount, request: Amount | None, limit: Amount | None) -> list[str]:
    if limit is None:
        return [f"maximum {resource} usage per {kind} is {enforced}.  No limit is specified"]
    observed_request, observed_limit, bound = _comparable(request, limit, enforced)
    if observed_limit > bound:
        return [f"maximum {resource} usage per {kind} is {enforced}, but limit is {limit}"]
    if request is not None and observed_request > bound:
        return [f"maximum {resource} usage per {kind} is {enforced}, but request is {request}"]
    return []


def _ratio_problem(
    kind: str, resource: str, enforced: Amount, request: Amount | None, limit: Amount | None
) -> list[str]:
    observed_request, observed_limit, _ = _comparable(request, limit, enforced)
    prefix = f"{resource} max limit to request ratio per {kind} is {enforced}"
    if request is None or observed_request == 0:
        return [f"{prefix}, but no request is specified or request is 0"]
    if limit is None or observed_limit == 0:
        return [f"{prefix}, but no limit is specified or limit is 0"]
    ratio = observed_limit / observed_request
    allowed = Decimal(milli_value(enforced.value)) / 1000 if whole_value(enforced.value) <= _MAX_MILLI else None
    bound = allowed if allowed is not None else Decimal(whole_value(enforced.value))
    if Decimal(ratio) > bound:
        return [f"{prefix}, but provided ratio is {ratio:f}"]
    return []


def _comparable(request: Amount | None, limit: Amount | None, enforced: Amount) -> tuple[int, int, int]:
    """requestLimitEnforcedValues: thousandths when none of the three overflows them, else whole units."""
    values = [a.value if a is not None else Decimal(0) for a in (request, limit, enforced)]
    if all(whole_value(v) <= _MAX_MILLI for v in values):
        request_value, limit_value, enforced_value = (milli_value(v) for v in values)
    else:
        request_value, limit_value, enforced_value = (whole_value(v) for v in values)
    return request_value, limit_value, enforced_value

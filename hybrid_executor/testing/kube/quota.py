"""ResourceQuota for pods: the admission check on pod create, and the quota controller's status (hard, used).

Pod counts (``pods``, ``count/pods``) and compute resources (``requests.cpu``, ``limits.memory``,
``cpu`` and ``memory`` for the requests, ephemeral storage, hugepages, extended resources) are
enforced and accounted as the pod evaluator measures them (``podusage``). ``count/pods`` counts
every pod stored; the other resources only pods not in a terminal phase, as on the real server.

Admission follows the ResourceQuota plugin: quotas by name; each quota that tracks something pods
use first requires every container to name the compute resources it tracks ("failed quota"),
then the pod's usage must fit under each quota's hard limits with what is used already
("exceeded quota", the resources that do not fit in name order).
"""

from __future__ import annotations

import copy
from typing import Any

from hybrid_executor.testing.kube.errors import forbidden
from hybrid_executor.testing.kube.podusage import Usage, matching_resources, missing_requirements, pod_usage
from hybrid_executor.testing.kube.quantity import Amount, QuantityError
from hybrid_executor.testing.kube.store import Store
from hybrid_executor.testing.kube.validation import canonicalize_quantities


def admit_pod(store: Store, namespace: str, pod: dict[str, Any]) -> None:
    """The ResourceQuota admission check for one more pod (raises its 403)."""
    name = pod["metadata"].get("name", "")
    quotas = sorted(store.items("resourcequotas", namespace), key=lambda q: q["metadata"]["name"])
    tracking = []
    for quota in quotas:
        tracked = matching_resources(_hard(quota))
        if not tracked:
            continue  # the quota does not match pods at all
        missing = missing_requirements(pod, tracked)
        if missing:
            raise forbidden("pods", name, f"failed quota: {quota['metadata']['name']}: {missing}")
        tracking.append(quota)
    if not tracking:
        return
    requested = {resource: amount for resource, amount in pod_usage(pod).items() if amount.value != 0}
    used = namespace_usage(store, namespace)
    for quota in tracking:
        hard = _hard(quota)
        asked = {resource: requested[resource] for resource in hard if resource in requested}
        over = sorted(
            resource
            for resource, amount in asked.items()
            if (used.get(resource, _ZERO) + amount).value > hard[resource].value
        )
        if over:
            why = (
                f"exceeded quota: {quota['metadata']['name']}, requested: {_pretty(asked, over)}, "
                f"used: {_pretty(used, over)}, limited: {_pretty(hard, over)}"
            )
            raise forbidden("pods", name, why)


def namespace_usage(store: Store, namespace: str) -> Usage:
    """What the pods stored in ``namespace`` use, summed in the order they were created (as the controller lists)."""
    total: Usage = {}
    pods = sorted(store.items("pods", namespace), key=lambda p: int(p["metadata"].get("resourceVersion") or 0))
    for pod in pods:
        for resource, amount in pod_usage(pod).items():
            total[resource] = total[resource] + amount if resource in total else _ZERO + amount
    return total


def quota_used(store: Store, namespace: str, hard: dict[str, Any]) -> dict[str, str]:
    """status.used: every tracked resource of ``hard``, zero when nothing uses it."""
    usage = namespace_usage(store, namespace)
    return {resource: str(usage.get(resource, _ZERO)) for resource in matching_resources(hard)}


def refresh_quotas(store: Store, namespace: str) -> None:
    """What the quota controller does: keep each quota's status true to its spec and the pods in use."""
    for quota in store.items("resourcequotas", namespace):
        refresh_quota(store, quota)


def refresh_quota(store: Store, quota: dict[str, Any]) -> None:
    hard = dict((quota.get("spec") or {}).get("hard") or {})
    status = {"hard": hard, "used": quota_used(store, quota["metadata"]["namespace"], hard)}
    refreshed = copy.deepcopy(quota)
    refreshed["status"] = {**(quota.get("status") or {}), **status}
    canonicalize_quantities("resourcequotas", refreshed)
    if refreshed["status"] != quota.get("status"):
        store.update("resourcequotas", refreshed)


_ZERO = Amount.of("0")


def _hard(quota: dict[str, Any]) -> dict[str, Amount]:
    hard: dict[str, Amount] = {}
    for resource, written in ((quota.get("spec") or {}).get("hard") or {}).items():
        try:
            hard[resource] = Amount.of(written)
        except QuantityError:
            continue
    return hard


def _pretty(amounts: dict[str, Amount], resources: list[str]) -> str:
    """The quota admission's prettyPrint: ``name=quantity`` in name order, joined by commas."""
    return ",".join(f"{resource}={amounts.get(resource, _ZERO)}" for resource in resources)

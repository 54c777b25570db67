"""ResourceQuota for pods: the admission check on pod create, and the quota controller's status (hard, used).

Only pod counts (``pods``, ``count/pods``) are enforced and accounted; pods in a terminal phase
do not count, as on the real server.
"""

from __future__ import annotations

import copy
from typing import Any

from hybrid_executor.testing.kube.errors import forbidden
from hybrid_executor.testing.kube.podstatus import TERMINAL_PHASES
from hybrid_executor.testing.kube.quantity import parse_quantity
from hybrid_executor.testing.kube.store import Store
from hybrid_executor.testing.kube.validation import canonicalize_quantities


def admit_pod(store: Store, namespace: str, name: str) -> None:
    """The ResourceQuota admission check for one more pod (pods not in a terminal phase count)."""
    quotas = store.items("resourcequotas", namespace)
    if not quotas:
        return
    used = _pods_in_use(store, namespace)
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


def quota_used(store: Store, namespace: str, hard: dict[str, Any]) -> dict[str, str]:
    in_use = str(_pods_in_use(store, namespace))
    return {key: in_use for key in hard if key in ("pods", "count/pods")}


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


def _pods_in_use(store: Store, namespace: str) -> int:
    return sum(1 for p in store.items("pods", namespace) if p["status"].get("phase") not in TERMINAL_PHASES)

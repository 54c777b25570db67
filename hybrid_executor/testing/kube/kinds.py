"""The resources this API serves, and what each is called: kind, list kind, scope."""

from __future__ import annotations

KINDS = {
    "pods": "Pod",
    "namespaces": "Namespace",
    "resourcequotas": "ResourceQuota",
    "limitranges": "LimitRange",
    "serviceaccounts": "ServiceAccount",
}
LIST_KINDS = {resource: f"{kind}List" for resource, kind in KINDS.items()}
NAMESPACED = ("pods", "resourcequotas", "limitranges", "serviceaccounts")

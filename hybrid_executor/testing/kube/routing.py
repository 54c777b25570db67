"""Which resource, object and verb a request's URL and method name: the core/v1 routes, query flags, dryRun."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hybrid_executor.testing.kube.errors import FieldError, invalid
from hybrid_executor.testing.kube.kinds import NAMESPACED

SUBRESOURCES: dict[str, tuple[str, ...]] = {
    "pods": ("status", "log"),
    "resourcequotas": ("status",),
    "namespaces": ("status",),
    "limitranges": (),
    "serviceaccounts": (),
}
DRY_RUN_VALUES = ("All",)


@dataclass(frozen=True)
class Target:
    resource: str
    namespace: str | None  # None: across all namespaces (or cluster-scoped)
    name: str | None
    subresource: str = ""

    @property
    def label(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def parse_target(path: str) -> Target | None:
    parts = [p for p in path.split("/") if p]
    if parts[:2] != ["api", "v1"]:
        return None
    rest = parts[2:]
    if not rest:
        return None
    if rest[0] == "namespaces":
        if len(rest) == 1:
            return Target("namespaces", None, None)
        if len(rest) == 2:
            return Target("namespaces", None, rest[1])
        if len(rest) == 3 and rest[2] == "status":
            return Target("namespaces", None, rest[1], "status")
        resource = rest[2]
        if resource not in NAMESPACED or len(rest) > 5:
            return None
        name = rest[3] if len(rest) > 3 else None
        subresource = rest[4] if len(rest) > 4 else ""
        if subresource and subresource not in SUBRESOURCES[resource]:
            return None
        return Target(resource, rest[1], name, subresource)
    if len(rest) == 1 and rest[0] in NAMESPACED:
        return Target(rest[0], None, None)
    return None


def query_flag(query: Any, name: str) -> bool:
    """A boolean query parameter as apimachinery reads it: absent, "0" or "false" (any case) is false.

    Anything else is true, "True" included, which is how the official Python client writes ``True``.
    """
    value = query.get(name)
    return value is not None and value != "0" and value.lower() != "false"


def dry_run(values: list[str], options_kind: str) -> bool:
    """ValidateDryRun on the verb's options (422 naming them, e.g. CreateOptions); true when asked for."""
    if any(value not in DRY_RUN_VALUES for value in values):
        error = FieldError("NotSupported", "dryRun", list(values), supported=DRY_RUN_VALUES)
        raise invalid(options_kind, "", [error], group="meta.k8s.io")
    return bool(values)


def verb_of(method: str, target: Target | None, query: Any) -> str:
    collection = target is None or target.name is None
    if method == "GET":
        if collection and query_flag(query, "watch"):
            return "watch"
        return "list" if collection else "get"
    return {
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "deletecollection" if collection else "delete",
    }.get(method, method.lower())

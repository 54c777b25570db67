"""The schemas the deployment files are validated against, and how the copies here are made.

The sources are the Compose Specification's JSON Schema and Kubernetes v1.36's OpenAPI v3
documents (``../shared/schemas/`` beside this repository, or ``$HYBRID_EXECUTOR_SCHEMAS``). CI
clones this repository alone, so trimmed copies live in ``tests/deploy/schemas/``: the compose
schema as it is, and of Kubernetes only the component schemas of the kinds we ship (and what they
reference), without descriptions. ``python tests/deploy/schemas_source.py`` writes them again;
``test_schemas.py`` checks that they still equal what the sources give, wherever the sources exist.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
VENDORED = Path(__file__).parent / "schemas"
KUBERNETES_FILE = VENDORED / "kubernetes-v1.36-trimmed.json"
COMPOSE_FILE = VENDORED / "compose-spec.json"

# (group, version, kind) of everything the compose stack mounts and the chart renders.
KINDS = [
    ("", "v1", "ConfigMap"),
    ("", "v1", "LimitRange"),
    ("", "v1", "Namespace"),
    ("", "v1", "Pod"),
    ("", "v1", "ResourceQuota"),
    ("", "v1", "Secret"),
    ("", "v1", "Service"),
    ("", "v1", "ServiceAccount"),
    ("apps", "v1", "Deployment"),
    ("networking.k8s.io", "v1", "NetworkPolicy"),
    ("policy", "v1", "PodDisruptionBudget"),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole"),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io", "v1", "Role"),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding"),
]
_REF_PREFIX = "#/components/schemas/"


def shared_schemas() -> Path:
    return Path(os.environ.get("HYBRID_EXECUTOR_SCHEMAS", REPO.parent / "shared" / "schemas"))


def api_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def trimmed_kubernetes(openapi_dir: Path) -> dict[str, Any]:
    """The component schemas of KINDS and their references, from every OpenAPI v3 document in the folder."""
    components: dict[str, Any] = {}
    for document in sorted(openapi_dir.glob("*.json")):
        components.update(json.loads(document.read_text())["components"]["schemas"])
    kinds: dict[str, str] = {}
    for name, schema in components.items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            wanted = (gvk.get("group", ""), gvk["version"], gvk["kind"])
            if wanted in KINDS:
                kinds[f"{api_version(wanted[0], wanted[1])}/{wanted[2]}"] = name
    missing = [kind for kind in KINDS if f"{api_version(kind[0], kind[1])}/{kind[2]}" not in kinds]
    if missing:
        raise SystemExit(f"no schema in {openapi_dir} for {missing}")
    kept: dict[str, Any] = {}
    pending = list(kinds.values())
    while pending:
        name = pending.pop()
        if name in kept:
            continue
        kept[name] = _without_descriptions(components[name])
        pending.extend(_references(kept[name]))
    return {"kinds": dict(sorted(kinds.items())), "components": {"schemas": dict(sorted(kept.items()))}}


def _without_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _without_descriptions(value) for key, value in node.items() if key != "description"}
    if isinstance(node, list):
        return [_without_descriptions(item) for item in node]
    return node


def _references(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
            found.append(ref[len(_REF_PREFIX) :])
        for value in node.values():
            found += _references(value)
    elif isinstance(node, list):
        for item in node:
            found += _references(item)
    return found


def write_vendored(source: Path) -> None:
    VENDORED.mkdir(exist_ok=True)
    trimmed = trimmed_kubernetes(source / "kubernetes-openapi-v3")
    KUBERNETES_FILE.write_text(json.dumps(trimmed, indent=1, sort_keys=True) + "\n")
    COMPOSE_FILE.write_text((source / "compose" / "compose-spec.json").read_text())


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else shared_schemas()
    write_vendored(source)
    print(f"wrote {KUBERNETES_FILE} and {COMPOSE_FILE} from {source}")

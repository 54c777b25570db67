"""Validating Kubernetes manifests and compose files against their published schemas, offline.

Kubernetes objects are checked against the OpenAPI v3 component schema of their apiVersion and
kind, strictly: an object schema that lists its properties accepts no others (what ``kubectl
apply --validate=strict`` and the API server's field validation report as unknown fields), so a
misspelt field fails instead of being silently dropped.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

import jsonschema
from schemas_source import COMPOSE_FILE, KUBERNETES_FILE


@functools.cache
def _kubernetes() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(KUBERNETES_FILE.read_text())
    document["components"]["schemas"] = {
        name: _strict(schema) for name, schema in document["components"]["schemas"].items()
    }
    return document


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    strict = {key: _strict(value) for key, value in node.items()}
    if (
        "properties" in strict
        and "additionalProperties" not in strict
        and not strict.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    return strict


@functools.cache
def _validator(kind_key: str) -> jsonschema.Draft202012Validator:
    document = _kubernetes()
    schema = copy.copy(document)
    schema["$ref"] = f"#/components/schemas/{document['kinds'][kind_key]}"
    return jsonschema.Draft202012Validator(schema)


def kinds() -> list[str]:
    """``apiVersion/kind`` of every kind that can be validated."""
    return sorted(_kubernetes()["kinds"])


def manifest_problems(manifest: dict[str, Any]) -> list[str]:
    """What is wrong with one Kubernetes object, each as ``Kind/name: field.path: problem``; [] if valid."""
    kind_key = f"{manifest.get('apiVersion')}/{manifest.get('kind')}"
    name = f"{manifest.get('kind')}/{(manifest.get('metadata') or {}).get('name', '?')}"
    if kind_key not in _kubernetes()["kinds"]:
        return [f"{name}: no schema for apiVersion/kind {kind_key!r}; known: {', '.join(kinds())}"]
    problems = []
    for error in sorted(_validator(kind_key).iter_errors(manifest), key=lambda e: list(map(str, e.absolute_path))):
        path = ".".join(str(part) for part in error.absolute_path) or "(root)"
        problems.append(f"{name}: {path}: {error.message[:300]}")
    return problems


@functools.cache
def _compose_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(COMPOSE_FILE.read_text()))


def compose_problems(document: dict[str, Any]) -> list[str]:
    """What the Compose Specification's schema says is wrong with a compose file; [] if valid."""
    problems = []
    for error in sorted(_compose_validator().iter_errors(document), key=lambda e: list(map(str, e.absolute_path))):
        path = ".".join(str(part) for part in error.absolute_path) or "(root)"
        problems.append(f"{path}: {error.message[:300]}")
    return problems

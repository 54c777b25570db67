"""The validators the deployment tests rely on: they accept valid objects, reject wrong ones, and are current."""

from __future__ import annotations

import json

import pytest
from k8s_validation import compose_problems, manifest_problems
from schemas_source import COMPOSE_FILE, KUBERNETES_FILE, shared_schemas, trimmed_kubernetes

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "worker", "labels": {"a": "b"}},
    "spec": {
        "restartPolicy": "Never",
        "containers": [{"name": "base", "image": "apache/airflow:3.3.2", "resources": {"limits": {"memory": "1Gi"}}}],
    },
}


def test_a_valid_pod_passes() -> None:
    assert manifest_problems(POD) == []


def test_a_misspelt_field_is_an_unknown_field() -> None:
    pod = json.loads(json.dumps(POD))
    pod["spec"]["containers"][0]["imagee"] = "typo"
    (problem,) = manifest_problems(pod)
    assert problem.startswith("Pod/worker: spec.containers.0: Additional properties are not allowed ('imagee'")


def test_a_wrong_type_and_a_missing_required_field_are_reported() -> None:
    pod = json.loads(json.dumps(POD))
    pod["spec"]["containers"][0].pop("name")
    pod["spec"]["restartPolicy"] = 3
    problems = manifest_problems(pod)
    assert any("spec.containers.0: 'name' is a required property" in p for p in problems), problems
    assert any("spec.restartPolicy: 3 is not of type 'string'" in p for p in problems), problems


def test_an_unknown_kind_is_named() -> None:
    (problem,) = manifest_problems({"apiVersion": "v9", "kind": "Gadget", "metadata": {"name": "x"}})
    assert "no schema for apiVersion/kind 'v9/Gadget'" in problem


def test_rbac_objects_validate() -> None:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "r", "namespace": "n"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}],
    }
    assert manifest_problems(role) == []
    role["rules"][0]["verbs"] = "create"
    assert manifest_problems(role) != []


def test_compose_schema_accepts_a_minimal_file_and_rejects_a_wrong_one() -> None:
    assert compose_problems({"services": {"web": {"image": "nginx:1.27"}}}) == []
    problems = compose_problems(
        {"services": {"web": {"image": "nginx:1.27", "depends_on": {"db": {"condition": "up"}}}}}
    )
    assert problems, "an unknown depends_on condition must be rejected"


def test_the_copies_here_equal_what_the_shared_schemas_give() -> None:
    source = shared_schemas()
    if not (source / "kubernetes-openapi-v3").is_dir():
        pytest.skip(f"no shared schemas at {source} to compare with (set HYBRID_EXECUTOR_SCHEMAS)")
    assert json.loads(KUBERNETES_FILE.read_text()) == trimmed_kubernetes(source / "kubernetes-openapi-v3")
    assert COMPOSE_FILE.read_text() == (source / "compose" / "compose-spec.json").read_text()

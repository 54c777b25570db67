"""The Helm chart charts/hybrid-executor, rendered by Helm v4's own SDK (no cluster, no helm binary).

Each set of values is rendered once (module-level cache); every object it yields must be a valid
Kubernetes v1.36 object (strict: no unknown fields), the pod templates inside the ConfigMap valid
Pods that the executor itself loads, the RBAC least-privilege and namespaced, and the NetworkPolicy
must let the worker pods reach what they need and nothing else. Wrong values must be rejected by
values.schema.json (or the chart's own checks) with a message naming the key and the problem.
"""

from __future__ import annotations

import copy
import functools
import importlib.metadata
import re
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from k8s_validation import manifest_problems

from hybrid_executor.routing import parse_kubernetes_queues

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "hybrid-executor"
RELEASE = "hybrid-executor"
NAMESPACE = "airflow"

SCHEDULER_VERBS = {"create", "get", "list", "watch", "patch", "delete"}
WORKER_LABEL = {"app.kubernetes.io/managed-by": "hybrid-executor"}  # hybrid_executor.kubernetes.pods.MANAGED_BY
STANDARD_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version", "helm.sh/chart")

# The official Apache Airflow chart's pattern for `executor` (chart/values.schema.json, Airflow 3 era).
OFFICIAL_EXECUTOR_PATTERN = (
    r"^(([a-zA-Z_][a-zA-Z0-9_]*.)*[A-Z][a-zA-Z0-9]+Executor)(,(([a-zA-Z_][a-zA-Z0-9_]*.)*[A-Z][a-zA-Z0-9]+Executor))*$"
)

# Each set of values, rendered once. "default" is the chart's own values.yaml.
CASES: dict[str, dict[str, Any]] = {
    "default": {},
    "two-namespaces-with-quotas": {
        "workerNamespaces": [
            {
                "name": "airflow-workers",
                "resourceQuota": {"enabled": True, "hard": {"pods": "20", "requests.cpu": "10"}},
            },
            {
                "name": "airflow-gpu",
                "create": False,
                "queue": "kubernetes-gpu",
                "podTemplate": {
                    "image": {"tag": "3.3.2-cuda"},
                    "serviceAccountName": "airflow-gpu-worker",
                    "resources": {"limits": {"nvidia.com/gpu": 1}},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "nodeSelector": {"accelerator": "nvidia"},
                },
                "resourceQuota": {"enabled": True, "hard": {"pods": 4, "requests.nvidia.com/gpu": "4"}},
            },
        ],
    },
    "quota-and-limit-range": {
        "resourceQuota": {"enabled": True},
        "limitRange": {"enabled": True, "max": {"cpu": "8", "memory": "16Gi"}, "min": {"memory": "64Mi"}},
        "podTemplate": {
            "image": {"digest": "sha256:" + "ab" * 32},
            "labels": {"team": "data"},
            "annotations": {"example.com/owner": "data-platform"},
            "imagePullSecrets": ["registry-credentials"],
            "env": [
                {"name": "AIRFLOW__CORE__DAGS_FOLDER", "value": "/opt/airflow/dags"},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ],
        },
    },
    "external-database": {
        "networkPolicy": {
            "database": {"ipBlock": {"cidr": "10.20.0.0/24", "except": ["10.20.0.128/25"]}, "port": 6432},
            "extraEgress": [
                {"to": [{"ipBlock": {"cidr": "10.30.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 443}]}
            ],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "prometheus"}}}], "ports": [{"port": 9102}]}],
        },
    },
    "no-api-server-log-reader": {
        "fullnameOverride": "hx",
        "airflow": {"releaseName": "prod", "namespace": "airflow-core"},
        "rbac": {
            "apiServerLogReader": {"enabled": False},
            "scheduler": {"serviceAccount": {"name": "prod-scheduler", "namespace": "airflow-scheduling"}},
        },
        "podTemplate": {"executionApiServerUrl": "https://airflow.example.com/execution/"},
    },
    "cluster-wide": {
        # multi_namespace_mode without a namespace list: one cluster-wide watch.
        "rbac": {"clusterWide": {"enabled": True}},
        "workerNamespaces": [{"name": "airflow-workers"}, {"name": "batch", "queue": "batch"}],
    },
    "no-network-policy": {
        "networkPolicy": {"enabled": False},
        "workerNamespaces": [{"name": "airflow", "create": False}, {"name": "batch", "queue": "batch"}],
    },
    "worker-service-accounts": {
        "podTemplate": {
            "serviceAccountName": "airflow-worker",
            "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/tasks"}},
        },
        "workerNamespaces": [
            {"name": "airflow-workers"},
            {"name": "existing-sa", "queue": "existing", "podTemplate": {"serviceAccount": {"create": False}}},
            {
                "name": "mounted",
                "queue": "mounted",
                "podTemplate": {
                    "serviceAccountName": "token-reader",
                    "serviceAccount": {"automountServiceAccountToken": True, "annotations": {"team": "ml"}},
                },
            },
            {"name": "default-sa", "queue": "plain", "podTemplate": {"serviceAccountName": "default"}},
        ],
    },
}


@functools.cache
def _chart() -> helm_python.Chart:
    return helm_python.Chart.load(CHART)


def _merged(case: str) -> dict[str, Any]:
    """The values Helm uses for a case: the chart's defaults with the case's values merged in."""
    return _chart().merge_values(copy.deepcopy(CASES[case]))


@functools.cache
def _rendered(case: str) -> tuple[tuple[dict[str, Any], ...], str]:
    """The objects a case renders (in template order) and its NOTES.txt."""
    files = _chart().render(copy.deepcopy(CASES[case]), name=RELEASE, namespace=NAMESPACE)
    notes = files.pop(f"{RELEASE}/templates/NOTES.txt")
    objects = []
    for path in sorted(files):
        objects += [document for document in yaml.safe_load_all(files[path]) if document]
    return tuple(objects), notes


def _objects(case: str, kind: str | None = None) -> list[dict[str, Any]]:
    objects, _ = _rendered(case)
    return [o for o in objects if kind is None or o["kind"] == kind]


def _one(case: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
    found = [
        o for o in _objects(case, kind) if o["metadata"]["name"] == name and o["metadata"].get("namespace") == namespace
    ]
    assert len(found) == 1, f"{case}: expected one {kind} {namespace}/{name}, got {len(found)}"
    return found[0]


def _worker_namespaces(case: str) -> list[str]:
    return [entry["name"] for entry in _merged(case)["workerNamespaces"]]


def _airflow_namespace(case: str) -> str:
    return _merged(case)["airflow"]["namespace"] or NAMESPACE


def _fullname(case: str) -> str:
    return _merged(case)["fullnameOverride"] or RELEASE


def _pod_template_configmap(case: str) -> dict[str, Any]:
    return _one(case, "ConfigMap", _airflow_namespace(case), f"{_fullname(case)}-pod-template")


def _pod_templates(case: str) -> dict[str, dict[str, Any]]:
    return {key: yaml.safe_load(text) for key, text in _pod_template_configmap(case)["data"].items()}


ALL_CASES = pytest.mark.parametrize("case", list(CASES))


# --- every object is valid -------------------------------------------------------------------


@ALL_CASES
def test_every_rendered_object_is_a_valid_kubernetes_object(case: str) -> None:
    objects = _objects(case)
    assert objects
    problems = [problem for manifest in objects for problem in manifest_problems(manifest)]
    assert problems == []


@ALL_CASES
def test_every_pod_template_is_a_valid_pod(case: str) -> None:
    templates = _pod_templates(case)
    assert "pod_template.yaml" in templates
    problems = [problem for template in templates.values() for problem in manifest_problems(template)]
    assert problems == []


@ALL_CASES
def test_every_object_has_the_standard_labels(case: str) -> None:
    for manifest in _objects(case):
        labels = manifest["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/managed-by") == "Helm", manifest["metadata"]
        assert labels.get("app.kubernetes.io/instance") == RELEASE
        assert labels.get("app.kubernetes.io/name") == "hybrid-executor"
        assert labels.get("app.kubernetes.io/version") == "0.1.0"
        assert labels.get("helm.sh/chart") == "hybrid-executor-0.1.0"
        assert set(STANDARD_LABELS) <= set(labels)


# --- the pod template --------------------------------------------------------------------------


@ALL_CASES
def test_the_pod_templates_follow_the_executors_rules(case: str) -> None:
    values = _merged(case)
    for key, pod in _pod_templates(case).items():
        spec = pod["spec"]
        assert spec["restartPolicy"] == "Never", key
        assert spec["automountServiceAccountToken"] is False, key
        base = spec["containers"][0]
        assert base["name"] == "base", key
        assert "command" not in base, f"{key}: the image's entrypoint must run the executor's args"
        env = {variable["name"]: variable for variable in base["env"]}
        url = env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]["value"]
        assert re.fullmatch(r"https?://\S+/execution/", url), url
        if values["podTemplate"]["executionApiServerUrl"]:
            assert url == values["podTemplate"]["executionApiServerUrl"]
        assert base["resources"]["requests"], key


def test_the_default_pod_template() -> None:
    pod = _pod_templates("default")["pod_template.yaml"]
    base = pod["spec"]["containers"][0]
    assert base["image"] == "apache/airflow:3.3.2"
    assert base["env"][0] == {
        "name": "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
        "value": "http://airflow-api-server.airflow.svc.cluster.local:8080/execution/",
    }
    assert base["resources"] == {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}
    assert "serviceAccountName" not in pod["spec"]
    # The "restricted" Pod Security Standard's requirements.
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert base["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def test_a_namespace_with_a_pod_template_of_its_own_gets_its_own_file() -> None:
    templates = _pod_templates("two-namespaces-with-quotas")
    assert set(templates) == {"pod_template.yaml", "pod_template-airflow-gpu.yaml"}
    default = templates["pod_template.yaml"]["spec"]
    gpu = templates["pod_template-airflow-gpu.yaml"]["spec"]
    assert default["containers"][0]["image"] == "apache/airflow:3.3.2"
    assert gpu["containers"][0]["image"] == "apache/airflow:3.3.2-cuda"  # the repository is kept, the tag replaced
    assert gpu["serviceAccountName"] == "airflow-gpu-worker"
    assert "serviceAccountName" not in default
    # Merged key by key: the GPU limit joins the default requests and memory limit.
    assert gpu["containers"][0]["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"memory": "1Gi", "nvidia.com/gpu": 1},
    }
    assert gpu["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert "tolerations" not in default


def test_image_digest_labels_and_extra_env_reach_the_template() -> None:
    pod = _pod_templates("quota-and-limit-range")["pod_template.yaml"]
    base = pod["spec"]["containers"][0]
    assert base["image"] == "apache/airflow:3.3.2@sha256:" + "ab" * 32
    assert pod["metadata"]["labels"] == {"team": "data"}
    assert pod["metadata"]["annotations"] == {"example.com/owner": "data-platform"}
    assert pod["spec"]["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert [variable["name"] for variable in base["env"]] == [
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
        "AIRFLOW__CORE__DAGS_FOLDER",
        "POD_NAME",
    ]


@ALL_CASES
def test_the_executor_loads_every_pod_template(case: str, tmp_path: Path) -> None:
    from hybrid_executor.kubernetes.pods import load_pod_template  # imports Airflow's Kubernetes provider

    for key, text in _pod_template_configmap(case)["data"].items():
        path = tmp_path / key
        path.write_text(text)
        pod = load_pod_template(str(path))
        assert pod.spec.containers[0].name == "base"
        assert pod.spec.restart_policy == "Never"


# --- the worker pods' ServiceAccount ----------------------------------------------------------------


def _deep_merged(base: dict[str, Any], override: dict[str, Any] | None) -> dict[str, Any]:
    """Helm's mergeOverwrite, as the chart merges a namespace's podTemplate over the chart-wide one."""
    merged = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merged(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@ALL_CASES
def test_every_service_account_the_pods_name_is_created_where_they_run(case: str) -> None:
    """ServiceAccount admission refuses a pod whose ServiceAccount does not exist: the chart creates each one."""
    values = _merged(case)
    templates = _pod_templates(case)
    expected = {}
    for entry in values["workerNamespaces"]:
        own = _deep_merged(values["podTemplate"], entry.get("podTemplate"))
        template = templates.get(f"pod_template-{entry['name']}.yaml", templates["pod_template.yaml"])
        name = template["spec"].get("serviceAccountName", "")
        assert name == own["serviceAccountName"], entry["name"]
        if name and name != "default" and own["serviceAccount"]["create"]:
            expected[(entry["name"], name)] = own["serviceAccount"]
    accounts = {(a["metadata"]["namespace"], a["metadata"]["name"]): a for a in _objects(case, "ServiceAccount")}
    assert set(accounts) == set(expected)
    for key, account in accounts.items():
        assert account["automountServiceAccountToken"] is expected[key]["automountServiceAccountToken"], key
        assert account["metadata"].get("annotations", {}) == expected[key]["annotations"], key
        assert account["metadata"]["labels"]["app.kubernetes.io/component"] == "worker-service-account"


def test_no_service_account_by_default_the_pods_use_the_namespaces_default() -> None:
    assert _objects("default", "ServiceAccount") == []
    assert _merged("default")["podTemplate"]["serviceAccount"] == {
        "create": True,
        "automountServiceAccountToken": False,
        "annotations": {},
    }
    _, notes = _rendered("default")
    assert "airflow-workers: queue kubernetes (executor-wide namespace), pods run as ServiceAccount default" in notes


def test_a_named_service_account_is_created_without_its_token_unless_asked() -> None:
    accounts = {
        (a["metadata"]["namespace"], a["metadata"]["name"]): a
        for a in _objects("worker-service-accounts", "ServiceAccount")
    }
    # Not in existing-sa (create: false), never `default` (Kubernetes makes that one itself).
    assert sorted(accounts) == [("airflow-workers", "airflow-worker"), ("mounted", "token-reader")]
    worker = accounts[("airflow-workers", "airflow-worker")]
    assert worker["automountServiceAccountToken"] is False
    assert worker["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/tasks"}
    mounted = accounts[("mounted", "token-reader")]
    assert mounted["automountServiceAccountToken"] is True
    assert mounted["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/tasks",
        "team": "ml",
    }
    # No Role is bound to them: the pods never call the Kubernetes API.
    for binding in _objects("worker-service-accounts", "RoleBinding"):
        assert {subject["name"] for subject in binding["subjects"]} <= {"airflow-scheduler", "airflow-api-server"}
    # Whatever the ServiceAccount says, the pods never mount a token.
    for template in _pod_templates("worker-service-accounts").values():
        assert template["spec"]["automountServiceAccountToken"] is False
    _, notes = _rendered("worker-service-accounts")
    assert "existing-sa: queue existing, own pod template, pods run as ServiceAccount airflow-worker " in notes
    assert "(not created by this chart: it must exist)" in notes


# --- the settings the chart prints for the official chart -------------------------------------


@ALL_CASES
def test_the_kubernetes_queues_it_prints_parse_and_match_the_namespaces_and_files(case: str) -> None:
    values = _merged(case)
    configmap = _pod_template_configmap(case)
    annotations = configmap["metadata"]["annotations"]
    queues = parse_kubernetes_queues(annotations["hybrid-executor/kubernetes-queues"])
    mount = values["podTemplate"]["mountPath"]
    assert annotations["hybrid-executor/pod-template-file"] == f"{mount}/pod_template.yaml"
    assert annotations["hybrid-executor/kubernetes-executor-namespace"] == values["workerNamespaces"][0]["name"]
    namespaces = set()
    for index, (entry, profile) in enumerate(zip(values["workerNamespaces"], queues.values(), strict=True)):
        assert profile.queue == entry.get("queue", "kubernetes")
        # The first queue uses the executor-wide namespace ([kubernetes_executor] namespace).
        assert profile.namespace == (None if index == 0 else entry["name"])
        namespaces.add(profile.namespace or annotations["hybrid-executor/kubernetes-executor-namespace"])
        if profile.pod_template_file is not None:
            assert profile.pod_template_file.startswith(mount + "/")
            assert profile.pod_template_file.removeprefix(mount + "/") in configmap["data"]
    assert namespaces == set(_worker_namespaces(case))
    _, notes = _rendered(case)
    assert f'kubernetes_queues: "{annotations["hybrid-executor/kubernetes-queues"]}"' in notes


def test_the_notes_give_the_official_charts_settings() -> None:
    _, notes = _rendered("default")
    for line in (
        "executor: hybrid_executor.HybridExecutor",
        "namespace: airflow-workers",
        "pod_template_file: /opt/airflow/pod_templates/hybrid-executor/pod_template.yaml",
        'kubernetes_queues: "kubernetes"',
        "configMap: {name: hybrid-executor-pod-template}",
        "mountPath: /opt/airflow/pod_templates/hybrid-executor",
        "serviceAccount: {name: airflow-scheduler}",
    ):
        assert line in notes


# --- RBAC: least privilege, namespaced ----------------------------------------------------------


@ALL_CASES
def test_nothing_cluster_wide_unless_asked_and_no_wildcards(case: str) -> None:
    kinds = {manifest["kind"] for manifest in _objects(case)}
    if not _merged(case)["rbac"]["clusterWide"]["enabled"]:
        assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
    for role in _objects(case, "Role") + _objects(case, "ClusterRole"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], (role["metadata"], rule)
            assert rule["apiGroups"] == [""]
            assert not rule.get("resourceNames")
            assert not rule.get("nonResourceURLs")


def test_cluster_wide_rbac_grants_the_roles_verbs_in_every_namespace_to_the_same_accounts() -> None:
    assert _objects("default", "ClusterRole") == []  # opt-in
    roles = {role["metadata"]["name"]: role["rules"] for role in _objects("cluster-wide", "ClusterRole")}
    namespaced = {r["metadata"]["name"]: r["rules"] for r in _objects("cluster-wide", "Role")}
    assert roles == {
        name: namespaced[name] for name in ("hybrid-executor-scheduler", "hybrid-executor-api-server-logs")
    }
    bindings = {b["metadata"]["name"]: b for b in _objects("cluster-wide", "ClusterRoleBinding")}
    assert set(bindings) == set(roles)
    for name, binding in bindings.items():
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}
        assert "namespace" not in binding["metadata"]
    assert bindings["hybrid-executor-scheduler"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "airflow-scheduler", "namespace": "airflow"}
    ]
    _, notes = _rendered("cluster-wide")
    assert 'multi_namespace_mode: "True"' in notes
    assert 'multi_namespace_mode_namespace_list: ""' in notes
    _, default_notes = _rendered("default")
    assert "multi_namespace_mode" not in default_notes


@ALL_CASES
def test_roles_grant_exactly_what_the_executor_uses(case: str) -> None:
    values = _merged(case)
    fullname = _fullname(case)
    log_reader = values["rbac"]["apiServerLogReader"]["enabled"]
    roles = _objects(case, "Role")
    assert {role["metadata"]["namespace"] for role in roles} == set(_worker_namespaces(case))
    assert len(roles) == len(_worker_namespaces(case)) * (2 if log_reader else 1)
    for namespace in _worker_namespaces(case):
        scheduler = _one(case, "Role", namespace, f"{fullname}-scheduler")
        grants = {
            (resource, verb) for rule in scheduler["rules"] for resource in rule["resources"] for verb in rule["verbs"]
        }
        assert grants == {("pods", verb) for verb in SCHEDULER_VERBS} | {("pods/log", "get")}
        if log_reader:
            logs = _one(case, "Role", namespace, f"{fullname}-api-server-logs")
            assert logs["rules"] == [{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]


@ALL_CASES
def test_role_bindings_bind_the_configured_service_accounts(case: str) -> None:
    values = _merged(case)
    fullname = _fullname(case)
    airflow_namespace = _airflow_namespace(case)
    expected = {f"{fullname}-scheduler": values["rbac"]["scheduler"]["serviceAccount"]}
    if values["rbac"]["apiServerLogReader"]["enabled"]:
        expected[f"{fullname}-api-server-logs"] = values["rbac"]["apiServerLogReader"]["serviceAccount"]
    bindings = _objects(case, "RoleBinding")
    assert len(bindings) == len(expected) * len(_worker_namespaces(case))
    for binding in bindings:
        namespace, name = binding["metadata"]["namespace"], binding["metadata"]["name"]
        assert namespace in _worker_namespaces(case)
        account = expected[name]
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"] or airflow_namespace}
        ]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}
        _one(case, "Role", namespace, name)  # the Role it names exists, in the same namespace


def test_the_subjects_default_to_the_official_charts_service_accounts() -> None:
    subjects = {b["metadata"]["name"]: b["subjects"] for b in _objects("default", "RoleBinding")}
    assert subjects == {
        "hybrid-executor-scheduler": [{"kind": "ServiceAccount", "name": "airflow-scheduler", "namespace": "airflow"}],
        "hybrid-executor-api-server-logs": [
            {"kind": "ServiceAccount", "name": "airflow-api-server", "namespace": "airflow"}
        ],
    }
    custom = {b["metadata"]["name"]: b["subjects"] for b in _objects("no-api-server-log-reader", "RoleBinding")}
    assert custom == {
        "hx-scheduler": [{"kind": "ServiceAccount", "name": "prod-scheduler", "namespace": "airflow-scheduling"}]
    }


# --- namespaces, quotas, limits ----------------------------------------------------------------


@ALL_CASES
def test_namespaces_are_created_unless_create_is_false(case: str) -> None:
    wanted = {entry["name"] for entry in _merged(case)["workerNamespaces"] if entry.get("create", True)}
    assert {namespace["metadata"]["name"] for namespace in _objects(case, "Namespace")} == wanted
    for manifest in _objects(case):
        if manifest["kind"] not in ("Namespace", "ConfigMap", "ClusterRole", "ClusterRoleBinding"):
            assert manifest["metadata"]["namespace"] in _worker_namespaces(case), manifest["metadata"]


@ALL_CASES
def test_quota_and_limit_range_only_where_enabled(case: str) -> None:
    values = _merged(case)
    for entry in values["workerNamespaces"]:
        quota_on = entry.get("resourceQuota", {}).get("enabled", values["resourceQuota"]["enabled"])
        limits_on = entry.get("limitRange", {}).get("enabled", values["limitRange"]["enabled"])
        in_namespace = [m["kind"] for m in _objects(case) if m["metadata"].get("namespace") == entry["name"]]
        assert in_namespace.count("ResourceQuota") == int(quota_on)
        assert in_namespace.count("LimitRange") == int(limits_on)


def test_off_by_default() -> None:
    kinds = {manifest["kind"] for manifest in _objects("default")}
    assert not kinds & {"ResourceQuota", "LimitRange"}


def test_each_namespace_gets_its_own_quota() -> None:
    hard = {
        q["metadata"]["namespace"]: q["spec"]["hard"] for q in _objects("two-namespaces-with-quotas", "ResourceQuota")
    }
    # The chart-wide hard limits, with each namespace's merged over them.
    assert hard == {
        "airflow-workers": {
            "pods": "20",
            "requests.cpu": "10",
            "requests.memory": "100Gi",
            "limits.memory": "200Gi",
        },
        "airflow-gpu": {
            "pods": "4",
            "requests.cpu": "50",
            "requests.memory": "100Gi",
            "limits.memory": "200Gi",
            "requests.nvidia.com/gpu": "4",
        },
    }


def test_quota_and_limit_range_with_the_chart_defaults() -> None:
    (quota,) = _objects("quota-and-limit-range", "ResourceQuota")
    assert quota["spec"]["hard"] == {
        "pods": "100",
        "requests.cpu": "50",
        "requests.memory": "100Gi",
        "limits.memory": "200Gi",
    }
    (limit_range,) = _objects("quota-and-limit-range", "LimitRange")
    assert limit_range["spec"]["limits"] == [
        {
            "type": "Container",
            "default": {"memory": "1Gi"},
            "defaultRequest": {"cpu": "250m", "memory": "256Mi"},
            "max": {"cpu": "8", "memory": "16Gi"},
            "min": {"memory": "64Mi"},
        }
    ]


# --- NetworkPolicy -------------------------------------------------------------------------------


def _egress_ports(rule: dict[str, Any]) -> set[tuple[str, int]]:
    return {(port.get("protocol", "TCP"), port["port"]) for port in rule.get("ports", [])}


@ALL_CASES
def test_network_policy_selects_the_worker_pods_and_allows_the_api_server_and_dns(case: str) -> None:
    values = _merged(case)
    policies = _objects(case, "NetworkPolicy")
    if not values["networkPolicy"]["enabled"]:
        assert policies == []
        return
    assert {p["metadata"]["namespace"] for p in policies} == set(_worker_namespaces(case))
    assert len(policies) == len(_worker_namespaces(case))
    release = values["airflow"]["releaseName"]
    for policy in policies:
        spec = policy["spec"]
        assert spec["podSelector"] == {"matchLabels": WORKER_LABEL}
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        assert spec["ingress"] == values["networkPolicy"]["ingress"]
        api, *rest = spec["egress"]
        assert api["to"] == [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": _airflow_namespace(case)}},
                "podSelector": {"matchLabels": {"tier": "airflow", "component": "api-server", "release": release}},
            }
        ]
        assert _egress_ports(api) == {("TCP", 8080)}
        dns = [rule for rule in rest if _egress_ports(rule) == {("UDP", 53), ("TCP", 53)}]
        assert len(dns) == 1
        assert dns[0]["to"] == [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ]
        # Nothing else but the database and the configured extra rules.
        others = [rule for rule in rest if rule is not dns[0]]
        assert len(others) == 1 + len(values["networkPolicy"]["extraEgress"])


def test_network_policy_database_by_selector_by_default() -> None:
    (policy,) = _objects("default", "NetworkPolicy")
    database = policy["spec"]["egress"][1]
    assert database == {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "airflow"}},
                "podSelector": {
                    "matchLabels": {"app.kubernetes.io/name": "postgresql", "app.kubernetes.io/instance": "airflow"}
                },
            }
        ],
        "ports": [{"protocol": "TCP", "port": 5432}],
    }
    assert policy["spec"]["ingress"] == []  # no ingress at all


def test_network_policy_database_by_ip_block_extra_egress_and_ingress() -> None:
    (policy,) = _objects("external-database", "NetworkPolicy")
    egress = policy["spec"]["egress"]
    assert egress[1] == {
        "to": [{"ipBlock": {"cidr": "10.20.0.0/24", "except": ["10.20.0.128/25"]}}],
        "ports": [{"protocol": "TCP", "port": 6432}],
    }
    assert egress[-1] == {"to": [{"ipBlock": {"cidr": "10.30.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 443}]}
    assert policy["spec"]["ingress"] == CASES["external-database"]["networkPolicy"]["ingress"]


# --- wrong values are rejected, with the key and the reason --------------------------------------


REJECTED = {
    "a misspelt key": ({"podTemplate": {"imagee": {"tag": "1"}}}, "at '/podTemplate': additional properties 'imagee'"),
    "a misspelt nested key": (
        {"networkPolicy": {"apiServer": {"prot": 8080}}},
        "at '/networkPolicy/apiServer': additional properties 'prot' not allowed",
    ),
    "a misspelt top-level key": ({"workerNamespace": []}, "additional properties 'workerNamespace' not allowed"),
    "a namespace with capitals": (
        {"workerNamespaces": [{"name": "Airflow-Workers"}]},
        "at '/workerNamespaces/0/name': 'Airflow-Workers' does not match pattern",
    ),
    "a namespace longer than 63 characters": (
        {"workerNamespaces": [{"name": "a" * 64}]},
        "at '/workerNamespaces/0/name': maxLength: got 64, want 63",
    ),
    "a service account with an underscore": (
        {"rbac": {"scheduler": {"serviceAccount": {"name": "airflow_scheduler"}}}},
        "at '/rbac/scheduler/serviceAccount/name': 'airflow_scheduler' does not match pattern",
    ),
    "an image without a tag": (
        {"podTemplate": {"image": {"tag": None}}},
        "at '/podTemplate/image': missing property 'tag'",
    ),
    "an image with an empty tag": (
        {"podTemplate": {"image": {"tag": ""}}},
        "at '/podTemplate/image/tag': '' does not match pattern",
    ),
    "a tag inside the repository": (
        {"podTemplate": {"image": {"repository": "apache/airflow:3.3.2"}}},
        "at '/podTemplate/image/repository': 'apache/airflow:3.3.2' does not match pattern",
    ),
    "a negative quota quantity": (
        {"resourceQuota": {"enabled": True, "hard": {"pods": "-5"}}},
        "at '/resourceQuota/hard/pods': '-5' does not match pattern",
    ),
    "a negative quota number": (
        {"resourceQuota": {"enabled": True, "hard": {"pods": -5}}},
        "at '/resourceQuota/hard/pods': minimum: got -5, want 0",
    ),
    "an invalid per-namespace quantity": (
        {"workerNamespaces": [{"name": "a", "resourceQuota": {"hard": {"requests.memory": "2 GB"}}}]},
        "at '/workerNamespaces/0/resourceQuota/hard/requests.memory': '2 GB' does not match pattern",
    ),
    "an invalid resource quantity": (
        {"podTemplate": {"resources": {"limits": {"memory": "lots"}}}},
        "at '/podTemplate/resources/limits/memory': 'lots' does not match pattern",
    ),
    "a string for a boolean": (
        {"rbac": {"apiServerLogReader": {"enabled": "yes"}}},
        "at '/rbac/apiServerLogReader/enabled': got string, want boolean",
    ),
    "a string for clusterWide.enabled": (
        {"rbac": {"clusterWide": {"enabled": "true"}}},
        "at '/rbac/clusterWide/enabled': got string, want boolean",
    ),
    "a string for a port": (
        {"networkPolicy": {"apiServer": {"port": "8080"}}},
        "at '/networkPolicy/apiServer/port': got string, want integer",
    ),
    "a port out of range": (
        {"networkPolicy": {"database": {"port": 70000}}},
        "at '/networkPolicy/database/port': maximum: got 70,000, want 65,535",
    ),
    "a map for a list": (
        {"workerNamespaces": {"name": "airflow-workers"}},
        "at '/workerNamespaces': got object, want array",
    ),
    "no worker namespace": ({"workerNamespaces": []}, "at '/workerNamespaces': minItems: got 0, want 1"),
    "a namespace without a name": ({"workerNamespaces": [{"create": True}]}, "missing property 'name'"),
    "a queue with a space": (
        {"workerNamespaces": [{"name": "a", "queue": "gpu queue"}]},
        "at '/workerNamespaces/0/queue': 'gpu queue' does not match pattern",
    ),
    "a number for an env value": (
        {"podTemplate": {"env": [{"name": "WORKERS", "value": 4}]}},
        "at '/podTemplate/env/0/value': got number, want string",
    ),
    "a relative mount path": (
        {"podTemplate": {"mountPath": "pod_templates"}},
        "at '/podTemplate/mountPath': 'pod_templates' does not match pattern",
    ),
    "a string for serviceAccount.create": (
        {"podTemplate": {"serviceAccount": {"create": "no"}}},
        "at '/podTemplate/serviceAccount/create': got string, want boolean",
    ),
    "a misspelt per-namespace serviceAccount key": (
        {"workerNamespaces": [{"name": "a", "podTemplate": {"serviceAccount": {"automount": True}}}]},
        "at '/workerNamespaces/0/podTemplate/serviceAccount': additional properties 'automount' not allowed",
    ),
    "an invalid database CIDR": (
        {"networkPolicy": {"database": {"ipBlock": {"cidr": "10.0.0.0"}}}},
        "at '/networkPolicy/database/ipBlock",
    ),
}


@pytest.mark.parametrize(("values", "message"), REJECTED.values(), ids=list(REJECTED))
def test_the_schema_rejects_wrong_values_with_a_clear_message(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as raised:
        _chart().render(copy.deepcopy(values), name=RELEASE, namespace=NAMESPACE)
    assert "values don't meet the specifications of the schema" in str(raised.value)
    assert message in str(raised.value)


CHECKED_BY_THE_CHART = {
    "a second namespace without a queue": (
        {"workerNamespaces": [{"name": "a"}, {"name": "b"}]},
        "workerNamespaces[1] (b): set `queue`, the Kubernetes queue whose pods run in this namespace",
    ),
    "a namespace listed twice": (
        {"workerNamespaces": [{"name": "a"}, {"name": "a", "queue": "other"}]},
        'workerNamespaces[1]: namespace "a" is listed twice',
    ),
    "a queue routed to two namespaces": (
        {"workerNamespaces": [{"name": "a"}, {"name": "b", "queue": "kubernetes"}]},
        'workerNamespaces[1] (b): queue "kubernetes" is already routed to another namespace',
    ),
}


@pytest.mark.parametrize(("values", "message"), CHECKED_BY_THE_CHART.values(), ids=list(CHECKED_BY_THE_CHART))
def test_what_the_schema_cannot_check_fails_the_render_with_a_clear_message(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm_python.HelmRenderError) as raised:
        _chart().render(copy.deepcopy(values), name=RELEASE, namespace=NAMESPACE)
    assert message in str(raised.value)


def test_the_schema_is_strict_at_every_level() -> None:
    schema = _chart().schema
    assert schema is not None
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if "properties" in node:
                assert node.get("additionalProperties") is False, f"{where} accepts unknown keys"
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, f"{where}/{index}")

    walk(schema, "#")


# --- the chart itself --------------------------------------------------------------------------


def test_chart_metadata() -> None:
    metadata = _chart().metadata
    assert metadata["apiVersion"] == "v2"
    assert metadata["type"] == "application"
    assert metadata["name"] == "hybrid-executor"
    assert metadata["version"] == "0.1.0"
    assert metadata["appVersion"] == importlib.metadata.version("hybrid-executor")


def test_helm_lint_finds_nothing_to_warn_about() -> None:
    report = helm_python.lint(CHART, strict=True, kube_version="v1.36.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_the_values_for_the_official_chart_match_this_charts_defaults() -> None:
    airflow_values = yaml.safe_load((CHART / "airflow-values.yaml").read_text())
    assert re.fullmatch(OFFICIAL_EXECUTOR_PATTERN, airflow_values["executor"])
    assert airflow_values["executor"] == "hybrid_executor.HybridExecutor"
    assert airflow_values["images"]["airflow"]["tag"]
    configmap = _pod_template_configmap("default")
    annotations = configmap["metadata"]["annotations"]
    config = airflow_values["config"]
    assert config["kubernetes_executor"]["in_cluster"] == "True"
    assert config["kubernetes_executor"]["namespace"] == annotations["hybrid-executor/kubernetes-executor-namespace"]
    assert config["kubernetes_executor"]["pod_template_file"] == annotations["hybrid-executor/pod-template-file"]
    assert parse_kubernetes_queues(config["hybrid_executor"]["kubernetes_queues"]) == parse_kubernetes_queues(
        annotations["hybrid-executor/kubernetes-queues"]
    )
    defaults = _merged("default")
    for component, account in (("scheduler", "scheduler"), ("apiServer", "apiServerLogReader")):
        settings = airflow_values[component]
        assert settings["serviceAccount"]["name"] == defaults["rbac"][account]["serviceAccount"]["name"]
        (volume,) = settings["extraVolumes"]
        assert volume["configMap"]["name"] == configmap["metadata"]["name"]
        (mount,) = settings["extraVolumeMounts"]
        assert mount == {"name": volume["name"], "mountPath": defaults["podTemplate"]["mountPath"], "readOnly": True}
    (peer,) = airflow_values["apiServer"]["networkPolicy"]["ingress"]["from"]
    assert peer["podSelector"]["matchLabels"] == WORKER_LABEL
    assert peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == _worker_namespaces("default")[0]

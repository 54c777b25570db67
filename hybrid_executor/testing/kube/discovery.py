"""What the discovery and version URLs answer: the server's version, the API groups and the core/v1 resources."""

from __future__ import annotations

from typing import Any

from hybrid_executor.testing.kube.authorization import (
    AUTHORIZATION_GROUP,
    AUTHORIZATION_GROUP_INFO,
    AUTHORIZATION_RESOURCES,
)

SERVER_VERSION = {
    "major": "1",
    "minor": "36",
    # The compatibility-version fields (1.33+): what the server emulates and the oldest it can roll back to.
    "emulationMajor": "1",
    "emulationMinor": "36",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "35",
    "gitVersion": "v1.36.0-hybrid-executor-local",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.26",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_WRITE_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
_STATUS_VERBS = ["get", "patch", "update"]
CORE_RESOURCES = {
    "kind": "APIResourceList",
    "groupVersion": "v1",
    "resources": [
        {
            "name": "limitranges",
            "singularName": "limitrange",
            "namespaced": True,
            "kind": "LimitRange",
            "verbs": _WRITE_VERBS,
            "shortNames": ["limits"],
        },
        {
            "name": "namespaces",
            "singularName": "namespace",
            "namespaced": False,
            "kind": "Namespace",
            "verbs": [verb for verb in _WRITE_VERBS if verb != "deletecollection"],
            "shortNames": ["ns"],
        },
        {
            "name": "namespaces/status",
            "singularName": "",
            "namespaced": False,
            "kind": "Namespace",
            "verbs": _STATUS_VERBS,
        },
        {
            "name": "pods",
            "singularName": "pod",
            "namespaced": True,
            "kind": "Pod",
            "verbs": _WRITE_VERBS,
            "shortNames": ["po"],
            "categories": ["all"],
        },
        {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
        {"name": "pods/status", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": _STATUS_VERBS},
        {
            "name": "resourcequotas",
            "singularName": "resourcequota",
            "namespaced": True,
            "kind": "ResourceQuota",
            "verbs": _WRITE_VERBS,
            "shortNames": ["quota"],
        },
        {
            "name": "resourcequotas/status",
            "singularName": "",
            "namespaced": True,
            "kind": "ResourceQuota",
            "verbs": _STATUS_VERBS,
        },
        {
            "name": "serviceaccounts",
            "singularName": "serviceaccount",
            "namespaced": True,
            "kind": "ServiceAccount",
            "verbs": _WRITE_VERBS,
            "shortNames": ["sa"],
        },
    ],
}
# What the discovery and version URLs answer (every one of them a non-resource URL for authorization).
DISCOVERY: dict[str, dict[str, Any]] = {
    "/version": SERVER_VERSION,
    "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
    "/api/v1": CORE_RESOURCES,
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [AUTHORIZATION_GROUP_INFO]},
    f"/apis/{AUTHORIZATION_GROUP}": {"kind": "APIGroup", "apiVersion": "v1", **AUTHORIZATION_GROUP_INFO},
    f"/apis/{AUTHORIZATION_GROUP}/v1": AUTHORIZATION_RESOURCES,
}

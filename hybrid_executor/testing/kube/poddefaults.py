"""What the API server fills into a new Pod as it decodes it (SetDefaults_Pod and friends), and its QoS class."""

from __future__ import annotations

from typing import Any

from hybrid_executor.testing.kube.quantity import parse_quantity


def pod_qos_class(pod: dict[str, Any]) -> str:
    containers = pod["spec"].get("containers", []) + pod["spec"].get("initContainers", [])
    guaranteed = True
    anything = False
    for container in containers:
        resources = container.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        if requests or limits:
            anything = True
        for name in ("cpu", "memory"):
            limit = limits.get(name)
            request = requests.get(name, limit)
            if limit is None or parse_quantity(request) != parse_quantity(limit):
                guaranteed = False
    if not anything:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def default_pod(pod: dict[str, Any]) -> None:
    """The defaults the real API server fills into a new Pod as it decodes it (before admission)."""
    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    if not spec.get("serviceAccountName") and spec.get("serviceAccount"):
        spec["serviceAccountName"] = spec["serviceAccount"]  # the deprecated field, as the v1 conversion reads it
    for list_name in ("initContainers", "containers"):
        for container in spec.get(list_name) or []:
            resources = container.setdefault("resources", {})
            limits = resources.get("limits") or {}
            if limits:
                # SetDefaults_Pod: a request not given is the limit (per resource).
                resources["requests"] = {**limits, **(resources.get("requests") or {})}
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            image = container.get("image") or ""
            tagged = ":" in image.rsplit("/", 1)[-1] or "@" in image
            latest = not tagged or image.endswith(":latest")
            container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")

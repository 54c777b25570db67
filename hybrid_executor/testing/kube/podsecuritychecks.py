"""The Pod Security Standards' checks (pod-security-admission/policy), each worded as upstream words it.

Each check looks at a pod's metadata and spec and answers None (allowed) or its forbidden
reason and detail, e.g. ``("host namespaces", "hostNetwork=true")``. ``CHECKS`` lists them with
their ID, level and the first policy version each applies to; ``podsecurity`` picks and orders
them for a level and version.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Result = tuple[str, str] | None
CheckFn = Callable[[dict[str, Any], dict[str, Any]], Result]

_BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
# The inline volume sources the restricted level allows, and the names of the others (in upstream's order).
_ALLOWED_VOLUMES = (
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
)
_RESTRICTED_VOLUMES = (
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
)
_SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
_SECCOMP_CONTAINER_ANNOTATION = "container.seccomp.security.alpha.kubernetes.io/"


@dataclass(frozen=True)
class Check:
    id: str
    level: str  # "baseline" or "restricted"
    since: int  # the first policy version (1.N) it applies to
    check: CheckFn
    until: int | None = None  # the last version it applies to, for a check a later one replaced
    overrides: tuple[str, ...] = ()  # the baseline checks it stands in for, at the restricted level


def _pluralize(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _join_quote(items: list[str]) -> str:
    return '"' + '", "'.join(items) + '"' if items else ""


def _containers(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """visitContainers: init containers, containers, then ephemeral containers."""
    for list_name in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(list_name) or []


def _context(container: dict[str, Any]) -> dict[str, Any]:
    return container.get("securityContext") or {}


def _pod_context(spec: dict[str, Any]) -> dict[str, Any]:
    return spec.get("securityContext") or {}


def _named(containers: list[str]) -> str:
    return f"{_pluralize('container', 'containers', len(containers))} {_join_quote(containers)}"


# --- baseline --------------------------------------------------------------------------------


def capabilities_baseline(metadata: dict[str, Any], spec: dict[str, Any]) -> Result:
    bad, added = [], set()
    for container in _containers(spec):
        capabilities = _context(container).get("capabilities")
        if capabilities is None:
            continue
        extra = [c for c in capabilities.get("add") or [] if c not in _BASELINE_CAPABILITIES]
        if extra:
            bad.append(container.get("name", ""))
            added.update(extra)
    if not bad:
        return None
    detail = f"{_named(bad)} must not include {_join_quote(sorted(added))} in securityContext.capabilities.add"
    return "non-default capabilities", detail


def host_namespaces(metadata: dict[str, Any], spec: dict[str, Any]) -> Result:
    shared = sorted(name for name in ("hostNetwork", "hostPID", "hostIPC") if spec.get(name))
    if not shared:
        return None
    return "host namespaces", ", ".join(f"{name}=true" for name in shared)


def host_path_volumes(metadata: dict[str, Any], spec: dict[str, Any]) -> Result:
    volumes = [v.get("name", "") for v in spec.get("volumes") or [] if v.get("hostPath") is not None]
    if not volumes:
        return None
    return "hostPath volumes", f"{_pluralize('volume', 'volumes', len(volumes))} {_join_quote(volumes)}"


def host_ports(metadata: dict[str, Any], spec: dict[str, Any]) -> Result:
    bad, ports = [], set()
    for container in _containers(spec):
        used = [str(p["hostPort"]) for p in container.get("ports") or [] if p.get("hostPort")]
        if used:
            bad.append(container.get("name", ""))
            ports.update(used)
    if not bad:
        return None
    detail = (
        f"{_named(bad)} {_pluralize('uses', 'use', len(bad))} "
        f"{_pluralize('hostPort', 'hostPorts', len(ports))} {', '.join(sorted(ports))}"
    )
    return "hostPort", detail


def privileged(metadata: dict[str, Any], spec: dict[str, Any]) -> Result:
    bad = [c.get("name", "") for c in _containers(spec) if _context(c).get("privileged") is True]
    if not bad:
        return None
    return "privileged", f"{_named(bad)} must not set securityContext.privileged=true"


def seccomp_baseline_annotations(metadata: dict[str, Any], spec: dict[str, Any]) -> Result:
    """Before v1.19: the seccomp annotations may only name runtime/default, docker/default or localhost/*."""
    annotations = metadata.get("annotations") or {}
    keys = [_SECCOMP_POD_ANNOTATION] + [_SECCOMP_CONTAINER_ANNOTATION + c.get("name", "") for c in _containers(spec)]
    forbidden = sorted(
        f'{key}="{annotations[key]}"'
        for key in set(keys)
        if key in annotations and not _valid_seccomp_annotation(annotations[key])
    )
    if not forbidden:
        return None
    noun = _pluralize("annotation", "annotations", len(forbidden))
    return "seccompProfile", f"forbidden {noun} {', '.join(forbidden)}"


def _valid_seccomp_annotation(value: str) -> bool:
    return value in ("runtime/default", "docker/default") or value.startswith("localhost/")


def seccomp_baseline(metadata: dict[str, Any], spec: dict[str, Any]) -> Result:
    bad_setters, bad_values, _ = _seccomp_setters(spec)
    if not bad_setters:
        return None
    return "seccompProfile", _bad_seccomp(bad_setters, bad_values)


def _bad_seccomp(bad_setters: list[str], bad_values: list[str]) -> str:
    return f"{' and '.join(bad_setters)} must not set securityContext.seccompProfile.type to {_join_quote(bad_values)}"


def _valid_seccomp(profile: dict[str, Any]) -> bool:
    return profile.get("type") in ("RuntimeDefault", "Localhost")


def _seccomp_setters(spec: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """Who sets a bad seccompProfile (the pod, containers), the bad types, and the containers left unconfined."""
    bad_setters: list[str] = []
    bad_values: set[str] = set()
    pod_profile = _pod_context(spec).get("seccompProfile")
    pod_set = False
    if pod_profile is not None:
        if _valid_seccomp(pod_profile):
            pod_set = True
        else:
            bad_setters.append("pod")
            bad_values.add(pod_profile.get("type") or "")
    explicit, implicit = [], []
    for container in _containers(spec):
        profile = _context(container).get("seccompProfile")
        if profile is not None:
            if not _valid_seccomp(profile):
                explicit.append(container.get("name", ""))
                bad_values.add(profile.get("type") or "")
        elif not pod_set:
            implicit.append(container.get("name", ""))
    if explicit:
        bad_setters.append(_named(explicit))
    return bad_setters, sorted(bad_values), implicit


# --- restricted ------------------------------------------------------------------------------


def allow_privilege_escalation(metadata: dict[str, Any], spec: dict[str, Any]) -> Result:
    bad = [c.get("name", "") for c in _containers(spec) if _context(c).get("allowPrivilegeEscalation") is not False]
    if not bad:
        return None
    return "allowPrivilegeEscalation != false", f"{_named(bad)} must set securityContext.allowPrivilegeEscalation=false"


def capabilities_restricted(metadata: dict[str, Any], spec: dict[str, Any]) -> Result:
    missing_drop, adding, added = [], [], set()
    for container in _containers(spec):
        capabilities = _context(container).get("capabilities")
        if capabilities is None:
            missing_drop.append(container.get("name", ""))
            continue
        if "ALL" not in (capabilities.get("drop") or []):
            missing_drop.append(container.get("name", ""))
        extra = [c for c in capabilities.get("add") or [] if c != "NET_BIND_SERVICE"]
        if extra:
            adding.append(container.get("name", ""))
            added.update(extra)
    details = []
    if missing_drop:
        details.append(f'{_named(missing_drop)} must set securityContext.capabilities.drop=["ALL"]')
    if adding:
        capabilities = _join_quote(sorted(added))
        details.append(f"{_named(adding)} must not include {capabilities} in securityContext.capabilities.add")
    return ("unrestricted capabilities", "; ".join(details)) if details else None


def restricted_volumes(metadata: dict[str, Any], spec: dict[str, Any]) -> Result:
    bad, kinds = [], set()
    for volume in spec.get("volumes") or []:
        if any(volume.get(source) is not None for source in _ALLOWED_VOLUMES):
            continue
        bad.append(volume.get("name", ""))
        kinds.add(next((source for source in _RESTRICTED_VOLUMES if volume.get(source) is not None), "unknown"))
    if not bad:
        return None
    detail = (
        f"{_pluralize('volume', 'volumes', len(bad))} {_join_quote(bad)} {_pluralize('uses', 'use', len(bad))} "
        f"{_pluralize('restricted volume type', 'restricted volume types', len(kinds))} {_join_quote(sorted(kinds))}"
    )
    return "restricted volume types", detail


def run_as_non_root(metadata: dict[str, Any], spec: dict[str, Any]) -> Result:
    bad_setters, explicit, implicit = [], [], []
    pod_value = _pod_context(spec).get("runAsNonRoot")
    if pod_value is False:
        bad_setters.append("pod")
    for container in _containers(spec):
        value = _context(container).get("runAsNonRoot")
        if value is False:
            explicit.append(container.get("name", ""))
        elif value is None and pod_value is not True:
            implicit.append(container.get("name", ""))
    if explicit:
        bad_setters.append(_named(explicit))
    if bad_setters:
        return "runAsNonRoot != true", f"{' and '.join(bad_setters)} must not set securityContext.runAsNonRoot=false"
    if implicit:
        return "runAsNonRoot != true", f"pod or {_named(implicit)} must set securityContext.runAsNonRoot=true"
    return None


def run_as_user(metadata: dict[str, Any], spec: dict[str, Any]) -> Result:
    bad_setters = ["pod"] if _pod_context(spec).get("runAsUser") == 0 else []
    explicit = [c.get("name", "") for c in _containers(spec) if _context(c).get("runAsUser") == 0]
    if explicit:
        bad_setters.append(_named(explicit))
    if not bad_setters:
        return None
    return "runAsUser=0", f"{' and '.join(bad_setters)} must not set runAsUser=0"


def seccomp_restricted(metadata: dict[str, Any], spec: dict[str, Any]) -> Result:
    bad_setters, bad_values, implicit = _seccomp_setters(spec)
    if bad_setters:
        return "seccompProfile", _bad_seccomp(bad_setters, bad_values)
    if implicit:
        allowed = '"RuntimeDefault" or "Localhost"'
        return "seccompProfile", f"pod or {_named(implicit)} must set securityContext.seccompProfile.type to {allowed}"
    return None


CHECKS = (
    Check("capabilities_baseline", "baseline", 0, capabilities_baseline),
    Check("hostNamespaces", "baseline", 0, host_namespaces),
    Check("hostPathVolumes", "baseline", 0, host_path_volumes),
    Check("hostPorts", "baseline", 0, host_ports),
    Check("privileged", "baseline", 0, privileged),
    Check("seccompProfile_baseline", "baseline", 0, seccomp_baseline_annotations, until=18),
    Check("seccompProfile_baseline", "baseline", 19, seccomp_baseline),
    Check("allowPrivilegeEscalation", "restricted", 8, allow_privilege_escalation),
    Check("capabilities_restricted", "restricted", 22, capabilities_restricted, overrides=("capabilities_baseline",)),
    Check("restrictedVolumes", "restricted", 0, restricted_volumes, overrides=("hostPathVolumes",)),
    Check("runAsNonRoot", "restricted", 0, run_as_non_root),
    Check("runAsUser", "restricted", 23, run_as_user),
    Check("seccompProfile_restricted", "restricted", 19, seccomp_restricted, overrides=("seccompProfile_baseline",)),
)

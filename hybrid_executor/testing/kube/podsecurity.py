"""The PodSecurity admission: a namespace's ``pod-security.kubernetes.io/*`` labels, and a new pod's 403.

``pod-security.kubernetes.io/enforce`` names the level (``privileged``, the default; ``baseline``;
``restricted``), ``pod-security.kubernetes.io/enforce-version`` the policy version (``latest``,
the default, or ``v1.N``). A pod that breaks the level's checks at that version is refused:
``violates PodSecurity "restricted:latest": host namespaces (hostNetwork=true), ...``, the
checks in upstream's order (the baseline ones by ID, then the restricted ones by ID, a restricted
check standing in for the baseline check it overrides). A namespace created with a label value
that does not parse is refused (422), as the admission's namespace validation does.
"""

from __future__ import annotations

import re
from typing import Any

from hybrid_executor.testing.kube.errors import FieldError, forbidden
from hybrid_executor.testing.kube.podsecuritychecks import CHECKS, Check

PREFIX = "pod-security.kubernetes.io/"
ENFORCE = PREFIX + "enforce"
ENFORCE_VERSION = PREFIX + "enforce-version"
LEVELS = ("privileged", "baseline", "restricted")
_MODES = ("enforce", "audit", "warn")
_VERSION = re.compile(r"v1\.(0|[1-9][0-9]*)")
LATEST = 10**6  # "latest" is newer than every version


def parse_level(value: str) -> tuple[str, str | None]:
    """ParseLevel: the level, or ``restricted`` and the error for a value that is none of them."""
    if value in LEVELS:
        return value, None
    return "restricted", f"must be one of {', '.join(LEVELS)}"


def parse_version(value: str) -> tuple[int, str | None]:
    """ParseVersion: the minor version (``LATEST`` for "latest"), or latest and the error."""
    if value == "latest":
        return LATEST, None
    match = _VERSION.fullmatch(value)
    if match is None:
        return LATEST, 'must be "latest" or "v1.x"'
    return int(match.group(1)), None


def label_errors(labels: dict[str, str]) -> list[FieldError]:
    """The PodSecurity labels that do not parse (PolicyToEvaluate's errors), in the order it reads them."""
    errors = []
    for mode in _MODES:
        for key, parse in ((PREFIX + mode, parse_level), (f"{PREFIX}{mode}-version", parse_version)):
            if key in labels:
                problem = parse(labels[key])[1]
                if problem:
                    errors.append(FieldError("Invalid", f"metadata.labels[{key}]", labels[key], problem))
    return errors


def check_namespace_labels(old: dict[str, Any] | None, new: dict[str, Any]) -> list[FieldError]:
    """ValidateNamespace: labels that do not parse refuse a create, and an update that changes what is wrong."""
    errors = label_errors((new.get("metadata") or {}).get("labels") or {})
    if old is not None and errors:
        before = label_errors((old.get("metadata") or {}).get("labels") or {})
        if before and [str(e) for e in before] == [str(e) for e in errors]:
            return []
    return errors


def check_pod(namespace: dict[str, Any] | None, pod: dict[str, Any]) -> None:
    """The enforce mode of the PodSecurity admission for a new pod in ``namespace`` (raises its 403)."""
    labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    level = parse_level(labels[ENFORCE])[0] if ENFORCE in labels else "privileged"
    version_label = labels.get(ENFORCE_VERSION, "latest")
    version, problem = parse_version(version_label)
    if problem:
        version_label = "latest"
    if level == "privileged":
        return
    violations = evaluate(level, version, pod.get("metadata") or {}, pod.get("spec") or {})
    if violations:
        detail = ", ".join(f"{reason} ({why})" if why else reason for reason, why in violations)
        name = pod["metadata"].get("name", "")
        raise forbidden("pods", name, f'violates PodSecurity "{level}:{version_label}": {detail}')


def evaluate(level: str, version: int, metadata: dict[str, Any], spec: dict[str, Any]) -> list[tuple[str, str]]:
    """What the checks of ``level`` at policy ``version`` forbid, in the evaluator's order."""
    results = []
    for check in checks_for(level, version):
        result = check.check(metadata, spec)
        if result is not None:
            results.append(result)
    return results


def checks_for(level: str, version: int) -> list[Check]:
    """The checks that apply: baseline ones by ID, then restricted ones by ID, minus the baseline ones overridden."""
    applying = [c for c in CHECKS if c.since <= version and (c.until is None or version <= c.until)]
    baseline = sorted((c for c in applying if c.level == "baseline"), key=lambda c: c.id)
    if level == "baseline":
        return baseline
    restricted = sorted((c for c in applying if c.level == "restricted"), key=lambda c: c.id)
    overridden = {name for c in restricted for name in c.overrides}
    return [c for c in baseline if c.id not in overridden] + restricted

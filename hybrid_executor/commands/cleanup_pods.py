"""``airflow hybrid cleanup-pods``: delete the finished worker pods this executor left behind.

Only pods labelled ``app.kubernetes.io/managed-by=hybrid-executor`` and with this deployment's
``hybrid-executor/deployment`` label (see :mod:`hybrid_executor.kubernetes.deployment`), in the
namespaces the settings send pods to, whose phase is Succeeded or Failed, and that finished at
least ``--older-than`` ago (default 1h: a scheduler that was down may still have to read a recent
pod's outcome). Pending and running pods are never touched: the executor deletes a pod stuck
Pending itself. Another deployment's pods sharing the namespace are never touched either; pods
without a deployment label (made by versions before it) only with ``--include-unlabelled``.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from hybrid_executor.commands.common import CommandError, kube_api, parse_duration, settings

if TYPE_CHECKING:
    import argparse

    from hybrid_executor.kubernetes.api import KubeApi

FINISHED = ("Succeeded", "Failed")


@dataclass(frozen=True)
class FinishedPod:
    namespace: str
    name: str
    phase: str
    finished_at: datetime


def finished_pods(
    api: KubeApi, namespaces: list[str | None], deployment_id: str, *, include_unlabelled: bool = False
) -> tuple[list[FinishedPod], int]:
    """This deployment's finished pods in these namespaces (None: in all), and how many of its pods are not finished."""
    from hybrid_executor.kubernetes.pods import LABEL_DEPLOYMENT, LABEL_MANAGED_BY, MANAGED_BY

    # "!key" selects the pods without the label; one selector cannot say "this value or none".
    selectors = [f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_DEPLOYMENT}={deployment_id}"]
    if include_unlabelled:
        selectors.append(f"{LABEL_MANAGED_BY}={MANAGED_BY},!{LABEL_DEPLOYMENT}")
    finished, unfinished = [], 0
    for namespace in namespaces:
        for pod in (pod for selector in selectors for pod in api.list_pods(namespace, selector)):
            phase = (pod.get("status") or {}).get("phase", "")
            if phase in FINISHED:
                where = pod["metadata"].get("namespace") or namespace or ""
                finished.append(FinishedPod(where, pod["metadata"]["name"], phase, _finished_at(pod)))
            else:
                unfinished += 1
    return finished, unfinished


def _finished_at(pod: dict[str, Any]) -> datetime:
    """When the pod's last container ended; its creation if no container says."""
    status = pod.get("status") or {}
    ends = [
        statuses["state"]["terminated"]["finishedAt"]
        for statuses in [*(status.get("containerStatuses") or []), *(status.get("initContainerStatuses") or [])]
        if ((statuses.get("state") or {}).get("terminated") or {}).get("finishedAt")
    ]
    stamp = max(ends) if ends else pod["metadata"]["creationTimestamp"]
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def cleanup(
    older_than: str, *, dry_run: bool, include_unlabelled: bool = False, now: datetime | None = None
) -> list[str]:
    """Delete (or with ``dry_run`` only list) our old finished pods; the lines to print."""
    from hybrid_executor.kubernetes.deployment import resolve_deployment_id

    min_age = parse_duration(older_than, "--older-than")
    current = settings()
    api = kube_api(current)
    now = now or datetime.now(timezone.utc)
    namespaces = current.kubernetes.watch_scopes()
    deployment_id = resolve_deployment_id(current.kubernetes.deployment_id)
    pods, unfinished = finished_pods(api, namespaces, deployment_id, include_unlabelled=include_unlabelled)
    old = [pod for pod in pods if (now - pod.finished_at).total_seconds() >= min_age]
    lines = []
    deleted: Counter[str] = Counter()
    for pod in old:
        age = _age(now - pod.finished_at)
        if dry_run:
            lines.append(f"would delete {pod.namespace}/{pod.name} ({pod.phase} {age} ago)")
            deleted[pod.phase] += 1
        elif api.delete_pod(pod.namespace, pod.name):
            lines.append(f"deleted {pod.namespace}/{pod.name} ({pod.phase} {age} ago)")
            deleted[pod.phase] += 1
    verb = "Would delete" if dry_run else "Deleted"
    phases = ", ".join(f"{count} {phase}" for phase, count in sorted(deleted.items())) or "none"
    kept = len(pods) - len(old)
    where = ", ".join(namespace or "all namespaces" for namespace in namespaces)
    whose = f"deployment {deployment_id}" + (" and unlabelled" if include_unlabelled else "")
    lines.append(
        f"{verb} {sum(deleted.values())} finished pods ({phases}) of {whose} in {where}; "
        f"kept {kept} finished less than {older_than} ago and {unfinished} not finished."
    )
    return lines


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def cleanup_pods(args: argparse.Namespace) -> None:
    from hybrid_executor.kubernetes.errors import KubeApiError
    from hybrid_executor.settings import SettingsError

    try:
        lines = cleanup(args.older_than, dry_run=args.dry_run, include_unlabelled=args.include_unlabelled)
    except (CommandError, SettingsError, KubeApiError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    for line in lines:
        print(line)

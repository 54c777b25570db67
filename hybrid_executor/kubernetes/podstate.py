"""What a worker pod's state means for its task: pure functions over the API's raw pod JSON."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

from hybrid_executor.kubernetes.identity import WORKER_CONTAINER
from hybrid_executor.options import STOCK_FATAL_REASONS

# The stock default of worker_pod_pending_fatal_container_state_reasons: waiting reasons of a
# pending pod's init or worker container that fail its task at once, rather than when the
# scheduler's task_queued_timeout (or [hybrid_executor] worker_pods_pending_timeout) runs out.
FATAL_WAITING_REASONS = STOCK_FATAL_REASONS
# The kubelet's own pull throttle (--registry-qps): the next pull attempt may well succeed.
_THROTTLED_PULL = ("ErrImagePull", "pull QPS exceeded")

# status.reason of a pod its node's provider could not start (virtual kubelets): it never will.
FATAL_POD_REASONS = frozenset({"ProviderFailed"})

State = Literal["pending", "running", "unknown", "success", "failed"]


@dataclass(frozen=True)
class PodOutcome:
    state: State
    message: str = ""
    fatal: bool = False  # with "pending": fail now, do not wait for the pending timeout
    gone: bool = False  # the pod no longer exists: nothing to delete
    # Of a failed pod (or a fatal pending one): its container's reason, as the stock executor reads it
    # for pod_launch_failure_excluded_container_reasons (see container_reason).
    reason: str | None = None


def outcome_of(
    event_type: str, pod: dict[str, Any], fatal_reasons: Collection[str] = FATAL_WAITING_REASONS
) -> PodOutcome:
    """What ``pod`` (raw JSON, from an event of ``event_type``) means for its task.

    A pending pod whose init or worker container waits for one of ``fatal_reasons`` is fatal
    (fail now), as the stock executor reads its worker_pod_pending_fatal_container_state_reasons.
    """
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    where = _where(pod)
    if phase == "Succeeded":
        return PodOutcome("success", f"pod {where} succeeded", gone=event_type == "DELETED")
    if phase == "Failed":
        reason = container_reason(status)
        if (disruption := _disruption(status)) is not None:
            return PodOutcome(
                "failed",
                f"pod {where} was {disruption} while its task was running: the task did not finish",
                gone=event_type == "DELETED",
                reason=reason,
            )
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            # Deleted by someone else (we delete only what has finished, and no longer follow it):
            # the kubelet stopped the containers, so their exit codes (143, 137) are not the story.
            return PodOutcome(
                "failed",
                f"pod {where} was deleted while its task was running: the task did not finish "
                f"({_failure_detail(status)})",
                gone=event_type == "DELETED",
                reason=reason,
            )
        return PodOutcome(
            "failed", f"pod {where} failed: {_failure_detail(status)}", gone=event_type == "DELETED", reason=reason
        )
    if event_type == "DELETED":
        how = _disruption(status) or "deleted"
        return PodOutcome(
            "failed",
            f"pod {where} was {how} while its task was {phase.lower()}: the task did not finish",
            gone=True,
            reason=container_reason(status),
        )
    if phase == "Running":
        return PodOutcome("running")
    if phase == "Unknown":
        # The node stopped reporting (lost, or cut off): the task may still run there. Its own
        # heartbeat to Airflow decides: the scheduler fails a task whose heartbeats stopped.
        return PodOutcome("unknown", f"pod {where} is in phase Unknown: its node does not report on it (node lost?)")
    if status.get("reason") in FATAL_POD_REASONS:
        detail = f"{status['reason']}: {status.get('message', '')}".rstrip(": ")
        return PodOutcome("pending", f"pod {where} cannot start: {detail}", fatal=True, reason=status["reason"])
    waiting = _waiting_reasons(status, worker_only=True)
    fatal = [
        (reason, message)
        for reason, message in waiting
        if reason in fatal_reasons and (reason, message) != _THROTTLED_PULL
    ]
    if fatal:
        reason, message = fatal[0]
        return PodOutcome(
            "pending", f"pod {where} cannot start: {reason}: {message}".rstrip(": "), fatal=True, reason=reason
        )
    return PodOutcome("pending", pending_detail(status))


def container_reason(status: dict[str, Any]) -> str | None:
    """The reason of the container that ended the pod, as the stock executor's failure details give it.

    The first init container that terminated with a non-zero exit code (reason other than
    Completed), else the last one waiting; else the same of the other containers. None when no
    container says (an eviction before any started).
    """
    for containers in (status.get("initContainerStatuses"), status.get("containerStatuses")):
        waiting = None
        for container in containers or []:
            state = container.get("state") or {}
            if terminated := state.get("terminated"):
                if terminated.get("exitCode", 0) != 0 and terminated.get("reason") != "Completed":
                    return str(terminated["reason"]) if terminated.get("reason") else None
            elif state.get("waiting"):
                waiting = state["waiting"].get("reason")
        if waiting is not None:
            return str(waiting)
    return None


def pending_detail(status: dict[str, Any]) -> str:
    """Why a pod is still Pending, in the API's own words (waiting reason, or the scheduler's)."""
    for reason, message in _waiting_reasons(status):
        if reason != "ContainerCreating":
            return f"{reason}: {message}".rstrip(": ")
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"{condition.get('reason', 'Unschedulable')}: {condition.get('message', '')}".rstrip(": ")
    return "waiting to start"


def _waiting_reasons(status: dict[str, Any], *, worker_only: bool = False) -> list[tuple[str, str]]:
    """(reason, message) of each waiting container; ``worker_only``: of the init containers and the worker.

    The worker is the container named ``base``, else the first one: a sidecar's state is not the task's.
    """
    containers = status.get("containerStatuses") or []
    if worker_only:
        containers = [c for c in containers if c.get("name") == WORKER_CONTAINER] or containers[:1]
    found = []
    for container in (status.get("initContainerStatuses") or []) + containers:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            found.append((str(waiting["reason"]), str(waiting.get("message") or "")))
    return found


def _disruption(status: dict[str, Any]) -> str | None:
    """How the pod was taken away, when Kubernetes says so: evicted, preempted, or the node's taint."""
    for condition in status.get("conditions") or []:
        if condition.get("type") == "DisruptionTarget" and condition.get("status") == "True":
            reason = str(condition.get("reason") or "")
            how = {
                "EvictionByEvictionAPI": "evicted",
                "PreemptionByScheduler": "preempted",
                "DeletionByTaintManager": "deleted by a NoExecute taint on its node",
                "TerminationByKubelet": "terminated by its node",
                "DeletionByPodGC": "deleted by the pod garbage collector (its node is gone)",
            }.get(reason, "disrupted")
            return f"{how} ({reason}: {condition.get('message', '')})".replace(": )", ")")
    if status.get("reason") == "Evicted":
        return f"evicted by its node (Evicted: {status.get('message', '')})".replace(": )", ")")
    return None


def _failure_detail(status: dict[str, Any]) -> str:
    parts = []
    if status.get("reason"):  # e.g. Evicted, DeadlineExceeded: the whole pod's reason
        parts.append(f"{status['reason']}: {status.get('message', '')}".rstrip(": "))
    for container in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        terminated = (container.get("state") or {}).get("terminated")
        if terminated and terminated.get("exitCode", 0) != 0:
            detail = f"container {container.get('name')} ended with exit code {terminated.get('exitCode')}"
            if terminated.get("reason"):
                detail += f" ({terminated['reason']})"
            if terminated.get("message"):
                detail += f": {terminated['message']}"
            parts.append(detail)
    return "; ".join(parts) or "no container reported a reason"


def _where(pod: dict[str, Any]) -> str:
    metadata = pod.get("metadata") or {}
    return f"{metadata.get('namespace', '?')}/{metadata.get('name', '?')}"

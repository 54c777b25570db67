"""What a node reports about a pod, written into the pod dict as a real kubelet writes it.

The kubelet decides when each step happens; these functions say what the pod then shows:
initContainerStatuses and containerStatuses (waiting, running, terminated with exit code and
reason), conditions, hostIP/podIP, startTime and phase. A SIGKILL that no deletion sent is
reported as OOMKilled (there are no cgroups here to tell). The phases a pod ends in live here
too, as the API's own rules (graceful delete, quota) read them.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from typing import Any

from hybrid_executor.testing.kube.store import now_rfc3339

TERMINAL_PHASES = ("Succeeded", "Failed")
_UNSCHEDULABLE = (
    "0/1 nodes are available: 1 Too many pods. preemption: 0/1 nodes are available: "
    "1 No preemption victims found for incoming pod."
)

# What a container ended with: exit code, startedAt, finishedAt, and a message when it could not start.
ContainerResult = tuple[int, str, str, str]


def mark_unschedulable(pod: dict[str, Any]) -> None:
    _set_conditions(pod, _condition("PodScheduled", "False", "Unschedulable", _UNSCHEDULABLE))


def bind_to_node(pod: dict[str, Any], node: str, ip: str) -> None:
    pod["spec"]["nodeName"] = node
    status = pod["status"]
    status.update(
        {
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": now_rfc3339(),
        }
    )
    init_containers = pod["spec"].get("initContainers") or []
    # The kubelet's default waiting reason: PodInitializing while a pod has init containers to run.
    waiting = {"waiting": {"reason": "PodInitializing" if init_containers else "ContainerCreating"}}
    if init_containers:
        status["initContainerStatuses"] = [_container_status(c, copy.deepcopy(waiting)) for c in init_containers]
    status["containerStatuses"] = [_container_status(c, copy.deepcopy(waiting)) for c in pod["spec"]["containers"]]
    unready = f"containers with unready status: [{_names(pod['spec']['containers'])}]"
    _set_conditions(
        pod,
        _condition("PodReadyToStartContainers", "False"),
        _condition("Initialized", "False", "ContainersNotInitialized", _incomplete(init_containers))
        if init_containers
        else _condition("Initialized", "True"),
        _condition("Ready", "False", "ContainersNotReady", unready),
        _condition("ContainersReady", "False", "ContainersNotReady", unready),
        _condition("PodScheduled", "True"),
    )


def container_waiting(name: str, reason: str, message: str) -> Callable[[dict[str, Any]], None]:
    """A write (not the writing) of one container's waiting reason: the kubelet applies it to the newest pod."""

    def mutate(pod: dict[str, Any]) -> None:
        for status in _statuses(pod):
            if status["name"] == name:
                status["state"] = {"waiting": {"reason": reason, "message": message}}

    return mutate


def init_container_running(pod: dict[str, Any], name: str, started: str) -> None:
    for status in pod["status"].get("initContainerStatuses") or []:
        if status["name"] == name:
            status.update(
                {
                    "state": {"running": {"startedAt": started}},
                    "started": True,
                    "containerID": _container_id(),
                }
            )
    _set_conditions(pod, _condition("PodReadyToStartContainers", "True"))


def init_container_ended(pod: dict[str, Any], name: str, result: ContainerResult, killed: bool) -> None:
    """An init container's end: the next step may go on, or (it failed: restarts are not reproduced) the pod fails."""
    init_containers = pod["spec"].get("initContainers") or []
    statuses = pod["status"].get("initContainerStatuses") or []
    for status in statuses:
        if status["name"] == name:
            _terminated(status, result, killed)
            status["ready"] = result[0] == 0 and not result[3]
    done = {s["name"] for s in statuses if s.get("ready")}
    incomplete = [c for c in init_containers if c["name"] not in done]
    if not incomplete:
        _set_conditions(pod, _condition("Initialized", "True"))
        return
    _set_conditions(pod, _condition("Initialized", "False", "ContainersNotInitialized", _incomplete(incomplete)))
    if result[0] != 0 or result[3]:
        pod["status"]["phase"] = "Failed"
        _set_conditions(
            pod,
            _condition("PodReadyToStartContainers", "False"),
            _condition("Ready", "False", "PodCompleted"),
            _condition("ContainersReady", "False", "PodCompleted"),
        )


def containers_started(pod: dict[str, Any], started: str, running: set[str], ended: dict[str, ContainerResult]) -> None:
    if pod["status"].get("phase") in TERMINAL_PHASES or not running:
        return
    pod["status"]["phase"] = "Running"
    for status in pod["status"].get("containerStatuses") or []:
        if status["name"] in running:
            status.update(
                {
                    "state": {"running": {"startedAt": started}},
                    "ready": True,
                    "started": True,
                    "containerID": _container_id(),
                }
            )
        elif status["name"] in ended:
            _terminated(status, ended[status["name"]], False)
    _set_conditions(pod, _condition("PodReadyToStartContainers", "True"))
    _readiness(pod)


def container_ended(pod: dict[str, Any], name: str, result: ContainerResult, killed: bool) -> None:
    for status in pod["status"].get("containerStatuses") or []:
        if status["name"] == name:
            _terminated(status, result, killed)
    _readiness(pod)


def pod_finished(pod: dict[str, Any], results: dict[str, ContainerResult], killed: bool) -> None:
    failed = False
    for status in pod["status"].get("containerStatuses") or []:
        result = results.get(status["name"])
        if result is None:
            continue
        _terminated(status, result, killed)
        failed = failed or result[0] != 0 or bool(result[3])
    pod["status"]["phase"] = "Failed" if failed else "Succeeded"
    _set_conditions(
        pod,
        _condition("PodReadyToStartContainers", "False"),
        _condition("Ready", "False", "PodCompleted"),
        _condition("ContainersReady", "False", "PodCompleted"),
    )


def _container_id() -> str:
    return f"containerd://{uuid.uuid4().hex}{uuid.uuid4().hex}"  # 64 hex digits, as containerd's


def _condition(kind: str, status: str, reason: str = "", message: str = "") -> dict[str, Any]:
    condition: dict[str, Any] = {
        "type": kind,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": now_rfc3339(),
    }
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def _set_conditions(pod: dict[str, Any], *conditions: dict[str, Any]) -> None:
    current = {c["type"]: c for c in pod["status"].get("conditions") or []}
    for condition in conditions:
        old = current.get(condition["type"])
        if old and old["status"] == condition["status"]:
            condition["lastTransitionTime"] = old["lastTransitionTime"]
        current[condition["type"]] = condition
    order = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
    pod["status"]["conditions"] = sorted(
        current.values(), key=lambda c: order.index(c["type"]) if c["type"] in order else 99
    )


def _names(containers: list[dict[str, Any]]) -> str:
    return " ".join(c["name"] for c in containers)


def _incomplete(containers: list[dict[str, Any]]) -> str:
    return f"containers with incomplete status: [{_names(containers)}]"


def _container_status(container: dict[str, Any], state: dict[str, Any], **extra: Any) -> dict[str, Any]:
    status = {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "started": False,
        "state": state,
        "lastState": {},
    }
    status.update(extra)
    return status


def _statuses(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return list(pod["status"].get("initContainerStatuses") or []) + list(pod["status"].get("containerStatuses") or [])


def _terminated(status: dict[str, Any], result: ContainerResult, killed: bool) -> None:
    """Write a container's end into its status: exit code, reason, times (StartError if it never started)."""
    code, started, finished, message = result
    container_id = status.get("containerID") or _container_id()
    if message:
        state = {
            "exitCode": code,
            "reason": "StartError",
            "message": message,
            "startedAt": "1970-01-01T00:00:00Z",  # what containerd reports for a task that never started
            "finishedAt": finished,
            "containerID": container_id,
        }
    else:
        # Exit 137 that no deletion caused stands for the OOM killer: locally, a SIGKILL from anywhere.
        reason = "Completed" if code == 0 else "OOMKilled" if code == 137 and not killed else "Error"
        state = {
            "exitCode": code,
            "reason": reason,
            "startedAt": started,
            "finishedAt": finished,
            "containerID": container_id,
        }
    status.update({"state": {"terminated": state}, "ready": False, "started": False, "containerID": container_id})


def _readiness(pod: dict[str, Any]) -> None:
    """Ready and ContainersReady from the containers' own ready flags."""
    containers = pod["spec"]["containers"]
    ready = {s["name"]: s.get("ready") for s in pod["status"].get("containerStatuses") or []}
    unready = [c for c in containers if not ready.get(c["name"])]
    if not unready:
        _set_conditions(pod, _condition("Ready", "True"), _condition("ContainersReady", "True"))
        return
    message = f"containers with unready status: [{_names(unready)}]"
    _set_conditions(
        pod,
        _condition("Ready", "False", "ContainersNotReady", message),
        _condition("ContainersReady", "False", "ContainersNotReady", message),
    )

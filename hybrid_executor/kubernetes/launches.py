"""What the pod launcher is asked (:class:`LaunchRequest`) and what it answers (:class:`LaunchResult`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from airflow.models.taskinstancekey import TaskInstanceKey
    from kubernetes.client import V1Pod

# A pod to create: its JSON body (what the executor's builder makes), or a model.
PodBody: TypeAlias = "Mapping[str, Any] | V1Pod"


@dataclass(frozen=True)
class LaunchRequest:
    """A pod to create for ``key``: the pod itself (JSON or a model), or how to build it.

    Building a worker pod (template, pod_override merge, mutation hook) is CPU work; a
    builder runs on a launcher thread so the scheduler's thread never pays it. A builder needs
    ``pod_name`` and ``namespace`` up front (the pod's name is derived from the task key and the
    queueing anyway). The launch is known by ``pod_name``.
    """

    key: TaskInstanceKey
    pod: PodBody | Callable[[], PodBody]  # with metadata.name and metadata.namespace set
    pod_name: str = ""
    namespace: str = ""
    # On the launcher's clock: no create is sent after it (the workload's token would expire before
    # the pod could run its task; see workload_token.launch_deadline).
    deadline: float | None = None
    # Asked before a retry, or a first attempt long after submit: False means the task moved on
    # (see staleness.still_queued), and nothing is created.
    still_wanted: Callable[[], bool] | None = None
    ask_first: bool = False  # ask still_wanted before the first attempt too, however fresh (a relaunch)
    queued_at: float | None = None  # time.monotonic() at queue_workload: the queued-to-created timer


@dataclass(frozen=True)
class LaunchResult:
    """How a launch ended.

    ``ok``: the pod exists (created, or it already existed: an earlier attempt of this launch).
    ``uid``: the uid of the pod this launch's last attempt created (None if it answered 409 or
    created nothing); a pod of this name with another uid is not the one this attempt made.
    ``cancelled``: :meth:`PodLauncher.cancel` (or ``stop``) came before the result. With ``ok``
    True the create was already on its way when the cancel came.
    ``error``: why it failed, with the API's own message, for the task's event log.
    ``attempts``: how many create requests were sent.
    """

    key: TaskInstanceKey
    ok: bool
    pod_name: str
    namespace: str
    error: str | None
    attempts: int
    cancelled: bool = False
    uid: str | None = None
    gave_up: bool = False  # retryable errors until the budget ran out: an attempt may have been stored
    stale: bool = False  # with cancelled: the task instance moved on (no longer queued for this queueing)


__all__ = ["LaunchRequest", "LaunchResult", "PodBody"]

"""The log of a running pod task, for Airflow's log view (``get_task_log``), read through the API.

Airflow asks the executor for a task's log while the task runs, in the api-server. The pod is
found by its labels (the stock executor's way: a pod's name is unique to one queueing and cannot be
derived from the try alone), in every namespace the executor watches (all of them, with one
cluster-wide list, in multi_namespace_mode without a list), so a ``pod_override`` that moved the
pod to another of them is honoured. Of several pods of the same try (a deferred task's
resumption, each poke of a reschedule-mode sensor) the one of the task instance's current
queueing is read (its last relaunch: see kubernetes.relaunch), else the newest: its last
``running_pod_log_lines`` lines.

The container read is ``base``, the worker container's stock name: a pod with sidecars (a service
mesh proxy, a log shipper) answers 400 "a container name must be specified" otherwise. Every
failure, a configuration error included, becomes a line in the log view, never an exception: the
log view must show why, and the logs of Celery tasks must never depend on the Kubernetes side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from hybrid_executor.kubernetes.errors import KubeApiError, redact
from hybrid_executor.kubernetes.identity import (
    WORKER_CONTAINER,
    newest_of_queueing,
    pod_selector_for_try,
    task_key_from_pod,
)

if TYPE_CHECKING:
    from airflow.models.taskinstance import TaskInstance

    from hybrid_executor.kubernetes.api import KubeApi
    from hybrid_executor.settings import KubernetesSettings


class _PodLogSource(Protocol):
    @property
    def settings(self) -> KubernetesSettings: ...
    @property
    def api(self) -> KubeApi: ...


def read_task_pod_log(
    source: _PodLogSource, ti: TaskInstance, try_number: int, *, tail_lines: int | None = None
) -> tuple[list[str], list[str]]:
    """``(sources, log lines)`` of the pod of ``ti``'s try ``try_number``, as ``get_task_log`` returns them.

    ``tail_lines``: the lines to read; None: the settings' running_pod_log_lines.
    """
    key = ti.key.with_try_number(try_number)
    try:
        settings = source.settings
        api = source.api
        scopes: list[str | None] = [settings.namespace_for(ti.queue), *settings.watch_scopes()]
        tail = tail_lines if tail_lines is not None else settings.running_pod_log_lines
    except Exception as error:  # a bad kubeconfig, a missing template, a wrong option: say so
        return [f"Cannot reach the Kubernetes API to read the pod's log: {_describe(error)}"], [""]
    selector = pod_selector_for_try(key)
    try:
        candidates: list[dict[str, Any]] = []
        for namespace in dict.fromkeys(scopes):  # the queue's namespace first, each once
            candidates.extend(pod for pod in api.list_pods(namespace, selector) if task_key_from_pod(pod) == key)
            if candidates:
                break
        if not candidates:
            where = ", ".join(scope or "all namespaces" for scope in dict.fromkeys(scopes))
            return [f"No pod of this try was found in namespace(s) {where} (it may have been deleted)"], [""]
        pod = _pick(candidates, getattr(ti, "external_executor_id", None) if ti.try_number == try_number else None)
        metadata = pod["metadata"]
        container = _log_container(pod)
        text = api.read_pod_log(metadata["namespace"], metadata["name"], tail_lines=tail, container=container)
    except KubeApiError as error:
        return [f"Reading the log of the pod of this try failed: {error}"], [""]
    except Exception as error:
        return [f"Reading the log of the pod of this try failed: {_describe(error)}"], [""]
    where = f"{metadata['namespace']}/{metadata['name']}"
    return [f"Found the log of pod {where} (container {container}) through the Kubernetes API"], [text]


def _pick(pods: list[dict[str, Any]], queueing: str | None) -> dict[str, Any]:
    if queueing and (newest := newest_of_queueing(pods, queueing)) is not None:
        return dict(newest)  # a relaunched pod's, not the failed one's before it
    # RFC 3339 timestamps in UTC sort as text; the name breaks ties so the choice is stable.
    return max(pods, key=lambda pod: (pod["metadata"].get("creationTimestamp") or "", pod["metadata"]["name"]))


def _log_container(pod: dict[str, Any]) -> str:
    names = [c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or []]
    if WORKER_CONTAINER in names or not names:
        return WORKER_CONTAINER
    return str(names[0])


def _describe(error: BaseException) -> str:
    return redact(f"{type(error).__name__}: {error}")[:1000]


__all__ = ["read_task_pod_log"]

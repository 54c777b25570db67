"""Adoption: taking over the pods of a dead scheduler's tasks, one paginated LIST per namespace.

A pod is adopted for a task instance only if it was made for that task instance's current
queueing: its annotations hold the key and the ``external_executor_id`` the scheduler stored when
it queued the task. So a pod of an older queueing of the same try (a finished poke of a
reschedule-mode sensor) is never taken for the new one, nor a pod of another Airflow deployment
that shares the namespace and runs the same DAGs (its ids differ). A pod made before pods carried
the id is matched on its key alone.

An adopted pod is relabelled with the adopting scheduler's job, so that scheduler's watch starts
to match it and reports its current state, finished or not: a pod that ended while no scheduler
ran is picked up the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hybrid_executor.kubernetes.errors import KubeApiError
from hybrid_executor.kubernetes.identity import (
    queueing_of_pod,
    scheduler_job_labels,
    selector_for_scheduler,
    task_key_from_pod,
)

if TYPE_CHECKING:
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancekey import TaskInstanceKey

    from hybrid_executor.kubernetes.api import KubeApi

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdoptedPod:
    key: TaskInstanceKey
    namespace: str
    name: str
    queueing: str
    uid: str | None


def adopt_pods(
    api: KubeApi, namespaces: Sequence[str], job_id: str, tis: Sequence[TaskInstance]
) -> tuple[list[AdoptedPod], list[TaskInstance]]:
    """Relabel the pod of each of ``tis`` as job ``job_id``'s: (pods adopted, task instances not adopted)."""
    wanted = {ti.key: ti for ti in tis}
    selector = selector_for_scheduler(exclude_job_id=job_id)
    found: dict[TaskInstanceKey, dict[str, Any]] = {}
    for namespace in namespaces:
        for listed in _list_all(api, namespace, selector):
            key = task_key_from_pod(listed)
            ti = wanted.get(key) if key is not None else None
            if ti is not None and made_for(listed, ti):
                found[ti.key] = listed
    adopted: list[AdoptedPod] = []
    not_adopted: list[TaskInstance] = []
    for key, ti in wanted.items():
        match = found.get(key)
        if match is None:
            not_adopted.append(ti)
            continue
        metadata = match["metadata"]
        try:
            api.patch_pod_labels(metadata["namespace"], metadata["name"], scheduler_job_labels(job_id))
        except KubeApiError as error:
            log.warning("Could not adopt pod %s/%s: %s", metadata["namespace"], metadata["name"], error)
            not_adopted.append(ti)
            continue
        uid = metadata.get("uid")
        adopted.append(AdoptedPod(key, metadata["namespace"], metadata["name"], queueing_of_pod(match), uid))
    return adopted, not_adopted


def made_for(pod: dict[str, Any], ti: TaskInstance) -> bool:
    """Whether ``pod`` was made for ``ti``'s current queueing."""
    queueing = queueing_of_pod(pod)
    if not queueing:
        return True  # made before pods carried the queueing: the key is all there is
    return queueing == (ti.external_executor_id or "")


def _list_all(api: KubeApi, namespace: str, selector: str) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = []
    continue_token: str | None = None
    while True:
        page = api.list_pods_page(namespace, selector, continue_token)
        pods.extend(page.items)
        continue_token = page.continue_token
        if not continue_token:
            return pods


__all__ = ["AdoptedPod", "adopt_pods", "made_for"]

"""Adoption: taking over the pods of a dead scheduler's tasks, one paginated LIST per namespace.

A pod is adopted for a task instance only if it was made for that task instance's current
queueing: its annotations hold the key and the ``external_executor_id`` the scheduler stored when
it queued the task. So a pod of an older queueing of the same try (a finished poke of a
reschedule-mode sensor) is never taken for the new one, nor a pod of another Airflow deployment
that shares the namespace and runs the same DAGs (its ids differ). A pod made before pods carried
the id is matched on its key alone. Of a queueing's pods, the last relaunch is adopted (see
:mod:`hybrid_executor.kubernetes.relaunch`); the failed ones before it stay under the dead job's
label, and the orphaned-pod cleanup deletes them by policy once the task instance has ended.

An adopted pod is relabelled with the adopting scheduler's job, so that scheduler's watch starts
to match it and reports its current state, finished or not: a pod that ended while no scheduler
ran is picked up the same way. The relabel also sets this deployment's label (a pod made before
pods carried one becomes this deployment's). LISTs and relabels are retried on retryable errors
within a short budget (this runs on the scheduler's thread), relabels run concurrently, and nothing
here raises for the API. A task instance whose pod is in no namespace that could be listed is "not
adopted"; one that may have a pod in a namespace that could not be listed is "unlisted": the
executor keeps it and lists again later (see :mod:`hybrid_executor.kubernetes.readoption`).

A pod whose relabel still fails is deleted (``abandon``, with its uid as the precondition) and its
task instance is "not adopted": the scheduler resets it and starts a new try, which must not run
beside the old pod; nor may the old pod go on under a dead scheduler's label, which no watch
follows (or under this scheduler's, if a relabel whose answer was lost did apply).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from hybrid_executor.kubernetes.errors import ApiErrorKind, KubeApiError, is_retryable
from hybrid_executor.kubernetes.identity import (
    LABEL_SCHEDULER_JOB,
    queueing_of_pod,
    relaunch_of_pod,
    scheduler_job_labels,
    selector_for_scheduler,
    task_key_from_pod,
)
from hybrid_executor.kubernetes.pacing import wait_retry_after

if TYPE_CHECKING:
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancekey import TaskInstanceKey

    from hybrid_executor.kubernetes.api import KubeApi

log = logging.getLogger(__name__)

RETRY_BUDGET = 15.0  # seconds a LIST or a relabel is retried for
RELABEL_CONCURRENCY = 16  # relabels at once: thousands of pods are adopted in seconds, not one PATCH after another


@dataclass(frozen=True)
class AdoptionResult:
    adopted: list[AdoptedPod]
    not_adopted: list[TaskInstance]  # no pod in any namespace, or its relabel failed
    unlisted: list[TaskInstance]  # no pod found, but a namespace could not be listed: it may be there
    # Of not_adopted, those whose pod was found but could not be relabelled (and was handed to abandon).
    unrelabelled: frozenset[TaskInstanceKey] = frozenset()


@dataclass(frozen=True)
class AdoptedPod:
    key: TaskInstanceKey
    namespace: str
    name: str
    queueing: str
    uid: str | None
    # The pod as the relabel answered: its first state for this executor. The watch's own event of
    # the pod entering its selector may be handled before the pod is followed (readoption hands its
    # pods over from a thread), and a finished pod sends no other.
    pod: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


Abandon = Callable[[str, str, "str | None"], None]  # namespace, name, uid: delete that pod


def adopt_pods(
    api: KubeApi,
    namespaces: Sequence[str | None],
    job_id: str,
    tis: Sequence[TaskInstance],
    *,
    deployment_id: str | None = None,
    abandon: Abandon | None = None,
) -> AdoptionResult:
    """Relabel the pod of each of ``tis`` as job ``job_id``'s (and deployment ``deployment_id``'s).

    ``namespaces``: where to look; None is every namespace (one cluster-wide list). Never raises
    for the API: when a namespace cannot be listed within the retry budget, the task instances not
    found elsewhere are returned as unlisted, and the scheduler goes on. A pod found but not
    relabelled is handed to ``abandon``.
    """
    wanted = {ti.key: ti for ti in tis}
    selector = selector_for_scheduler(exclude_job_id=job_id)
    found: dict[TaskInstanceKey, dict[str, Any]] = {}
    unlisted_namespaces = []
    for namespace in namespaces:
        try:
            listed_pods = _retrying()(api.list_pods, namespace, selector)
        except KubeApiError as error:
            log.error(
                "Could not list pods in %s to adopt them (%s): their task instances are kept, and listed again later",
                namespace or "all namespaces",
                error,
            )
            unlisted_namespaces.append(namespace)
            continue
        for listed in listed_pods:
            key = task_key_from_pod(listed)
            ti = wanted.get(key) if key is not None else None
            # A relaunched pod and the failed ones before it share the queueing: the last relaunch is the task's.
            if ti is None or not made_for(listed, ti):
                continue
            if relaunch_of_pod(listed) >= relaunch_of_pod(found.get(ti.key)):
                found[ti.key] = listed
    matches = [(ti, found[key]) for key, ti in wanted.items() if key in found]
    with ThreadPoolExecutor(max_workers=RELABEL_CONCURRENCY, thread_name_prefix="pod-adopter") as pool:
        labels = scheduler_job_labels(job_id, deployment_id)
        relabelled = list(pool.map(lambda match: _relabel(api, match[1], labels, abandon), matches))
    adopted: list[AdoptedPod] = []
    adopted_keys = set()
    from_jobs: Counter[str] = Counter()
    for (ti, pod), patched in zip(matches, relabelled, strict=True):
        if patched is None:
            continue
        metadata = pod["metadata"]
        uid = metadata.get("uid")
        adopted.append(AdoptedPod(ti.key, metadata["namespace"], metadata["name"], queueing_of_pod(pod), uid, patched))
        adopted_keys.add(ti.key)
        from_jobs[str((metadata.get("labels") or {}).get(LABEL_SCHEDULER_JOB, "?"))] += 1
    for old_job, count in sorted(from_jobs.items()):
        log.info("Adopted %d pods from scheduler job %s", count, old_job)
    unlisted = [ti for key, ti in wanted.items() if key not in found] if unlisted_namespaces else []
    not_adopted = [ti for key, ti in wanted.items() if key not in adopted_keys and ti not in unlisted]
    unrelabelled = frozenset(key for key in found if key not in adopted_keys)
    return AdoptionResult(adopted, not_adopted, unlisted, unrelabelled)


def _relabel(
    api: KubeApi, pod: dict[str, Any], labels: dict[str, str], abandon: Abandon | None
) -> dict[str, Any] | None:
    """The relabelled pod, or None when it could not be relabelled."""
    metadata = pod["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    try:
        patched: dict[str, Any] = _retrying()(api.patch_pod_labels, namespace, name, labels)
    except KubeApiError as error:
        if abandon is None:
            log.warning("Could not adopt pod %s/%s: %s", namespace, name, error)
            return None
        log.warning(
            "Could not adopt pod %s/%s (%s): deleting it, as its task instance is reset and runs again in a new "
            "pod, beside which this one must not run",
            namespace,
            name,
            error,
        )
        abandon(namespace, name, metadata.get("uid"))
        return None
    return patched


def _retrying() -> Retrying:
    # On the scheduler's thread: a short budget, so an API outage costs one loop some seconds, not the scheduler.
    return Retrying(
        stop=stop_after_delay(RETRY_BUDGET),
        wait=wait_retry_after(wait_random_exponential(multiplier=0.2, max=5)),
        retry=retry_if_exception(_is_retryable),
        reraise=True,
    )


def _is_retryable(error: BaseException) -> bool:
    # GONE: a continue token expired between pages; the listing starts again.
    return is_retryable(error) or (isinstance(error, KubeApiError) and error.kind is ApiErrorKind.GONE)


def made_for(pod: dict[str, Any], ti: TaskInstance) -> bool:
    """Whether ``pod`` was made for ``ti``'s current queueing."""
    queueing = queueing_of_pod(pod)
    if not queueing:
        return True  # made before pods carried the queueing: the key is all there is
    return queueing == (ti.external_executor_id or "")


__all__ = ["AdoptedPod", "AdoptionResult", "adopt_pods", "made_for"]

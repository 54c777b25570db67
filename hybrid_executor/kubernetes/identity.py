"""A worker pod's identity: its name, the labels watches and adoption select on, the annotations with its key.

One pod per queueing of a task try (see :func:`pod_name_for`); the labels name the owning scheduler
job and never the stock executor's ownership labels; the annotations hold the exact task key and the
queueing's ``external_executor_id``. Pure: no I/O. :mod:`hybrid_executor.kubernetes.pods` applies it
to every pod it builds, after the pod_override and the mutation hook.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import unicodedata
from base64 import b32encode
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.models.taskinstancekey import TaskInstanceKey
from airflow.providers.cncf.kubernetes.pod_generator import make_safe_label_value

if TYPE_CHECKING:
    from kubernetes.client import models as k8s

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "hybrid-executor"
# The scheduler job that owns a pod; adoption relabels it. Not the stock "airflow-worker" label:
# a stock KubernetesExecutor configured beside ours in the same scheduler (Airflow 3's multiple
# executors share one job id) watches "airflow-worker=<job id>" alone, and would report on and
# delete our pods. PodGenerator's "airflow-worker" label is removed for the same reason.
LABEL_SCHEDULER_JOB = "hybrid-executor/scheduler-job"
# The Airflow deployment (metadata database) a pod belongs to: see hybrid_executor.kubernetes.deployment.
# Two deployments sharing a namespace number their scheduler jobs alike; cleanup selects on this.
# Pods made before pods carried it have none, and only `cleanup-pods --include-unlabelled` takes them.
LABEL_DEPLOYMENT = "hybrid-executor/deployment"
STOCK_SCHEDULER_JOB_LABEL = "airflow-worker"
# The stock executor's annotation for the task instance's UUID (one per try on Airflow 3).
ANNOTATION_TASK_INSTANCE_ID = "task_instance_id"
# The queueing a pod was made for: the task instance's external_executor_id, which the scheduler
# draws anew (a UUID) each time it queues the task, and stores with the QUEUED state. A task that
# defers, a reschedule-mode sensor's next poke and a requeue come back with the same try number
# but a new id: each gets a pod of its own, and a pod reports only for the queueing it was made for.
ANNOTATION_EXTERNAL_EXECUTOR_ID = "hybrid-executor/external-executor-id"
# Which pod of its queueing this is: 1 for the first new pod made after one failed before its task
# started ([kubernetes_executor] pod_launch_failure_retries), 2 for the next; absent on the first.
# The queueing's id stays the annotation above, so adoption still matches the task instance.
ANNOTATION_RELAUNCH = "hybrid-executor/relaunch"
# The worker container's name in the stock executor, its templates and its log reading.
WORKER_CONTAINER = "base"
# The label PodGenerator puts on every pod, and that the stock executor's adoption selects on.
STOCK_EXECUTOR_LABEL = "kubernetes_executor"


_NAME_MAX = 63
_HASH_LEN = 16  # base32 characters: 80 bits of the key's SHA-256
_PREFIX_MAX = _NAME_MAX - _HASH_LEN - 1
_NOT_DNS = re.compile(r"[^a-z0-9]+")
_NOT_DNS = re.compile(r"[^a-z0-9]+")


def field_of(obj: Any, attribute: str, json_key: str | None = None) -> Any:
    """``obj.attribute`` of a model, or ``obj[json_key]`` of the API's JSON."""
    if type(obj) is dict:  # the watch's JSON, on every event: no ABC check
        return obj.get(json_key or attribute)
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(json_key or attribute)
    return getattr(obj, attribute, None)


def _dns_part(text: str) -> str:
    """Lower-case ASCII letters, digits and single dashes; accents dropped (é -> e)."""
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_ish = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return _NOT_DNS.sub("-", ascii_ish).strip("-")


@functools.lru_cache(maxsize=4096)  # a mapped task's many pods, a DAG's many tasks: the same few pairs
def _readable_prefix(dag_id: str, task_id: str) -> str:
    dag, task = _dns_part(dag_id), _dns_part(task_id)
    if not dag or not task:
        return (dag or task)[:_PREFIX_MAX].strip("-")
    room = _PREFIX_MAX - 1  # one dash between them
    if len(dag) + len(task) > room:
        # Share the room: a long dag_id must not push the task_id out of the name.
        half = room // 2
        if len(dag) <= half:
            task = task[: room - len(dag)]
        elif len(task) <= room - half:
            dag = dag[: room - len(task)]
        else:
            dag, task = dag[:half], task[: room - half]
    return "-".join(p for p in (dag.strip("-"), task.strip("-")) if p)


def _identity_hash(key: TaskInstanceKey, queueing: str, relaunch: int = 0) -> str:
    # JSON of the key's five fields and the queueing: unambiguous for any strings (ASCII-escaped,
    # so even lone surrogates encode), stable across processes and Python versions. A relaunch's
    # number is appended only past 0, so the first pod of a queueing keeps the name it always had.
    fields: list[object] = [key.dag_id, key.task_id, key.run_id, int(key.try_number), int(key.map_index)]
    if queueing or relaunch:
        fields.append(queueing)
    if relaunch:
        fields.append(int(relaunch))
    canonical = json.dumps(fields)
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    # Base32 turns each 5 bytes into 8 characters: the first 10 bytes are the first 16 characters.
    return b32encode(digest[: _HASH_LEN * 5 // 8]).decode("ascii").lower()


def pod_name_for(key: TaskInstanceKey, queueing: str | None, relaunch: int = 0) -> str:
    """The pod name of one queueing of a task try: ``<dag>-<task>-<hash of the key and the queueing>``.

    ``queueing`` is the task instance's ``external_executor_id`` for this queueing (a UUID the
    scheduler draws each time it queues the task). The name is deterministic within a queueing,
    so a create retried after its answer was lost answers 409 AlreadyExists for the pod the lost
    attempt stored; it differs for every queueing of the same try (a deferred task's resumption,
    each poke of a reschedule-mode sensor, a requeue), for every key (run, try and map index
    included), and between two Airflow deployments sharing a namespace (their UUIDs differ). A
    DNS-1123 label of at most 63 characters for any ids; the prefix is only for people.
    ``relaunch``: the number of the new pod made within the queueing after one failed before its
    task started (see :mod:`hybrid_executor.kubernetes.relaunch`); 0 is the queueing's first pod.
    """
    prefix = _readable_prefix(key.dag_id, key.task_id)
    digest = _identity_hash(key, queueing or "", relaunch)
    return f"{prefix}-{digest}" if prefix else digest


def _label_value(value: object) -> str:
    # The provider's own rule, so our labels equal the stock executor's; but for a value with no
    # alphanumeric character (a run_id such as "+:" is legal) it returns "-<hash>", which the API
    # refuses: a label value must start with an alphanumeric character.
    return make_safe_label_value(str(value)).lstrip("-_.")


def scheduler_job_labels(job_id: str, deployment_id: str | None = None) -> dict[str, str]:
    """The labels that name the scheduler job owning a pod, and its deployment (to set them on adoption)."""
    labels = {LABEL_SCHEDULER_JOB: _label_value(job_id)}
    if deployment_id:
        labels[LABEL_DEPLOYMENT] = deployment_id
    return labels


def selector_for_scheduler(
    job_id: str | None = None, exclude_job_id: str | None = None, deployment_id: str | None = None
) -> str:
    """Label selector for our pods: all of them, one scheduler job's, or all but one job's; of one deployment.

    A scheduler's watch names its deployment too: another deployment sharing the namespace numbers
    its scheduler jobs alike. Every pod under a job carries the deployment of the scheduler that
    made or adopted it (adoption sets both), so pods of older versions are seen once adopted.
    """
    requirements = [f"{LABEL_MANAGED_BY}={MANAGED_BY}"]
    if job_id is not None:
        requirements.append(f"{LABEL_SCHEDULER_JOB}={_label_value(job_id)}")
    if deployment_id:
        requirements.append(f"{LABEL_DEPLOYMENT}={deployment_id}")
    if exclude_job_id is not None:
        requirements.append(f"{LABEL_SCHEDULER_JOB}!={_label_value(exclude_job_id)}")
    return ",".join(requirements)


def selector_for_deployment(deployment_id: str, exclude_job_ids: Sequence[str] = ()) -> str:
    """Label selector for one deployment's pods, but those of the scheduler jobs in ``exclude_job_ids``."""
    requirements = [f"{LABEL_MANAGED_BY}={MANAGED_BY}", f"{LABEL_DEPLOYMENT}={deployment_id}"]
    excluded = sorted({_label_value(job_id) for job_id in exclude_job_ids})
    if excluded:
        requirements.append(f"{LABEL_SCHEDULER_JOB} notin ({','.join(excluded)})")
    return ",".join(requirements)


def pod_selector_for_try(key: TaskInstanceKey) -> str:
    """Label selector for our pods of one task try, of any queueing and any scheduler.

    Labels hold sanitised values (long ids are truncated and hashed): filter the pods it selects
    with :func:`task_key_from_pod`, which reads the exact key from the annotations.
    """
    labels = {k: v for k, v in _identity_labels(key, "").items() if k != LABEL_SCHEDULER_JOB}
    return ",".join(f"{name}={value}" for name, value in labels.items())


def _identity_labels(key: TaskInstanceKey, scheduler_job_id: str, deployment_id: str | None = None) -> dict[str, str]:
    labels = {
        "dag_id": _label_value(key.dag_id),
        "task_id": _label_value(key.task_id),
        "run_id": _label_value(key.run_id),
        "try_number": _label_value(key.try_number),
        LABEL_MANAGED_BY: MANAGED_BY,
        **scheduler_job_labels(scheduler_job_id, deployment_id),
    }
    if key.map_index >= 0:  # "-1" is not a valid label value; the stock executor omits it too
        labels["map_index"] = _label_value(key.map_index)
    return labels


def _identity_annotations(key: TaskInstanceKey, queueing: str) -> dict[str, str]:
    return {
        "dag_id": key.dag_id,
        "task_id": key.task_id,
        "run_id": key.run_id,
        "try_number": str(key.try_number),
        "map_index": str(key.map_index),
        ANNOTATION_EXTERNAL_EXECUTOR_ID: queueing,
    }


def task_key_from_pod(pod: k8s.V1Pod | Mapping[str, Any]) -> TaskInstanceKey | None:
    """The task key in a pod's annotations; None for a pod that is not ours or lacks them."""
    metadata = field_of(pod, "metadata")
    labels = field_of(metadata, "labels") or {}
    annotations = field_of(metadata, "annotations") or {}
    if labels.get(LABEL_MANAGED_BY) != MANAGED_BY:
        return None
    try:
        return TaskInstanceKey(
            dag_id=str(annotations["dag_id"]),
            task_id=str(annotations["task_id"]),
            run_id=str(annotations["run_id"]),
            try_number=int(annotations["try_number"]),
            map_index=int(annotations.get("map_index", -1)),
        )
    except (KeyError, TypeError, ValueError):
        return None


def queueing_of_pod(pod: k8s.V1Pod | Mapping[str, Any]) -> str:
    """The queueing (``external_executor_id``) a pod was made for; "" for a pod made before pods carried one."""
    annotations = field_of(field_of(pod, "metadata"), "annotations") or {}
    return str(annotations.get(ANNOTATION_EXTERNAL_EXECUTOR_ID) or "")


def relaunch_of_pod(pod: k8s.V1Pod | Mapping[str, Any] | None) -> int:
    """Which pod of its queueing ``pod`` is: 0 for the first, n for the n-th made after a failure before start."""
    annotations = field_of(field_of(pod, "metadata"), "annotations") or {}
    try:
        return max(0, int(annotations.get(ANNOTATION_RELAUNCH) or 0))
    except (TypeError, ValueError):
        return 0


def newest_of_queueing(pods: Sequence[Mapping[str, Any]], queueing: str | None) -> Mapping[str, Any] | None:
    """Of ``pods`` (of one task try), the one made for ``queueing`` last: its last relaunch, not a failed one."""
    same = [pod for pod in pods if queueing_of_pod(pod) == (queueing or "")]
    return max(same, key=relaunch_of_pod) if same else None


def identity_labels(
    labels: Mapping[str, str] | None, key: TaskInstanceKey, scheduler_job_id: str, deployment_id: str | None = None
) -> dict[str, str]:
    """``labels`` with our identity over them, and without the stock executor's ownership labels.

    PodGenerator labels every pod kubernetes_executor=True, and a stock KubernetesExecutor adopts
    pods by that label: try_adopt_task_instances lists "kubernetes_executor=True,airflow-worker=<dead
    job>" and _adopt_completed_pods lists "kubernetes_executor=True,airflow-worker!=<its job>", then
    relabels what they find as its own (and deletes them). Without the label, a stock executor of
    another scheduler sharing the namespace never takes our pods over.
    """
    result = dict(labels or {})
    result.pop(STOCK_EXECUTOR_LABEL, None)
    result.pop(STOCK_SCHEDULER_JOB_LABEL, None)
    result.pop("map_index", None)  # set again when the task is mapped
    result.pop(LABEL_DEPLOYMENT, None)  # a template's or an override's is not the deployment's
    result.update(_identity_labels(key, scheduler_job_id, deployment_id))
    return result


def identity_annotations(annotations: Mapping[str, str] | None, key: TaskInstanceKey, queueing: str) -> dict[str, str]:
    """``annotations`` with the exact key and the queueing over them."""
    return {**(annotations or {}), **_identity_annotations(key, queueing)}

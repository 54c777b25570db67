"""Workload -> worker pod: the JSON body the launcher sends, exactly as the stock merge makes it.

The pod of a Kubernetes-routed task is what the stock KubernetesExecutor builds on Airflow 3 with
the cncf-kubernetes provider's ``PodGenerator.construct_pod``: the pod template, the executor's
dynamic pod (container ``base``, the ``execute_workload`` command, the image) and the task's
``executor_config["pod_override"]`` merged by ``PodGenerator.reconcile_pods``, then
``pod_mutation_hook`` from ``airflow_local_settings``. A task's ``executor_config["pod_template_file"]``
replaces the queue's (or the global) template, as it does in the stock executor.

Fast path, for every pod when no mutation hook is defined: the same merge on JSON
(:mod:`hybrid_executor.kubernetes.podmerge`), from the template's JSON made once per queue
(:attr:`PodContext.base_body`), into a plain dict, which the client sends as it is. The provider's
own ``construct_pod`` on models (a few milliseconds a pod, where the JSON merge takes tens of
microseconds) runs only when a mutation hook is defined (the hook is given a V1Pod, as in stock
Airflow) or a pod_override holds something its model types do not say (see ``podmerge.well_typed``);
``tests/kubernetes/test_pod_bodies.py`` checks both ways give the same pod, on generated overrides.

On top of the merge, the pod gets its identity (:mod:`hybrid_executor.kubernetes.identity`, whose
names are re-exported here): a name derived from the task key *and the queueing*, the labels our
watcher and adoption select on, and annotations holding the exact key and the queueing's id. It is
applied after the mutation hook, so neither a pod_override nor the hook can break it.

Pure: no I/O except reading a pod template file (and one warning per namespace for a template
whose restartPolicy is not Never, which is corrected). A pod that cannot be built raises
:class:`PodBuildError`, whose message is meant for the task's event log and never carries the
workload's token (the workload JSON in the pod's args does; log pods with
:func:`redacted_pod_summary`).
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.models.taskinstancekey import TaskInstanceKey
from airflow.providers.cncf.kubernetes.exceptions import PodMutationHookException, PodReconciliationError
from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator, workload_to_command_args
from kubernetes.client import models as k8s

from hybrid_executor.compat import policy_plugin_manager
from hybrid_executor.kubernetes.identity import (
    ANNOTATION_EXTERNAL_EXECUTOR_ID,
    ANNOTATION_TASK_INSTANCE_ID,
    LABEL_DEPLOYMENT,
    LABEL_MANAGED_BY,
    LABEL_SCHEDULER_JOB,
    MANAGED_BY,
    WORKER_CONTAINER,
    identity_annotations,
    identity_labels,
    pod_name_for,
    pod_selector_for_try,
    queueing_of_pod,
    scheduler_job_labels,
    selector_for_scheduler,
    task_key_from_pod,
)
from hybrid_executor.kubernetes.podbuilderror import PodBuildError
from hybrid_executor.kubernetes.podmerge import copy_json, reconcile_pods, well_typed
from hybrid_executor.kubernetes.podsecrets import redact_token, redacted_pod_summary
from hybrid_executor.kubernetes.podtemplates import (
    base_pod_template,
    from_json,
    load_pod_template,
    private_copy,
    template_body,
    to_json,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow.executors.workloads import ExecuteTask

    from hybrid_executor.settings import KubernetesSettings

__all__ = [
    "ANNOTATION_EXTERNAL_EXECUTOR_ID",
    "ANNOTATION_TASK_INSTANCE_ID",
    "LABEL_DEPLOYMENT",
    "LABEL_MANAGED_BY",
    "LABEL_SCHEDULER_JOB",
    "MANAGED_BY",
    "WORKER_CONTAINER",
    "PodBuildError",
    "PodContext",
    "base_pod_template",
    "build_worker_pod",
    "load_pod_template",
    "mutation_hook_defined",
    "pod_context_for",
    "pod_name_for",
    "pod_selector_for_try",
    "queueing_of_pod",
    "redact_token",
    "redacted_pod_summary",
    "scheduler_job_labels",
    "selector_for_scheduler",
    "task_key_from_pod",
    "worker_pod_body",
]

log = logging.getLogger(__name__)
_RESTART_POLICIES_SAID: set[tuple[str, str]] = set()  # (namespace, policy) warned of: a few at most
_SUMMARY_MAX = 500
_WORKER_ENV = {"name": "AIRFLOW_IS_K8S_EXECUTOR_POD", "value": "True"}  # construct_pod's, on every worker


@dataclass(frozen=True)
class PodContext:
    """What the executor knows about where and how a task's pod runs (not the task itself)."""

    namespace: str
    scheduler_job_id: str
    image: str | None  # worker_container_repository:worker_container_tag, if both are set
    base_pod: k8s.V1Pod  # from the queue's template or the global template; never modified
    # Namespaces other than ``namespace`` that a pod_override or the mutation hook may send the
    # pod to: those the executor watches. Any other one is an error (no watcher would see the pod).
    allowed_namespaces: frozenset[str] = field(default_factory=frozenset)
    # multi_namespace_mode without a list: one watch sees every namespace, so any one will do.
    any_namespace: bool = False
    deployment_id: str | None = None  # the hybrid-executor/deployment label; None: no such label

    @cached_property
    def base_body(self) -> dict[str, Any]:
        """``base_pod`` as JSON, made once per context (the executor keeps one context per queue); never modified."""
        return template_body(self.base_pod)


def pod_context_for(
    settings: KubernetesSettings,
    queue: str | None,
    scheduler_job_id: str,
    template: Callable[[str | None], k8s.V1Pod] = base_pod_template,
    *,
    deployment_id: str | None = None,
) -> PodContext:
    """Where and from what the pod of a task on ``queue`` is built (``template`` may cache the files).

    ``deployment_id``: the deployment label's value; None: resolved from the settings and the
    metadata database's URL (see :mod:`hybrid_executor.kubernetes.deployment`).
    """
    from hybrid_executor.kubernetes.deployment import resolve_deployment_id

    return PodContext(
        namespace=settings.namespace_for(queue),
        scheduler_job_id=scheduler_job_id,
        image=settings.image,
        base_pod=template(settings.pod_template_file_for(queue)),
        allowed_namespaces=settings.namespaces(),
        any_namespace=settings.all_namespaces,
        deployment_id=deployment_id or resolve_deployment_id(settings.deployment_id),
    )


def _describe(key: TaskInstanceKey) -> str:
    where = f"task {key.dag_id}.{key.task_id} (run_id {key.run_id}, try {key.try_number}"
    return where + (f", map_index {key.map_index})" if key.map_index >= 0 else ")")


def _cause_text(error: BaseException, token: str) -> tuple[str, str]:
    """``(Type: message, redacted traceback)`` of what the provider wrapped in ``error``."""
    cause = error.__cause__ or error
    summary = redact_token(f"{type(cause).__name__}: {cause}", token)
    if len(summary) > _SUMMARY_MAX:  # a message that prints the whole pod would flood the event log
        summary = summary[:_SUMMARY_MAX] + " [...]"
    detail = redact_token("".join(traceback.format_exception(cause)), token)
    return summary, detail


def _pod_override(executor_config: Mapping[str, Any], key: TaskInstanceKey) -> k8s.V1Pod | None:
    override = executor_config.get("pod_override")
    if "KubernetesExecutor" in executor_config:
        raise PodBuildError(
            f"{_describe(key)}: executor_config has the Airflow 1 'KubernetesExecutor' key, which "
            "Airflow 2 and 3 no longer read; move its settings into "
            "executor_config={'pod_override': k8s.V1Pod(...)}",
            key=key,
        )
    if override is not None and not isinstance(override, k8s.V1Pod):
        raise PodBuildError(
            f"{_describe(key)}: executor_config['pod_override'] is a {type(override).__name__}, "
            "not a kubernetes.client.models.V1Pod; build it with "
            "`from kubernetes.client import models as k8s` and k8s.V1Pod(...) in the DAG",
            key=key,
        )
    # The provider's own reading of executor_config, for the same semantics (checked above).
    result = PodGenerator.from_obj(dict(executor_config))
    return result if isinstance(result, k8s.V1Pod) else None


def _task_template(executor_config: Mapping[str, Any], key: TaskInstanceKey) -> k8s.V1Pod | None:
    """The task's own ``pod_template_file``, read; None: the queue's or the global one (as the stock executor)."""
    path = executor_config.get("pod_template_file")
    if not path:  # None or ""
        return None
    if not isinstance(path, (str, os.PathLike)):
        raise PodBuildError(
            f"{_describe(key)}: executor_config['pod_template_file'] is a {type(path).__name__}, "
            "not a path; set it to the path of a pod template file on the scheduler",
            key=key,
        )
    try:
        return load_pod_template(os.fspath(path))
    except PodBuildError as error:
        raise PodBuildError(
            f"{_describe(key)}: executor_config['pod_template_file']: {error.message}", key=key
        ) from None


def mutation_hook_defined() -> bool:
    """Whether ``pod_mutation_hook`` does anything: one in ``airflow_local_settings`` or a policy plugin.

    Airflow's own ``airflow.settings.pod_mutation_hook`` calls the policy plugins' hooks, and has
    none by default; ``airflow_local_settings`` registers its function as one (or, if it cannot,
    replaces ``airflow.settings.pod_mutation_hook`` itself).
    """
    from airflow import settings

    hook = settings.pod_mutation_hook
    where = (getattr(hook, "__module__", None), getattr(hook, "__name__", None))
    if where != ("airflow.settings", "pod_mutation_hook"):  # replaced by airflow_local_settings (or a test)
        return True
    return bool(policy_plugin_manager().hook.pod_mutation_hook.get_hookimpls())


def worker_pod_body(workload: ExecuteTask, context: PodContext) -> dict[str, Any]:
    """The pod that runs ``workload``, as the JSON body of its create: merge, mutation hook, identity.

    Base: the task's ``executor_config["pod_template_file"]`` if set, else ``context.base_pod``.
    Image: the pod_override's if it has one, else ``context.image``, else the template's.
    Raises PodBuildError (message without the token) when the pod cannot be built.
    The body is the caller's own (nothing else holds any part of it).
    """
    key: TaskInstanceKey = workload.ti.key
    executor_config: Mapping[str, Any] = workload.ti.executor_config or {}
    if not isinstance(executor_config, Mapping):
        raise PodBuildError(f"{_describe(key)}: executor_config is not a dict", key=key)
    override = _pod_override(executor_config, key)
    task_template = _task_template(executor_config, key)
    queueing = getattr(workload.ti, "external_executor_id", None) or ""
    name = pod_name_for(key, queueing)

    if mutation_hook_defined() or (override is not None and not well_typed(override)):
        base = private_copy(context.base_pod) if task_template is None else task_template
        body = to_json(_construct_pod(workload, context, name, base, override and private_copy(override)))
    else:
        base_body = context.base_body if task_template is None else template_body(task_template)
        override_body = to_json(override) if override is not None else None
        dynamic = _dynamic_pod(workload, context, name, _image_of(override, context))
        # reduce(reconcile_pods, [template, dynamic pod, pod_override]), as construct_pod does.
        body = copy_json(reconcile_pods(reconcile_pods(base_body, dynamic), override_body))

    _apply_identity(body, key, name, queueing, context)
    _run_once(body, context)
    body["metadata"]["annotations"][ANNOTATION_TASK_INSTANCE_ID] = str(workload.ti.id)
    _check_buildable(body, key, context)
    return body


def build_worker_pod(workload: ExecuteTask, context: PodContext) -> k8s.V1Pod:
    """:func:`worker_pod_body` as a V1Pod, for those who read the pod (``render-pod``, ``doctor``)."""
    return from_json(worker_pod_body(workload, context))


def _image_of(override: k8s.V1Pod | None, context: PodContext) -> str | None:
    """construct_pod's image: the pod_override's first container's, else the worker image (None: the template's)."""
    try:
        image = override.spec.containers[0].image  # type: ignore[union-attr]
    except Exception:  # no override, no spec, no containers: as construct_pod reads it
        return context.image
    return image or context.image


def _dynamic_pod(workload: ExecuteTask, context: PodContext, name: str, image: str | None) -> dict[str, Any]:
    """The JSON of construct_pod's dynamic pod (the executor's part between the template and the override)."""
    key: TaskInstanceKey = workload.ti.key
    annotations = {"dag_id": key.dag_id, "task_id": key.task_id, "try_number": str(key.try_number)}
    if key.map_index >= 0:
        annotations["map_index"] = str(key.map_index)
    if key.run_id:
        annotations["run_id"] = key.run_id
    labels: dict[str, str] = PodGenerator.build_labels_for_k8s_executor_pod(  # type: ignore[no-untyped-call]
        dag_id=key.dag_id,
        task_id=key.task_id,
        try_number=key.try_number,
        airflow_worker=context.scheduler_job_id,
        map_index=key.map_index,
        logical_date=None,
        run_id=key.run_id,
    )
    container: dict[str, Any] = {"name": WORKER_CONTAINER, "args": workload_to_command_args(workload)}
    if image is not None:
        container["image"] = image
    container["env"] = [dict(_WORKER_ENV)]
    metadata: dict[str, Any] = {"annotations": annotations, "name": name, "labels": labels}
    if context.namespace is not None:
        metadata["namespace"] = context.namespace
    return {"metadata": metadata, "spec": {"containers": [container]}}


def _construct_pod(
    workload: ExecuteTask, context: PodContext, name: str, base: k8s.V1Pod, override: k8s.V1Pod | None
) -> k8s.V1Pod:
    """The provider's construct_pod on models, mutation hook included (errors turned into PodBuildError)."""
    key: TaskInstanceKey = workload.ti.key
    try:
        return PodGenerator.construct_pod(
            dag_id=key.dag_id,
            task_id=key.task_id,
            pod_id=name,
            try_number=key.try_number,
            # None leaves the template's image, as the stock executor does without a worker image.
            kube_image=context.image,  # type: ignore[arg-type]
            date=None,
            args=workload_to_command_args(workload),
            pod_override_object=override,
            base_worker_pod=base,
            namespace=context.namespace,
            scheduler_job_id=context.scheduler_job_id,
            run_id=key.run_id,
            map_index=key.map_index,
            with_mutation_hook=True,
        )
    except PodReconciliationError as error:
        summary, detail = _cause_text(error, workload.token)
        raise PodBuildError(
            f"{_describe(key)}: executor_config['pod_override'] cannot be merged into the pod template "
            f"({summary}); fix the pod_override (lists such as env, volumes and ports must be lists)",
            key=key,
            detail=detail,
        ) from None
    except PodMutationHookException as error:
        summary, detail = _cause_text(error, workload.token)
        raise PodBuildError(
            f"{_describe(key)}: pod_mutation_hook in airflow_local_settings raised {summary}; "
            "fix the hook (the scheduler log has its traceback)",
            key=key,
            detail=detail,
        ) from None


def _apply_identity(body: dict[str, Any], key: TaskInstanceKey, name: str, queueing: str, context: PodContext) -> None:
    """Our name, labels and annotations, over whatever the override or the hook set."""
    metadata = body.get("metadata")
    if metadata is None:
        metadata = body["metadata"] = {}
    metadata["name"] = name  # one pod per queueing: no override or hook may rename it
    metadata.pop("generateName", None)
    metadata["namespace"] = metadata.get("namespace") or context.namespace
    metadata["labels"] = identity_labels(metadata.get("labels"), key, context.scheduler_job_id, context.deployment_id)
    metadata["annotations"] = identity_annotations(metadata.get("annotations"), key, queueing)


def _run_once(body: dict[str, Any], context: PodContext) -> None:
    """``restartPolicy: Never``, whatever the template or the pod_override says.

    A worker pod runs one try of one task: a container restarted by Always or OnFailure (the API's
    default is Always when the template names none) would run the try again. The stock executor
    leaves the template's value; correcting it is safe, and a policy set to anything else is said
    once per namespace and value, so the template gets fixed.
    """
    spec = body.get("spec")
    if spec is None:
        return
    policy = spec.get("restartPolicy")
    if policy != "Never" and policy is not None and (context.namespace, policy) not in _RESTART_POLICIES_SAID:
        _RESTART_POLICIES_SAID.add((context.namespace, policy))
        log.warning(
            "A pod template or pod_override for namespace %s sets restartPolicy %s; worker pods run with "
            "Never (a restarted container would run the task's try again): set restartPolicy: Never there",
            context.namespace,
            policy,
        )
    spec["restartPolicy"] = "Never"


def _check_buildable(body: dict[str, Any], key: TaskInstanceKey, context: PodContext) -> None:
    """What the API would refuse later, or a pod no watcher would see, refused now with a fix."""
    namespace = body["metadata"].get("namespace")
    if namespace != context.namespace and namespace not in context.allowed_namespaces and not context.any_namespace:
        watched = sorted({context.namespace, *context.allowed_namespaces})
        raise PodBuildError(
            f"{_describe(key)}: the pod_override or pod_mutation_hook puts the pod in namespace "
            f"{namespace!r}, which this executor does not watch (it watches {', '.join(watched)}); "
            "remove the namespace from the pod_override, give the task a queue whose profile "
            "has that namespace ([hybrid_executor] kubernetes_queues), or list it in "
            "[kubernetes_executor] multi_namespace_mode_namespace_list (with multi_namespace_mode)",
            key=key,
        )
    spec = body.get("spec")
    containers = spec.get("containers") if spec is not None else None
    if not containers or not containers[0].get("image"):
        raise PodBuildError(
            f"{_describe(key)}: the worker container 'base' has no image; set "
            "[kubernetes_executor] worker_container_repository and worker_container_tag, or an "
            "image for the first container of the pod template or of the pod_override",
            key=key,
        )

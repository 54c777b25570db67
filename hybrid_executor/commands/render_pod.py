"""``airflow hybrid render-pod DAG_ID TASK_ID``: the exact pod the executor would create for a task, as YAML.

The DAG is parsed from its bundle as ``airflow kubernetes generate-dag-yaml`` parses it (nothing is
written to the DB), the task instance is made from the serialized DAG as the scheduler makes it,
and the pod is built by the executor's own code (template, dynamic pod, pod_override, mutation
hook, our identity). What prints is what the scheduler would send (a test compares the two), but
for what exists only once the scheduler makes the try: the task instance's id, its DAG version's
id, the run's trace context, and the token, for which ``***`` stands.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from typing import TYPE_CHECKING, Any

import yaml

from hybrid_executor.commands.common import TOKEN_PLACEHOLDER, CommandError, settings
from hybrid_executor.compat import set_external_executor_id
from hybrid_executor.kubernetes.pods import redact_token

if TYPE_CHECKING:
    import argparse

    from airflow.executors.workloads import ExecuteTask


# A pod is named per queueing, from the task instance's external_executor_id that the scheduler
# draws each time it queues the task; without one given, render-pod shows the pod of this one.
RENDERED_QUEUEING = "render-pod"


def render(
    dag_id: str,
    task_id: str,
    *,
    run_id: str,
    map_index: int,
    try_number: int,
    external_executor_id: str = RENDERED_QUEUEING,
) -> str:
    from kubernetes.client import ApiClient

    from hybrid_executor.kubernetes.pods import build_worker_pod, pod_context_for

    current = settings()
    if try_number < 1:
        raise CommandError(f"--try-number must be 1 or more; got {try_number}")
    dag, bundle_name = _parse_dag(dag_id)
    if task_id not in dag.task_dict:
        known = ", ".join(sorted(dag.task_dict)) or "none"
        raise CommandError(f"DAG {dag_id!r} has no task {task_id!r}; its tasks: {known}")
    task = dag.task_dict[task_id]
    mapped = _is_mapped(task)
    if mapped and map_index < 0:
        raise CommandError(f"{dag_id}.{task_id} is mapped: say which instance with --map-index N")
    if not mapped and map_index >= 0:
        raise CommandError(f"{dag_id}.{task_id} is not mapped: leave out --map-index")
    workload = _workload(
        task,
        run_id,
        map_index,
        try_number,
        str(getattr(dag, "relative_fileloc", "") or ""),
        bundle_name,
        external_executor_id,
    )
    # The task instance's queue, not the task's: a cluster policy's mutation hook may have moved it.
    queue = workload.ti.queue
    if queue not in current.kubernetes.queues:
        kubernetes_queues = ", ".join(sorted(current.kubernetes.queues))
        raise CommandError(
            f"{dag_id}.{task_id} is on queue {queue!r}, which goes to Celery: it gets no pod "
            f"(the Kubernetes queues are: {kubernetes_queues})"
        )
    context = pod_context_for(current.kubernetes, queue, "render-pod")
    pod = build_worker_pod(workload, context)
    body = ApiClient().sanitize_for_serialization(pod)
    return redact_token(yaml.safe_dump(body, sort_keys=False), workload.token)


def _workload(
    task: Any, run_id: str, map_index: int, try_number: int, dag_rel_path: str, bundle: str, queueing: str
) -> ExecuteTask:
    """The workload the scheduler would queue for this try: a task instance made as the scheduler makes
    one (queue, pool slots, priority weight, executor_config and the cluster policy's mutation hook
    from the task), its log path from ``[logging] log_filename_template``; a placeholder token."""
    from airflow.executors.workloads import BundleInfo, ExecuteTask
    from airflow.executors.workloads import TaskInstance as TaskInstanceDTO  # the name of 3.1, kept as an alias
    from airflow.models.taskinstance import TaskInstance
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.utils.helpers import log_filename_template_renderer

    # The scheduler's view of the task: its serialized DAG's operator (a weight rule sees the DAG).
    scheduler_task = DagSerialization.from_dict(DagSerialization.to_dict(task.dag)).get_task(task.task_id)
    ti = TaskInstance(scheduler_task, run_id=run_id, map_index=map_index, dag_version_id=uuid.uuid4())
    ti.try_number = try_number
    ti.external_executor_id = queueing  # the scheduler draws one per queueing; the pod's name hashes it
    dto = TaskInstanceDTO.model_validate(ti, from_attributes=True)
    set_external_executor_id(dto, queueing)  # Airflow 3.1's schema has no field for it
    return ExecuteTask(
        ti=dto,
        dag_rel_path=dag_rel_path,  # type: ignore[arg-type]  # pydantic turns it into a path
        bundle_info=BundleInfo(name=bundle),
        token=TOKEN_PLACEHOLDER,
        log_path=log_filename_template_renderer()(ti=ti),
    )


def _parse_dag(dag_id: str) -> tuple[Any, str]:
    """The DAG from the first bundle that has it, parsed as the dag-processor parses it; nothing is written."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag

    problems: list[str] = []
    # Loading bundles and parsing log to stdout; the YAML must be all that stdout carries.
    with contextlib.redirect_stdout(sys.stderr):
        for bundle in DagBundlesManager().get_all_dag_bundles():  # type: ignore[no-untyped-call]
            bundle.initialize()
            bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
            if dag_id in bag.dags:
                return bag.dags[dag_id], bundle.name
            problems += [f"{path}: {error.strip().splitlines()[-1]}" for path, error in bag.import_errors.items()]
    hint = ("; files that failed to import: " + "; ".join(problems)) if problems else ""
    raise CommandError(f"no DAG {dag_id!r} in any DAG bundle{hint}")


def _is_mapped(task: Any) -> bool:
    return bool(getattr(task, "is_mapped", False)) or task.get_closest_mapped_task_group() is not None


def render_pod(args: argparse.Namespace) -> None:
    from hybrid_executor.kubernetes.pods import PodBuildError
    from hybrid_executor.settings import SettingsError

    try:
        text = render(
            args.dag_id,
            args.task_id,
            run_id=args.run_id,
            map_index=args.map_index,
            try_number=args.try_number,
            external_executor_id=args.external_executor_id,
        )
    except (CommandError, PodBuildError, SettingsError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    print(text, end="")

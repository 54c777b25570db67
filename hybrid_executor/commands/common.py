"""What every ``airflow hybrid`` command starts from: the settings, and a client for the cluster."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from hybrid_executor.settings import HybridSettings, load_settings

if TYPE_CHECKING:
    from airflow.executors.workloads import ExecuteTask

    from hybrid_executor.kubernetes.api import KubeApi

# The token of a workload shown or sent by a command: never a real one.
TOKEN_PLACEHOLDER = "***"  # noqa: S105 - a mask, not a secret
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class CommandError(Exception):
    """A problem the user can fix; the message names the thing, the value and the fix."""


def settings() -> HybridSettings:
    from airflow.configuration import conf

    return load_settings(conf)


def kube_api(current: HybridSettings) -> KubeApi:
    from hybrid_executor.kubernetes.api import KubeApi

    return KubeApi.from_settings(current.kubernetes, request_timeout=30)


def parse_duration(text: str, option: str) -> float:
    """Seconds in ``90s``, ``30m``, ``2h``, ``1d`` or a plain number of seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise CommandError(f"{option} must be a duration such as 90s, 30m, 2h or 1d; got {text!r}")
    return float(match.group(1)) * _SECONDS[match.group(2)]


def workload_for(
    dag_id: str,
    task_id: str,
    run_id: str,
    *,
    queue: str,
    map_index: int = -1,
    try_number: int = 1,
    executor_config: dict[str, Any] | None = None,
    dag_rel_path: str = "",
    bundle_name: str = "dags-folder",
    log_path: str | None = None,
) -> ExecuteTask:
    """An ExecuteTask workload as the scheduler would queue it, but with a placeholder for its token."""
    from airflow.executors.workloads import BundleInfo, ExecuteTask
    from airflow.executors.workloads import TaskInstance as TaskInstanceDTO  # the name of 3.1, kept as an alias

    ti = TaskInstanceDTO(
        id=uuid.uuid4(),
        dag_version_id=uuid.uuid4(),
        task_id=task_id,
        dag_id=dag_id,
        run_id=run_id,
        try_number=try_number,
        map_index=map_index,
        pool_slots=1,
        priority_weight=1,
        queue=queue,
        executor_config=executor_config,
    )
    return ExecuteTask(
        ti=ti,
        dag_rel_path=dag_rel_path,  # type: ignore[arg-type]  # pydantic turns it into a path
        bundle_info=BundleInfo(name=bundle_name),
        token=TOKEN_PLACEHOLDER,
        log_path=log_path,
    )

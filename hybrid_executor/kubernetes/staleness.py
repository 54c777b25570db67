"""Whether a launch is still wanted: its task instance is still queued, for that try and that queueing.

The scheduler tells the executor when it revokes a task, but not when someone else moves it on
while its pod is still being created: marked success or failed in the UI, cleared, or failed by the
scheduler's own checks. A pod created then would start a task Airflow's API server refuses to run.
A launch that is retried, or waited long before its first attempt, asks the database first (from
a launcher thread, never the scheduler's); a fresh one does not: it was queued a moment ago.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from hybrid_executor.compat import scheduler_pre_assigns_external_executor_id

if TYPE_CHECKING:
    from airflow.models.taskinstancekey import TaskInstanceKey

log = logging.getLogger(__name__)

# A launch whose first attempt comes this long after it was submitted asks first.
FRESH_FOR = 30.0


def still_queued(key: TaskInstanceKey, queueing: str, *, unreadable: bool = True) -> bool:
    """True unless the database says the task instance has moved on from this try's queueing.

    An error reading the database counts as ``unreadable``: by default "still queued": the pod is
    created, and Airflow's API server still refuses to run a task that is not queued. A relaunch
    asks with False: it needs the database's word that no task code ran, or the failure stands.
    """
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    try:
        with create_session() as session:
            row = session.execute(
                select(TaskInstance.state, TaskInstance.try_number, TaskInstance.external_executor_id).where(
                    TaskInstance.dag_id == key.dag_id,
                    TaskInstance.task_id == key.task_id,
                    TaskInstance.run_id == key.run_id,
                    TaskInstance.map_index == key.map_index,
                )
            ).one_or_none()
    except Exception as error:
        log.warning("Could not read task instance %s to check that it is still queued: %s", key, error)
        return unreadable
    if row is None:
        return False  # its DAG run was deleted
    state, try_number, external_executor_id = row
    return (
        state == TaskInstanceState.QUEUED
        and try_number == key.try_number
        and (
            not external_executor_id
            or external_executor_id == queueing
            # The executor drew this queueing's id (Airflow 3.1): the row shows it only once the
            # scheduler has read the QUEUED event, and another id until then is no sign of moving on.
            or not scheduler_pre_assigns_external_executor_id()
        )
    )


__all__ = ["FRESH_FOR", "still_queued"]

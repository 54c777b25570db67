"""A cluster policy that caps the Kubernetes route with an Airflow pool, without touching any DAG.

Every task on a Kubernetes queue that has no pool of its own takes a slot of the pool
``kubernetes``, so at most that pool's slots worth of pod tasks are queued or running at once,
while Celery tasks keep the rest of ``[core] parallelism``. The scheduler checks a pool before it
queues a task, so a task held back stays *scheduled*: it never ages into ``[scheduler]
task_queued_timeout`` (which a cap inside the executor could not avoid).

Put this file in ``$AIRFLOW_HOME/config/airflow_local_settings.py`` where DAG files are parsed
(the dag-processor: policies run at parse time), list the same queues as ``[hybrid_executor]
kubernetes_queues``, and create the pool once:

    airflow pools set kubernetes 16 "pods at once"
"""

from __future__ import annotations

from typing import Any

KUBERNETES_QUEUES = frozenset({"kubernetes"})
KUBERNETES_POOL = "kubernetes"
DEFAULT_POOL = "default_pool"  # a task that names no pool has this one


def task_policy(task: Any) -> None:
    if task.queue in KUBERNETES_QUEUES and task.pool == DEFAULT_POOL:
        task.pool = KUBERNETES_POOL

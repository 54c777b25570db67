"""The fault soak's DAG: many trivial tasks on both routes, as mapped tasks sized by the run's conf.

``{"kubernetes": 700, "celery": 300}`` makes 700 mapped task instances on the ``kubernetes`` queue
(each a pod) and 300 on Celery's default queue, after two planning tasks (one per route) that
return the map's input. The sizes come from the conf, not the file, so the scheduler, the Celery
worker and each pod parse the same DAG whatever the soak asks for.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, get_current_context, task

# Room for every task the quota and the Celery worker can take at once, and then some: the soak
# measures the executors under faults, not Airflow's per-DAG concurrency limit (default 16).
MAX_ACTIVE_TASKS = 64


def _size(route: str) -> list[int]:
    conf = get_current_context()["dag_run"].conf or {}
    return list(range(int(conf.get(route, 0))))


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=MAX_ACTIVE_TASKS,
    tags=["benchmark"],
)
def fault_soak() -> None:
    @task(queue="kubernetes")
    def plan_kubernetes() -> list[int]:
        return _size("kubernetes")

    @task
    def plan_celery() -> list[int]:
        return _size("celery")

    @task(queue="kubernetes")
    def on_kubernetes(index: int) -> int:
        return index

    @task
    def on_celery(index: int) -> int:
        return index

    on_kubernetes.expand(index=plan_kubernetes())
    on_celery.expand(index=plan_celery())


fault_soak()

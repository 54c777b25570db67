"""Forty tasks on each route: the Kubernetes route capped by a pool, the Celery route not.

The Kubernetes tasks name no pool; the cluster policy of examples/airflow_local_settings.py gives
them the pool ``kubernetes``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

TASKS = 40


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, max_active_tasks=80)
def route_caps() -> None:
    @task(queue="kubernetes")
    def in_a_pod(number: int) -> int:
        return number

    @task
    def on_celery(number: int) -> int:
        return number

    in_a_pod.expand(number=list(range(TASKS)))
    on_celery.expand(number=list(range(TASKS)))


route_caps()

"""Long enough tasks on both routes to kill the scheduler under them; each execution leaves a marker file.

The run's conf names the marker folder: ``{"marker_dir": "/some/folder"}``. Every execution of a
task try creates ``<task_id>.<map_index>.<try_number>.<pid>`` there, so a try that ran twice shows
as two files.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pendulum
from airflow.sdk import dag, get_current_context, task

SLEEP_SECONDS = 40


def _mark_and_sleep(seconds: float) -> None:
    context = get_current_context()
    ti = context["ti"]
    marker_dir = Path(context["dag_run"].conf["marker_dir"])
    (marker_dir / f"{ti.task_id}.{ti.map_index}.{ti.try_number}.{os.getpid()}").touch()
    time.sleep(seconds)


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def survives_scheduler_kill() -> None:
    @task
    def celery_sleeper() -> None:
        _mark_and_sleep(SLEEP_SECONDS)

    @task(queue="kubernetes")
    def pod_sleeper() -> None:
        _mark_and_sleep(SLEEP_SECONDS)

    @task
    def celery_after() -> None:
        _mark_and_sleep(0)

    @task(queue="kubernetes")
    def pod_after() -> None:
        _mark_and_sleep(0)

    sleepers = [
        celery_sleeper.override(task_id="celery_sleeper_a")(),
        celery_sleeper.override(task_id="celery_sleeper_b")(),
        pod_sleeper.override(task_id="pod_sleeper_a")(),
        pod_sleeper.override(task_id="pod_sleeper_b")(),
    ]
    sleepers >> celery_after()
    sleepers >> pod_after()


survives_scheduler_kill()

"""Tasks on both routes that run until the test lets them end; each execution leaves a marker file.

The run's conf names the marker folder: ``{"marker_dir": "/some/folder"}``. Every execution of a
task try creates ``<task_id>.<map_index>.<try_number>.<pid>`` there, so a try that ran twice shows
as two files. The sleepers then wait for a file ``release`` in that folder (at most
``HOLD_SECONDS``), so the test decides when they end: after it has killed the scheduler and seen
the new one adopt them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pendulum
from airflow.sdk import dag, get_current_context, task

HOLD_SECONDS = 240


def _mark(*, hold: bool) -> None:
    context = get_current_context()
    ti = context["ti"]
    marker_dir = Path(context["dag_run"].conf["marker_dir"])
    (marker_dir / f"{ti.task_id}.{ti.map_index}.{ti.try_number}.{os.getpid()}").touch()
    deadline = time.monotonic() + HOLD_SECONDS
    while hold and not (marker_dir / "release").exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not released within {HOLD_SECONDS} s")
        time.sleep(0.5)


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def survives_scheduler_kill() -> None:
    @task
    def celery_sleeper() -> None:
        _mark(hold=True)

    @task(queue="kubernetes")
    def pod_sleeper() -> None:
        _mark(hold=True)

    @task
    def celery_after() -> None:
        _mark(hold=False)

    @task(queue="kubernetes")
    def pod_after() -> None:
        _mark(hold=False)

    sleepers = [
        celery_sleeper.override(task_id="celery_sleeper_a")(),
        celery_sleeper.override(task_id="celery_sleeper_b")(),
        pod_sleeper.override(task_id="pod_sleeper_a")(),
        pod_sleeper.override(task_id="pod_sleeper_b")(),
    ]
    sleepers >> celery_after()
    sleepers >> pod_after()


survives_scheduler_kill()

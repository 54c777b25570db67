"""A hundred trivial tasks on each route, for two schedulers at once; the test can hold them while it kills one.

The run's conf names the marker folder: ``{"marker_dir": "/some/folder"}``. Every execution of a
task try creates ``<task_id>.<map_index>.<try_number>.<pid>`` there, so a try that ran twice shows
as two files. While a file ``hold`` exists in that folder, a task that starts waits for it to go
(at most ``HOLD_SECONDS``): the test parks the tasks then running, kills one scheduler, and lets
them end once the other has adopted them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pendulum
from airflow.sdk import dag, get_current_context, task

TASKS = 100  # on each route
HOLD_SECONDS = 600


def _mark() -> None:
    context = get_current_context()
    ti = context["ti"]
    marker_dir = Path(context["dag_run"].conf["marker_dir"])
    (marker_dir / f"{ti.task_id}.{ti.map_index}.{ti.try_number}.{os.getpid()}").touch()
    deadline = time.monotonic() + HOLD_SECONDS
    while (marker_dir / "hold").exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"still held after {HOLD_SECONDS} s")
        time.sleep(0.2)


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=2 * TASKS,
)
def two_schedulers() -> None:
    @task(queue="kubernetes")
    def in_a_pod(number: int) -> None:
        _mark()

    @task
    def on_celery(number: int) -> None:
        _mark()

    in_a_pod.expand(number=list(range(TASKS)))
    on_celery.expand(number=list(range(TASKS)))


two_schedulers()

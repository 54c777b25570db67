"""Kubernetes tasks that come back with the same try number: a deferral, and a reschedule-mode sensor.

``defers`` defers to the triggerer once and resumes in ``resume``: two queueings of try 1.
``pokes`` is a ``PythonSensor`` in ``mode="reschedule"`` that succeeds on its ``POKES``-th poke:
``POKES`` queueings of try 1, each poke in a pod of its own. ``waits_deferred`` is the stock
``TimeDeltaSensor(deferrable=True)``. The run's conf names a folder where each poke leaves a file:
``{"marker_dir": "/some/folder"}``.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.providers.standard.sensors.python import PythonSensor
from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from airflow.sdk import BaseOperator, dag, get_current_context

POKES = 3


class DeferOnce(BaseOperator):
    """Defers to the triggerer for two seconds, then finishes in a new pod."""

    def execute(self, context: Any) -> None:
        self.defer(trigger=TimeDeltaTrigger(timedelta(seconds=2)), method_name="resume")

    def resume(self, context: Any, event: Any = None) -> str:
        return "resumed"


def _poked_enough() -> bool:
    marker_dir = Path(get_current_context()["dag_run"].conf["marker_dir"])
    (marker_dir / f"poke.{os.getpid()}.{time.time_ns()}").touch()
    return len(list(marker_dir.glob("poke.*"))) >= POKES


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def same_try_again() -> None:
    DeferOnce(task_id="defers", queue="kubernetes")
    PythonSensor(
        task_id="pokes",
        python_callable=_poked_enough,
        mode="reschedule",
        poke_interval=2,
        timeout=600,
        queue="kubernetes",
    )
    TimeDeltaSensor(task_id="waits_deferred", delta=timedelta(seconds=20), deferrable=True, queue="kubernetes")


same_try_again()

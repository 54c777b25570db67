"""A user error: the pod_override adds a container whose name has capitals, which the API rejects (422)."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task
from kubernetes.client import models as k8s

BAD_OVERRIDE = {
    "pod_override": k8s.V1Pod(
        spec=k8s.V1PodSpec(
            containers=[
                k8s.V1Container(name="base"),
                k8s.V1Container(name="Sidecar", image="busybox:1.36", command=["sleep", "1"]),
            ]
        )
    )
}


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def bad_pod_override() -> None:
    @task
    def on_celery() -> str:
        return "fine"

    @task(queue="kubernetes", executor_config=BAD_OVERRIDE)
    def in_pod_with_bad_override(value: str) -> str:
        return value

    in_pod_with_bad_override(on_celery())


bad_pod_override()

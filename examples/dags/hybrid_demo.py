"""One DAG, two routes: tasks on ``queue="kubernetes"`` get a pod each, every other task runs on Celery.

What it shows (``make demo`` runs it and prints where each task instance ran):

- ``extract`` (Celery) passes an XCom to ``transform_in_pod`` (a pod), whose XCom comes back to
  ``load`` (Celery);
- ``per_number`` is a task group mapped over ``transform_in_pod``'s output at run time: each of its
  instances runs ``double`` on Celery and ``square_in_pod`` in a pod, and ``summarize`` (Celery)
  collects the squares. (A mapped task's queue is the same for all its instances: Airflow gives
  each mapped task instance the queue of the unmapped task, so ``.expand(queue=...)`` would not
  change where instances run; mapping a group with a task on each route does.)
- ``check_pod_override`` runs in a pod changed by its ``executor_config["pod_override"]`` (an env
  var and resources) and checks both from inside: the env var, and its memory limit through the
  Downward API;
- ``flaky_in_pod`` fails on its first try and succeeds on its second, each try in its own pod.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import pendulum
from airflow.sdk import dag, get_current_context, task, task_group
from kubernetes.client import models as k8s

GREETING = "set by pod_override"
MEMORY_LIMIT = "512Mi"

POD_OVERRIDE = {
    "pod_override": k8s.V1Pod(
        spec=k8s.V1PodSpec(
            containers=[
                k8s.V1Container(
                    name="base",  # the worker container: the override merges into it
                    env=[
                        k8s.V1EnvVar(name="DEMO_GREETING", value=GREETING),
                        k8s.V1EnvVar(
                            name="DEMO_MEMORY_LIMIT_MIB",
                            value_from=k8s.V1EnvVarSource(
                                resource_field_ref=k8s.V1ResourceFieldSelector(
                                    container_name="base", resource="limits.memory", divisor="1Mi"
                                )
                            ),
                        ),
                    ],
                    resources=k8s.V1ResourceRequirements(
                        requests={"cpu": "100m", "memory": "256Mi"}, limits={"memory": MEMORY_LIMIT}
                    ),
                )
            ]
        )
    )
}


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["hybrid-executor", "example"],
    doc_md=__doc__,
)
def hybrid_demo() -> None:
    @task
    def extract() -> dict[str, object]:
        return {"numbers": [1, 2, 3], "extracted_on": socket.gethostname()}

    @task(queue="kubernetes")
    def transform_in_pod(payload: dict[str, object]) -> list[int]:
        numbers = payload["numbers"]
        assert isinstance(numbers, list), payload
        print(f"transforming {numbers} in pod {os.environ.get('HOSTNAME')}")
        return [number * 10 for number in numbers]

    @task
    def load(values: list[int]) -> int:
        if values != [10, 20, 30]:
            raise ValueError(f"the pod's XCom came back wrong: {values}")
        return sum(values)

    @task_group
    def per_number(value: int) -> object:
        @task
        def double(number: int) -> int:
            return number * 2

        @task(queue="kubernetes")
        def square_in_pod(number: int) -> int:
            return number * number

        return square_in_pod(double(value))

    @task
    def summarize(squares: list[int]) -> int:
        squares = sorted(squares)
        if squares != [400, 1600, 3600]:
            raise ValueError(f"unexpected squares from the mapped pods: {squares}")
        return sum(squares)

    @task(queue="kubernetes", executor_config=POD_OVERRIDE)
    def check_pod_override() -> None:
        greeting = os.environ.get("DEMO_GREETING")
        if greeting != GREETING:
            raise RuntimeError(f"DEMO_GREETING is {greeting!r}: the pod_override's env did not reach the pod")
        limit = os.environ.get("DEMO_MEMORY_LIMIT_MIB")
        if limit != "512":
            raise RuntimeError(f"the container's memory limit is {limit} MiB, not the pod_override's {MEMORY_LIMIT}")
        print(f"pod_override applied: DEMO_GREETING={greeting!r}, memory limit {limit} MiB")

    @task(queue="kubernetes", retries=1, retry_delay=timedelta(seconds=1))
    def flaky_in_pod() -> str:
        ti = get_current_context()["ti"]
        if ti.try_number == 1:
            raise RuntimeError("failing the first try on purpose; the retry gets a pod of its own")
        return f"succeeded on try {ti.try_number} in pod {os.environ.get('HOSTNAME')}"

    transformed = transform_in_pod(extract())
    load(transformed)
    summarize(per_number.expand(value=transformed))
    check_pod_override()
    flaky_in_pod()


hybrid_demo()

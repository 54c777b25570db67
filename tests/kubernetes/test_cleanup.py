"""PodDeleter against the local API: deletions retried through faults, 404 done, a uid precondition honoured."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kube_test_support import NS

from hybrid_executor.kubernetes.api import KubeApi
from hybrid_executor.kubernetes.cleanup import PodDeleter
from hybrid_executor.testing.kube import LocalKubeAPI


@pytest.fixture
def deleter(api: KubeApi) -> Iterator[PodDeleter]:
    made = PodDeleter(api, concurrency=4, retry_timeout=20, backoff_multiplier=0.05, backoff_max=0.2)
    made.start()
    yield made
    made.stop(timeout=5)


def make_pods(kube: LocalKubeAPI, count: int) -> list[dict[str, Any]]:
    from kubernetes.client import CoreV1Api

    core = CoreV1Api(kube.api_client())
    made = []
    for number in range(count):
        container = {"name": "base", "image": "busybox:1"}
        body = {"metadata": {"name": f"done-{number}"}, "spec": {"containers": [container]}}
        made.append(core.create_namespaced_pod(NS, body, _preload_content=False).json())
    return made


def names(kube: LocalKubeAPI) -> set[str]:
    return {pod["metadata"]["name"] for pod in kube.pods(NS)}


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_delete_whose_connection_is_reset_is_retried_until_the_pod_is_gone(
    kube: LocalKubeAPI, deleter: PodDeleter
) -> None:
    make_pods(kube, 1)
    reset = kube.faults.add("delete", "pods", reset=True, times=2)

    deleter.delete(NS, "done-0")
    wait_until(lambda: deleter.pending() == 0)

    assert reset.hits == 2
    assert names(kube) == set()
    assert kube.requests()[("delete", "pods")] == 3


def test_a_delete_whose_answer_was_lost_is_done_at_the_404_of_its_retry(
    kube: LocalKubeAPI, deleter: PodDeleter
) -> None:
    make_pods(kube, 1)
    kube.faults.add("delete", "pods", reset_after_apply=True, times=1)

    deleter.delete(NS, "done-0")
    wait_until(lambda: deleter.pending() == 0)

    assert names(kube) == set()
    assert kube.requests()[("delete", "pods")] == 2  # the lost one, then a 404: done


def test_throttled_and_failing_deletes_wait_and_retry_then_every_pod_goes(
    kube: LocalKubeAPI, deleter: PodDeleter
) -> None:
    make_pods(kube, 20)
    kube.faults.add("delete", "pods", status=429, retry_after=1, times=3)
    kube.faults.add("delete", "pods", status=503, probability=0.5, times=15)

    began = time.monotonic()
    for number in range(20):
        deleter.delete(NS, f"done-{number}")
    wait_until(lambda: deleter.pending() == 0, timeout=20)

    assert names(kube) == set()
    assert time.monotonic() - began >= 1.0  # a 429's Retry-After was waited out


def test_a_pod_already_gone_costs_one_request_and_another_pod_of_the_name_is_left_alone(
    kube: LocalKubeAPI, deleter: PodDeleter
) -> None:
    deleter.delete(NS, "never-was")
    [pod] = make_pods(kube, 1)
    deleter.delete(NS, "done-0", uid="not-" + pod["metadata"]["uid"])  # the pod asked for was replaced
    wait_until(lambda: deleter.pending() == 0)

    assert kube.requests()[("delete", "pods")] == 2  # no retry of a 404 nor of a failed precondition
    assert names(kube) == {"done-0"}

"""The pure parts of relaunching a pod that failed before its task started, and how adoption picks among its pods."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.models.taskinstancekey import TaskInstanceKey
from kube_test_support import NS

from hybrid_executor.kubernetes.adoption import adopt_pods
from hybrid_executor.kubernetes.api import KubeApi
from hybrid_executor.kubernetes.identity import (
    ANNOTATION_RELAUNCH,
    identity_annotations,
    identity_labels,
    newest_of_queueing,
    pod_name_for,
    relaunch_of_pod,
)
from hybrid_executor.kubernetes.orphans import DeletionPolicy, TaskInstanceRecord, Verdict, judge
from hybrid_executor.kubernetes.podstate import PodOutcome, container_reason, outcome_of
from hybrid_executor.kubernetes.relaunch import Relauncher
from hybrid_executor.kubernetes.tracking import TrackedPod

KEY = TaskInstanceKey("dag", "task", "run", 1, -1)
QUEUEING = "7b1c2f9e-0000-4000-8000-000000000001"


def _pod(relaunch: int, phase: str = "Failed", job: str = "1") -> dict[str, Any]:
    annotations = identity_annotations({}, KEY, QUEUEING)
    if relaunch:
        annotations[ANNOTATION_RELAUNCH] = str(relaunch)
    return {
        "metadata": {
            "name": pod_name_for(KEY, QUEUEING, relaunch),
            "namespace": NS,
            "labels": identity_labels({}, KEY, job),
            "annotations": annotations,
        },
        "spec": {"containers": [{"name": "base", "image": "apache/airflow:3.3.2"}]},
        "status": {"phase": phase},
    }


def test_each_relaunch_has_a_name_of_its_own_and_the_first_pod_keeps_its_name() -> None:
    names = [pod_name_for(KEY, QUEUEING, number) for number in range(3)]
    assert names[0] == pod_name_for(KEY, QUEUEING)
    assert len(set(names)) == 3
    assert names == [pod_name_for(KEY, QUEUEING, number) for number in range(3)]  # a retried create: 409, its own
    assert pod_name_for(KEY, "", 1) != pod_name_for(KEY, "")


def _terminated(reason: str | None, code: int = 1) -> dict[str, Any]:
    return {"name": "base", "state": {"terminated": {"exitCode": code, **({"reason": reason} if reason else {})}}}


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ({"containerStatuses": [_terminated("ContainerCannotRun", 128)]}, "ContainerCannotRun"),
        ({"containerStatuses": [_terminated("Completed", 0), _terminated("Error")]}, "Error"),
        (
            {"initContainerStatuses": [_terminated("OOMKilled", 137)], "containerStatuses": [_terminated("Error")]},
            "OOMKilled",
        ),
        ({"containerStatuses": [{"name": "base", "state": {"waiting": {"reason": "ErrImagePull"}}}]}, "ErrImagePull"),
        ({"reason": "Evicted", "message": "low on memory"}, None),
        ({"containerStatuses": [_terminated(None)]}, None),
    ],
)
def test_the_container_reason_is_the_stock_executors(status: dict[str, Any], reason: str | None) -> None:
    assert container_reason(status) == reason
    pod = {"metadata": {"name": "p", "namespace": NS}, "status": {"phase": "Failed", **status}}
    assert outcome_of("MODIFIED", pod).reason == reason


def _tracked(**fields: Any) -> TrackedPod:
    return TrackedPod(KEY, NS, pod_name_for(KEY, QUEUEING), QUEUEING, **{"workload": object(), **fields})


@pytest.mark.parametrize(
    ("relauncher", "pod", "reason", "allowed"),
    [
        (Relauncher(1, frozenset({"Error"})), _tracked(), "ContainerCannotRun", True),
        (Relauncher(1, frozenset({"Error"})), _tracked(), None, True),  # an eviction: no container said
        (Relauncher(1, frozenset({"Error"})), _tracked(), "Error", False),
        (Relauncher(1, frozenset()), _tracked(), "Error", True),
        (Relauncher(1, frozenset()), _tracked(relaunch=1), None, False),  # the one relaunch was used
        (Relauncher(-1, frozenset()), _tracked(relaunch=50), None, True),
        (Relauncher(0, frozenset()), _tracked(workload=None), None, False),
        (Relauncher(1, frozenset()), _tracked(current=False), None, False),  # an older queueing reports nothing
        (Relauncher(1, frozenset()), _tracked(revoked=True), None, False),
    ],
)
def test_what_may_get_a_new_pod(relauncher: Relauncher, pod: TrackedPod, reason: str | None, allowed: bool) -> None:
    assert relauncher.allows(pod, PodOutcome("failed", "pod failed", reason=reason)) is allowed
    assert Relauncher(0, frozenset()).enabled is False


def test_the_new_pods_launch_asks_the_database_first_and_carries_the_old_pods_failure() -> None:
    import jwt

    pod = _tracked(workload=SimpleNamespace(token=jwt.encode({"exp": int(time.time()) + 600}, "k" * 32)))
    successor, request = Relauncher(2, frozenset()).next_launch(
        pod,
        PodOutcome("failed", "pod default/x failed: ContainerCannotRun", reason="ContainerCannotRun"),
        lambda workload: {"metadata": {"name": pod.name, "annotations": {"kept": "yes"}}},
    )
    assert (successor.name, successor.relaunch, successor.queueing) == (pod_name_for(KEY, QUEUEING, 1), 1, QUEUEING)
    assert successor.launching
    assert successor.workload is pod.workload
    assert successor.failure == "pod default/x failed: ContainerCannotRun"
    assert request.pod_name == successor.name
    assert request.ask_first
    assert request.still_wanted is not None
    assert request.deadline is not None  # the workload token's expiry bounds the new pod's launch too
    assert callable(request.pod)
    body = request.pod()
    assert body["metadata"]["name"] == successor.name
    assert body["metadata"]["annotations"] == {"kept": "yes", ANNOTATION_RELAUNCH: "1"}


def test_the_log_view_and_adoption_take_the_last_relaunch_of_the_queueing(api: KubeApi) -> None:
    pods = [_pod(1, "Pending"), _pod(0), _pod(2, "Running")]
    assert relaunch_of_pod(newest_of_queueing(pods, QUEUEING)) == 2
    assert newest_of_queueing(pods, "another queueing") is None

    for pod in pods:
        api.create_pod(pod)
    ti = SimpleNamespace(key=KEY, external_executor_id=QUEUEING)
    outcome = adopt_pods(api, [NS], "2", [ti])  # type: ignore[list-item]
    assert [adopted.name for adopted in outcome.adopted] == [pod_name_for(KEY, QUEUEING, 2)]


def test_a_failed_pod_before_a_relaunch_is_left_to_adoption_then_goes_by_policy() -> None:
    policy = DeletionPolicy(delete_worker_pods=True, delete_worker_pods_on_failure=True)
    running = TaskInstanceRecord(current_try=True, state="running", external_executor_id=QUEUEING)
    assert judge(_pod(0), running, policy).verdict is Verdict.ADOPTABLE
    ended = TaskInstanceRecord(current_try=True, state="success", external_executor_id=QUEUEING)
    assert judge(_pod(0), ended, policy).verdict is Verdict.DELETE
    keep = DeletionPolicy(delete_worker_pods=True, delete_worker_pods_on_failure=False)
    assert judge(_pod(0), ended, keep).verdict is Verdict.KEEP

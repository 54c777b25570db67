"""A pod's status, as the API reports it, read as the state of its task."""

from __future__ import annotations

from typing import Any

import pytest

from hybrid_executor.kubernetes.podstate import outcome_of


def _pod(phase: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "work", "name": "p-1"}, "status": {"phase": phase, **status}}


def _waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {"containerStatuses": [{"name": "base", "state": {"waiting": {"reason": reason, "message": message}}}]}


def test_succeeded_is_success() -> None:
    outcome = outcome_of("MODIFIED", _pod("Succeeded"))
    assert (outcome.state, outcome.gone) == ("success", False)


def test_failed_names_the_container_reason_and_exit_code() -> None:
    terminated = {"exitCode": 137, "reason": "OOMKilled"}
    pod = _pod("Failed", containerStatuses=[{"name": "base", "state": {"terminated": terminated}}])

    outcome = outcome_of("MODIFIED", pod)

    assert outcome.state == "failed"
    assert "container base ended with exit code 137 (OOMKilled)" in outcome.message
    assert "work/p-1" in outcome.message


def test_an_evicted_pod_gives_the_pods_own_reason() -> None:
    pod = _pod("Failed", reason="Evicted", message="The node was low on resource: memory.")

    assert "Evicted: The node was low on resource: memory." in outcome_of("MODIFIED", pod).message


def test_deleted_under_a_running_task_is_a_failure_with_a_clear_message() -> None:
    outcome = outcome_of("DELETED", _pod("Running"))

    assert (outcome.state, outcome.gone) == ("failed", True)
    assert "was deleted while its task was running" in outcome.message


def test_a_finished_pod_deleted_keeps_its_result() -> None:
    assert outcome_of("DELETED", _pod("Succeeded")).state == "success"
    assert outcome_of("DELETED", _pod("Succeeded")).gone


def test_running() -> None:
    assert outcome_of("MODIFIED", _pod("Running")).state == "running"


@pytest.mark.parametrize(
    "reason",
    ["CreateContainerConfigError", "ErrImagePull", "CreateContainerError", "ImageInspectError", "InvalidImageName"],
)
def test_the_stock_fatal_reasons_fail_at_once(reason: str) -> None:
    outcome = outcome_of("MODIFIED", _pod("Pending", **_waiting(reason, "bad image")))

    assert (outcome.state, outcome.fatal) == ("pending", True)
    assert f"{reason}: bad image" in outcome.message


@pytest.mark.parametrize("reason", ["ImagePullBackOff", "ContainerCreating", "ErrImageNeverPull"])
def test_reasons_outside_the_list_wait(reason: str) -> None:
    outcome = outcome_of("MODIFIED", _pod("Pending", **_waiting(reason, "try again")))

    assert (outcome.state, outcome.fatal) == ("pending", False)


def test_the_configured_reasons_decide() -> None:
    pod = _pod("Pending", **_waiting("ErrImageNeverPull", "not present"))

    assert outcome_of("MODIFIED", pod, ("ErrImageNeverPull",)).fatal
    assert not outcome_of("MODIFIED", _pod("Pending", **_waiting("ErrImagePull")), ("ErrImageNeverPull",)).fatal
    assert not outcome_of("MODIFIED", _pod("Pending", **_waiting("InvalidImageName")), ()).fatal  # empty: none


def test_the_kubelets_pull_throttle_is_not_fatal() -> None:
    # As the stock executor: the next pull may well succeed.
    assert not outcome_of("MODIFIED", _pod("Pending", **_waiting("ErrImagePull", "pull QPS exceeded"))).fatal


def test_only_init_containers_and_the_worker_count_not_a_sidecar() -> None:
    sidecar = {"name": "proxy", "state": {"waiting": {"reason": "CreateContainerConfigError"}}}
    worker = {"name": "base", "state": {"waiting": {"reason": "ContainerCreating"}}}
    init = {"name": "setup", "state": {"waiting": {"reason": "ErrImagePull", "message": "no such image"}}}

    assert not outcome_of("MODIFIED", _pod("Pending", containerStatuses=[sidecar, worker])).fatal
    blocked = outcome_of("MODIFIED", _pod("Pending", containerStatuses=[sidecar, worker], initContainerStatuses=[init]))
    assert blocked.fatal
    assert "ErrImagePull: no such image" in blocked.message


def test_unschedulable_pending_says_why() -> None:
    condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes"}

    outcome = outcome_of("ADDED", _pod("Pending", conditions=[condition]))

    assert outcome.message == "Unschedulable: 0/1 nodes"


def test_a_pod_deleted_while_running_says_so_not_only_its_sigterm_exit_code() -> None:
    terminated = {"exitCode": 143, "reason": "Error"}
    pod = _pod("Failed", containerStatuses=[{"name": "base", "state": {"terminated": terminated}}])
    pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"

    outcome = outcome_of("MODIFIED", pod)

    assert outcome.state == "failed"
    assert "pod work/p-1 was deleted while its task was running" in outcome.message
    assert "exit code 143" in outcome.message


def test_an_evicted_pod_says_it_was_evicted() -> None:
    pod = _pod("Failed", reason="Evicted", message="The node was low on resource: memory.")

    assert outcome_of("MODIFIED", pod).message == (
        "pod work/p-1 was evicted by its node (Evicted: The node was low on resource: memory.) while its task "
        "was running: the task did not finish"
    )


@pytest.mark.parametrize(
    ("reason", "said"),
    [
        ("EvictionByEvictionAPI", "was evicted (EvictionByEvictionAPI: Eviction API: evicting)"),
        ("PreemptionByScheduler", "was preempted (PreemptionByScheduler: Eviction API: evicting)"),
        (
            "DeletionByTaintManager",
            "was deleted by a NoExecute taint on its node (DeletionByTaintManager: Eviction API: evicting)",
        ),
    ],
)
def test_a_disrupted_pod_says_how_whether_it_failed_or_was_deleted(reason: str, said: str) -> None:
    condition = {"type": "DisruptionTarget", "status": "True", "reason": reason, "message": "Eviction API: evicting"}
    for event_type, phase in (("MODIFIED", "Failed"), ("DELETED", "Running")):
        outcome = outcome_of(event_type, _pod(phase, conditions=[condition]))

        assert outcome.state == "failed"
        assert f"pod work/p-1 {said} while its task was running: the task did not finish" == outcome.message


def test_phase_unknown_is_neither_pending_nor_an_end() -> None:
    outcome = outcome_of("MODIFIED", _pod("Unknown"))

    assert outcome.state == "unknown"
    assert "phase Unknown" in outcome.message


def test_a_pod_its_provider_failed_to_start_fails_at_once() -> None:
    outcome = outcome_of("MODIFIED", _pod("Pending", reason="ProviderFailed", message="no capacity"))

    assert (outcome.state, outcome.fatal) == ("pending", True)
    assert outcome.message == "pod work/p-1 cannot start: ProviderFailed: no capacity"

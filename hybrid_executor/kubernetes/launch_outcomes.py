"""What a launch's answer means for its queueing's pod: what to delete, and whether the task fails.

Pure: :func:`settle_launch` updates the pod's entry and says what the executor must do; the
executor does it (deletes go through its deleter, reports through its event buffer).
"""

from __future__ import annotations

from dataclasses import dataclass

from hybrid_executor.kubernetes.launches import LaunchResult
from hybrid_executor.kubernetes.tracking import TrackedPod


@dataclass(frozen=True)
class LaunchActions:
    delete: bool = False  # delete the pod's name (with ``delete_uid`` as a precondition when set)
    # Set only for a stray pod: one created after its queueing ended (worth a warning).
    delete_uid: str | None = None
    stop_running: bool = False  # the task instance moved on: no longer running here, nothing reported
    failure: tuple[str, str] | None = None  # (event, message): report the task failed


def settle_launch(pod: TrackedPod, result: LaunchResult) -> LaunchActions:
    """Apply ``result`` to ``pod``'s entry (the launch is over), and what follows from it."""
    pod.launching = False
    pod.namespace = result.namespace  # a pod_override may have moved it to another watched namespace
    if result.ok:
        return _created(pod, result)
    if result.stale:
        return _stale(pod, result)
    if result.cancelled:
        return LaunchActions()
    return _failed(pod, result)


def _created(pod: TrackedPod, result: LaunchResult) -> LaunchActions:
    stray = result.uid is not None and (
        pod.revoked  # created while it was being revoked: the task must not run after all
        or (pod.uid is not None and result.uid != pod.uid)  # a second pod: the first was deleted meanwhile
        or (pod.finished and pod.uid is None)  # the outcome came before any pod did
    )
    if stray:
        return LaunchActions(delete=True, delete_uid=result.uid)
    if pod.revoked:
        return LaunchActions(delete=True)  # 409: the pod an earlier attempt stored
    if pod.uid is None and result.uid is not None:
        pod.uid = result.uid
    return LaunchActions()


def _stale(pod: TrackedPod, result: LaunchResult) -> LaunchActions:
    """The task instance moved on without the executor being told: nothing to report, it is forgotten.

    But for a relaunch: the pod before it failed, and the task instance not being queued means its
    task did start (or the scheduler moved on): that failure is reported, as if never relaunched.
    """
    stop_running = pod.current and not pod.finished and not pod.revoked
    pod.finished = True
    failure = ("pod failed", pod.failure) if stop_running and pod.failure else None
    # A create whose answer was lost may have been stored all the same.
    return LaunchActions(delete=result.gave_up, stop_running=stop_running and failure is None, failure=failure)


def _failed(pod: TrackedPod, result: LaunchResult) -> LaunchActions:
    if pod.uid is not None:
        return LaunchActions()  # every answer was lost, yet the watch shows the pod: it runs, and is followed
    report = pod.current and not pod.finished and not pod.revoked
    pod.finished = True  # before the report: change_state tells the scheduler's own calls by it
    failure = None
    if report:
        error = result.error or "unknown error"
        event = "pod could not be built" if error.startswith("pod could not be built") else "pod creation failed"
        failure = (event, f"{pod.failure}; and its new pod: {error}" if pod.failure else error)
    # After retryable errors, a create whose answer was lost may have been stored all the same: no
    # such pod may run once its task has been failed. (404 is fine: nothing was stored.)
    return LaunchActions(delete=result.gave_up, failure=failure)


__all__ = ["LaunchActions", "settle_launch"]

"""The error of a pod that cannot be built (its own module: templates, the merge and the builder raise it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.models.taskinstancekey import TaskInstanceKey


class PodBuildError(Exception):
    """A task's pod cannot be built. The message says what, for which task, and the fix.

    It is written for the task's event log and the scheduler log: it never contains the
    workload's token. The original exception is not chained (its message or traceback might
    hold the pod, args included); ``detail`` keeps its traceback, redacted, for the scheduler log.
    """

    def __init__(self, message: str, *, key: TaskInstanceKey | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.key = key
        self.detail = detail

    def __str__(self) -> str:
        return self.message


__all__ = ["PodBuildError"]

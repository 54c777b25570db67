"""Adoption tried again off the scheduler's thread, for task instances whose pods could not be listed.

While the API is down, nobody can tell whether a dead scheduler's task still has a pod. Answering
"not adopted" would make the scheduler reset the task and start another try, beside a pod that may
still run the first. So the executor answers "adopted", keeps the task instances as running, and
lists again here, on a thread of its own, every ``interval`` seconds until the API answers. Then
the pods found are followed as any adopted pod, and a task with no pod anywhere is failed with a
message that says so (Airflow retries it as its retries allow). Meanwhile a task whose pod runs
reports its own end to Airflow's API server, as every Airflow 3 task does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancekey import TaskInstanceKey

    from hybrid_executor.kubernetes.adoption import AdoptedPod, AdoptionResult

log = logging.getLogger(__name__)

RETRY_INTERVAL = 30.0  # seconds between listings while the API does not answer

# Why a task adopted while the API could not be listed is failed once the listing answers.
_NOT_FOUND = (
    "no pod of this task was found when its scheduler's tasks were adopted (the Kubernetes API "
    "could not be listed at first): the pod was never created, or is gone"
)
_UNRELABELLED = (
    "the pod of this task was found when its scheduler's tasks were adopted, but could not be relabelled "
    "as this scheduler's (see the warning logged for it), so it was deleted: no watch would have followed it"
)


@dataclass
class Readopted:
    """What one listing settled: pods to follow, and task instances that have no pod."""

    adopted: list[AdoptedPod] = field(default_factory=list)
    missing: list[TaskInstance] = field(default_factory=list)
    unrelabelled: frozenset[TaskInstanceKey] = frozenset()  # of missing: found, but not relabelled (deleted)

    def failures(self) -> list[tuple[TaskInstance, str, str]]:
        """Each task instance to fail: (it, the task event's name, why)."""
        return [
            (ti, "pod not adopted", _UNRELABELLED)
            if ti.key in self.unrelabelled
            else (ti, "pod not found at adoption", _NOT_FOUND)
            for ti in self.missing
        ]


class PendingAdoptions:
    """Task instances adopted before their pods could be found; ``poll`` from the scheduler's thread."""

    def __init__(
        self,
        adopt: Callable[[Sequence[TaskInstance]], AdoptionResult],
        interval: float = RETRY_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._adopt = adopt
        self._interval = interval
        self._clock = clock
        self._waiting: dict[TaskInstanceKey, TaskInstance] = {}
        self._due = 0.0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._settled: Readopted | None = None  # set by the thread; taken by poll()

    def __len__(self) -> int:
        return len(self._waiting)

    def __contains__(self, key: object) -> bool:
        return key in self._waiting

    def add(self, tis: Sequence[TaskInstance]) -> None:
        for ti in tis:
            self._waiting[ti.key] = ti
        if not self._due:
            self._due = self._clock() + self._interval

    def discard(self, key: TaskInstanceKey) -> None:
        """The scheduler ended or revoked the task: stop looking for its pod."""
        self._waiting.pop(key, None)

    def poll(self) -> Readopted:
        """What the last listing settled (once), and a new listing started when one is due."""
        with self._lock:
            settled, self._settled = self._settled, None
        result = Readopted()
        if settled is not None:
            # Only what is still waiting: the scheduler may have ended a task meanwhile.
            result.adopted = [pod for pod in settled.adopted if self._waiting.pop(pod.key, None) is not None]
            result.missing = [ti for ti in settled.missing if self._waiting.pop(ti.key, None) is not None]
            result.unrelabelled = settled.unrelabelled
        if self._waiting and self._thread is None and self._clock() >= self._due:
            tis = list(self._waiting.values())
            self._due = self._clock() + self._interval
            self._thread = threading.Thread(target=self._list, args=(tis,), name="pod-readoption", daemon=True)
            self._thread.start()
        elif not self._waiting:
            self._due = 0.0
        return result

    def _list(self, tis: list[TaskInstance]) -> None:
        try:
            outcome = self._adopt(tis)
        except Exception:  # a bug here must not lose the tasks: they wait for the next listing
            log.exception("Adopting %d task instances failed; trying again in %.0fs", len(tis), self._interval)
            outcome = None
        with self._lock:
            if outcome is not None:
                self._settled = Readopted(list(outcome.adopted), list(outcome.not_adopted), outcome.unrelabelled)
            self._thread = None


__all__ = ["RETRY_INTERVAL", "PendingAdoptions", "Readopted"]

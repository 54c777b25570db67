"""The pending timeout (``[hybrid_executor] worker_pods_pending_timeout``): which pods waited too long.

Each heartbeat costs O(pods due), never a scan of everything followed: deadlines are a heap. A pod
that starts or ends leaves its deadline in the heap until it comes due; :meth:`PendingDeadlines.due`
drops those once the heap holds more than twice the pods followed (see :meth:`_drop_stale`).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping

from hybrid_executor.kubernetes.tracking import TrackedPod


class PendingDeadlines:
    """When each Pending pod times out; a ``timeout`` of None: never (Airflow's task_queued_timeout bounds it).

    ``timeout`` is the same in every call (the executor's setting).
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._heap)

    def started_pending(self, pod: TrackedPod, now: float, timeout: float | None) -> None:
        """``pod`` is Pending from ``now`` (its ``pending_since``), and times out ``timeout`` later."""
        pod.pending_since = now
        if timeout is not None:
            heapq.heappush(self._heap, (now + timeout, pod.name))

    def due(self, pods: Mapping[str, TrackedPod], now: float, timeout: float | None) -> Iterator[TrackedPod]:
        """The pods of ``pods`` (by name) still Pending past their deadline at ``now``, each once."""
        if len(self._heap) > 2 * len(pods):
            self._drop_stale(pods, timeout)
        while timeout is not None and self._heap and self._heap[0][0] <= now:
            _, name = heapq.heappop(self._heap)
            pod = pods.get(name)
            since = None if pod is None else _pending_since(pod)
            if pod is None or since is None or since + timeout > now:
                continue  # no longer Pending, or Pending again since: a newer deadline is in the heap
            yield pod

    def _drop_stale(self, pods: Mapping[str, TrackedPod], timeout: float | None) -> None:
        """Keep the deadlines of pods still Pending only.

        Without this, the heap would hold every pod of the last timeout seconds (tens of thousands
        on a busy scheduler), not those pending now. At most one entry per followed pod is kept,
        and this runs only once the heap holds more than twice the pods followed, so more than
        half of it goes: each run costs at most twice what it drops, O(1) per deadline, amortised.
        """
        if timeout is None:  # nothing is ever pushed
            self._heap = []
            return
        self._heap = [
            (deadline, name)
            for deadline, name in self._heap
            if (pod := pods.get(name)) is not None
            and (since := _pending_since(pod)) is not None
            and since + timeout == deadline  # exact: the deadline was computed so
        ]
        heapq.heapify(self._heap)


def _pending_since(pod: TrackedPod) -> float | None:
    """When ``pod`` became Pending, if it still is and is still wanted."""
    if pod.finished or pod.revoked:
        return None
    return pod.pending_since


__all__ = ["PendingDeadlines"]

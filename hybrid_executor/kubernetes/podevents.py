"""What a pod watcher hands the executor (:class:`PodEvent`), and what it keeps of the pods it knows.

A watcher remembers each pod it has seen as a *tombstone* (:func:`tombstone`): enough to name its
task, and no spec (the JWT is in there). After a relist, :class:`KnownPods` says which known pods
went while the watch was down, for the watcher to report as synthetic DELETED events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hybrid_executor.kubernetes.identity import queueing_of_pod, task_key_from_pod

if TYPE_CHECKING:
    from airflow.models.taskinstancekey import TaskInstanceKey

RELISTED = "RELISTED"


@dataclass(frozen=True)
class PodEvent:
    """A pod change for the executor.

    ``type`` is ADDED, MODIFIED or DELETED (from the watch, or a synthetic DELETED for a pod that
    went while the watch was down), or RELISTED (a pod as a list found it: at start and after a
    410). ``pod`` is the raw JSON pod; a synthetic DELETED carries only the last known
    apiVersion, kind, metadata (name, namespace, uid, resourceVersion, labels, annotations,
    deletionTimestamp) and ``status.phase``.
    """

    type: str
    pod: dict[str, Any]
    synthetic: bool = False  # a DELETED the watcher made up after a relist, not the server's
    # The pod's identity, read from its metadata on the thread that makes the event (a watcher's),
    # so that the scheduler's thread, which handles hundreds of events per heartbeat, only compares.
    key: TaskInstanceKey | None = field(init=False, repr=False, compare=False)
    queueing: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", task_key_from_pod(self.pod))
        object.__setattr__(self, "queueing", queueing_of_pod(self.pod))


def pod_ref(pod: dict[str, Any]) -> tuple[str, str]:
    """A pod's namespace and name."""
    metadata = pod["metadata"]
    return metadata.get("namespace", ""), metadata["name"]


def tombstone(pod: dict[str, Any]) -> dict[str, Any]:
    """What is kept of a known pod: enough to name its task, and no spec (the JWT is in there)."""
    metadata = pod["metadata"]
    kept = {
        field: metadata[field]
        for field in ("name", "namespace", "uid", "resourceVersion", "labels", "annotations", "deletionTimestamp")
        if field in metadata
    }
    stone: dict[str, Any] = {"apiVersion": pod.get("apiVersion", "v1"), "kind": pod.get("kind", "Pod")}
    stone["metadata"] = kept
    phase = (pod.get("status") or {}).get("phase")
    if phase is not None:
        stone["status"] = {"phase": phase}
    return stone


class KnownPods:
    """The tombstone of each pod a watcher knows, by namespace/name (bounded by the pods it lists)."""

    def __init__(self) -> None:
        self._tombstones: dict[tuple[str, str], dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self._tombstones)

    def relisted(self, listed: Mapping[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
        """Know exactly the pods ``listed`` (by :func:`pod_ref`); returns the tombstones of those gone since."""
        # Gone: not listed, or listed under another uid (deleted and created again: a new pod).
        gone = [
            known
            for key, known in self._tombstones.items()
            if key not in listed or listed[key]["metadata"].get("uid") != known["metadata"].get("uid")
        ]
        self._tombstones = {key: tombstone(pod) for key, pod in listed.items()}
        return gone

    def saw(self, kind: str, pod: dict[str, Any]) -> None:
        """A watch event of ``kind`` (ADDED, MODIFIED or DELETED) for ``pod``."""
        key = pod_ref(pod)
        if kind == "DELETED":
            self._tombstones.pop(key, None)
        else:
            self._tombstones[key] = tombstone(pod)


__all__ = ["RELISTED", "KnownPods", "PodEvent", "pod_ref", "tombstone"]

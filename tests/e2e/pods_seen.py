"""Every pod that appears in a namespace, seen by a watch of the test's own (so deleted pods count too)."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SeenPod:
    name: str
    uid: str
    annotations: dict[str, str]  # as the pod was first seen (the executor never changes them)


class PodsSeen:
    """Each pod, by uid: a second pod of one name (made after the first was deleted) is a pod of its own."""

    def __init__(self, core: Any, namespace: str) -> None:
        from kubernetes import watch

        self._pods: dict[str, SeenPod] = {}
        self._lock = threading.Lock()
        self.error: BaseException | None = None
        self._stopped = False
        self._watch = watch.Watch()
        self._thread = threading.Thread(target=self._run, args=(core, namespace), daemon=True)
        self._thread.start()

    def _run(self, core: Any, namespace: str) -> None:
        try:
            for event in self._watch.stream(core.list_namespaced_pod, namespace, timeout_seconds=600):
                metadata = event["object"].metadata
                pod = SeenPod(metadata.name, metadata.uid, dict(metadata.annotations or {}))
                with self._lock:
                    self._pods.setdefault(pod.uid, pod)
        except Exception as error:  # the stack stopping ends the stream; before that, it is a failure
            if not self._stopped:
                self.error = error

    def pods(self) -> list[SeenPod]:
        assert self.error is None, f"the test's watch broke: {self.error!r}"
        with self._lock:
            return list(self._pods.values())

    def names(self) -> set[str]:
        return {pod.name for pod in self.pods()}

    def by_task(self, run_id: str) -> dict[str, list[dict[str, str]]]:
        """The annotations of each pod of the run, by task id."""
        tasks: dict[str, list[dict[str, str]]] = defaultdict(list)
        for pod in self.pods():
            if pod.annotations.get("run_id") == run_id:
                tasks[pod.annotations["task_id"]].append(pod.annotations)
        return tasks

    def stop(self) -> None:
        self._stopped = True
        self._watch.stop()

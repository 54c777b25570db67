"""Deletes worker pods off the scheduler's thread, each pod at most once at a time.

A deletion may name the pod's uid: then only that pod goes, never another one that has taken its
name since (the API answers 409 Conflict to the precondition, which means: nothing of ours to delete).
"""

from __future__ import annotations

import logging
import queue
import threading

from hybrid_executor.kubernetes.api import KubeApi, KubeApiError

log = logging.getLogger(__name__)


class PodDeleter:
    def __init__(self, api: KubeApi) -> None:
        self._api = api
        self._queue: queue.SimpleQueue[tuple[str, str, str | None] | None] = queue.SimpleQueue()
        self._asked: set[tuple[str, str, str | None]] = set()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hybrid-executor-pod-deleter", daemon=True)
        self._thread.start()

    def delete(self, namespace: str, name: str, uid: str | None = None) -> None:
        """Ask for a deletion (of pod ``uid`` only, if given); never blocks; a pending one is not asked again."""
        item = (namespace, name, uid)
        if item in self._asked:
            return
        self._asked.add(item)
        self._queue.put(item)

    def stop(self, timeout: float) -> None:
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            namespace, name, uid = item
            try:
                self._api.delete_pod(namespace, name, uid=uid)  # a 404 is done, not an error
            except KubeApiError as error:
                if uid is not None and error.code == 409:
                    continue  # the name now belongs to another pod: the one asked for is gone
                log.warning("Could not delete worker pod %s/%s: %s", namespace, name, error)
            except Exception:
                log.exception("Unexpected error deleting worker pod %s/%s", namespace, name)
            finally:
                self._asked.discard(item)  # kept only while pending: the set never grows with history

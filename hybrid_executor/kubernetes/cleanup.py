"""Deletes finished worker pods off the scheduler's thread, each pod at most once."""

from __future__ import annotations

import logging
import queue
import threading

from hybrid_executor.kubernetes.api import KubeApi, KubeApiError

log = logging.getLogger(__name__)


class PodDeleter:
    def __init__(self, api: KubeApi) -> None:
        self._api = api
        self._queue: queue.SimpleQueue[tuple[str, str] | None] = queue.SimpleQueue()
        self._asked: set[tuple[str, str]] = set()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hybrid-executor-pod-deleter", daemon=True)
        self._thread.start()

    def delete(self, namespace: str, name: str) -> None:
        """Ask for a deletion; never blocks, and a pod already asked for is not asked again."""
        if (namespace, name) in self._asked:
            return
        self._asked.add((namespace, name))
        self._queue.put((namespace, name))

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
            namespace, name = item
            try:
                self._api.delete_pod(namespace, name)  # a 404 is done, not an error
            except KubeApiError as error:
                log.warning("Could not delete worker pod %s/%s: %s", namespace, name, error)
            except Exception:
                log.exception("Unexpected error deleting worker pod %s/%s", namespace, name)
            finally:
                self._asked.discard(item)  # kept only while pending: the set never grows with history

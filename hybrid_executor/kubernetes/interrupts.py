"""How a waiting pod launch is stopped (cancelled) or woken early (room freed in its namespace's quota).

:class:`Interrupt` is one launch's flag; :class:`QuotaWaits` wakes the launches that wait for room in
a namespace's ResourceQuota, one per pod that frees room there, oldest first: a launch refused for a
full quota tries again as soon as a pod of that namespace ends, not only after its backoff (which
grows to many seconds), while a namespace full of waiting launches is not stampeded by all of them
for each pod that ends.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque

_LOCK = threading.Lock()  # one for every Interrupt: they are many, and each is touched rarely


class Interrupt:
    """A launch's "stop waiting" flag, with a nudge that ends one wait early without cancelling.

    A :class:`threading.Event` is made only once someone waits: :meth:`PodLauncher.submit` runs on
    the scheduler's thread, once per task, and most launches never wait.
    """

    __slots__ = ("_event", "_nudged", "_set")

    def __init__(self) -> None:
        self._set = False
        self._nudged = False
        self._event: threading.Event | None = None

    def set(self) -> None:
        with _LOCK:
            self._set = True
            event = self._event
        if event is not None:
            event.set()

    def nudge(self) -> None:
        """End the current (or next) wait early; :meth:`wait` then answers False, as on a timeout."""
        with _LOCK:
            self._nudged = True
            event = self._event
        if event is not None:
            event.set()

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float) -> bool:
        """Wait until set, nudged, or ``timeout`` seconds have passed; True only if set."""
        with _LOCK:
            if self._set:
                return True
            if self._nudged:
                self._nudged = False
                return False
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        event.wait(timeout)
        with _LOCK:
            self._nudged = False
            if not self._set:
                event.clear()
            return self._set


class QuotaWaits:
    """The launches waiting for room in each namespace's quota, in the order they began to wait."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, deque[Interrupt]] = {}

    def __len__(self) -> int:
        """Launches waiting now, in every namespace."""
        with self._lock:
            return sum(len(waiting) for waiting in self._waiting.values())

    def wait(self, namespace: str, interrupt: Interrupt, seconds: float) -> bool:
        """Wait up to ``seconds``, or until room frees in ``namespace``; True if the launch was interrupted."""
        with self._lock:
            self._waiting.setdefault(namespace, deque()).append(interrupt)
        try:
            return interrupt.wait(seconds)
        finally:
            with self._lock:
                waiting = self._waiting.get(namespace)
                if waiting is not None:
                    with contextlib.suppress(ValueError):  # already woken: freed() took it off
                        waiting.remove(interrupt)
                    if not waiting:
                        del self._waiting[namespace]

    def freed(self, namespace: str, pods: int = 1) -> None:
        """``pods`` pods of ``namespace`` ended: wake as many waiting launches, oldest first."""
        with self._lock:
            waiting = self._waiting.get(namespace)
            woken = [waiting.popleft() for _ in range(min(pods, len(waiting)))] if waiting else []
        for interrupt in woken:
            interrupt.nudge()


__all__ = ["Interrupt", "QuotaWaits"]

"""PodWatcher: one thread per namespace that lists, then watches, the executor's pods into a queue.

The thread follows the API conventions for a consistent view (what client-go's reflector does):

- **List** (paginated, following ``continue``), then **watch** from the list's resourceVersion,
  with bookmarks, so that no change between the two is missed.
- A watch that ends (the server's timeout, the server closing it, a reset connection, a 5xx) is
  opened again **from the last resourceVersion seen**, an event's or a BOOKMARK's, after a
  backoff: full jitter, growing exponentially (tenacity's ``wait_random_exponential``) while
  connections keep failing and starting over once one succeeds. A stream that ran its whole
  timeout is the normal end of a watch and is reopened at once.
- **410 Gone** (the resourceVersion has left the server's history) means events were lost: the
  thread **relists** and reconciles: every listed pod comes out as ``RELISTED``, and every pod
  known before but no longer there (by namespace/name *and* uid, so a pod deleted and created
  again under the same name is a new pod) as a synthetic ``DELETED`` carrying its last known
  metadata and phase.
- resourceVersions are opaque strings: they are only ever passed back to the server, never
  compared or parsed.
- The thread never dies on an unexpected error: it logs it, backs off and relists.

Only names, namespaces and resourceVersions are logged, never a pod: a pod's container args
carry the workload JSON, with its JWT.

The watcher talks to the API through :class:`~hybrid_executor.kubernetes.podsource.PodSource`
(two methods of ``KubeApi``) and does not import the API module; an iterator that ``watch_pods``
returns may offer ``shutdown()`` (see :class:`~hybrid_executor.kubernetes.podsource.InterruptibleStream`)
so that :meth:`PodWatcher.stop` need not wait for the server to end the stream. What it emits, and
the tombstones it keeps, are :mod:`hybrid_executor.kubernetes.podevents`; its backoff is
:mod:`hybrid_executor.kubernetes.watchbackoff`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from hybrid_executor.kubernetes.podevents import RELISTED, KnownPods, PodEvent, pod_ref
from hybrid_executor.kubernetes.podsource import (
    InterruptibleStream,
    PodPageLike,
    PodSource,
    WatchEventLike,
    describe,
    is_gone,
)
from hybrid_executor.kubernetes.watchbackoff import ReconnectBackoff
from hybrid_executor.metrics import PodMetrics

log = logging.getLogger(__name__)

_EMITTED_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED"})


class _StreamFailed(Exception):
    """A watch ERROR event other than 410 (reason and message only, never the object)."""


class _Gone(Exception):
    """The watch answered 410: relist."""


# --- the watcher ------------------------------------------------------------------------------


class PodWatcher:
    """Lists and watches the pods of one namespace (None: of all) matching ``label_selector`` into ``events``.

    ``start()`` runs the daemon thread; ``synced`` turns True once the first list is in the
    queue; ``stop()`` ends the thread (at once if the watch stream is an
    :class:`InterruptibleStream`, else when the server ends the stream, within
    ``watch_timeout_seconds``).
    """

    def __init__(
        self,
        api: PodSource,
        namespace: str | None,
        label_selector: str,
        events: queue.SimpleQueue[PodEvent],
        *,
        watch_timeout_seconds: int = 300,
        backoff_max: float = 30.0,
        backoff_initial: float = 0.5,
        page_size: int = 500,
        metrics: PodMetrics | None = None,
    ) -> None:
        if watch_timeout_seconds < 1:
            raise ValueError(f"watch_timeout_seconds must be at least 1, got {watch_timeout_seconds}")
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        self.namespace = namespace
        # What logs and thread names call it; a cluster-wide watch (multi_namespace_mode) is "*".
        self.scope = namespace if namespace is not None else "*"
        self.label_selector = label_selector
        self._api = api
        self._metrics = metrics or PodMetrics()
        self._events = events
        self._timeout = watch_timeout_seconds
        self._page_size = page_size
        self._backoff = ReconnectBackoff(backoff_initial, backoff_max)
        self._known = KnownPods()  # ns/name -> last known tombstone
        self._resource_version: str | None = None
        self._stopping = threading.Event()
        self._synced = threading.Event()
        self._stream_lock = threading.Lock()
        self._stream: object | None = None
        self._thread: threading.Thread | None = None

    # --- life ----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"the pod watcher for namespace {self.scope!r} is already started")
        self._thread = threading.Thread(target=self._run, name=f"pod-watcher-{self.scope}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to end, interrupt its watch stream if that can be done, and join it."""
        self._stopping.set()
        with self._stream_lock:
            stream = self._stream
        if isinstance(stream, InterruptibleStream):
            try:
                stream.shutdown()
            except Exception as error:  # stopping must not fail on a stream that is already broken
                log.debug("pod watcher %s: shutting the watch stream down: %s", self.scope, type(error).__name__)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning(
                    "pod watcher %s: still in a watch request %.1f s after stop(); it ends with the request",
                    self.scope,
                    timeout,
                )

    @property
    def synced(self) -> bool:
        """Whether the first list is done and its pods are in the queue."""
        return self._synced.is_set()

    def wait_synced(self, timeout: float | None = None) -> bool:
        return self._synced.wait(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def consecutive_failures(self) -> int:
        """Lists or watch connections that failed in a row; 0 once one succeeds."""
        return self._backoff.failures

    @property
    def resource_version(self) -> str | None:
        """The last resourceVersion seen (list, event or bookmark), from which a watch resumes."""
        return self._resource_version

    # --- the thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        log.info("pod watcher %s: started (selector %r)", self.scope, self.label_selector)
        while not self._stopping.is_set():
            try:
                delay = self._step()
            except Exception:  # the thread must outlive any bug: log it, back off, relist
                log.error(
                    "pod watcher %s: unexpected error at resourceVersion %s; relisting",
                    self.scope,
                    self._resource_version,
                    exc_info=True,
                )
                self._resource_version = None
                delay = self._backoff.failed()
            if delay > 0:
                self._stopping.wait(delay)
        log.info("pod watcher %s: stopped", self.scope)

    def _step(self) -> float:
        """One list or one watch stream; returns how long to wait before the next step."""
        if self._resource_version is None:
            try:
                self._relist()
            except Exception as error:
                delay = self._backoff.failed(error)
                log.warning("pod watcher %s: list failed (%s); retrying in %.2f s", self.scope, describe(error), delay)
                return delay
            self._backoff.succeeded()
            return 0.0
        return self._watch(self._resource_version)

    # --- list ----------------------------------------------------------------------------------

    def _relist(self) -> None:
        """List every page, then emit DELETED for pods gone since, and RELISTED for each pod found."""
        listed: dict[tuple[str, str], dict[str, Any]] = {}
        continue_token: str | None = None
        pages = 0
        while True:
            page = self._api.list_pods_page(
                namespace=self.namespace,
                label_selector=self.label_selector,
                continue_token=continue_token,
                limit=self._page_size,
            )
            pages += 1
            for pod in page.items:
                listed[pod_ref(pod)] = pod
            continue_token = page.continue_token or None
            if continue_token is None or self._stopping.is_set():
                break
        if self._stopping.is_set():
            return
        gone = self._known.relisted(listed)
        for tombstone in gone:
            log.info(
                "pod watcher %s: pod %s (uid %s) went while the watch was down",
                self.scope,
                tombstone["metadata"]["name"],
                tombstone["metadata"].get("uid"),
            )
            self._events.put(PodEvent("DELETED", tombstone, synthetic=True))
        for pod in listed.values():
            self._events.put(PodEvent(RELISTED, pod))
        self._resource_version = page.resource_version
        log.info(
            "pod watcher %s: listed %d pods in %d pages at resourceVersion %s (%d gone)",
            self.scope,
            len(listed),
            pages,
            page.resource_version,
            len(gone),
        )
        self._synced.set()

    # --- watch ---------------------------------------------------------------------------------

    def _watch(self, resource_version: str) -> float:
        """Follow one watch stream to its end; returns the wait before the next one.

        A failure of the source (the request, or reading the stream) is a dropped stream: back
        off, resume from the last resourceVersion. An error in handling an event is not caught
        here: ``_run`` logs it and relists.
        """
        started = time.monotonic()
        received = 0
        try:
            stream = self._api.watch_pods(
                namespace=self.namespace,
                label_selector=self.label_selector,
                resource_version=resource_version,
                timeout_seconds=self._timeout,
            )
        except Exception as error:
            return self._dropped(error, resource_version, received)
        with self._stream_lock:
            self._stream = stream
        try:
            while not self._stopping.is_set():
                try:
                    event = next(stream)
                except StopIteration:
                    break
                except Exception as error:
                    return self._dropped(error, resource_version, received)
                if received == 0:
                    self._backoff.succeeded()  # connected: the backoff starts over
                received += 1
                try:
                    self._handle(event)
                except _Gone:
                    return self._gone(resource_version)
                except _StreamFailed as error:
                    return self._dropped(error, resource_version, received)
        finally:
            self._forget_stream()
        if self._stopping.is_set():
            return 0.0
        if time.monotonic() - started >= self._timeout:
            return 0.0  # the server's timeout: the normal end of a watch, reopened at once
        # Closed early by the server. If it delivered events, the backoff has started over and
        # this is a short jittered wait; if it delivered none, one more failure in a row.
        self._metrics.watch_reconnected(self.namespace)
        delay = self._backoff.failed()
        log.info(
            "pod watcher %s: watch closed by the server after %d events; resuming from resourceVersion %s in %.2f s",
            self.scope,
            received,
            self._resource_version,
            delay,
        )
        return delay

    def _dropped(self, error: BaseException, resource_version: str, received: int) -> float:
        if self._stopping.is_set():
            return 0.0  # stop() shut the stream down
        if is_gone(error):
            return self._gone(resource_version)
        self._metrics.watch_reconnected(self.namespace)
        delay = self._backoff.failed(error)
        log.warning(
            "pod watcher %s: watch from resourceVersion %s failed after %d events (%s); "
            "resuming from resourceVersion %s in %.2f s",
            self.scope,
            resource_version,
            received,
            describe(error),
            self._resource_version,
            delay,
        )
        return delay

    def _forget_stream(self) -> None:
        with self._stream_lock:
            stream, self._stream = self._stream, None
        close = getattr(stream, "close", None)
        if callable(close):
            try:
                close()
            except Exception as error:  # a stream that is already broken
                log.debug("pod watcher %s: closing a watch stream: %s", self.scope, type(error).__name__)

    def _gone(self, resource_version: str) -> float:
        log.info("pod watcher %s: resourceVersion %s is gone (410); relisting", self.scope, resource_version)
        self._metrics.watch_relisted(self.namespace)
        self._resource_version = None
        return 0.0

    def _handle(self, event: WatchEventLike) -> None:
        kind = event.type
        obj = event.object
        if kind == "ERROR":
            # KubeApi raises for these itself; a source that hands them on is still understood.
            if obj.get("code") == 410:
                raise _Gone
            raise _StreamFailed(f"watch ERROR {obj.get('code')} {obj.get('reason')}: {obj.get('message')}")
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "BOOKMARK":
            if version:
                self._resource_version = version
            return
        if kind not in _EMITTED_TYPES:
            log.warning("pod watcher %s: ignoring a watch event of unknown type %r", self.scope, kind)
            return
        self._known.saw(kind, obj)
        self._events.put(PodEvent(kind, obj))
        if version:
            self._resource_version = version


# Re-exported: tests and other modules import these from here.
__all__ = [
    "RELISTED",
    "InterruptibleStream",
    "PodEvent",
    "PodPageLike",
    "PodSource",
    "PodWatcher",
    "WatchEventLike",
    "is_gone",
]

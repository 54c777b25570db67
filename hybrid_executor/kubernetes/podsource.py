"""What a pod watcher needs from the API (:class:`PodSource`; ``KubeApi`` satisfies it), and its errors read.

The watcher does not import the API module; an iterator that ``watch_pods`` returns may offer
``shutdown()`` (see :class:`InterruptibleStream`) so that the watcher's ``stop()`` need not wait
for the server to end the stream.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable


class PodPageLike(Protocol):
    """One page of a pod list: ``KubeApi.list_pods_page``'s ``PodPage``."""

    @property
    def items(self) -> Sequence[dict[str, Any]]: ...
    @property
    def resource_version(self) -> str: ...
    @property
    def continue_token(self) -> str | None: ...


class WatchEventLike(Protocol):
    """One watch event: ``KubeApi.watch_pods``'s ``WatchEvent`` (the raw JSON object)."""

    @property
    def type(self) -> str: ...
    @property
    def object(self) -> dict[str, Any]: ...


class PodSource(Protocol):
    """The two calls the watcher makes; ``hybrid_executor.kubernetes.api.KubeApi`` has both.

    Either may raise anything on failure. A 410 (resourceVersion or continue token too old)
    must be recognisable by :func:`is_gone`: ``KubeApiError(kind=GONE)`` is.
    """

    def list_pods_page(
        self, namespace: str | None, label_selector: str, continue_token: str | None, limit: int
    ) -> PodPageLike: ...

    def watch_pods(
        self, namespace: str | None, label_selector: str, resource_version: str, timeout_seconds: int
    ) -> Iterator[WatchEventLike]: ...


@runtime_checkable
class InterruptibleStream(Protocol):
    """Optional: a watch iterator whose ``shutdown()``, called from another thread, ends a blocked read."""

    def shutdown(self) -> None: ...


def is_gone(error: BaseException) -> bool:
    """Whether ``error`` is a 410: ``KubeApiError`` of kind GONE, or anything carrying code/status 410."""
    kind = getattr(error, "kind", None)
    if getattr(kind, "name", None) == "GONE":
        return True
    return 410 in (getattr(error, "code", None), getattr(error, "status", None))


def describe(error: BaseException) -> str:
    """An error for the log: its type and its first line, cut short (never an object dump)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if len(text) > 300:
        text = text[:300] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


__all__ = ["InterruptibleStream", "PodPageLike", "PodSource", "WatchEventLike", "describe", "is_gone"]

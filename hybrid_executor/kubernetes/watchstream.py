"""One watch response read as events: the stream :meth:`KubeApi.watch_pods` returns.

Lines are parsed as they come (a watch sends one JSON event per line). A BOOKMARK is an event like
the others (its object carries only the resourceVersion to resume from); an ERROR event raises its
classified Status (GONE for 410); a stream the network cuts raises RETRYABLE.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

from hybrid_executor.kubernetes.errors import ApiErrorKind, KubeApiError, classify, from_status

__all__ = ["WatchEvent", "WatchStream"]


@dataclass(frozen=True)
class WatchEvent:
    """One watch event: ADDED, MODIFIED, DELETED or BOOKMARK, with the raw JSON object."""

    type: str
    object: dict[str, Any]


class WatchStream(Iterator[WatchEvent]):
    """The events of one watch response, read line by line as they come.

    BOOKMARK events are yielded (their object carries only the resourceVersion to resume from).
    An ERROR event raises: GONE for 410 (the resourceVersion has left the history: relist), its
    classified Status otherwise. A stream cut by the network raises RETRYABLE. The iteration ends
    when the server ends the watch (its ``timeoutSeconds``). ``close()`` frees the connection
    early; ``shutdown()``, from any thread, ends a read that is waiting for the next event.
    """

    def __init__(self, response: Any) -> None:
        self._response = response
        self._released = False
        self._events = self._read()

    def __iter__(self) -> WatchStream:
        return self

    def __next__(self) -> WatchEvent:
        return next(self._events)

    def close(self) -> None:
        self._events.close()
        self._release(finished=False)  # if no event was ever asked for, the generator had nothing to close

    def shutdown(self) -> None:
        # Already released, or a connection that cannot be shut down: then the read ends by itself.
        with contextlib.suppress(ValueError, RuntimeError, OSError):
            self._response.shutdown()

    def _read(self) -> Generator[WatchEvent, None, None]:
        finished = False
        try:
            for line in _lines(self._response):
                event = _parse_event(line)
                if event is None:
                    continue
                if event.type == "ERROR":
                    raise from_status(event.object)
                yield event
            finished = True
        finally:
            self._release(finished)

    def _release(self, finished: bool) -> None:
        if self._released:
            return
        self._released = True
        if not finished:
            self._response.close()  # unread data must not go back to the pool
        self._response.release_conn()


def _lines(response: Any) -> Iterator[bytes]:
    """The lines of a streamed response; a transport failure mid-stream raises a classified error."""
    iterator = iter(response)
    while True:
        try:
            line = next(iterator)
        except StopIteration:
            return
        except Exception as error:
            raise classify(error) from error
        yield line


def _parse_event(line: bytes) -> WatchEvent | None:
    if not line.strip():
        return None
    try:
        raw = json.loads(line)
    except ValueError:
        if not line.endswith(b"\n"):  # the last line, cut off: the stream broke mid-event
            raise KubeApiError(
                None,
                "StreamCut",
                "connection error: the watch stream ended in the middle of an event",
                None,
                ApiErrorKind.RETRYABLE,
            ) from None
        raise KubeApiError(
            None, "InvalidResponse", "connection error: a watch event that is not JSON", None, ApiErrorKind.RETRYABLE
        ) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("object"), dict):
        raise KubeApiError(
            None, "InvalidResponse", "connection error: a watch event without an object", None, ApiErrorKind.RETRYABLE
        )
    return WatchEvent(type=str(raw.get("type", "")), object=raw["object"])

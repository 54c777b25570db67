"""A pods/log request: its options (checked as the API server checks them), the container, and the lines' form."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from hybrid_executor.testing.kube.errors import FieldError, bad_request, invalid
from hybrid_executor.testing.kube.routing import query_flag

if TYPE_CHECKING:
    from hybrid_executor.testing.kube.podlogs import LogBuffer


@dataclass(frozen=True)
class LogOptions:
    follow: bool
    previous: bool
    timestamps: bool
    tail: int | None
    limit_bytes: int | None
    since: datetime | None


def log_options(query: Any, name: str) -> LogOptions:
    """PodLogOptions from the query, checked as the API server checks them (400 if unparsable, 422 if invalid)."""

    def integer(key: str) -> int | None:
        text = query.get(key)
        if text in (None, ""):
            return None
        try:
            return int(text)
        except ValueError:
            raise bad_request(f'strconv.ParseInt: parsing "{text}": invalid syntax') from None

    tail, limit_bytes, since_seconds = integer("tailLines"), integer("limitBytes"), integer("sinceSeconds")
    since_time = None
    if query.get("sinceTime"):
        try:
            since_time = datetime.fromisoformat(query["sinceTime"].replace("Z", "+00:00"))
        except ValueError:
            raise bad_request(f'parsing time "{query["sinceTime"]}" as RFC3339: cannot parse') from None
    errors = []
    if tail is not None and tail < 0:
        errors.append(FieldError("Invalid", "tailLines", tail, "must be greater than or equal to 0"))
    if limit_bytes is not None and limit_bytes < 1:
        errors.append(FieldError("Invalid", "limitBytes", limit_bytes, "must be greater than 0"))
    if since_seconds is not None and since_time is not None:
        errors.append(
            FieldError("Forbidden", "", detail="at most one of `sinceTime` or `sinceSeconds` may be specified")
        )
    if since_seconds is not None and since_seconds < 1:
        errors.append(FieldError("Invalid", "sinceSeconds", since_seconds, "must be greater than 0"))
    if errors:
        raise invalid("PodLogOptions", name, errors)
    if since_seconds is not None:
        since_time = datetime.now(timezone.utc) - timedelta(seconds=since_seconds)
    return LogOptions(
        follow=query_flag(query, "follow"),
        previous=query_flag(query, "previous"),
        timestamps=query_flag(query, "timestamps"),
        tail=tail,
        limit_bytes=limit_bytes,
        since=since_time,
    )


def log_line(logs: LogBuffer, index: int, timestamps: bool) -> bytes:
    line: bytes = logs.lines[index]
    if not timestamps:
        return line
    return _rfc3339_nano(logs.times[index]).encode() + b" " + line


def _rfc3339_nano(moment: datetime) -> str:
    """Go's time.RFC3339Nano, as the kubelet stamps log lines: fraction without trailing zeros, UTC as Z."""
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


class Budget:
    """limitBytes: how much of the log may still be sent."""

    def __init__(self, limit: int | None) -> None:
        self.left = limit

    @property
    def spent(self) -> bool:
        return self.left is not None and self.left <= 0

    def take(self, data: bytes) -> bytes:
        if self.left is None:
            return data
        data = data[: self.left]
        self.left -= len(data)
        return data


def log_container(pod: dict[str, Any], requested: str | None) -> str:
    names: list[str] = [c["name"] for c in pod["spec"].get("containers", [])]
    name = pod["metadata"]["name"]
    if requested:
        if requested not in names + [c["name"] for c in pod["spec"].get("initContainers") or []]:
            raise bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    if len(names) != 1:
        raise bad_request(f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]")
    return names[0]


def not_started_message(pod: dict[str, Any], container: str) -> str:
    name = pod["metadata"]["name"]
    if not pod["spec"].get("nodeName"):
        return f"pod {name} does not have a host assigned"
    reason = "ContainerCreating"
    for status in pod.get("status", {}).get("containerStatuses") or []:
        if status.get("name") == container:
            reason = (status.get("state", {}).get("waiting") or {}).get("reason", reason)
    return f'container "{container}" in pod "{name}" is waiting to start: {reason}'

"""API errors as the real kube-apiserver writes them: ``Status`` bodies with its reasons and messages.

Clients (the official one, and our executor) decide what to do from ``code``, ``reason`` and
``details``; getting these exactly right is the point of the local API, so every error the
server can answer is built here and nowhere else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


class ApiError(Exception):
    """An error answer: HTTP ``code`` plus a ``Status`` body (and maybe headers such as Retry-After)."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}
        self.metadata: dict[str, Any] = {}
        # Answered as Go's http.Error writes it (text/plain, the message and a newline) instead of a
        # Status: what kube-apiserver's max-in-flight and priority-and-fairness filters send.
        self.plain_text = False

    def status(self) -> dict[str, Any]:
        body = status_body(self.code, self.reason, self.message, self.details)
        body["metadata"] = dict(self.metadata)
        return body


def status_body(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:  # an empty StatusDetails is written as {}, a missing one not at all
        body["details"] = details
    return body


def success_status(details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details:
        body["details"] = details
    return body


def _subject(resource: str, name: str) -> str:
    # apimachinery writes `pods "x"` for a named object and plain `pods` when there is no name.
    return f'{resource} "{name}"' if name else resource


def not_found(resource: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f"{_subject(resource, name)} not found", {"name": name, "kind": resource})


def already_exists(resource: str, name: str) -> ApiError:
    return ApiError(
        409, "AlreadyExists", f"{_subject(resource, name)} already exists", {"name": name, "kind": resource}
    )


def conflict(resource: str, name: str, why: str) -> ApiError:
    message = f"Operation cannot be fulfilled on {_subject(resource, name)}: {why}"
    return ApiError(409, "Conflict", message, {"name": name, "kind": resource})


def forbidden(resource: str, name: str, why: str) -> ApiError:
    return ApiError(
        403, "Forbidden", f"{_subject(resource, name)} is forbidden: {why}", {"name": name, "kind": resource}
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(method: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {})


PATCH_MEDIA_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)


def unsupported_media_type(content_type: str, accepted: tuple[str, ...] = PATCH_MEDIA_TYPES) -> ApiError:
    """negotiation.NewUnsupportedMediaTypeError: it names what is accepted, not what was sent."""
    message = f"the body of the request was in an unknown format - accepted media types include: {', '.join(accepted)}"
    return ApiError(415, "UnsupportedMediaType", message)


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def too_old_resource_version(requested: int, oldest_kept: int) -> ApiError:
    # The watch cache's own wording: the second number is the newest revision no longer kept.
    return expired(f"too old resource version: {requested} ({oldest_kept})")


def too_large_resource_version(requested: int, current: int) -> ApiError:
    return ApiError(
        504,
        "Timeout",
        f"Too large resource version: {requested}, current: {current}",
        {
            "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
            "retryAfterSeconds": 1,
        },
        headers={"Retry-After": "1"},
    )


def decode_error(body: bytes, detail: str, kind: str = "Pod", data_kind: str = "", data_version: str = "") -> ApiError:
    """400 for a body the server cannot turn into the expected kind (the create handler's own shapes)."""
    if data_kind:
        return bad_request(f'{data_kind} in version "{data_version}" cannot be handled as a {kind}: {detail}')
    return bad_request(f"the object provided is unrecognized (must be of type {kind}): {detail} ({summarize(body)})")


def summarize(body: bytes, limit: int = 30) -> str:
    """The create handler's summarizeData: a JSON object's start as text, anything else in hex."""
    if not body:
        return "<empty>"
    if body[:1] == b"{":
        return body[:limit].decode("utf-8", "replace") + (" ..." if len(body) > limit else "")
    return body[:limit].hex() + (" ..." if len(body) > limit else "")


@dataclass(frozen=True)
class FieldError:
    """One validation failure of a field, worded as k8s.io/apimachinery/pkg/util/validation/field does."""

    kind: str  # "Invalid", "Required", "Duplicate", "NotSupported", "NotFound", "Forbidden", "TooLong"
    field: str
    value: Any = None
    detail: str = ""
    supported: tuple[str, ...] = ()

    _CAUSE_REASONS = {
        "Invalid": "FieldValueInvalid",
        "Required": "FieldValueRequired",
        "Duplicate": "FieldValueDuplicate",
        "NotSupported": "FieldValueNotSupported",
        "NotFound": "FieldValueNotFound",
        "Forbidden": "FieldValueForbidden",
        "TooLong": "FieldValueTooLong",
    }

    def body(self) -> str:
        """The message without the field path (what a Status cause carries)."""
        if self.kind == "Invalid":
            text = f"Invalid value: {_render_value(self.value)}"
        elif self.kind == "Required":
            text = "Required value"
        elif self.kind == "Duplicate":
            text = f"Duplicate value: {_render_value(self.value)}"
        elif self.kind == "NotSupported":
            supported = ", ".join(json.dumps(s) for s in self.supported)
            return f"Unsupported value: {_render_value(self.value)}: supported values: {supported}"
        elif self.kind == "NotFound":
            text = f"Not found: {_render_value(self.value)}"
        elif self.kind == "Forbidden":
            text = "Forbidden"
        else:
            text = "Too long"
        return f"{text}: {self.detail}" if self.detail else text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"

    def cause(self) -> dict[str, str]:
        return {"reason": self._CAUSE_REASONS[self.kind], "message": self.body(), "field": self.field}


def _render_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return str(value)
    # Anything else is written as Go's json.Marshal writes it: compact, HTML characters escaped.
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def invalid(kind: str, name: str, errors: list[FieldError], group: str = "") -> ApiError:
    """422 Invalid: one message joining every field error, and one cause per error."""
    listed = [str(e) for e in errors]
    joined = listed[0] if len(listed) == 1 else "[" + ", ".join(listed) + "]"
    qualified = f"{kind}.{group}" if group else kind
    details: dict[str, Any] = {
        key: value
        for key, value in (("name", name), ("group", group), ("kind", kind))
        if value  # omitempty
    }
    details["causes"] = [e.cause() for e in errors]
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {joined}', details)

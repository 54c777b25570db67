"""What an error from the Kubernetes API means: :func:`classify` and :class:`KubeApiError`.

Why a module of its own: the official client raises its ``ApiException`` (a status and a raw
body), urllib3's connection errors, or timeouts, and the rest of the executor must not guess from
those what to do. :func:`classify` turns every one of them into a :class:`KubeApiError` that keeps
the API's own ``Status`` (reason, message, causes, Retry-After) instead of guessing from the HTTP
code, and says what the error means to a caller: retry it, give up, or take it as an answer
(already exists, not found, gone).

Nothing that could carry a secret reaches an error message: a body that is not a ``Status`` is
never echoed whole (JSON that is not a Status is left out, text is cut short), and anything shaped
like a JSON Web Token (the workload JSON in a pod's args carries one) is redacted.

What refused a request (:mod:`hybrid_executor.kubernetes.refusals`, re-exported here): every
admission and authorization refusal of a pod create is HTTP 403, so only the Status message tells a
full quota from a pod nothing will ever admit. :func:`classify` puts the parsed ``Refusal`` on
``KubeApiError.refusal`` and derives a 403's kind from it; the message itself stays the API's.
"""

from __future__ import annotations

import email.utils
import enum
import http.client
import json
import re
import time
from collections.abc import Mapping
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from hybrid_executor.kubernetes.refusals import (
    LimitRangeViolation,
    QuotaResource,
    Refusal,
    RefusalKind,
    StatusCause,
    parse_refusal,
    quantity,
)

# How much of a body that is not a Status may reach a message (as kopf does: enough to debug, and
# a little hope that nothing sensitive sits in the first characters).
TEXT_BODY_MAX = 256
# A Status message is the API's own words and is kept, but not without bound.
STATUS_MESSAGE_MAX = 4096
# header.payload.signature, each base64url; JWT headers and payloads are JSON objects, so "eyJ".
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
REDACTED = "<redacted>"


class ApiErrorKind(enum.Enum):
    """What an error means to the caller."""

    FATAL = "fatal"  # the request is wrong (400, 422, a 403 no wait can clear, ...): repeating it cannot help
    RETRYABLE = "retryable"  # a 403 waiting may clear, 409 Conflict, 429, 5xx, connection errors, timeouts
    ALREADY_EXISTS = "already_exists"  # 409 AlreadyExists
    NOT_FOUND = "not_found"  # 404
    GONE = "gone"  # 410: a resourceVersion or continue token too old; relist


class KubeApiError(Exception):
    """An error from the Kubernetes API (or from reaching it), classified.

    ``code`` is the HTTP status (None for a connection error); ``reason`` and ``message`` are the
    API's own (Status ``reason`` and ``message``) where it sent a Status; ``retry_after`` is the
    Retry-After the API asked for, in seconds; ``refusal`` is what refused the request (every 403,
    and an admission webhook's or policy's denial whatever its code; None otherwise). ``str()`` is
    the message followed by code and reason.
    """

    def __init__(
        self,
        code: int | None,
        reason: str,
        message: str,
        retry_after: float | None,
        kind: ApiErrorKind,
        causes: tuple[StatusCause, ...] = (),
        refusal: Refusal | None = None,
    ) -> None:
        super().__init__(code, reason, message, retry_after, kind, causes, refusal)
        self.code = code
        self.reason = reason
        self.message = message
        self.retry_after = retry_after
        self.kind = kind
        self.causes = causes
        self.refusal = refusal

    def __str__(self) -> str:
        if self.code is None:
            return self.message
        return f"{self.message} (HTTP {self.code} {self.reason})"

    def __repr__(self) -> str:
        refusal = f", refusal={self.refusal.kind}" if self.refusal is not None else ""
        return (
            f"KubeApiError(code={self.code!r}, reason={self.reason!r}, message={self.message!r}, "
            f"kind={self.kind}{refusal})"
        )


def is_retryable(error: BaseException) -> bool:
    """Whether ``error`` is a KubeApiError that repeating the request may clear."""
    return isinstance(error, KubeApiError) and error.kind is ApiErrorKind.RETRYABLE


def redact(text: str) -> str:
    """``text`` with anything shaped like a JSON Web Token replaced."""
    return _JWT.sub(REDACTED, text)


def _kind_for(code: int, reason: str, refusal: Refusal | None = None) -> ApiErrorKind:
    if code == 403 and refusal is not None:
        return ApiErrorKind.RETRYABLE if refusal.retryable else ApiErrorKind.FATAL
    if code in (400, 422):
        return ApiErrorKind.FATAL
    if code == 404:
        return ApiErrorKind.NOT_FOUND
    if code == 410:
        return ApiErrorKind.GONE
    if code == 409:
        return ApiErrorKind.ALREADY_EXISTS if reason == "AlreadyExists" else ApiErrorKind.RETRYABLE
    # 401: an expired token is refreshed by the client; 403 (without a refusal: never from a
    # Status): unknown, an operator may be fixing it; 408/429/5xx: the server's momentary state.
    # Each caller bounds how long it keeps trying.
    if code in (401, 403, 408, 429) or code >= 500:
        return ApiErrorKind.RETRYABLE
    return ApiErrorKind.FATAL  # any other 4xx (405, 413, 415, ...) is about the request itself


def _retry_after_header(headers: Mapping[str, str] | None) -> float | None:
    """Retry-After in seconds, from delay-seconds or an HTTP-date."""
    if not headers:
        return None
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _as_text(body: object) -> str:
    if isinstance(body, bytes):
        return body.decode("utf-8", errors="replace")
    return "" if body is None else str(body)


def _single_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _causes(details: Mapping[str, Any]) -> tuple[StatusCause, ...]:
    raw = details.get("causes")
    if not isinstance(raw, list):
        return ()
    return tuple(
        StatusCause(
            field=str(cause.get("field", "")),
            reason=str(cause.get("reason", "")),
            message=redact(str(cause.get("message", ""))),
        )
        for cause in raw
        if isinstance(cause, dict)
    )


def from_status(
    status: Mapping[str, Any], http_code: int | None = None, headers: Mapping[str, str] | None = None
) -> KubeApiError:
    """A KubeApiError from a ``kind: Status`` object (an error body, or a watch's ERROR event)."""
    code_value = status.get("code")
    code = code_value if isinstance(code_value, int) and code_value > 0 else (http_code or 500)
    reason = str(status.get("reason") or http.client.responses.get(code, "Unknown"))
    message = redact(str(status.get("message") or reason))
    if len(message) > STATUS_MESSAGE_MAX:
        message = message[: STATUS_MESSAGE_MAX - 3] + "..."
    details = status.get("details")
    details = details if isinstance(details, dict) else {}
    retry_after = _retry_after_header(headers)
    seconds = details.get("retryAfterSeconds")
    if isinstance(seconds, (int, float)) and seconds > 0:
        retry_after = max(retry_after or 0.0, float(seconds))
    causes = _causes(details)
    refusal = parse_refusal(code, message, causes)
    return KubeApiError(code, reason, message, retry_after, _kind_for(code, reason, refusal), causes, refusal)


def _from_api_exception(error: ApiException) -> KubeApiError:
    code = error.status
    if not code:  # the client's own wrapping of a transport failure (an SSL error, for one)
        return KubeApiError(
            None,
            "ConnectionError",
            f"connection error: {_single_line(redact(str(error.reason)), TEXT_BODY_MAX)}",
            None,
            ApiErrorKind.RETRYABLE,
        )
    headers = dict(error.headers) if error.headers else None
    text = _as_text(error.body)
    try:
        payload = json.loads(text) if text.strip() else None
    except ValueError:
        payload = None
    if isinstance(payload, dict) and payload.get("kind") == "Status":
        return from_status(payload, code, headers)
    reason = str(error.reason or http.client.responses.get(code, "Unknown"))
    if payload is not None:  # JSON that is not a Status may be any object, secrets included: never shown
        message = "the API answered without a Status (response body not shown)"
    elif text.strip():  # a proxy's page, most likely: its start is enough
        message = _single_line(redact(text), TEXT_BODY_MAX)
    else:
        message = "the API answered without a body"
    refusal = parse_refusal(code, message) if code == 403 else None  # a proxy's 403: OTHER, retried
    return KubeApiError(
        code, reason, message, _retry_after_header(headers), _kind_for(code, reason, refusal), refusal=refusal
    )


_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    urllib3.exceptions.HTTPError,  # ProtocolError, NewConnectionError, ReadTimeoutError, MaxRetryError, ...
    http.client.HTTPException,  # RemoteDisconnected, IncompleteRead, ...
    OSError,  # ConnectionError, TimeoutError (socket.timeout), ssl.SSLError
)


def classify(error: BaseException) -> KubeApiError:
    """Any error met while calling the API, as a KubeApiError that says what it means.

    An ``ApiException`` with a ``kind: Status`` body keeps the API's reason, message, causes and
    Retry-After (header or ``details.retryAfterSeconds``, the larger); any other body is cut short
    (text) or left out (JSON). A 403 gets its :class:`Refusal` and is RETRYABLE only if waiting can
    clear it (:attr:`Refusal.retryable`). urllib3, socket and timeout errors are RETRYABLE
    "connection error: ...". Anything else is FATAL: a request that fails before reaching the
    server will fail again.
    """
    if isinstance(error, KubeApiError):
        return error
    if isinstance(error, ApiException):
        return _from_api_exception(error)
    if isinstance(error, _CONNECTION_ERRORS):
        detail = _single_line(redact(str(error)), TEXT_BODY_MAX) or "no detail"
        return KubeApiError(
            None,
            type(error).__name__,
            f"connection error: {type(error).__name__}: {detail}",
            None,
            ApiErrorKind.RETRYABLE,
        )
    detail = _single_line(redact(str(error)), TEXT_BODY_MAX)
    return KubeApiError(None, type(error).__name__, f"{type(error).__name__}: {detail}", None, ApiErrorKind.FATAL)


__all__ = [
    "REDACTED",
    "STATUS_MESSAGE_MAX",
    "TEXT_BODY_MAX",
    "ApiErrorKind",
    "KubeApiError",
    "LimitRangeViolation",
    "QuotaResource",
    "Refusal",
    "RefusalKind",
    "StatusCause",
    "classify",
    "from_status",
    "is_retryable",
    "parse_refusal",
    "quantity",
    "redact",
]

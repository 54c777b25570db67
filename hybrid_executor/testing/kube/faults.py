"""Fault injection: error answers, latency, reset connections and cut watches, chosen per verb and path.

A reset comes before the request is applied (``reset``: a server that crashed or a proxy that
dropped the connection) or after (``reset_after_apply``: the request is applied and stored, then
the connection is reset before the answer is sent, as when a load balancer drops a connection or
a client's timeout fires while the server commits). Only the second makes a client that retries
meet its own earlier write.

``plain_text`` answers the error as kube-apiserver's max-in-flight and priority-and-fairness
filters answer a 429 (Go's ``http.Error``: ``text/plain``, the message and a newline, and the
Retry-After header), not as a ``Status``, which is how the handlers' own 429s come (with
``details.retryAfterSeconds``). Left unset, a 429 is the filter's: API priority and fairness,
on by default since 1.20, whose tooManyRequests always sends Retry-After (its dropped-requests
tracker starts at 1 s) and the X-Kubernetes-PF-* UIDs of the schema and level that rejected it;
``plain_text=False`` asks for a handler's Status instead.

``watch_expired`` makes a matching watch answer as the watch cache does when the requested
resourceVersion has been compacted away: a 200 stream whose only event is an ERROR carrying the
410 Expired Status "too old resource version: <requested> (<oldest kept>)", as if etcd had just
compacted up to now. The client must list again.

Rules are added from the test's thread and read on the server's loop, hence the lock. A rule
fires on a matching request with its probability, at most ``times`` times; ``hits`` counts how
often it did, so a test can assert that its fault was really met.
"""

from __future__ import annotations

import fnmatch
import math
import random
import uuid
from dataclasses import dataclass, field

from hybrid_executor.testing.kube.errors import ApiError
from hybrid_executor.testing.kube.rulelist import RuleList

VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
# The UIDs priority and fairness names its FlowSchema and PriorityLevelConfiguration by (not their
# names, which it keeps from clients): one pair for this server, as the default objects have.
_FLOW_SCHEMA_UID = str(uuid.uuid4())
_PRIORITY_LEVEL_UID = str(uuid.uuid4())

# The reason and wording the real server uses for each code a fault may answer with.
_REASONS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "the server rejected our request for an unknown reason"),
    401: ("Unauthorized", "Unauthorized"),
    403: ("Forbidden", "forbidden: the server does not allow access to the requested resource"),
    404: ("NotFound", "the server could not find the requested resource"),
    409: ("Conflict", "the server reported a conflict"),
    410: ("Expired", "the resource has expired"),
    422: ("Invalid", "the server rejected our request due to an error in our request"),
    429: ("TooManyRequests", "Too many requests, please try again later."),
    500: ("InternalError", "Internal error occurred: injected fault"),
    502: ("InternalError", "bad gateway"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: (
        "Timeout",
        "the server was unable to return a response in the time allotted, but may still be processing the request",
    ),
}


@dataclass
class FaultRule:
    verb: str = "*"
    resource: str = "*"  # e.g. "pods", "pods/log", "pods/status", "namespaces"; a glob
    path: str = "*"  # a glob on the URL path
    status: int | None = None
    message: str | None = None
    retry_after: float | None = None
    times: int | None = None
    probability: float = 1.0
    latency: float = 0.0
    reset: bool = False
    watch_close_after_events: int | None = None
    watch_close_after_seconds: float | None = None
    hits: int = 0
    reset_after_apply: bool = False
    watch_expired: bool = False
    plain_text: bool | None = None  # None: plain text for a 429 (the filter's), a Status otherwise

    def matches(self, verb: str, resource: str, path: str) -> bool:
        return (
            (self.verb == "*" or self.verb == verb)
            and fnmatch.fnmatchcase(resource, self.resource)
            and fnmatch.fnmatchcase(path, self.path)
        )

    def error(self) -> ApiError:
        assert self.status is not None
        reason, default_message = _REASONS.get(self.status, ("InternalError", "injected fault"))
        plain_text = self.status == 429 if self.plain_text is None else self.plain_text
        details: dict[str, object] = {}
        headers: dict[str, str] = {}
        if self.retry_after is not None:
            seconds = max(1, math.ceil(self.retry_after))
            details["retryAfterSeconds"] = seconds
            headers["Retry-After"] = str(seconds)
        if plain_text:
            details = {}
            if self.status == 429:  # what the filters' tooManyRequests sets
                headers.setdefault("Retry-After", "1")
                headers["X-Kubernetes-PF-PriorityLevel-UID"] = _PRIORITY_LEVEL_UID
                headers["X-Kubernetes-PF-FlowSchema-UID"] = _FLOW_SCHEMA_UID
        error = ApiError(self.status, reason, self.message or default_message, details or None, headers)
        error.plain_text = plain_text
        return error


@dataclass
class Decision:
    """What the server does to one request because of the rules that fired on it."""

    latency: float = 0.0
    error: ApiError | None = None
    reset: bool = False
    watch_close_after_events: int | None = None
    watch_close_after_seconds: float | None = None
    fired: list[FaultRule] = field(default_factory=list)
    reset_after_apply: bool = False
    watch_expired: bool = False


class FaultInjector(RuleList[FaultRule]):
    def __init__(self, seed: int | None = None) -> None:
        super().__init__()
        self._random = random.Random(seed)  # noqa: S311 - chance, not secrecy

    def add(
        self,
        verb: str = "*",
        resource: str = "*",
        path: str = "*",
        *,
        status: int | None = None,
        message: str | None = None,
        retry_after: float | None = None,
        times: int | None = None,
        probability: float = 1.0,
        latency: float = 0.0,
        reset: bool = False,
        watch_close_after_events: int | None = None,
        watch_close_after_seconds: float | None = None,
        reset_after_apply: bool = False,
        watch_expired: bool = False,
        plain_text: bool | None = None,
    ) -> FaultRule:
        """Add a rule; see FaultRule. Returns it, so a test can read ``hits`` or remove it."""
        if verb != "*" and verb not in VERBS:
            raise ValueError(f"verb {verb!r} is not one of {', '.join(VERBS)} or '*'")
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be within 0..1, got {probability}")
        if status is not None and not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error code (400-599), got {status}")
        if plain_text and status is None:
            raise ValueError("plain_text is the form of an error answer: give a status too")
        if watch_expired and verb not in ("watch", "*"):
            raise ValueError(f"watch_expired answers watches only: give verb 'watch', not {verb!r}")
        rule = FaultRule(
            verb,
            resource,
            path,
            status,
            message,
            retry_after,
            times,
            probability,
            latency,
            reset,
            watch_close_after_events,
            watch_close_after_seconds,
            reset_after_apply=reset_after_apply,
            watch_expired=watch_expired,
            plain_text=plain_text,
        )
        return self._add(rule)

    def decide(self, verb: str, resource: str, path: str) -> Decision:
        decision = Decision()
        with self._lock:
            if not self._rules:
                return decision
            for rule in self._rules:
                if not rule.matches(verb, resource, path):
                    continue
                if rule.times is not None and rule.hits >= rule.times:
                    continue
                if _shadowed(rule, decision):
                    continue  # an earlier rule already decides this request's answer: this one is not met
                if rule.probability < 1.0 and self._random.random() >= rule.probability:
                    continue
                rule.hits += 1
                decision.fired.append(rule)
                decision.latency += rule.latency
                if rule.reset and decision.error is None:
                    decision.reset = True
                if rule.reset_after_apply and decision.error is None and not decision.reset:
                    decision.reset_after_apply = True
                answered = decision.reset or decision.reset_after_apply
                if rule.status is not None and decision.error is None and not answered:
                    decision.error = rule.error()
                if rule.watch_close_after_events is not None:
                    decision.watch_close_after_events = rule.watch_close_after_events
                if rule.watch_close_after_seconds is not None:
                    decision.watch_close_after_seconds = rule.watch_close_after_seconds
                decision.watch_expired = decision.watch_expired or rule.watch_expired
        return decision


def _shadowed(rule: FaultRule, decision: Decision) -> bool:
    """A rule that only decides the answer (an error or a reset), met after another rule already did."""
    decided = decision.error is not None or decision.reset or decision.reset_after_apply
    answers_only = (rule.status is not None or rule.reset or rule.reset_after_apply) and not (
        rule.latency or rule.watch_close_after_events is not None or rule.watch_close_after_seconds is not None
    )
    return decided and answers_only

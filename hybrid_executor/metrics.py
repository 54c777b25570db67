"""The executor's metrics: every name and tag is defined here, and sent through Airflow's own stats.

Airflow's ``airflow.observability.stats`` (the module ``BaseExecutor`` and the scheduler emit
through; ``BaseExecutor.__init__`` points it at the backend ``[metrics]`` configures; on Airflow
3.1 its ``airflow.stats.Stats``, see :mod:`hybrid_executor.compat`) sends them to
StatsD (``statsd_on``, with tags in the name if ``statsd_influxdb_enabled``), Datadog
(``statsd_datadog_enabled``) or OpenTelemetry (``otel_on``). Airflow's allow and block lists,
``stat_name_handler`` and ``statsd_prefix`` apply as to its own metrics.

Tags, and dotted names for StatsD without tags: a metric split by a tag (``route``, ``reason``,
``namespace``) is also sent under ``<name>.<value>`` without that tag, as Airflow sends
``executor.open_slots.<executor>`` beside ``executor.open_slots`` and ``pool.open_slots.<pool>``
beside ``pool.open_slots``: plain StatsD drops tags, so only the dotted name tells the values
apart there. Like Airflow's, these are sent only while ``[metrics] legacy_names_on`` is True (its
default). Every name passes Airflow's validators (ASCII letters, digits, ``_.-``; under 250
characters) and OpenTelemetry's instrument name syntax with the ``airflow.`` prefix.

Threads: the pod launcher, deleter and watchers emit from their own threads. Airflow's StatsD
logger is a ``statsd.StatsClient``: each metric is one ``sendto`` of one UDP datagram on a socket
made once, with no state shared between calls, so concurrent calls are safe (Datadog's DogStatsd
holds a lock of its own around its socket; the OpenTelemetry SDK's instruments are thread-safe).
The tags of every metric are made once, here, not per call; a metric costs about 15 µs of CPU
through StatsD, most of it Airflow's check of the name (``benchmarks/metrics_cost.py``).
A metric that cannot be sent never fails a launch, a delete or a watch: the error is logged once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType

from hybrid_executor.compat import StatsSender, stats
from hybrid_executor.kubernetes.errors import ApiErrorKind, KubeApiError, RefusalKind

log = logging.getLogger(__name__)

# --- the names ---------------------------------------------------------------------------------
# The router's totals are Airflow's own executor.open_slots, executor.queued_tasks and
# executor.running_tasks, sent by BaseExecutor._emit_metrics with its names, tags and conditions.


@dataclass(frozen=True)
class Definition:
    """A metric: its name, its type, the tag it is split by (its dotted name's last part) and its other tags.

    ``team_name`` is there only for an executor of a team, as BaseExecutor's.
    """

    name: str
    kind: str  # counter, gauge or timer (milliseconds)
    split_tag: str | None = None
    tags: tuple[str, ...] = ("team_name",)

    @property
    def all_tags(self) -> tuple[str, ...]:
        return self.tags if self.split_tag is None else (self.split_tag, *self.tags)


_EXECUTOR_TAGS = ("status", "executor_class_name", "team_name")  # BaseExecutor._emit_metrics's
ROUTE_OPEN_SLOTS = Definition("hybrid_executor.route.open_slots", "gauge", "route", _EXECUTOR_TAGS)
ROUTE_QUEUED_TASKS = Definition("hybrid_executor.route.queued_tasks", "gauge", "route", _EXECUTOR_TAGS)
ROUTE_RUNNING_TASKS = Definition("hybrid_executor.route.running_tasks", "gauge", "route", _EXECUTOR_TAGS)
POD_CREATE_SUCCEEDED = Definition("hybrid_executor.pod_create.succeeded", "counter")
POD_CREATE_RETRIED = Definition("hybrid_executor.pod_create.retried", "counter", "reason")
POD_CREATE_FAILED = Definition("hybrid_executor.pod_create.failed", "counter", "reason")
POD_CREATE_LATENCY = Definition("hybrid_executor.pod_create.latency", "timer")
POD_QUEUED_TO_CREATED = Definition("hybrid_executor.pod_create.queued_to_created", "timer")
POD_PENDING_DURATION = Definition("hybrid_executor.pod.pending_duration", "timer")
WATCH_RECONNECTS = Definition("hybrid_executor.watch.reconnects", "counter", "namespace")
WATCH_RELISTS = Definition("hybrid_executor.watch.relists", "counter", "namespace")
POD_DELETE_DONE = Definition("hybrid_executor.pod_delete.done", "counter")
POD_DELETE_RETRIED = Definition("hybrid_executor.pod_delete.retried", "counter", "reason")
POD_DELETE_FAILED = Definition("hybrid_executor.pod_delete.failed", "counter", "reason")
ADOPTION_ADOPTED = Definition("hybrid_executor.adoption.adopted", "counter")
ADOPTION_NOT_ADOPTED = Definition("hybrid_executor.adoption.not_adopted", "counter")
ADOPTION_DURATION = Definition("hybrid_executor.adoption.duration", "timer")

DEFINITIONS = (
    ROUTE_OPEN_SLOTS,
    ROUTE_QUEUED_TASKS,
    ROUTE_RUNNING_TASKS,
    POD_CREATE_SUCCEEDED,
    POD_CREATE_RETRIED,
    POD_CREATE_FAILED,
    POD_CREATE_LATENCY,
    POD_QUEUED_TO_CREATED,
    POD_PENDING_DURATION,
    WATCH_RECONNECTS,
    WATCH_RELISTS,
    POD_DELETE_DONE,
    POD_DELETE_RETRIED,
    POD_DELETE_FAILED,
    ADOPTION_ADOPTED,
    ADOPTION_NOT_ADOPTED,
    ADOPTION_DURATION,
)

ROUTES = ("celery", "kubernetes")  # routing.Route's values
# The namespace tag of a cluster-wide watch (multi_namespace_mode): with "_", no namespace's name.
ALL_NAMESPACES = "all_namespaces"

# Why a create or delete failed (the ``reason`` tag), from errors.classify's reading of the answer.
QUOTA, RBAC, ADMISSION, FORBIDDEN = "quota", "rbac", "admission", "forbidden"
INVALID, NOT_FOUND, CONFLICT, UNAUTHORIZED = "invalid", "not_found", "conflict", "unauthorized"
THROTTLED, SERVER, CONNECTION = "throttled", "server", "connection"
BUILD, EXPIRED, OTHER = "build", "expired", "other"  # no pod built; the workload's token ran out first; a bug
REASONS = (
    QUOTA,
    RBAC,
    ADMISSION,
    FORBIDDEN,
    INVALID,
    NOT_FOUND,
    CONFLICT,
    UNAUTHORIZED,
    THROTTLED,
    SERVER,
    CONNECTION,
    BUILD,
    EXPIRED,
    OTHER,
)

_QUOTA_REFUSALS = frozenset(
    {
        RefusalKind.QUOTA_FULL,
        RefusalKind.QUOTA_EXCEEDS_LIMIT,
        RefusalKind.QUOTA_MUST_SPECIFY,
        RefusalKind.QUOTA_STATUS_UNKNOWN,
    }
)


def reason_of(error: BaseException | None) -> str:
    """The ``reason`` tag of a failed request: what refused it, or what kind of failure it was."""
    if not isinstance(error, KubeApiError):
        return OTHER
    refusal = error.refusal
    if refusal is not None:  # every 403, and an admission webhook's or policy's denial whatever its code
        if refusal.kind in _QUOTA_REFUSALS:
            return QUOTA
        if refusal.kind is RefusalKind.RBAC:
            return RBAC
        return FORBIDDEN if refusal.kind is RefusalKind.OTHER else ADMISSION
    code = error.code
    if code is None:  # never reached the server, or no answer came back
        return CONNECTION if error.kind is ApiErrorKind.RETRYABLE else OTHER
    if code == 429:
        return THROTTLED
    if code >= 500 or code == 408:
        return SERVER
    if code == 401:
        return UNAUTHORIZED
    if code == 404:
        return NOT_FOUND
    if code == 409:
        return CONFLICT
    return INVALID  # 400, 422 and any other 4xx: the request itself


# --- sending -------------------------------------------------------------------------------------

_METHODS = {"counter": "incr", "gauge": "gauge", "timer": "timing"}


def _stats() -> StatsSender:
    # Airflow is imported on first use: the launcher, deleter and watcher modules stay importable without it.
    return stats()


def _legacy_names_on() -> bool:
    from airflow.configuration import conf

    return conf.getboolean("metrics", "legacy_names_on", fallback=True)


_failed_once = threading.Event()


def _send(method: str, name: str, value: float, tags: dict[str, str]) -> None:
    try:
        getattr(_stats(), method)(name, value, tags=tags)
    except Exception:  # a metric must never fail a launch, a delete, a watch or a heartbeat
        if not _failed_once.is_set():
            _failed_once.set()
            log.warning("Could not send metric %s (further failures are not logged)", name, exc_info=True)


class _Metric:
    """A definition, ready to send: its tags and, per value of its split tag, its tags and dotted name (made once)."""

    __slots__ = ("_base", "_by_value", "_dotted", "_method", "definition")

    def __init__(
        self, definition: Definition, base_tags: dict[str, str], values: Iterable[str] = (), *, dotted: bool = True
    ) -> None:
        self.definition = definition
        self._method = _METHODS[definition.kind]
        self._base = base_tags
        self._dotted = dotted
        self._by_value: dict[str, tuple[dict[str, str], str]] = {}
        for value in values:
            self._for(value)

    def _for(self, value: str) -> tuple[dict[str, str], str]:
        made = self._by_value.get(value)
        if made is None:  # a value not known in advance (a namespace): made once, then kept
            assert self.definition.split_tag is not None, f"{self.definition.name} is not split"
            made = ({**self._base, self.definition.split_tag: value}, f"{self.definition.name}.{value}")
            self._by_value[value] = made
        return made

    def send(self, value: float = 1, split: str | None = None) -> None:
        """Send ``value`` (a counter's increment, a gauge's value, a timer's milliseconds)."""
        if split is None:
            _send(self._method, self.definition.name, value, self._base)
            return
        tags, dotted_name = self._for(split)
        _send(self._method, self.definition.name, value, tags)
        if self._dotted:
            _send(self._method, dotted_name, value, self._base)


def _base_tags(team_name: str | None) -> dict[str, str]:
    return {"team_name": team_name} if team_name else {}  # as BaseExecutor: no tag without a team


def _milliseconds(seconds: float) -> float:
    return seconds * 1000.0  # Airflow's timers are in milliseconds (StatsD's "ms", its OTel histograms)


class _Elapsed:
    """``with``: time the block and send it to a timer, however the block ends."""

    __slots__ = ("_started", "_timer")

    def __init__(self, timer: _Metric) -> None:
        self._timer = timer
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.monotonic()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._timer.send(_milliseconds(time.monotonic() - self._started))


class PodMetrics:
    """The pod side's metrics, tagged with the executor's team; one per KubernetesPodExecutor.

    ``dotted_names``: also send the dotted names (default: ``[metrics] legacy_names_on``).
    """

    def __init__(self, team_name: str | None = None, *, dotted_names: bool | None = None) -> None:
        dotted = _legacy_names_on() if dotted_names is None else dotted_names
        base = _base_tags(team_name)

        def metric(definition: Definition) -> _Metric:
            values = REASONS if definition.split_tag == "reason" else ()
            return _Metric(definition, base, values, dotted=dotted)

        self._created = metric(POD_CREATE_SUCCEEDED)
        self._create_retried = metric(POD_CREATE_RETRIED)
        self._create_failed = metric(POD_CREATE_FAILED)
        self._create_latency = metric(POD_CREATE_LATENCY)
        self._queued_to_created = metric(POD_QUEUED_TO_CREATED)
        self._pending = metric(POD_PENDING_DURATION)
        self._reconnects = metric(WATCH_RECONNECTS)
        self._relists = metric(WATCH_RELISTS)
        self._deleted = metric(POD_DELETE_DONE)
        self._delete_retried = metric(POD_DELETE_RETRIED)
        self._delete_failed = metric(POD_DELETE_FAILED)
        self._adopted = metric(ADOPTION_ADOPTED)
        self._not_adopted = metric(ADOPTION_NOT_ADOPTED)
        self._adoption = metric(ADOPTION_DURATION)

    # creates (launcher threads)

    def create_request(self) -> _Elapsed:
        """``with metrics.create_request(): api.create_pod(pod)``: the request's round trip."""
        return _Elapsed(self._create_latency)

    def created(self, queued_at: float | None) -> None:
        """A launch's pod exists; ``queued_at``: ``time.monotonic()`` at its queue_workload, if known."""
        self._created.send()
        if queued_at is not None:
            self._queued_to_created.send(_milliseconds(time.monotonic() - queued_at))

    def create_retried(self, error: BaseException | None) -> None:
        self._create_retried.send(split=reason_of(error))

    def create_failed(self, error: BaseException | None, *, reason: str | None = None) -> None:
        """A launch made no pod: ``error`` the last one (its reason), or ``reason`` given (``BUILD``, ``EXPIRED``)."""
        self._create_failed.send(split=reason or reason_of(error))

    # pods (the scheduler's thread)

    def left_pending(self, pending_since: float | None) -> None:
        """The pod runs; ``pending_since``: ``time.monotonic()`` when it was first seen Pending, if it was."""
        if pending_since is not None:
            self._pending.send(_milliseconds(time.monotonic() - pending_since))

    # watches (watcher threads)

    def watch_reconnected(self, namespace: str | None) -> None:
        """``namespace``: the watch's, None for a cluster-wide watch."""
        self._reconnects.send(split=namespace or ALL_NAMESPACES)

    def watch_relisted(self, namespace: str | None) -> None:
        self._relists.send(split=namespace or ALL_NAMESPACES)

    # deletes (deleter threads)

    def deleted(self) -> None:
        self._deleted.send()

    def delete_retried(self, error: BaseException | None) -> None:
        self._delete_retried.send(split=reason_of(error))

    def delete_failed(self, error: BaseException | None) -> None:
        self._delete_failed.send(split=reason_of(error))

    # adoption (the scheduler's thread)

    def adoption(self, adopted: int, not_adopted: int, seconds: float) -> None:
        self._adopted.send(adopted)
        self._not_adopted.send(not_adopted)
        self._adoption.send(_milliseconds(seconds))


class RouteMetrics:
    """The router's per-route gauges, beside the totals BaseExecutor._emit_metrics sends."""

    def __init__(self, executor_class_name: str, team_name: str | None, *, dotted_names: bool | None = None) -> None:
        dotted = _legacy_names_on() if dotted_names is None else dotted_names

        def gauge(definition: Definition, status: str) -> _Metric:
            # BaseExecutor's tags (status, executor_class_name, team_name), and the route.
            tags = {"status": status, "executor_class_name": executor_class_name, **_base_tags(team_name)}
            return _Metric(definition, tags, ROUTES, dotted=dotted)

        self._open = gauge(ROUTE_OPEN_SLOTS, "open")
        self._queued = gauge(ROUTE_QUEUED_TASKS, "queued")
        self._running = gauge(ROUTE_RUNNING_TASKS, "running")

    def send(self, route: str, *, open_slots: int, queued: int, running: int) -> None:
        self._open.send(open_slots, route)
        self._queued.send(queued, route)
        self._running.send(running, route)


def all_names(namespace: str = "default") -> list[str]:
    """Every name this module sends, dotted names included (those of one namespace)."""
    values = {"route": ROUTES, "reason": REASONS, "namespace": (namespace,)}
    names = [definition.name for definition in DEFINITIONS]
    for definition in DEFINITIONS:
        if definition.split_tag is not None:
            names.extend(f"{definition.name}.{value}" for value in values[definition.split_tag])
    return names


__all__ = [
    "ALL_NAMESPACES",
    "DEFINITIONS",
    "REASONS",
    "ROUTES",
    "Definition",
    "PodMetrics",
    "RouteMetrics",
    "all_names",
    "reason_of",
]

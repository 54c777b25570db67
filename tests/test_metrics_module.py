"""hybrid_executor.metrics: names Airflow and OpenTelemetry accept, reasons from real API answers, the README table.

OpenTelemetry is checked through Airflow's own OTel logger on the OpenTelemetry SDK, read by the
SDK's in-memory reader instead of an exporter to a collector.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3

from hybrid_executor import metrics
from hybrid_executor.kubernetes.errors import KubeApiError, classify, from_status
from hybrid_executor.testing.statsd import StatsdReceiver

README = Path(__file__).parent.parent / "README.md"


def test_every_name_passes_airflows_statsd_and_otel_validators() -> None:
    from airflow._shared.observability.metrics.otel_logger import name_is_otel_safe
    from airflow._shared.observability.metrics.validators import stat_name_default_handler

    names = metrics.all_names(namespace="airflow-workers-0123456789-abcdefghij")  # a long namespace
    assert len(names) == len(set(names))
    names += metrics.all_names(namespace=metrics.ALL_NAMESPACES)
    for name in names:
        assert stat_name_default_handler(name) == name
        assert name_is_otel_safe("airflow", name), name
        assert re.fullmatch(r"[a-z][a-z0-9_.]*[a-z0-9]", name.replace("-", "_")), name


def status(code: int, message: str, reason: str = "Forbidden") -> KubeApiError:
    return from_status({"kind": "Status", "status": "Failure", "code": code, "reason": reason, "message": message})


REASONS: dict[str, tuple[BaseException, str]] = {
    "quota full": (
        status(403, 'pods "p" is forbidden: exceeded quota: q, requested: pods=1, used: pods=5, limited: pods=5'),
        "quota",
    ),
    "quota too small for the pod": (
        status(403, 'pods "p" is forbidden: exceeded quota: q, requested: pods=1, used: pods=0, limited: pods=0'),
        "quota",
    ),
    "quota must specify": (
        status(403, 'pods "p" is forbidden: failed quota: q: must specify limits.memory for: base'),
        "quota",
    ),
    "rbac": (
        status(
            403,
            'pods is forbidden: User "system:serviceaccount:a:s" cannot create resource "pods" in API group "" '
            'in the namespace "default"',
        ),
        "rbac",
    ),
    "pod security": (
        status(403, 'pods "p" is forbidden: violates PodSecurity "restricted:latest": host namespaces'),
        "admission",
    ),
    "limit range": (
        status(403, 'pods "p" is forbidden: maximum cpu usage per Container is 8, but limit is 60'),
        "admission",
    ),
    "missing service account": (
        status(403, 'pods "p" is forbidden: error looking up service account ns/sa: serviceaccount "sa" not found'),
        "admission",
    ),
    "a 403 none of those": (status(403, "forbidden: no reason given"), "forbidden"),
    "422": (status(422, 'Pod "p" is invalid: spec.containers: Required value', "Invalid"), "invalid"),
    "400": (status(400, "bad request", "BadRequest"), "invalid"),
    "401": (status(401, "Unauthorized", "Unauthorized"), "unauthorized"),
    "404 namespace": (status(404, 'namespaces "gone" not found', "NotFound"), "not_found"),
    "409 conflict": (status(409, "the object has been modified", "Conflict"), "conflict"),
    "429": (status(429, "Too many requests", "TooManyRequests"), "throttled"),
    "500": (status(500, "Internal error occurred", "InternalError"), "server"),
    "504": (status(504, "timeout", "Timeout"), "server"),
    "connection reset": (classify(ConnectionResetError(104, "Connection reset by peer")), "connection"),
    "read timeout": (classify(urllib3.exceptions.ReadTimeoutError(None, "/api", "read timed out")), "connection"),
    "not an API error": (ValueError("a bug"), "other"),
}


@pytest.mark.parametrize(("error", "reason"), REASONS.values(), ids=REASONS.keys())
def test_the_reason_tag_says_what_refused_the_request(error: BaseException, reason: str) -> None:
    assert metrics.reason_of(error) == reason
    assert reason in metrics.REASONS


def test_the_readme_table_lists_every_metric_with_its_type_and_tags() -> None:
    text = README.read_text()
    rows = {
        match[0]: (match[1], match[2])
        for match in re.findall(r"^\| `(hybrid_executor\.[a-z_.]+)` \| (\w+) \| ([^|]*) \|", text, re.MULTILINE)
    }
    expected = {
        definition.name: (definition.kind, ", ".join(definition.all_tags)) for definition in metrics.DEFINITIONS
    }
    assert {name: (kind, tags.replace("`", "").strip()) for name, (kind, tags) in rows.items()} == expected
    for name in ("executor.open_slots", "executor.queued_tasks", "executor.running_tasks"):
        assert f"| `{name}` |" in text


def test_threads_sending_at_once_through_airflows_statsd_logger_lose_and_mix_up_nothing(
    statsd: StatsdReceiver,
) -> None:
    pods = metrics.PodMetrics("team-a")  # one per executor, shared by its launcher's threads
    errors = [classify(ConnectionResetError()), status(500, "Internal error occurred", "InternalError")]
    start = threading.Barrier(8)

    def send(number: int) -> None:
        start.wait()
        for _ in range(25):
            pods.create_retried(errors[number % 2])

    threads = [threading.Thread(target=send, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statsd.wait_for(lambda: len(statsd.received()) == 8 * 25 * 2, what="every datagram")
    by_reason = {"connection": 0, "server": 0}
    for received in statsd.received("hybrid_executor.pod_create.retried"):
        assert received.tags.keys() == {"team_name", "reason"}
        assert received.tags["team_name"] == "team-a"
        by_reason[received.tags["reason"]] += 1
    assert by_reason == {"connection": 100, "server": 100}
    dotted = {name: len(statsd.received(name)) for name in statsd.names() if name.count(".") == 3}
    assert dotted == {
        "hybrid_executor.pod_create.retried.connection": 100,
        "hybrid_executor.pod_create.retried.server": 100,
    }


@pytest.fixture
def otel_reader() -> Iterator[Any]:
    """Airflow's stats sending through its OTel logger to an OpenTelemetry SDK with an in-memory reader."""
    from airflow._shared.observability.metrics.base_stats_logger import NoStatsLogger
    from airflow._shared.observability.metrics.otel_logger import SafeOtelLogger
    from airflow.observability import stats
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    stats.initialize(factory=lambda: SafeOtelLogger(provider, "airflow"), export_legacy_names=True)
    yield reader
    stats.initialize(factory=NoStatsLogger, export_legacy_names=True)
    provider.shutdown()


def test_metrics_reach_opentelemetry_with_their_attributes(otel_reader: Any) -> None:
    pods = metrics.PodMetrics("team-a", dotted_names=False)
    routes = metrics.RouteMetrics("HybridExecutor", None, dotted_names=False)

    pods.create_failed(status(422, "invalid", "Invalid"))
    pods.create_retried(classify(ConnectionResetError()))
    pods.created(queued_at=None)
    with pods.create_request():
        pass
    pods.watch_relisted("workers")
    routes.send("kubernetes", open_slots=3, queued=2, running=1)

    points: dict[str, list[dict[str, Any]]] = {}
    for resource in otel_reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points[metric.name] = [dict(point.attributes) for point in metric.data.data_points]
    defined = {f"airflow.{definition.name}": set(definition.all_tags) for definition in metrics.DEFINITIONS}
    for name, attributes in points.items():
        assert set(attributes[0]) <= defined[name]
    assert points == {
        "airflow.hybrid_executor.pod_create.failed": [{"team_name": "team-a", "reason": "invalid"}],
        "airflow.hybrid_executor.pod_create.retried": [{"team_name": "team-a", "reason": "connection"}],
        "airflow.hybrid_executor.pod_create.succeeded": [{"team_name": "team-a"}],
        "airflow.hybrid_executor.pod_create.latency": [{"team_name": "team-a"}],
        "airflow.hybrid_executor.watch.relists": [{"team_name": "team-a", "namespace": "workers"}],
        "airflow.hybrid_executor.route.open_slots": [
            {"status": "open", "executor_class_name": "HybridExecutor", "route": "kubernetes"}
        ],
        "airflow.hybrid_executor.route.queued_tasks": [
            {"status": "queued", "executor_class_name": "HybridExecutor", "route": "kubernetes"}
        ],
        "airflow.hybrid_executor.route.running_tasks": [
            {"status": "running", "executor_class_name": "HybridExecutor", "route": "kubernetes"}
        ],
    }

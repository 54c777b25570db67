"""Fault injection in the local API, met through the official client as the executor will meet it.

Each rule is checked from the client's side (the exception, status, Status body and headers it
gets, or the connection error, or the time it waits, or where a watch stream ends) and from the
rule's own ``hits``.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from hybrid_executor.testing.kube import LocalKubeAPI

NAMESPACE = "default"


@pytest.fixture
def api() -> Iterator[LocalKubeAPI]:
    with LocalKubeAPI(fault_seed=11) as started:
        yield started


@pytest.fixture
def v1(api: LocalKubeAPI) -> Iterator[client.CoreV1Api]:
    with api.api_client() as api_client:
        yield client.CoreV1Api(api_client)


def client_with_retries(api: LocalKubeAPI, retries: Any) -> client.CoreV1Api:
    """A client whose urllib3 pool retries as told. ``Configuration.retries`` is read when the
    ApiClient builds its pool, so it must be set before; None keeps urllib3's default Retry(3)."""
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(api.kubeconfig), client_configuration=configuration)
    configuration.retries = retries
    return client.CoreV1Api(client.ApiClient(configuration))


def pod(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}}


def status_of(error: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(error.body)
    return body


def pod_names(v1: client.CoreV1Api) -> list[str]:
    return [p.metadata.name for p in v1.list_namespaced_pod(NAMESPACE).items]


# --- error answers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason", "phrase"),
    [(500, "InternalError", "Internal Server Error"), (503, "ServiceUnavailable", "Service Unavailable")],
)
def test_an_error_rule_answers_times_times_with_a_status_body_then_lets_requests_through(
    api: LocalKubeAPI, v1: client.CoreV1Api, code: int, reason: str, phrase: str
) -> None:
    rule = api.faults.add("create", "pods", status=code, times=2)

    for attempt in (1, 2):
        with pytest.raises(ApiException) as caught:
            v1.create_namespaced_pod(NAMESPACE, pod("flaky"))
        assert caught.value.status == code, attempt
        assert caught.value.reason == phrase
        assert caught.value.headers["Content-Type"] == "application/json"
        status = status_of(caught.value)
        assert status["kind"] == "Status"
        assert status["apiVersion"] == "v1"
        assert status["status"] == "Failure"
        assert status["code"] == code
        assert status["reason"] == reason
        assert status["message"]
        assert rule.hits == attempt
    assert pod_names(v1) == []  # a failed create stored nothing

    created = v1.create_namespaced_pod(NAMESPACE, pod("flaky"))

    assert created.metadata.name == "flaky"
    assert pod_names(v1) == ["flaky"]
    assert rule.hits == 2
    assert api.requests()[("create", "pods")] == 3


def test_a_custom_message_is_the_status_message(api: LocalKubeAPI, v1: client.CoreV1Api) -> None:
    api.faults.add("get", "namespaces", status=403, message='namespaces "default" is forbidden: not today', times=1)

    with pytest.raises(ApiException) as caught:
        v1.read_namespace(NAMESPACE)

    assert caught.value.status == 403
    assert status_of(caught.value)["reason"] == "Forbidden"
    assert status_of(caught.value)["message"] == 'namespaces "default" is forbidden: not today'


@pytest.mark.parametrize(("retry_after", "seconds"), [(3, 3), (0.2, 1)])
def test_a_handlers_429_carries_retry_after_as_a_header_and_in_the_status_details(
    api: LocalKubeAPI, retry_after: float, seconds: int
) -> None:
    # plain_text=False: a 429 from a handler (errors.NewTooManyRequests), not from a filter.
    v1 = client_with_retries(api, False)  # urllib3's default would wait out Retry-After and retry (next test)
    api.faults.add("list", "pods", status=429, retry_after=retry_after, times=1, plain_text=False)

    with pytest.raises(ApiException) as caught:
        v1.list_namespaced_pod(NAMESPACE)

    assert caught.value.status == 429
    assert caught.value.headers["Retry-After"] == str(seconds)  # whole seconds, at least 1, as the server sends it
    status = status_of(caught.value)
    assert status["reason"] == "TooManyRequests"
    assert status["message"] == "Too many requests, please try again later."
    assert status["details"] == {"retryAfterSeconds": seconds}
    assert v1.list_namespaced_pod(NAMESPACE).items == []


def test_a_plain_text_429_is_what_the_max_in_flight_and_priority_and_fairness_filters_send(
    api: LocalKubeAPI,
) -> None:
    v1 = client_with_retries(api, False)
    rule = api.faults.add("create", "pods", status=429, retry_after=1, plain_text=True, times=1)

    with pytest.raises(ApiException) as caught:
        v1.create_namespaced_pod(NAMESPACE, pod("throttled"))

    assert caught.value.status == 429
    assert caught.value.body == "Too many requests, please try again later.\n"
    assert caught.value.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert caught.value.headers["X-Content-Type-Options"] == "nosniff"
    assert caught.value.headers["Retry-After"] == "1"
    assert rule.hits == 1
    assert pod_names(v1) == []


@pytest.mark.parametrize(("retry_after", "header"), [(None, "1"), (4, "4")])
def test_a_429_is_by_default_what_priority_and_fairness_sends(
    api: LocalKubeAPI, retry_after: float | None, header: str
) -> None:
    # APF (the default filter since 1.20) rejects with tooManyRequests: http.Error's text/plain, a
    # Retry-After from its dropped-requests tracker (1 s unless rejections persist, at most 32) and
    # the UIDs of the FlowSchema and PriorityLevelConfiguration that classified the request.
    v1 = client_with_retries(api, False)
    api.faults.add("create", "pods", status=429, retry_after=retry_after, times=1)

    with pytest.raises(ApiException) as caught:
        v1.create_namespaced_pod(NAMESPACE, pod("throttled"))

    headers = caught.value.headers
    assert caught.value.status == 429
    assert caught.value.body == "Too many requests, please try again later.\n"
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Retry-After"] == header
    assert headers["X-Kubernetes-PF-FlowSchema-UID"]
    assert headers["X-Kubernetes-PF-PriorityLevel-UID"]
    assert headers["X-Kubernetes-PF-FlowSchema-UID"] != headers["X-Kubernetes-PF-PriorityLevel-UID"]


def test_plain_text_without_a_status_is_refused(api: LocalKubeAPI) -> None:
    with pytest.raises(ValueError, match="plain_text is the form of an error answer: give a status too"):
        api.faults.add("create", "pods", plain_text=True)


def test_urllib3s_default_retries_sleep_out_retry_after_on_a_429_get(api: LocalKubeAPI, v1: client.CoreV1Api) -> None:
    # What a client that keeps urllib3's default Retry(3) does: the caller never sees the 429, only the wait.
    rule = api.faults.add("list", "pods", status=429, retry_after=1, times=1)

    began = time.monotonic()
    assert v1.list_namespaced_pod(NAMESPACE).items == []

    assert time.monotonic() - began >= 0.9
    assert rule.hits == 1
    assert api.requests()[("list", "pods")] == 2


def test_an_error_without_retry_after_has_neither_header_nor_details(api: LocalKubeAPI, v1: client.CoreV1Api) -> None:
    api.faults.add("list", "pods", status=500, times=1)

    with pytest.raises(ApiException) as caught:
        v1.list_namespaced_pod(NAMESPACE)

    assert "Retry-After" not in caught.value.headers
    assert "details" not in status_of(caught.value)


# --- chance ----------------------------------------------------------------------------------


def failures(api: LocalKubeAPI, requests: int) -> list[bool]:
    v1 = client.CoreV1Api(api.api_client())
    codes = []
    for _ in range(requests):
        try:
            v1.read_namespace(NAMESPACE)
            codes.append(200)
        except ApiException as error:
            codes.append(error.status)
    assert set(codes) <= {200, 503}
    return [code == 503 for code in codes]


def test_a_rule_with_a_probability_fires_about_that_often_and_a_seed_repeats_it() -> None:
    patterns = []
    for seed in (5, 5, 6):
        with LocalKubeAPI(fault_seed=seed) as api:
            rule = api.faults.add("get", "namespaces", status=503, probability=0.5)
            pattern = failures(api, 200)
            assert rule.hits == sum(pattern)
            patterns.append(pattern)

    assert 70 <= sum(patterns[0]) <= 130  # about half: far outside this would take odds of 1 in 10^4
    assert patterns[0] == patterns[1]  # the same seed, the same requests failed
    assert patterns[0] != patterns[2]


@pytest.mark.parametrize("probability", [-0.1, 1.5])
def test_add_refuses_a_probability_outside_0_to_1(api: LocalKubeAPI, probability: float) -> None:
    with pytest.raises(ValueError, match=r"probability must be within 0\.\.1"):
        api.faults.add(status=500, probability=probability)


def test_add_refuses_an_unknown_verb_and_a_status_that_is_no_error(api: LocalKubeAPI) -> None:
    with pytest.raises(ValueError, match="verb 'fetch' is not one of get, list, watch"):
        api.faults.add("fetch", status=500)
    with pytest.raises(ValueError, match="status must be an HTTP error code"):
        api.faults.add(status=200)
    assert api.faults.rules == []


# --- latency ---------------------------------------------------------------------------------


def timed(call: Any, times: int = 5) -> float:
    durations = []
    for _ in range(times):
        began = time.perf_counter()
        call()
        durations.append(time.perf_counter() - began)
    return statistics.median(durations)


def test_latency_delays_matching_requests_and_only_those(api: LocalKubeAPI, v1: client.CoreV1Api) -> None:
    v1.read_namespace(NAMESPACE)  # the connection is open before anything is timed
    rule = api.faults.add("get", "namespaces", latency=0.15)

    slow = timed(lambda: v1.read_namespace(NAMESPACE))
    fast = timed(lambda: v1.list_namespace())

    assert slow >= 0.15
    assert fast < 0.1
    assert rule.hits == 5
    assert v1.read_namespace(NAMESPACE).metadata.name == NAMESPACE  # latency alone answers normally


def test_latency_then_an_error(api: LocalKubeAPI, v1: client.CoreV1Api) -> None:
    api.faults.add("get", "namespaces", latency=0.1, status=504, times=1)

    began = time.perf_counter()
    with pytest.raises(ApiException) as caught:
        v1.read_namespace(NAMESPACE)

    assert time.perf_counter() - began >= 0.1
    assert caught.value.status == 504
    assert status_of(caught.value)["reason"] == "Timeout"


# --- reset connections -------------------------------------------------------------------------


def test_a_reset_reaches_a_client_without_retries_as_a_connection_error(api: LocalKubeAPI) -> None:
    rule = api.faults.add("get", "namespaces", reset=True, times=2)

    with pytest.raises(urllib3.exceptions.ProtocolError) as aborted:
        client_with_retries(api, False).read_namespace(NAMESPACE)  # False: urllib3 raises the error itself
    assert isinstance(aborted.value.args[1], ConnectionResetError)

    with pytest.raises(urllib3.exceptions.MaxRetryError) as exhausted:
        client_with_retries(api, 0).read_namespace(NAMESPACE)  # 0: the error, wrapped as retries used up
    assert isinstance(exhausted.value.reason, urllib3.exceptions.ProtocolError)

    assert rule.hits == 2
    assert client_with_retries(api, False).read_namespace(NAMESPACE).metadata.name == NAMESPACE


def test_urllib3s_default_retries_hide_a_reset_get_but_not_a_reset_create(
    api: LocalKubeAPI, v1: client.CoreV1Api
) -> None:
    get_reset = api.faults.add("get", "namespaces", reset=True, times=1)

    assert v1.read_namespace(NAMESPACE).metadata.name == NAMESPACE  # retried by urllib3, unseen by the caller
    assert get_reset.hits == 1
    assert api.requests()[("get", "namespaces")] == 2

    create_reset = api.faults.add("create", "pods", reset=True, times=1)
    with pytest.raises(urllib3.exceptions.ProtocolError):
        v1.create_namespaced_pod(NAMESPACE, pod("maybe"))  # POST is not idempotent: urllib3 does not retry it
    assert create_reset.hits == 1
    assert pod_names(v1) == []  # the reset came before the server did anything


def test_a_reset_after_apply_stores_the_pod_and_loses_the_answer(api: LocalKubeAPI, v1: client.CoreV1Api) -> None:
    rule = api.faults.add("create", "pods", reset_after_apply=True, times=1)

    with pytest.raises(urllib3.exceptions.ProtocolError) as aborted:
        v1.create_namespaced_pod(NAMESPACE, pod("stored"))
    assert isinstance(aborted.value.args[1], ConnectionResetError)

    assert rule.hits == 1
    assert pod_names(v1) == ["stored"]  # applied before the connection went
    with pytest.raises(ApiException) as again:  # what a client that retries meets: its own write
        v1.create_namespaced_pod(NAMESPACE, pod("stored"))
    assert (again.value.status, status_of(again.value)["reason"]) == (409, "AlreadyExists")


def test_a_reset_after_apply_of_a_delete_has_deleted(api: LocalKubeAPI, v1: client.CoreV1Api) -> None:
    v1.create_namespaced_pod(NAMESPACE, pod("doomed"))
    api.faults.add("delete", "pods", reset_after_apply=True, times=1)

    with pytest.raises(urllib3.exceptions.ProtocolError):  # without urllib3's retries: it repeats a DELETE
        client_with_retries(api, False).delete_namespaced_pod("doomed", NAMESPACE, grace_period_seconds=0)
    assert pod_names(v1) == []


# --- cut watches -----------------------------------------------------------------------------


def raw_watch_lines(v1: client.CoreV1Api, since: str, **options: Any) -> list[dict[str, Any]]:
    """Every event line of one watch request, read until the server ends the stream."""
    response = v1.list_namespaced_pod(
        NAMESPACE, watch=True, resource_version=since, _preload_content=False, _request_timeout=10, **options
    )
    body = b"".join(response.stream(amt=None, decode_content=False))
    return [json.loads(line) for line in body.splitlines() if line]


def test_a_watch_closed_after_n_events_ends_the_stream_and_the_client_resumes_without_loss(
    api: LocalKubeAPI, v1: client.CoreV1Api
) -> None:
    since = v1.list_namespaced_pod(NAMESPACE).metadata.resource_version
    names = [f"pod-{i}" for i in range(7)]
    for name in names:
        v1.create_namespaced_pod(NAMESPACE, pod(name))
    once = api.faults.add("watch", "pods", watch_close_after_events=3, times=1)

    lines = raw_watch_lines(v1, since)

    assert [line["object"]["metadata"]["name"] for line in lines] == names[:3]
    assert once.hits == 1

    every = api.faults.add("watch", "pods", watch_close_after_events=2)
    seen = []
    stream = watch.Watch()
    for event in stream.stream(v1.list_namespaced_pod, NAMESPACE, resource_version=since, _request_timeout=10):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == len(names):
            stream.stop()

    assert seen == [("ADDED", name) for name in names]  # each exactly once, in order, across 4 streams
    assert every.hits == 4


def test_a_watch_closed_after_n_seconds_ends_the_stream_and_the_client_resumes_without_loss(
    api: LocalKubeAPI, v1: client.CoreV1Api
) -> None:
    since = v1.list_namespaced_pod(NAMESPACE).metadata.resource_version
    rule = api.faults.add("watch", "pods", watch_close_after_seconds=0.3)

    began = time.monotonic()
    assert raw_watch_lines(v1, since) == []
    assert 0.25 <= time.monotonic() - began < 3  # the stream ended, quietly, after the 0.3 seconds

    names = [f"late-{i}" for i in range(6)]

    def create_slowly() -> None:
        creator = client.CoreV1Api(api.api_client())
        for name in names:
            creator.create_namespaced_pod(NAMESPACE, pod(name))
            time.sleep(0.15)

    creator = threading.Thread(target=create_slowly)
    creator.start()
    seen = []
    stream = watch.Watch()
    try:
        for event in stream.stream(v1.list_namespaced_pod, NAMESPACE, resource_version=since, _request_timeout=10):
            seen.append(event["object"].metadata.name)
            if len(seen) == len(names):
                stream.stop()
    finally:
        creator.join()

    assert seen == names
    assert rule.hits >= 3  # the first raw watch, and at least two streams of the client's


def test_timeout_seconds_shorter_than_the_rule_wins(api: LocalKubeAPI, v1: client.CoreV1Api) -> None:
    api.faults.add("watch", "pods", watch_close_after_seconds=30)
    since = v1.list_namespaced_pod(NAMESPACE).metadata.resource_version

    began = time.monotonic()
    assert raw_watch_lines(v1, since, timeout_seconds=1) == []
    assert time.monotonic() - began < 3


def test_a_watch_expired_rule_answers_one_error_event_410_as_the_watch_cache_does_then_lets_watches_through(
    api: LocalKubeAPI, v1: client.CoreV1Api
) -> None:
    since = v1.list_namespaced_pod(NAMESPACE).metadata.resource_version
    v1.create_namespaced_pod(NAMESPACE, pod("since"))
    rule = api.faults.add("watch", "pods", watch_expired=True, times=1)

    [expired] = raw_watch_lines(v1, since)
    assert rule.hits == 1
    assert expired["type"] == "ERROR"
    assert (expired["object"]["code"], expired["object"]["reason"]) == (410, "Expired")
    # Word for word what the server answers once the history really is compacted up to now.
    api.compact()
    assert raw_watch_lines(v1, since) == [expired]

    since = v1.list_namespaced_pod(NAMESPACE).metadata.resource_version
    v1.create_namespaced_pod(NAMESPACE, pod("after"))
    events = raw_watch_lines(v1, since, timeout_seconds=1)
    assert [(line["type"], line["object"]["metadata"]["name"]) for line in events] == [("ADDED", "after")]


def test_watch_expired_is_refused_on_a_verb_that_is_no_watch(api: LocalKubeAPI) -> None:
    with pytest.raises(ValueError, match="watch_expired answers watches only: give verb 'watch', not 'list'"):
        api.faults.add("list", "pods", watch_expired=True)


def test_delete_calls_are_counted_per_pod_whatever_their_answer(api: LocalKubeAPI, v1: client.CoreV1Api) -> None:
    v1.create_namespaced_pod(NAMESPACE, pod("deleted-twice"))
    api.faults.add("delete", "pods", status=500, times=1)
    with pytest.raises(ApiException):
        v1.delete_namespaced_pod("deleted-twice", NAMESPACE)
    v1.delete_namespaced_pod("deleted-twice", NAMESPACE, grace_period_seconds=0)
    with pytest.raises(ApiException):
        v1.delete_namespaced_pod("never-was", NAMESPACE)

    assert api.delete_requests() == {(NAMESPACE, "deleted-twice"): 2, (NAMESPACE, "never-was"): 1}
    assert api.delete_requests("namespaces") == {}


def test_a_watch_cut_with_a_reset_breaks_the_stream_mid_way(api: LocalKubeAPI, v1: client.CoreV1Api) -> None:
    since = v1.list_namespaced_pod(NAMESPACE).metadata.resource_version
    for name in ("a", "b", "c"):
        v1.create_namespaced_pod(NAMESPACE, pod(name))
    api.faults.add("watch", "pods", watch_close_after_events=2, reset=True, times=1)

    response = v1.list_namespaced_pod(NAMESPACE, watch=True, resource_version=since, _preload_content=False)
    chunks: list[bytes] = []

    def read_all() -> None:
        chunks.extend(response.stream(amt=None, decode_content=False))

    with pytest.raises(urllib3.exceptions.ProtocolError):
        read_all()
    received = b"".join(chunks)

    assert [json.loads(line)["object"]["metadata"]["name"] for line in received.splitlines()] == ["a", "b"]


def test_a_watch_the_client_leaves_is_ended_on_the_server(api: LocalKubeAPI, v1: client.CoreV1Api) -> None:
    def open_watches() -> int:
        return api.call(lambda: len(api.server.store._subscriptions))

    response = v1.list_namespaced_pod(NAMESPACE, watch=True, _preload_content=False)
    deadline = time.monotonic() + 5
    while open_watches() != 1:
        assert time.monotonic() < deadline, "the watch never opened"
        time.sleep(0.02)

    response.close()  # as Watch.stream ends a stream: close, then hand the (closed) connection back
    response.release_conn()

    while open_watches() != 0:  # the server notices the closed connection within a second or so
        assert time.monotonic() < deadline, "the server still holds the watch of a client that has gone"
        time.sleep(0.05)


# --- matching, counting, removing ----------------------------------------------------------------


def test_a_rule_touches_only_its_verb_resource_and_path(api: LocalKubeAPI, v1: client.CoreV1Api) -> None:
    v1.create_namespace({"metadata": {"name": "other"}})
    api.faults.add("create", "pods", status=500, path="/api/v1/namespaces/default/*")
    api.faults.add("delete", "namespaces", status=503)

    with pytest.raises(ApiException) as caught:
        v1.create_namespaced_pod(NAMESPACE, pod("blocked"))
    assert caught.value.status == 500

    v1.create_namespaced_pod("other", pod("allowed"))  # another namespace: another path
    assert v1.read_namespaced_pod("allowed", "other").metadata.name == "allowed"  # get, not create
    assert v1.list_namespaced_pod(NAMESPACE).items == []  # list, not create
    assert v1.patch_namespaced_pod("allowed", "other", {"metadata": {"labels": {"a": "b"}}}).metadata.labels == {
        "a": "b"
    }
    v1.create_namespace({"metadata": {"name": "third"}})  # create, but of namespaces
    with pytest.raises(ApiException) as refused:
        v1.delete_namespace("third")
    assert refused.value.status == 503


def test_a_rule_on_pods_leaves_pod_subresources_alone_unless_it_names_them(
    api: LocalKubeAPI, v1: client.CoreV1Api
) -> None:
    v1.create_namespaced_pod(NAMESPACE, pod("p"))
    whole = api.faults.add("patch", "pods", status=500)
    status_only = api.faults.add("patch", "pods/status", status=409)

    with pytest.raises(ApiException) as caught:
        v1.patch_namespaced_pod_status("p", NAMESPACE, {"status": {"message": "x"}})
    assert caught.value.status == 409
    assert (whole.hits, status_only.hits) == (0, 1)

    any_pod_path = api.faults.add("get", "pods*", status=502)
    with pytest.raises(ApiException) as log_failure:
        v1.read_namespaced_pod_log("p", NAMESPACE)
    assert log_failure.value.status == 502
    assert any_pod_path.hits == 1


def test_hits_count_remove_and_clear(api: LocalKubeAPI, v1: client.CoreV1Api) -> None:
    first = api.faults.add("get", "namespaces", status=500)
    second = api.faults.add("list", "namespaces", status=503)
    assert api.faults.rules == [first, second]

    for _ in range(3):
        with pytest.raises(ApiException):
            v1.read_namespace(NAMESPACE)
    assert (first.hits, second.hits) == (3, 0)

    api.faults.remove(first)
    assert api.faults.rules == [second]
    assert v1.read_namespace(NAMESPACE).metadata.name == NAMESPACE
    assert first.hits == 3  # a removed rule keeps its count, and counts no more
    api.faults.remove(first)  # removing twice is harmless

    with pytest.raises(ApiException):
        v1.list_namespace()
    api.faults.clear()
    assert api.faults.rules == []
    assert v1.list_namespace().items
    assert second.hits == 1


def test_the_first_matching_error_rule_answers_and_a_rule_it_shadows_is_not_spent(
    api: LocalKubeAPI, v1: client.CoreV1Api
) -> None:
    # "times" counts the requests a rule answered: a rule met by a request another rule already
    # answered keeps its turns, so rules can be stacked in order (e.g. a reset after apply, then 503s).
    first = api.faults.add("get", "namespaces", status=503, times=1)
    second = api.faults.add("get", "*", status=500, times=2)

    codes = []
    for _ in range(4):
        try:
            v1.read_namespace(NAMESPACE)
            codes.append(200)
        except ApiException as error:
            codes.append(error.status)

    assert codes == [503, 500, 500, 200]
    assert (first.hits, second.hits) == (1, 2)

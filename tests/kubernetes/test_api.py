"""KubeApi and classify(), against the local Kubernetes API over HTTP with the official client.

The error classification is checked on the client's real exceptions: those the local API's Status
answers and faults raise through the client, and, for bodies the local API never writes (a proxy's
HTML, JSON that is not a Status), ``ApiException`` built from a urllib3 response as the client
builds it.
"""

from __future__ import annotations

import email.utils
import pickle
import socket
import threading
import time
from typing import Any

import pytest
import urllib3
from kube_test_support import NS, SECRET, ConnectionSettings
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hybrid_executor.kubernetes.api import (
    TEXT_BODY_MAX,
    ApiErrorKind,
    KubeApi,
    KubeApiError,
    PodPage,
    StatusCause,
    WatchEvent,
    classify,
)
from hybrid_executor.testing.kube import KubeletConfig, LocalKubeAPI

LABELS = {"app.kubernetes.io/managed-by": "hybrid-executor"}
SELECTOR = "app.kubernetes.io/managed-by=hybrid-executor"


@pytest.fixture
def v1(api: KubeApi) -> client.CoreV1Api:
    """The official client under KubeApi (its urllib3 retries off), called directly."""
    return api.core


def pod(name: str, *, namespace: str = NS, container: str = "base", **container_spec: Any) -> client.V1Pod:
    spec = {"image": "busybox:1.36", "command": ["true"], "args": ["--token", SECRET], **container_spec}
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, namespace=namespace, labels=dict(LABELS)),
        spec=client.V1PodSpec(containers=[client.V1Container(name=container, **spec)], restart_policy="Never"),
    )


def caught(call: Any) -> ApiException:
    """The ApiException that ``call`` raises through the plain client."""
    with pytest.raises(ApiException) as info:
        call()
    return info.value


def api_exception(status: int, body: bytes, headers: dict[str, str] | None = None) -> ApiException:
    """An ApiException as the client builds it from a urllib3 response."""
    response = urllib3.HTTPResponse(body=body, status=status, headers=headers or {}, preload_content=True)
    return ApiException(http_resp=response)


# --- classify: Status bodies -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (400, ApiErrorKind.FATAL),
        (401, ApiErrorKind.RETRYABLE),
        (403, ApiErrorKind.RETRYABLE),
        (404, ApiErrorKind.NOT_FOUND),
        (409, ApiErrorKind.RETRYABLE),
        (410, ApiErrorKind.GONE),
        (422, ApiErrorKind.FATAL),
        (429, ApiErrorKind.RETRYABLE),
        (500, ApiErrorKind.RETRYABLE),
        (502, ApiErrorKind.RETRYABLE),
        (503, ApiErrorKind.RETRYABLE),
        (504, ApiErrorKind.RETRYABLE),
    ],
)
def test_each_status_code_is_classified_with_the_apis_own_reason_and_message(
    kube: LocalKubeAPI, v1: client.CoreV1Api, code: int, kind: ApiErrorKind
) -> None:
    kube.faults.add("get", "namespaces", status=code, message=f"injected {code}", times=1)

    error = classify(caught(lambda: v1.read_namespace(NS)))

    assert error.code == code
    assert error.kind is kind
    assert error.message == f"injected {code}"
    assert error.reason  # the Status's, e.g. "Conflict", "Expired", "TooManyRequests"
    assert str(error) == f"injected {code} (HTTP {code} {error.reason})"


def test_409_already_exists_is_told_from_other_conflicts(v1: client.CoreV1Api) -> None:
    v1.create_namespaced_pod(NS, pod("twice"))

    error = classify(caught(lambda: v1.create_namespaced_pod(NS, pod("twice"))))

    assert error.kind is ApiErrorKind.ALREADY_EXISTS
    assert (error.code, error.reason, error.message) == (409, "AlreadyExists", 'pods "twice" already exists')


def test_422_keeps_the_message_and_the_causes(v1: client.CoreV1Api) -> None:
    error = classify(caught(lambda: v1.create_namespaced_pod(NS, pod("bad", container="Base"))))

    assert error.kind is ApiErrorKind.FATAL
    assert (error.code, error.reason) == (422, "Invalid")
    assert error.message.startswith('Pod "bad" is invalid: spec.containers[0].name')
    assert 'Invalid value: "Base"' in error.message
    assert error.causes
    assert isinstance(error.causes[0], StatusCause)
    assert error.causes[0].field == "spec.containers[0].name"
    assert error.causes[0].reason == "FieldValueInvalid"


def test_quota_403_is_retryable_with_the_quota_message(v1: client.CoreV1Api) -> None:
    v1.create_namespaced_resource_quota(NS, {"metadata": {"name": "one-pod"}, "spec": {"hard": {"pods": "1"}}})
    v1.create_namespaced_pod(NS, pod("first"))

    error = classify(caught(lambda: v1.create_namespaced_pod(NS, pod("second"))))

    assert error.kind is ApiErrorKind.RETRYABLE
    assert (error.code, error.reason) == (403, "Forbidden")
    assert "exceeded quota: one-pod" in error.message


def test_retry_after_comes_from_the_header_and_the_status_details(kube: LocalKubeAPI, v1: client.CoreV1Api) -> None:
    kube.faults.add("get", "namespaces", status=429, retry_after=2, times=1)

    error = classify(caught(lambda: v1.read_namespace(NS)))

    assert error.retry_after == 2
    assert error.kind is ApiErrorKind.RETRYABLE

    status = (
        b'{"kind":"Status","code":503,"reason":"ServiceUnavailable","message":"m","details":{"retryAfterSeconds":7}}'
    )
    assert classify(api_exception(503, status, {"Retry-After": "3"})).retry_after == 7  # the larger
    assert classify(api_exception(503, status.replace(b"7", b"0"), {"Retry-After": "3"})).retry_after == 3
    in_five = email.utils.formatdate(time.time() + 5, usegmt=True)
    from_date = classify(api_exception(503, b"busy", {"Retry-After": in_five})).retry_after
    assert from_date is not None
    assert 3 <= from_date <= 5


def test_the_filters_plain_text_429_is_retryable_after_its_header(kube: LocalKubeAPI, v1: client.CoreV1Api) -> None:
    # What kube-apiserver's max-in-flight and priority-and-fairness filters answer: no Status at all.
    kube.faults.add("create", "pods", status=429, retry_after=1, plain_text=True, times=1)

    error = classify(caught(lambda: v1.create_namespaced_pod(NS, pod("throttled"))))

    assert error.kind is ApiErrorKind.RETRYABLE
    assert error.retry_after == 1
    assert str(error) == "Too many requests, please try again later. (HTTP 429 Too Many Requests)"


def test_a_token_in_a_status_message_is_redacted() -> None:
    body = f'{{"kind":"Status","code":422,"reason":"Invalid","message":"args: Invalid value: {SECRET}"}}'.encode()

    error = classify(api_exception(422, body))

    assert SECRET not in error.message
    assert error.message == "args: Invalid value: <redacted>"


# --- classify: bodies that are not a Status ----------------------------------------------------


def test_json_that_is_not_a_status_is_never_echoed() -> None:
    body = b'{"kind":"Secret","data":{"token":"hunter2"}}'

    error = classify(api_exception(500, body))

    assert "hunter2" not in str(error)
    assert "token" not in str(error)
    assert error.kind is ApiErrorKind.RETRYABLE
    assert str(error) == "the API answered without a Status (response body not shown) (HTTP 500 Internal Server Error)"


def test_a_text_body_is_cut_short_to_one_line() -> None:
    body = b"<html>\n<body>bad gateway " + b"x" * 5000 + b" secret-at-the-end</body>\n</html>"

    error = classify(api_exception(502, body, {"Content-Type": "text/html"}))

    assert error.kind is ApiErrorKind.RETRYABLE
    assert error.message.startswith("<html> <body>bad gateway xxx")
    assert error.message.endswith("...")
    assert "\n" not in error.message
    assert "secret-at-the-end" not in error.message
    assert len(error.message) <= TEXT_BODY_MAX
    assert str(error).endswith("... (HTTP 502 Bad Gateway)")


def test_an_empty_body_is_named_by_its_code() -> None:
    error = classify(api_exception(503, b""))

    assert str(error) == "the API answered without a body (HTTP 503 Service Unavailable)"
    assert error.kind is ApiErrorKind.RETRYABLE


def test_a_409_without_a_status_body_is_a_retryable_conflict() -> None:
    assert classify(api_exception(409, b"conflict")).kind is ApiErrorKind.RETRYABLE


# --- classify: transport errors and the rest ---------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer")),
        urllib3.exceptions.ReadTimeoutError(None, "/api/v1/pods", "Read timed out. (read timeout=60)"),  # type: ignore[arg-type]
        urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: refused"),  # type: ignore[arg-type]
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError("timed out"),
        ApiException(status=0, reason="SSLError\ncertificate verify failed"),
    ],
)
def test_transport_errors_are_retryable_connection_errors(error: BaseException) -> None:
    classified = classify(error)

    assert classified.kind is ApiErrorKind.RETRYABLE
    assert classified.code is None
    assert classified.message.startswith("connection error: ")
    assert str(classified) == classified.message


def test_anything_else_is_fatal_and_a_kube_api_error_is_itself() -> None:
    error = classify(TypeError("Object of type Widget is not JSON serializable"))

    assert error.kind is ApiErrorKind.FATAL
    assert error.message == "TypeError: Object of type Widget is not JSON serializable"
    assert classify(error) is error


def test_a_kube_api_error_survives_pickling() -> None:
    error = KubeApiError(422, "Invalid", "bad", None, ApiErrorKind.FATAL, (StatusCause("f", "r", "m"),))

    copy = pickle.loads(pickle.dumps(error))

    assert (copy.code, copy.reason, copy.message, copy.retry_after, copy.kind, copy.causes) == (
        422,
        "Invalid",
        "bad",
        None,
        ApiErrorKind.FATAL,
        (StatusCause("f", "r", "m"),),
    )


# --- from_settings: one attempt per call -------------------------------------------------------


def test_the_client_does_not_sleep_out_retry_after_itself(kube: LocalKubeAPI, api: KubeApi) -> None:
    kube.faults.add("list", "pods", status=503, retry_after=3, times=1)

    started = time.monotonic()
    with pytest.raises(KubeApiError) as info:
        api.list_pods_page(NS, SELECTOR, None)

    assert time.monotonic() - started < 1  # the client's urllib3 would have waited 3 s and retried
    assert info.value.retry_after == 3
    assert kube.requests()[("list", "pods")] == 1


def test_the_client_does_not_repeat_a_get_after_a_reset(kube: LocalKubeAPI, api: KubeApi) -> None:
    kube.faults.add("list", "pods", reset=True, times=1)

    with pytest.raises(KubeApiError) as info:
        api.list_pods_page(NS, SELECTOR, None)

    assert info.value.kind is ApiErrorKind.RETRYABLE
    assert info.value.message.startswith("connection error: ")
    assert kube.requests()[("list", "pods")] == 1
    assert api.list_pods_page(NS, SELECTOR, None).items == []  # the pool recovers


def test_the_connection_pool_fits_every_worker_and_watcher(kube: LocalKubeAPI) -> None:
    settings = ConnectionSettings(
        config_file=str(kube.kubeconfig), pod_creation_concurrency=64, namespace_set=frozenset({"a", "b", "c"})
    )
    made = KubeApi.from_settings(settings)
    try:
        assert made.core.api_client.rest_client.pool_manager.connection_pool_kw["maxsize"] >= 64 + 3
    finally:
        made.close()


def test_verify_ssl_ca_cert_and_keepalive_reach_the_client(kube: LocalKubeAPI, tmp_path: Any) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("not read until a TLS connection is made")
    settings = ConnectionSettings(config_file=str(kube.kubeconfig), verify_ssl=False, ssl_ca_cert=str(ca))
    made = KubeApi.from_settings(settings)
    try:
        configuration = made.core.api_client.configuration
        assert configuration.verify_ssl is False
        assert configuration.ssl_ca_cert == str(ca)
        assert (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1) in configuration.socket_options
        assert made.list_pods_page(NS, SELECTOR, None).items == []
    finally:
        made.close()


# --- pods --------------------------------------------------------------------------------------


def test_create_pod_answers_the_created_pod_as_json(kube: LocalKubeAPI, api: KubeApi) -> None:
    created = api.create_pod(pod("made"))

    assert isinstance(created, dict)
    assert created["metadata"]["name"] == "made"
    assert created["metadata"]["uid"]
    assert created["spec"]["containers"][0]["args"] == ["--token", SECRET]
    assert [p["metadata"]["name"] for p in kube.pods(NS)] == ["made"]


def test_create_pod_errors_are_classified(api: KubeApi) -> None:
    api.create_pod(pod("made"))
    with pytest.raises(KubeApiError) as exists:
        api.create_pod(pod("made"))
    with pytest.raises(KubeApiError) as invalid:
        api.create_pod(pod("bad", container="Base"))
    with pytest.raises(KubeApiError) as no_namespace:
        api.create_pod(pod("lost", namespace="nowhere"))
    with pytest.raises(KubeApiError) as unnamed_namespace:
        api.create_pod(pod("lost", namespace=""))

    assert exists.value.kind is ApiErrorKind.ALREADY_EXISTS
    assert invalid.value.kind is ApiErrorKind.FATAL
    assert 'Invalid value: "Base"' in invalid.value.message
    assert no_namespace.value.kind is ApiErrorKind.NOT_FOUND
    assert no_namespace.value.message == 'namespaces "nowhere" not found'
    assert unnamed_namespace.value.kind is ApiErrorKind.FATAL
    assert "namespace" in unnamed_namespace.value.message


def test_delete_pod_is_true_then_false(kube: LocalKubeAPI, api: KubeApi) -> None:
    api.create_pod(pod("gone"))

    assert api.delete_pod(NS, "gone") is True
    assert kube.pods(NS) == []
    assert api.delete_pod(NS, "gone") is False


def test_patch_pod_labels_merges_them(api: KubeApi) -> None:
    api.create_pod(pod("labelled"))

    patched = api.patch_pod_labels(NS, "labelled", {"airflow-worker": "42"})

    assert patched["metadata"]["labels"] == {**LABELS, "airflow-worker": "42"}
    with pytest.raises(KubeApiError) as missing:
        api.patch_pod_labels(NS, "nobody", {"a": "b"})
    assert missing.value.kind is ApiErrorKind.NOT_FOUND


def test_list_pods_page_pages_through_the_selected_pods(v1: client.CoreV1Api, api: KubeApi) -> None:
    for number in range(5):
        api.create_pod(pod(f"p{number}"))
    v1.create_namespaced_pod(NS, {"metadata": {"name": "other"}, "spec": pod("x").spec})

    pages: list[PodPage] = [api.list_pods_page(NS, SELECTOR, None, limit=2)]
    while pages[-1].continue_token is not None:
        pages.append(api.list_pods_page(NS, SELECTOR, pages[-1].continue_token, limit=2))

    assert [len(page.items) for page in pages] == [2, 2, 1]
    assert sorted(p["metadata"]["name"] for page in pages for p in page.items) == [f"p{n}" for n in range(5)]
    assert all(page.resource_version for page in pages)


def test_list_pods_follows_every_page(v1: client.CoreV1Api, api: KubeApi, kube: LocalKubeAPI) -> None:
    for number in range(5):
        api.create_pod(pod(f"p{number}"))
    v1.create_namespaced_pod(NS, {"metadata": {"name": "other"}, "spec": pod("x").spec})
    lists = kube.requests()[("list", "pods")]

    listed = api.list_pods(NS, SELECTOR, limit=2)

    assert sorted(p["metadata"]["name"] for p in listed) == [f"p{n}" for n in range(5)]
    assert kube.requests()[("list", "pods")] - lists == 3


def test_an_expired_continue_token_is_gone(kube: LocalKubeAPI, api: KubeApi) -> None:
    for number in range(3):
        api.create_pod(pod(f"p{number}"))
    first = api.list_pods_page(NS, SELECTOR, None, limit=1)
    api.create_pod(pod("later"))  # the history moves on, then etcd compacts it
    kube.compact()

    with pytest.raises(KubeApiError) as info:
        api.list_pods_page(NS, SELECTOR, first.continue_token, limit=1)

    assert info.value.kind is ApiErrorKind.GONE
    assert info.value.code == 410
    assert info.value.message.startswith("The provided continue parameter is too old")


# --- watch -------------------------------------------------------------------------------------


def test_watch_yields_raw_events_and_ends_with_the_servers_timeout(api: KubeApi) -> None:
    start = api.list_pods_page(NS, SELECTOR, None).resource_version
    created = api.create_pod(pod("watched"))
    api.delete_pod(NS, "watched")

    started = time.monotonic()
    events = list(api.watch_pods(NS, SELECTOR, start, timeout_seconds=1))

    assert 0.9 <= time.monotonic() - started < 5
    # The server marks the pod (deletionTimestamp) before it removes it: MODIFIED, then DELETED.
    assert [e.type for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert {e.object["metadata"]["name"] for e in events} == {"watched"}
    assert events[0].object["metadata"]["uid"] == created["metadata"]["uid"]
    assert all(isinstance(e, WatchEvent) and isinstance(e.object, dict) for e in events)


def test_watch_yields_bookmarks() -> None:
    with LocalKubeAPI(bookmark_interval=0.2) as kube:
        api = KubeApi.from_settings(ConnectionSettings(config_file=str(kube.kubeconfig)))
        start = api.list_pods_page(NS, SELECTOR, None).resource_version

        events = list(api.watch_pods(NS, SELECTOR, start, timeout_seconds=1))
        api.close()

    assert events
    assert {e.type for e in events} == {"BOOKMARK"}
    assert all(e.object["metadata"]["resourceVersion"] for e in events)


def test_watch_from_a_compacted_resource_version_is_gone(kube: LocalKubeAPI, api: KubeApi) -> None:
    start = api.list_pods_page(NS, SELECTOR, None).resource_version
    api.create_pod(pod("p"))
    kube.compact()

    with pytest.raises(KubeApiError) as info:
        list(api.watch_pods(NS, SELECTOR, start, timeout_seconds=5))

    assert info.value.kind is ApiErrorKind.GONE
    assert info.value.code == 410
    assert info.value.reason == "Expired"


def test_a_watch_cut_by_a_reset_raises_a_retryable_error_after_its_events(kube: LocalKubeAPI, api: KubeApi) -> None:
    start = api.list_pods_page(NS, SELECTOR, None).resource_version
    api.create_pod(pod("p"))
    kube.faults.add("watch", "pods", reset=True, watch_close_after_events=1, times=1)

    seen: list[str] = []

    def follow() -> None:
        for event in api.watch_pods(NS, SELECTOR, start, timeout_seconds=30):
            seen.append(event.type)

    with pytest.raises(KubeApiError) as info:
        follow()

    assert seen == ["ADDED"]
    assert info.value.kind is ApiErrorKind.RETRYABLE
    assert info.value.message.startswith("connection error: ")


def test_an_error_answer_to_a_watch_is_classified(kube: LocalKubeAPI, api: KubeApi) -> None:
    kube.faults.add("watch", "pods", status=403, message="pods is forbidden: no watch for you", times=1)

    with pytest.raises(KubeApiError) as info:
        next(api.watch_pods(NS, SELECTOR, "1", timeout_seconds=5))

    assert (info.value.code, info.value.kind) == (403, ApiErrorKind.RETRYABLE)
    assert info.value.message == "pods is forbidden: no watch for you"


def test_closing_a_watch_early_frees_its_connection(api: KubeApi) -> None:
    start = api.list_pods_page(NS, SELECTOR, None).resource_version
    api.create_pod(pod("p"))

    stream = api.watch_pods(NS, SELECTOR, start, timeout_seconds=30)
    assert next(stream).type == "ADDED"
    started = time.monotonic()
    stream.close()

    assert time.monotonic() - started < 1  # not drained until the server's timeout
    assert [p["metadata"]["name"] for p in api.list_pods_page(NS, SELECTOR, None).items] == ["p"]


def test_shutdown_from_another_thread_ends_a_waiting_watch(api: KubeApi) -> None:
    start = api.list_pods_page(NS, SELECTOR, None).resource_version
    stream = api.watch_pods(NS, SELECTOR, start, timeout_seconds=30)
    ended = threading.Event()
    outcome: list[BaseException | None] = []

    def follow() -> None:
        try:
            list(stream)
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)
        ended.set()

    threading.Thread(target=follow, daemon=True).start()
    time.sleep(0.2)  # the reader now waits for an event that will not come
    started = time.monotonic()
    stream.shutdown()

    assert ended.wait(5)
    assert time.monotonic() - started < 1
    assert outcome[0] is None or classify(outcome[0]).kind is ApiErrorKind.RETRYABLE
    stream.shutdown()  # again, after the end: harmless
    assert api.list_pods_page(NS, SELECTOR, None).items == []  # the pool is fine


# --- logs --------------------------------------------------------------------------------------


def test_read_pod_log_is_the_text_itself() -> None:
    with LocalKubeAPI(kubelet=KubeletConfig(capacity=2)) as kube:
        api = KubeApi.from_settings(ConnectionSettings(config_file=str(kube.kubeconfig)))
        api.create_pod(pod("talker", command=["sh", "-c", "echo first; echo \"b'quoted' ü\""], args=None))
        deadline = time.monotonic() + 20
        while (kube.pod(NS, "talker") or {}).get("status", {}).get("phase") != "Succeeded":
            assert time.monotonic() < deadline, kube.pod(NS, "talker")
            time.sleep(0.05)

        whole = api.read_pod_log(NS, "talker")
        last = api.read_pod_log(NS, "talker", tail_lines=1)
        with pytest.raises(KubeApiError) as missing:
            api.read_pod_log(NS, "nobody")
        api.close()

    assert whole == "first\nb'quoted' ü\n"
    assert last == "b'quoted' ü\n"
    assert missing.value.kind is ApiErrorKind.NOT_FOUND

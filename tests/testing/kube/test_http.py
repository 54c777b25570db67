"""Transport-level answers: wrong methods, malformed query values, and crashes as Status bodies."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_writing_to_a_collection_is_405(kube: Any, ns: str, method: str) -> None:
    code, raw = kube.raw(method, f"/api/v1/namespaces/{ns}/pods", b"{}", "application/merge-patch+json")

    assert code == 405
    body = json.loads(raw)
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "MethodNotAllowed", 405)


def test_a_watch_timeout_that_is_not_a_number_is_400(kube: Any, ns: str) -> None:
    code, raw = kube.raw("GET", f"/api/v1/namespaces/{ns}/pods?watch=true&timeoutSeconds=abc")

    assert code == 400
    body = json.loads(raw)
    assert body["reason"] == "BadRequest"
    assert "timeoutSeconds" in body["message"]


def test_a_crash_in_a_handler_answers_an_internal_error_status(kube: Any, ns: str) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    kube.api.server.cluster.create = explode
    code, raw = kube.raw("POST", f"/api/v1/namespaces/{ns}/pods", b'{"metadata": {"name": "p"}}')

    assert code == 500
    body = json.loads(raw)
    assert body["reason"] == "InternalError"
    assert body["message"].startswith("Internal error occurred: RuntimeError('boom')")


def test_a_negative_grace_period_means_one_second(
    make_kube: Callable[..., Any], pod_body: Callable[..., dict[str, Any]]
) -> None:
    kube = make_kube(kubelet=True)
    body = pod_body("sleeper")
    body["spec"]["containers"][0]["command"] = ["sleep", "30"]
    kube.v1.create_namespaced_pod("default", body)
    deadline = time.monotonic() + 10
    while kube.v1.read_namespaced_pod("sleeper", "default").status.phase != "Running":
        assert time.monotonic() < deadline, "the pod never ran"
        time.sleep(0.05)

    deleting = kube.v1.delete_namespaced_pod("sleeper", "default", grace_period_seconds=-5)

    assert deleting.metadata.deletion_grace_period_seconds == 1


def test_delete_options_in_the_body_win_whole_and_the_query_is_then_not_read(
    make_kube: Callable[..., Any], pod_body: Callable[..., dict[str, Any]]
) -> None:
    # The delete handler decodes the body when there is one, else the query (handlers/delete.go).
    kube = make_kube(kubelet=True)
    for name in ("by-query", "by-body"):
        body = pod_body(name)
        body["spec"]["containers"][0]["command"] = ["sleep", "30"]
        kube.v1.create_namespaced_pod("default", body)
    deadline = time.monotonic() + 10
    while {p.status.phase for p in kube.v1.list_namespaced_pod("default").items} != {"Running"}:
        assert time.monotonic() < deadline, "the pods never ran"
        time.sleep(0.05)

    by_query = kube.v1.delete_namespaced_pod("by-query", "default", grace_period_seconds=7)
    by_body = kube.v1.delete_namespaced_pod(
        "by-body", "default", grace_period_seconds=7, body={"gracePeriodSeconds": 4, "propagationPolicy": "Background"}
    )

    assert (by_query.metadata.deletion_grace_period_seconds, by_body.metadata.deletion_grace_period_seconds) == (7, 4)
    assert kube.api.delete_options() == [
        {"gracePeriodSeconds": 7},
        {"gracePeriodSeconds": 4, "propagationPolicy": "Background"},
    ]


def test_a_client_gone_while_sending_a_delete_body_deletes_nothing_and_is_no_internal_error(
    kube: Any, ns: str, caplog: pytest.LogCaptureFixture
) -> None:
    # kube-apiserver's DeleteResource reads the body before anything else: when that read fails
    # (the client went away), it answers the error to no one and deletes nothing; it is not a
    # handler crash, so no "internal error" with a trace goes to its log.
    import socket
    from urllib.parse import urlsplit

    kube.v1.create_namespaced_pod(
        ns, {"metadata": {"name": "kept"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    )
    address = urlsplit(kube.api.url)
    with socket.create_connection((address.hostname, address.port), timeout=5) as conn:
        conn.sendall(
            f"DELETE /api/v1/namespaces/{ns}/pods/kept HTTP/1.1\r\nHost: {address.netloc}\r\n"
            'Content-Type: application/json\r\nContent-Length: 400\r\n\r\n{"gracePeriodSeconds": '.encode()
        )
        time.sleep(0.3)  # the server is reading the body now
    time.sleep(0.5)

    assert kube.v1.read_namespaced_pod("kept", ns).metadata.deletion_timestamp is None
    assert not [
        r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL") and "internal error" in r.getMessage()
    ]

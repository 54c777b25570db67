"""The stock client options as KubeApi applies them, seen from the local API's side of the wire.

delete_option_kwargs (the DeleteOptions body, with the uid precondition kept), kube_client_request_args
(``_request_timeout``), TCP keepalive on this client's own sockets, client_factory, and the
cluster-wide list and watch of multi_namespace_mode.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import kube_test_support
import pytest
from kube_test_support import NS, ConnectionSettings
from kubernetes import client
from urllib3.connection import HTTPConnection

from hybrid_executor.kubernetes.api import ApiErrorKind, KubeApi, KubeApiError
from hybrid_executor.testing.kube import LocalKubeAPI

SELECTOR = "app.kubernetes.io/managed-by=hybrid-executor"


def pod(name: str, namespace: str = NS) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "hybrid-executor"},
        },
        "spec": {"restartPolicy": "Never", "containers": [{"name": "base", "image": "busybox:1.36"}]},
    }


def made(kube: LocalKubeAPI, **settings: Any) -> KubeApi:
    return KubeApi.from_settings(ConnectionSettings(config_file=str(kube.kubeconfig), **settings))


@pytest.fixture
def namespaces(kube: LocalKubeAPI) -> list[str]:
    core = client.CoreV1Api(kube.api_client())
    for name in ("team-a", "team-b"):
        core.create_namespace({"metadata": {"name": name}})
    return ["team-a", "team-b"]


# --- delete_option_kwargs --------------------------------------------------------------------------


def test_delete_options_are_the_body_of_every_deletion_with_the_uid_precondition(kube: LocalKubeAPI) -> None:
    api = made(kube, delete_option_kwargs={"grace_period_seconds": 5, "propagation_policy": "Background"})
    try:
        first = api.create_pod(pod("first"))
        api.create_pod(pod("second"))

        with pytest.raises(KubeApiError) as conflict:
            api.delete_pod(NS, "first", uid="not-its-uid")
        assert api.delete_pod(NS, "first", uid=first["metadata"]["uid"])
        assert api.delete_pod(NS, "second")
    finally:
        api.close()

    assert conflict.value.code == 409  # the precondition still guards the pod meant
    options = {"gracePeriodSeconds": 5, "propagationPolicy": "Background"}
    assert kube.delete_options() == [
        {**options, "preconditions": {"uid": "not-its-uid"}},
        {**options, "preconditions": {"uid": first["metadata"]["uid"]}},
        options,
    ]


def test_without_delete_options_a_deletion_sends_only_its_precondition(kube: LocalKubeAPI, api: KubeApi) -> None:
    created = api.create_pod(pod("plain"))
    api.delete_pod(NS, "plain", uid=created["metadata"]["uid"])
    assert kube.delete_options() == [{"preconditions": {"uid": created["metadata"]["uid"]}}]


# --- kube_client_request_args -----------------------------------------------------------------------


def test_the_request_timeout_bounds_each_request_but_not_a_watch(kube: LocalKubeAPI, api: KubeApi) -> None:
    hurried = made(kube, kube_client_request_args={"_request_timeout": (5.0, 0.5)})
    slow = kube.faults.add("list", "pods", latency=2.0)
    try:
        with pytest.raises(KubeApiError) as timed_out:
            hurried.list_pods_page(NS, SELECTOR, None)
        assert api.list_pods_page(NS, SELECTOR, None).items == []  # the default waits it out
        kube.faults.remove(slow)

        # A watch idle for longer than the read timeout is not cut: its read bound is its own.
        start = hurried.list_pods_page(NS, SELECTOR, None).resource_version
        started = time.monotonic()
        assert list(hurried.watch_pods(NS, SELECTOR, start, timeout_seconds=2)) == []
        assert time.monotonic() - started >= 1.5
    finally:
        hurried.close()

    assert timed_out.value.kind is ApiErrorKind.RETRYABLE
    assert "timed out" in timed_out.value.message.lower()


# --- TCP keepalive ----------------------------------------------------------------------------------


def _pooled_socket(api: KubeApi) -> socket.socket:
    """The socket of a connection the client keeps in its pool after a request."""
    api.list_pods_page(NS, SELECTOR, None)
    manager = api.core.api_client.rest_client.pool_manager
    pool = manager.connection_from_url(api.core.api_client.configuration.host)
    sockets = [conn.sock for conn in pool.pool.queue if conn is not None and conn.sock is not None]
    assert sockets, "no pooled connection"
    return sockets[0]


@pytest.mark.skipif(not hasattr(socket, "TCP_KEEPIDLE"), reason="the platform cannot set the probe timing")
def test_keepalive_is_set_on_this_clients_sockets_with_the_configured_timing(kube: LocalKubeAPI) -> None:
    defaults_before = list(HTTPConnection.default_socket_options)
    tuned = made(kube, tcp_keep_idle=77, tcp_keep_intvl=11, tcp_keep_cnt=3)
    off = made(kube, enable_tcp_keepalive=False)
    try:
        sock = _pooled_socket(tuned)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 77
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 11
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1  # urllib3's own default kept
        assert _pooled_socket(off).getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
    finally:
        tuned.close()
        off.close()
    assert HTTPConnection.default_socket_options == defaults_before  # nothing process-wide changed


# --- client_factory ---------------------------------------------------------------------------------


@pytest.fixture
def factory_kubeconfig(kube: LocalKubeAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kube_test_support, "FACTORY_KUBECONFIG", str(kube.kubeconfig))


def test_a_client_factory_makes_the_client(kube: LocalKubeAPI, factory_kubeconfig: None) -> None:
    # config_file points nowhere: the factory's client is used instead of one built from it.
    settings = ConnectionSettings(config_file="/nonexistent", client_factory="kube_test_support.client_factory")
    api = KubeApi.from_settings(settings)
    try:
        api.create_pod(pod("from-the-factory"))
        assert [p["metadata"]["name"] for p in api.list_pods(NS, SELECTOR)] == ["from-the-factory"]
    finally:
        api.close()


def test_a_client_factory_must_return_a_core_v1_api() -> None:
    settings = ConnectionSettings(config_file=None, client_factory="kube_test_support.not_a_client")
    with pytest.raises(TypeError, match=r"returned a dict, not a kubernetes.client.CoreV1Api"):
        KubeApi.from_settings(settings)


# --- all namespaces (multi_namespace_mode without a list) -------------------------------------------


def test_pods_of_every_namespace_are_listed_and_watched_at_once(api: KubeApi, namespaces: list[str]) -> None:
    start = api.list_pods_page(None, SELECTOR, None).resource_version
    for namespace in namespaces:
        api.create_pod(pod("worker", namespace))

    listed = api.list_pods(None, SELECTOR, limit=1)  # one page each: pages span namespaces
    events = [e for e in api.watch_pods(None, SELECTOR, start, timeout_seconds=1) if e.type != "BOOKMARK"]

    assert sorted(p["metadata"]["namespace"] for p in listed) == namespaces
    assert [(e.type, e.object["metadata"]["namespace"]) for e in events] == [("ADDED", ns) for ns in namespaces]


def test_without_a_cluster_role_the_cluster_wide_list_is_refused_by_rbac(kube: LocalKubeAPI, api: KubeApi) -> None:
    kube.authorization.deny("*", "pods", namespace="")  # RoleBindings only: each namespace, not the cluster

    with pytest.raises(KubeApiError) as refused:
        api.list_pods_page(None, SELECTOR, None)

    assert refused.value.code == 403
    assert 'cannot list resource "pods" in API group "" at the cluster scope' in refused.value.message
    assert api.list_pods_page(NS, SELECTOR, None).items == []

"""The only module that calls the Kubernetes API: each verb once, its errors classified.

Every verb here is one attempt: retrying is the caller's policy (the launcher retries creates with
tenacity; the watcher relists and reconnects). So the client's own urllib3 retries are turned off
in :meth:`KubeApi.from_settings`: left on, they silently repeat a GET after a reset and sleep out a
Retry-After inside a call we meant to be one attempt. Every error leaves as a
:class:`~hybrid_executor.kubernetes.errors.KubeApiError` (see :mod:`hybrid_executor.kubernetes.errors`
for what each means; the names are re-exported here).

Responses are read as raw JSON (``_preload_content=False`` and ``json.loads``): deserializing into
the client's models costs far more than the request on a busy scheduler. Pod logs are read as
bytes, because client 36 turns a preloaded log into the text ``"b'...'"``.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from kubernetes import client, config
from urllib3.connection import HTTPConnection

from hybrid_executor.kubernetes.errors import (
    REDACTED,
    STATUS_MESSAGE_MAX,
    TEXT_BODY_MAX,
    ApiErrorKind,
    KubeApiError,
    StatusCause,
    classify,
    from_status,
    redact,
)
from hybrid_executor.kubernetes.requestoptions import (
    REQUEST_TIMEOUT,
    RequestTimeout,
    delete_options_body,
    import_callable,
)
from hybrid_executor.kubernetes.watchstream import WatchEvent, WatchStream

if TYPE_CHECKING:
    from kubernetes.client import CoreV1Api, V1Pod

DEFAULT_TIMEOUT: RequestTimeout = (10.0, 60.0)  # (connect, read) seconds of each request but a watch


def keepalive_socket_options(idle: int, interval: int, count: int) -> list[tuple[int, int, int]]:
    """SO_KEEPALIVE, with the probe timing the platform lets us set (the stock executor's way)."""
    return [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)] + [
        (socket.IPPROTO_TCP, getattr(socket, name), value)
        for name, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", interval), ("TCP_KEEPCNT", count))
        if hasattr(socket, name)
    ]


__all__ = [
    "REDACTED",
    "STATUS_MESSAGE_MAX",
    "TEXT_BODY_MAX",
    "ApiErrorKind",
    "KubeApi",
    "KubeApiError",
    "KubeConnectionSettings",
    "PodPage",
    "StatusCause",
    "WatchEvent",
    "classify",
    "from_status",
    "keepalive_socket_options",
    "redact",
]


@dataclass(frozen=True)
class PodPage:
    """One page of a pod list: raw JSON pods, the list's resourceVersion, the next page's token."""

    items: list[dict[str, Any]]
    resource_version: str
    continue_token: str | None


class KubeConnectionSettings(Protocol):
    """What :meth:`KubeApi.from_settings` reads (``settings.KubernetesSettings`` has all of it)."""

    @property
    def in_cluster(self) -> bool: ...
    @property
    def config_file(self) -> str | None: ...
    @property
    def cluster_context(self) -> str | None: ...
    @property
    def verify_ssl(self) -> bool: ...
    @property
    def ssl_ca_cert(self) -> str | None: ...
    @property
    def pod_creation_concurrency(self) -> int: ...
    @property
    def enable_tcp_keepalive(self) -> bool: ...
    @property
    def tcp_keep_idle(self) -> int: ...
    @property
    def tcp_keep_intvl(self) -> int: ...
    @property
    def tcp_keep_cnt(self) -> int: ...
    @property
    def kube_client_request_args(self) -> Mapping[str, Any]: ...
    @property
    def delete_option_kwargs(self) -> Mapping[str, Any]: ...
    @property
    def client_factory(self) -> str | None: ...
    def namespaces(self) -> frozenset[str]: ...


def _core_from_factory(path: str) -> CoreV1Api:
    """The CoreV1Api the ``client_factory`` at ``path`` returns (checked, so a wrong one fails clearly)."""
    core = import_callable(path)()
    if not isinstance(core, client.CoreV1Api):
        raise TypeError(
            f"[kubernetes_executor] client_factory {path!r} returned a {type(core).__name__}, not a "
            "kubernetes.client.CoreV1Api; make it return one"
        )
    return core


def _read_json(response: Any) -> Any:
    """The body of a raw (not preloaded) response as JSON; the connection goes back to the pool."""
    try:
        data = response.data
    finally:
        response.release_conn()
    try:
        return json.loads(data)
    except ValueError as error:
        raise KubeApiError(
            None,
            "InvalidResponse",
            f"connection error: the API answered with a body that is not JSON ({error})",
            None,
            ApiErrorKind.RETRYABLE,
        ) from None


def _unless_not_found(call: Callable[[], Any]) -> bool:
    """Make the request; True if the API answered with success, False if with 404, else its error raised."""
    try:
        _read_json(call())
    except Exception as error:
        classified = classify(error)
        if classified.kind is ApiErrorKind.NOT_FOUND:
            return False
        raise classified from error
    return True


class KubeApi:
    """One attempt per call; every error raised as a classified :class:`KubeApiError`.

    Thread-safe: one instance (one connection pool) serves the launcher's workers and the watchers.
    ``request_timeout`` bounds each request (a number: in all, as the client reads it; a pair:
    connect and read); a watch takes only its connect part, its read bound being its
    ``timeout_seconds``. ``delete_options``: V1DeleteOptions keyword arguments sent with every deletion.
    """

    def __init__(
        self,
        core: CoreV1Api,
        *,
        request_timeout: RequestTimeout = DEFAULT_TIMEOUT,
        delete_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.core = core
        self._timeout = request_timeout
        self._connect_timeout = request_timeout[0] if isinstance(request_timeout, tuple) else request_timeout
        self._delete_options = dict(delete_options or {})

    @classmethod
    def from_settings(cls, settings: KubeConnectionSettings, *, request_timeout: float | None = None) -> KubeApi:
        """A client for the configured cluster: in-cluster service account, or a kubeconfig file and context.

        The client's urllib3 retries are off (each call is one attempt; callers retry), and its
        connection pool holds a connection for every launcher worker and every namespace watcher.
        A ``client_factory`` replaces all that with the client it returns, as with the stock executor.
        ``request_timeout`` (seconds to read; 10 at most to connect) applies unless
        ``kube_client_request_args`` sets ``_request_timeout``.
        """
        configured = settings.kube_client_request_args.get(REQUEST_TIMEOUT)
        timeout: RequestTimeout = DEFAULT_TIMEOUT
        if configured is not None:
            timeout = configured
        elif request_timeout is not None:
            timeout = (min(10.0, request_timeout), request_timeout)
        delete_options = settings.delete_option_kwargs
        if settings.client_factory:
            core = _core_from_factory(settings.client_factory)
            return cls(core, request_timeout=timeout, delete_options=delete_options)
        configuration = client.Configuration()
        if settings.in_cluster:
            config.load_incluster_config(client_configuration=configuration)
        else:
            config.load_kube_config(
                config_file=settings.config_file,
                context=settings.cluster_context,
                client_configuration=configuration,
            )
        if not settings.verify_ssl:  # as the stock executor: the option can only turn verification off
            configuration.verify_ssl = False
        if settings.ssl_ca_cert:
            configuration.ssl_ca_cert = settings.ssl_ca_cert
        if settings.enable_tcp_keepalive:
            # On this client's own pool only (nothing global, so Celery's and others' sockets stay as
            # they are): a watch idle behind a load balancer or NAT is not silently dropped, and a dead
            # peer is noticed within minutes.
            keepalive = keepalive_socket_options(settings.tcp_keep_idle, settings.tcp_keep_intvl, settings.tcp_keep_cnt)
            overridden = {(level, name) for level, name, _ in keepalive}
            base = [o for o in HTTPConnection.default_socket_options if (o[0], o[1]) not in overridden]
            configuration.socket_options = [*base, *keepalive]
        # False, not 0: urllib3 then raises the error itself instead of wrapping it in MaxRetryError.
        configuration.retries = False
        wanted = settings.pod_creation_concurrency + len(settings.namespaces()) + 4
        configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, wanted)
        core = client.CoreV1Api(client.ApiClient(configuration))
        return cls(core, request_timeout=timeout, delete_options=delete_options)

    def close(self) -> None:
        """Close the connection pool."""
        self.core.api_client.close()

    # --- the cluster ---------------------------------------------------------------------------

    def server_version(self) -> str:
        """The API server's ``gitVersion`` (``GET /version``)."""
        try:
            info = client.VersionApi(self.core.api_client).get_code(_request_timeout=self._timeout)
        except Exception as error:
            raise classify(error) from error
        return str(info.git_version)

    def namespace_exists(self, name: str) -> bool:
        """Whether the namespace exists (NOT_FOUND is False; any other error is raised)."""
        return _unless_not_found(
            lambda: self.core.read_namespace(name, _preload_content=False, _request_timeout=self._timeout)
        )

    def may(self, verb: str, resource: str, namespace: str, subresource: str = "") -> tuple[bool, str]:
        """Whether the caller may do ``verb`` on ``resource`` in ``namespace`` (a SelfSubjectAccessReview).

        Returns (allowed, the authorizer's reason, which may be empty).
        """
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {
                    "namespace": namespace,
                    "verb": verb,
                    "group": "",
                    "resource": resource,
                    "subresource": subresource,
                }
            },
        }
        try:
            response = client.AuthorizationV1Api(self.core.api_client).create_self_subject_access_review(
                review, _preload_content=False, _request_timeout=self._timeout
            )
            answer = _read_json(response)
        except Exception as error:
            raise classify(error) from error
        status = answer.get("status") or {}
        return bool(status.get("allowed")), str(status.get("reason") or status.get("evaluationError") or "")

    # --- pods ----------------------------------------------------------------------------------

    def create_pod(self, pod: V1Pod | Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """Create ``pod`` in its ``metadata.namespace``; the created pod as raw JSON.

        ``dry_run``: the server validates and admits the pod (``dryRun=All``) but stores nothing.
        A JSON body (the executor's builder makes one) is sent as it is; a model is serialized first.
        """
        try:
            body = pod if isinstance(pod, Mapping) else self.core.api_client.sanitize_for_serialization(pod)
            namespace = (body.get("metadata") or {}).get("namespace")
            if not namespace:
                raise ValueError("the pod has no metadata.namespace")
            extra = {"dry_run": "All"} if dry_run else {}
            response = self.core.create_namespaced_pod(
                namespace, body, _preload_content=False, _request_timeout=self._timeout, **extra
            )
            created: dict[str, Any] = _read_json(response)
        except Exception as error:
            raise classify(error) from error
        return created

    def delete_pod(self, namespace: str, name: str, *, uid: str | None = None) -> bool:
        """Delete a pod; False if it was already gone (404), True if the API accepted the deletion.

        The body holds the configured delete options (``delete_option_kwargs``) and, with ``uid``, a
        precondition: then only that pod goes, and another pod of the same name answers 409
        Conflict, raised as a KubeApiError with reason ``Conflict``. (All options go in the body: the
        API server reads the query's only when there is no body.)
        """
        body = delete_options_body(self._delete_options, uid) or None
        return _unless_not_found(
            lambda: self.core.delete_namespaced_pod(
                name, namespace, body=body, _preload_content=False, _request_timeout=self._timeout
            )
        )

    def patch_pod_labels(self, namespace: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
        """Merge ``labels`` into a pod's labels; the patched pod as raw JSON.

        Sent as every kubernetes client sends a dict body, a strategic merge patch (clients before 36
        refuse ``_content_type``); for a map such as ``metadata.labels`` it merges as a JSON merge patch.
        """
        try:
            response = self.core.patch_namespaced_pod(
                name,
                namespace,
                {"metadata": {"labels": labels}},
                _preload_content=False,
                _request_timeout=self._timeout,
            )
            patched: dict[str, Any] = _read_json(response)
        except Exception as error:
            raise classify(error) from error
        return patched

    def list_pods_page(
        self, namespace: str | None, label_selector: str, continue_token: str | None, limit: int = 500
    ) -> PodPage:
        """One page of the pods matching ``label_selector`` (``namespace`` None: in every namespace).

        GONE if ``continue_token`` has expired.
        """
        try:
            response = self._list_pods(
                namespace,
                label_selector=label_selector,
                limit=limit,
                _continue=continue_token or None,
                _preload_content=False,
                _request_timeout=self._timeout,
            )
            listed = _read_json(response)
        except Exception as error:
            raise classify(error) from error
        metadata = listed.get("metadata") or {}
        return PodPage(
            items=listed.get("items") or [],
            resource_version=str(metadata.get("resourceVersion") or ""),
            continue_token=metadata.get("continue") or None,
        )

    def list_pods(self, namespace: str | None, label_selector: str, *, limit: int = 500) -> list[dict[str, Any]]:
        """Every pod matching ``label_selector``, page after page; GONE if a continue token expires on the way."""
        pods: list[dict[str, Any]] = []
        continue_token: str | None = None
        while True:
            page = self.list_pods_page(namespace, label_selector, continue_token, limit=limit)
            pods.extend(page.items)
            continue_token = page.continue_token
            if not continue_token:
                return pods

    def watch_pods(
        self, namespace: str | None, label_selector: str, resource_version: str, timeout_seconds: int
    ) -> WatchStream:
        """Pod events from ``resource_version`` on, with bookmarks, until the server ends the watch.

        ``namespace`` None: in every namespace (``GET /api/v1/pods?watch=true``, which needs a
        ClusterRole). The request is sent now (its error answer raises here); the events are read
        as the returned stream is iterated (see :class:`WatchStream` for what ends it).
        """
        try:
            response = self._list_pods(
                namespace,
                label_selector=label_selector,
                resource_version=resource_version,
                watch=True,
                allow_watch_bookmarks=True,
                timeout_seconds=timeout_seconds,
                _preload_content=False,
                # The read timeout is per socket read: the server ends the watch at timeout_seconds,
                # so a longer silence means a dead connection.
                _request_timeout=(self._connect_timeout, timeout_seconds + 30),
            )
        except Exception as error:
            raise classify(error) from error
        return WatchStream(response)

    def _list_pods(self, namespace: str | None, **kwargs: Any) -> Any:
        if namespace is None:
            return self.core.list_pod_for_all_namespaces(**kwargs)
        return self.core.list_namespaced_pod(namespace, **kwargs)

    def read_pod_log(
        self, namespace: str, name: str, tail_lines: int | None = None, *, container: str | None = None
    ) -> str:
        """A pod's log as text (read as bytes: client 36 mangles preloaded logs into "b'...'")."""
        try:
            response = self.core.read_namespaced_pod_log(
                name,
                namespace,
                container=container,
                tail_lines=tail_lines,
                _preload_content=False,
                _request_timeout=self._timeout,
            )
            try:
                data: bytes = response.data
            finally:
                response.release_conn()
        except Exception as error:
            raise classify(error) from error
        return data.decode("utf-8", errors="replace")

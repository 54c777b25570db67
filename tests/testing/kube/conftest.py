"""Fixtures for the local Kubernetes API's tests: a started server per test, reached only over HTTP.

Every test gets its own ``LocalKubeAPI`` (one starts in a few milliseconds), so the store's
revision counter, its history and its compaction belong to that test alone. ``ns`` is a fresh
namespace on that server; ``make_kube`` starts another server with other settings (a short
history, a short bookmark interval, ``allow_privileged=False``); ``refusal`` calls a client method
that must fail and answers the Status body.
"""

from __future__ import annotations

import itertools
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiException

from hybrid_executor.testing.kube import LocalKubeAPI

_namespace_numbers = itertools.count(1)


@dataclass
class Kube:
    """One started local API server and the official client's objects pointed at it."""

    api: LocalKubeAPI
    api_client: client.ApiClient
    v1: client.CoreV1Api

    def raw(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, bytes]:
        """Send ``body`` as it is (not through the client's serializer); return (HTTP status, body)."""
        request = urllib.request.Request(self.api.url + path, data=body, method=method)
        if body is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()


def start_kube(**settings: Any) -> Kube:
    api = LocalKubeAPI(**settings).start()
    api_client = api.api_client()
    return Kube(api, api_client, client.CoreV1Api(api_client))


def stop_kube(kube: Kube) -> None:
    kube.api_client.close()
    kube.api.stop()


@pytest.fixture
def make_kube() -> Iterator[Callable[..., Kube]]:
    """Start a server with the given ``LocalKubeAPI`` settings; stopped when the test ends."""
    started: list[Kube] = []

    def make(**settings: Any) -> Kube:
        kube = start_kube(**settings)
        started.append(kube)
        return kube

    yield make
    for kube in started:
        stop_kube(kube)


@pytest.fixture
def kube(make_kube: Callable[..., Kube]) -> Kube:
    return make_kube()


@pytest.fixture
def v1(kube: Kube) -> client.CoreV1Api:
    return kube.v1


@pytest.fixture
def ns(v1: client.CoreV1Api) -> str:
    """A namespace of this test's own."""
    name = f"test-{next(_namespace_numbers)}"
    v1.create_namespace({"metadata": {"name": name}})
    return name


def pod_manifest(
    name: str | None = None,
    *,
    labels: dict[str, str] | None = None,
    generate_name: str | None = None,
    image: str = "busybox:1.36",
    **spec: Any,
) -> dict[str, Any]:
    """A minimal valid Pod body; ``spec`` entries are merged over the one container's spec."""
    metadata: dict[str, Any] = {}
    if name is not None:
        metadata["name"] = name
    if generate_name is not None:
        metadata["generateName"] = generate_name
    if labels is not None:
        metadata["labels"] = labels
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [{"name": "main", "image": image, "command": ["true"]}]},
    }
    body["spec"].update(spec)
    return body


@pytest.fixture
def pod_body() -> Callable[..., dict[str, Any]]:
    return pod_manifest


@pytest.fixture
def make_pod(v1: client.CoreV1Api, ns: str) -> Callable[..., client.V1Pod]:
    """Create a pod in ``ns`` (or ``namespace=``) through the API and return what the server answered."""

    def make(name: str | None = None, *, namespace: str | None = None, **options: Any) -> client.V1Pod:
        return v1.create_namespaced_pod(namespace or ns, pod_manifest(name, **options))

    return make


@pytest.fixture
def refusal() -> Callable[..., dict[str, Any]]:
    """Call an API function that must fail; return the Status body (``code`` checked against the HTTP status)."""

    def refuse(call: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        with pytest.raises(ApiException) as excinfo:
            call(*args, **kwargs)
        status: dict[str, Any] = json.loads(excinfo.value.body)
        assert status["code"] == excinfo.value.status
        return status

    return refuse

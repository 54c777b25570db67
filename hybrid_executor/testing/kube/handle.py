"""LocalKubeAPI: the local API server on a thread of its own, driven from a test or a benchmark."""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from hybrid_executor.testing.kube.authorization import Authorizer
from hybrid_executor.testing.kube.faults import FaultInjector
from hybrid_executor.testing.kube.kubelet import KubeletConfig
from hybrid_executor.testing.kube.server import KubeApiServer

T = TypeVar("T")


class LocalKubeAPI:
    """Start with ``start()`` or ``with``; then point any client at ``kubeconfig`` (or ``url``).

    ``faults`` adds error answers, latency, resets and cut watches; ``authorization`` takes
    permissions away from the caller (``system:admin``, who may otherwise do anything), so that
    requests answer 403 and SelfSubjectAccessReviews say no; the inspection methods read the
    server's state as it is, from its own thread, without going through HTTP.

    ``allow_privileged=False`` is a kube-apiserver without ``--allow-privileged``: a privileged
    container is then invalid (422) in every namespace. By default privileged pods are allowed,
    and only PodSecurity (a namespace labelled ``pod-security.kubernetes.io/enforce``) refuses them.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        kubeconfig: str | Path | None = None,
        history: int = 1000,
        kubelet: bool | KubeletConfig = False,
        bookmark_interval: float = 5.0,
        fault_seed: int | None = None,
        allow_privileged: bool = True,
    ) -> None:
        self._own_dir: tempfile.TemporaryDirectory[str] | None = None
        if kubeconfig is None:
            self._own_dir = tempfile.TemporaryDirectory(prefix="local-kube-")
            kubeconfig = Path(self._own_dir.name) / "kubeconfig"
        self.kubeconfig = Path(kubeconfig)
        self.faults = FaultInjector(fault_seed)
        self.authorization = Authorizer()
        kubelet_config = (KubeletConfig() if kubelet else None) if isinstance(kubelet, bool) else kubelet
        self.server = KubeApiServer(
            host,
            port,
            history=history,
            kubelet=kubelet_config,
            bookmark_interval=bookmark_interval,
            kubeconfig=self.kubeconfig,
            faults=self.faults,
            authorization=self.authorization,
            allow_privileged=allow_privileged,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- life ------------------------------------------------------------------------------

    def start(self) -> LocalKubeAPI:
        if self._thread is not None:
            raise RuntimeError("the local Kubernetes API is already started")
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, args=(started,), name="local-kube-api", daemon=True)
        self._thread.start()
        started.result(timeout=30)
        return self

    def _serve(self, started: concurrent.futures.Future[None]) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.server.start())
        except BaseException as error:  # handed to the thread that waits in start()
            started.set_exception(error)
            return
        started.set_result(None)
        self._loop.run_forever()
        self._loop.run_until_complete(self.server.stop())
        self._loop.close()

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._thread = None
        if self._own_dir is not None:
            self._own_dir.cleanup()
            self._own_dir = None

    def __enter__(self) -> LocalKubeAPI:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # --- where it is -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` loaded from this server's kubeconfig."""
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=configuration)
        return client.ApiClient(configuration)

    # --- inspection and control, run on the server's own loop ------------------------------

    def call(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the server's loop (where the store lives) and return its result."""
        assert self._loop is not None, "start() the local Kubernetes API first"

        async def run() -> T:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    def pods(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.call(lambda: copy.deepcopy(self.server.store.items("pods", namespace)))

    def pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.call(lambda: copy.deepcopy(self.server.store.find("pods", namespace, name)))

    @property
    def resource_version(self) -> int:
        return self.call(lambda: self.server.store.revision)

    def requests(self) -> Counter[tuple[str, str]]:
        """How many requests came per (verb, resource), e.g. ``("create", "pods")``."""
        assert self.server.http is not None
        return self.call(lambda: Counter(self.server.http.requests if self.server.http else {}))

    def delete_options(self) -> list[dict[str, Any]]:
        """The DeleteOptions of every delete request so far, in order, as the server decoded them."""
        return self.call(lambda: copy.deepcopy(self.server.http.delete_options if self.server.http else []))

    def delete_requests(self, resource: str = "pods") -> Counter[tuple[str, str]]:
        """How many delete calls came per object of ``resource``, (namespace, name), whatever their answer."""

        def count() -> Counter[tuple[str, str]]:
            deletes = self.server.http.deletes if self.server.http else Counter()
            return Counter({(ns, name): n for (kind, ns, name), n in deletes.items() if kind == resource})

        return self.call(count)

    def compact(self) -> int:
        """Forget the change history: a watch or continue from any earlier revision now gets 410."""

        def compact() -> int:
            self.server.store.compact()
            return self.server.store.revision

        return self.call(compact)

    def close_watches(self) -> None:
        """End every open watch stream at once, as an API server restart does."""
        self.call(self.server.store.close_all_watches)

    def set_capacity(self, capacity: int | None) -> None:
        """Change how many pods the kubelet runs at once; waiting pods are scheduled if room opens."""
        kubelet = self.server.kubelet
        if kubelet is None:
            raise RuntimeError("the local Kubernetes API was started without a kubelet")

        def apply() -> None:
            kubelet.config.capacity = capacity
            kubelet.wake_scheduler()

        self.call(apply)

"""Assembles store, verbs, kubelet and HTTP into one server on an event loop, and serves it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from hybrid_executor.testing.kube.authorization import Authorizer
from hybrid_executor.testing.kube.cluster import Cluster
from hybrid_executor.testing.kube.faults import FaultInjector
from hybrid_executor.testing.kube.http import ApiHttp
from hybrid_executor.testing.kube.kubeconfig import write_kubeconfig
from hybrid_executor.testing.kube.kubelet import Kubelet, KubeletConfig
from hybrid_executor.testing.kube.store import Store

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class KubeApiServer:
    """One local API server. Build it, then ``await start()`` on the loop that will run it."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        history: int = 1000,
        kubelet: KubeletConfig | None = None,
        bookmark_interval: float = 5.0,
        kubeconfig: Path | None = None,
        faults: FaultInjector | None = None,
        authorization: Authorizer | None = None,
        allow_privileged: bool = True,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.port = 0
        self.history = history
        self.kubelet_config = kubelet
        self.bookmark_interval = bookmark_interval
        self.kubeconfig = kubeconfig
        self.faults = faults or FaultInjector()
        self.authorization = authorization or Authorizer()
        self.store = Store(history)
        self.cluster = Cluster(self.store, allow_privileged=allow_privileged)
        self.kubelet: Kubelet | None = None
        self.http: ApiHttp | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        for name in DEFAULT_NAMESPACES:
            self.cluster.create_namespace({"metadata": {"name": name}})
        self.http = ApiHttp(self.cluster, self.faults, None, self.bookmark_interval, self.authorization)
        self._runner = web.AppRunner(self.http.application(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.requested_port, backlog=1024, reuse_address=True)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = server.sockets[0].getsockname()[1]
        if self.kubelet_config is not None:
            self.kubelet = Kubelet(self.cluster, self.kubelet_config, self.host, self.port)
            self.http.kubelet = self.kubelet
        if self.kubeconfig is not None:
            write_kubeconfig(self.kubeconfig, self.url)

    async def stop(self) -> None:
        if self.http is not None:
            self.http.close_streams()
        if self.kubelet is not None:
            await self.kubelet.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

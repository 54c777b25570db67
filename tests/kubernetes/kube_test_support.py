"""What the tests of the Kubernetes modules share: a token-shaped secret, and KubeApi's connection settings."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

NS = "default"

# A JWT-shaped stand-in for a workload token, assembled here so no token-like literal sits in the repo.
SECRET = (
    ".".join(
        base64.urlsafe_b64encode(part.encode()).decode().rstrip("=") for part in ('{"alg":"HS256"}', '{"sub":"task"}')
    )
    + ".do-not-log-this-signature"
)


@dataclass(frozen=True)
class ConnectionSettings:
    """The fields of settings.KubernetesSettings that KubeApi.from_settings reads."""

    config_file: str | None
    in_cluster: bool = False
    cluster_context: str | None = None
    verify_ssl: bool = True
    ssl_ca_cert: str | None = None
    pod_creation_concurrency: int = 8
    namespace_set: frozenset[str] = field(default_factory=lambda: frozenset({NS}))
    enable_tcp_keepalive: bool = True
    tcp_keep_idle: int = 120
    tcp_keep_intvl: int = 30
    tcp_keep_cnt: int = 6
    kube_client_request_args: Mapping[str, Any] = field(default_factory=dict)
    delete_option_kwargs: Mapping[str, Any] = field(default_factory=dict)
    client_factory: str | None = None

    def namespaces(self) -> frozenset[str]:
        return self.namespace_set


# Where client_factory's client goes (a test sets it): [kubernetes_executor] client_factory takes no arguments.
FACTORY_KUBECONFIG: str | None = None


def client_factory() -> Any:
    """A client_factory as a deployment writes one: a CoreV1Api with credentials of its own making."""
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=FACTORY_KUBECONFIG, client_configuration=configuration)
    return client.CoreV1Api(client.ApiClient(configuration))


def not_a_client() -> Any:
    return {"not": "a client"}

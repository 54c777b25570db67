"""What the tests of the Kubernetes modules share: a token-shaped secret, and KubeApi's connection settings."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

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

    def namespaces(self) -> frozenset[str]:
        return self.namespace_set

"""Fixtures of the Kubernetes modules' tests: a local Kubernetes API of the test's own, and KubeApi on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kube_test_support import ConnectionSettings

from hybrid_executor.kubernetes.api import KubeApi
from hybrid_executor.testing.kube import LocalKubeAPI


@pytest.fixture
def kube() -> Iterator[LocalKubeAPI]:
    """A module may override this one (another fault seed, a kubelet)."""
    with LocalKubeAPI(fault_seed=3) as started:
        yield started


@pytest.fixture
def api(kube: LocalKubeAPI) -> Iterator[KubeApi]:
    made = KubeApi.from_settings(ConnectionSettings(config_file=str(kube.kubeconfig)))
    yield made
    made.close()

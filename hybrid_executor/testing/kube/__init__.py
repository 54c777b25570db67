"""A local Kubernetes API (core/v1 namespaces, pods, resourcequotas, limitranges, serviceaccounts) that behaves as
kube-apiserver does, with its default admission (NamespaceLifecycle, LimitRanger, ServiceAccount, PodSecurity,
ResourceQuota).

It also answers SelfSubjectAccessReviews; ``LocalKubeAPI.authorization`` takes permissions away.

Start it from Python with :class:`LocalKubeAPI`, or from a shell with
``python -m hybrid_executor.testing.kube serve --port 0 --kubeconfig PATH [--kubelet] [--history N]``.
"""

from hybrid_executor.testing.kube.authorization import AccessRule, Authorizer
from hybrid_executor.testing.kube.faults import FaultInjector, FaultRule
from hybrid_executor.testing.kube.handle import LocalKubeAPI
from hybrid_executor.testing.kube.kubelet import KubeletConfig

__all__ = ["AccessRule", "Authorizer", "FaultInjector", "FaultRule", "KubeletConfig", "LocalKubeAPI"]

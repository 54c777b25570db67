"""The threads the pod executor runs beside the scheduler's: launcher, deleter, orphan collector, watchers.

Started together at the executor's ``start()`` and stopped together, each stop bounded, so that
``end()`` and ``terminate()`` return even when the API does not answer.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hybrid_executor.kubernetes.cleanup import PodDeleter
from hybrid_executor.kubernetes.launcher import PodLauncher
from hybrid_executor.kubernetes.orphans import DeletionPolicy, OrphanPodCollector
from hybrid_executor.kubernetes.podevents import PodEvent
from hybrid_executor.kubernetes.pods import selector_for_scheduler
from hybrid_executor.kubernetes.watcher import PodWatcher

if TYPE_CHECKING:
    from hybrid_executor.kubernetes.api import KubeApi
    from hybrid_executor.metrics import PodMetrics
    from hybrid_executor.settings import KubernetesSettings

STOP_TIMEOUT = 5.0  # seconds each thread is given to stop


@dataclass
class PodServices:
    launcher: PodLauncher
    deleter: PodDeleter
    orphans: OrphanPodCollector
    watchers: dict[str, PodWatcher]  # by scope: a namespace, or "" for one cluster-wide watch

    @classmethod
    def start(
        cls,
        api: KubeApi,
        settings: KubernetesSettings,
        events: queue.SimpleQueue[PodEvent],
        metrics: PodMetrics,
        *,
        job_id: str,
        deployment_id: str,
    ) -> PodServices:
        launcher = PodLauncher(
            api,
            concurrency=settings.pod_creation_concurrency,
            qps=settings.api_qps,
            burst=settings.api_burst,
            retry_timeout=settings.pod_creation_retry_timeout,
            metrics=metrics,
        )
        launcher.start()
        deleter = PodDeleter(api, metrics=metrics)
        deleter.start()
        orphans = OrphanPodCollector.from_config(
            api,
            deleter,
            namespaces=settings.watch_scopes(),
            deployment_id=deployment_id,
            job_id=job_id,
            policy=DeletionPolicy(settings.delete_worker_pods, settings.delete_worker_pods_on_failure),
        )
        orphans.start()
        selector = selector_for_scheduler(job_id=job_id, deployment_id=deployment_id)
        watchers = {}
        for namespace in settings.watch_scopes():  # None: one cluster-wide watch (multi_namespace_mode)
            watcher = PodWatcher(
                api,
                namespace,
                selector,
                events,
                watch_timeout_seconds=settings.watch_timeout_seconds,
                metrics=metrics,
            )
            watcher.start()
            watchers[watcher.scope] = watcher
        return cls(launcher, deleter, orphans, watchers)

    def stop(self) -> None:
        self.orphans.stop(timeout=STOP_TIMEOUT)
        self.launcher.stop(timeout=STOP_TIMEOUT)
        self.deleter.stop(timeout=STOP_TIMEOUT)
        for watcher in self.watchers.values():
            watcher.stop(timeout=STOP_TIMEOUT)


__all__ = ["PodServices"]

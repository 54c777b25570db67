"""The pod bodies of one pod executor's workloads, built on its launcher threads.

Each queue's template JSON is made once (a :class:`~hybrid_executor.kubernetes.pods.PodContext`
per queue and scheduler job), and each pod template file is read once: launcher threads build
pods concurrently, so the file cache is locked.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from hybrid_executor.kubernetes.pods import PodContext, base_pod_template, pod_context_for, worker_pod_body

if TYPE_CHECKING:
    from airflow.executors.workloads import ExecuteTask
    from kubernetes.client import V1Pod

    from hybrid_executor.settings import KubernetesSettings


class PodBodies:
    """The contexts by queue and job, and the templates by file path, of one executor."""

    def __init__(self) -> None:
        self.templates: dict[str, V1Pod] = {}
        self._templates_lock = threading.Lock()  # launcher threads build pods concurrently
        self._contexts: dict[tuple[str | None, str], PodContext] = {}  # by queue and job: its template's JSON made once

    def build(
        self, workload: ExecuteTask, job_id: str, settings: KubernetesSettings, deployment_id: str
    ) -> dict[str, Any]:
        """The pod's JSON body, from its queue's context (made once per queue)."""
        cache_key = (workload.ti.queue, job_id)
        context = self._contexts.get(cache_key)
        if context is None:
            queue_name, _ = cache_key
            context = pod_context_for(settings, queue_name, job_id, self._template, deployment_id=deployment_id)
            context.base_body  # noqa: B018 - made now, not by every launcher thread racing for it
            self._contexts[cache_key] = context
        return worker_pod_body(workload, context)

    def _template(self, path: str | None) -> V1Pod:
        if path is None:
            return base_pod_template(None)
        with self._templates_lock:
            if path not in self.templates:
                self.templates[path] = base_pod_template(path)
            return self.templates[path]


__all__ = ["PodBodies"]

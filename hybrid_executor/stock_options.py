"""The stock ``[kubernetes_executor]`` options this executor does not apply, and the warning for each one set.

Every option the stock KubernetesExecutor (cncf-kubernetes 10.25) reads is either honoured (a
``[hybrid_executor]`` option falls back to it: :data:`hybrid_executor.settings.HYBRID_OPTIONS`)
or listed here with what takes its place. An option here counts as set when its value differs
from the stock default: the provider registers a default for most of them, which Airflow returns
whether or not a user wrote the option. docs/real-cluster.md has the whole table.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

SECTION = "kubernetes_executor"


class _Conf(Protocol):
    def get(self, section: str, key: str, *, fallback: str | None) -> str | None: ...


@dataclass(frozen=True)
class NotApplied:
    """A stock option that is read only to say it is not applied."""

    option: str
    stock_default: str | None  # as the provider registers it; None: not registered (gone from the provider)
    instead: str  # why it does not apply, and what to use


_BATCHES = "pods are created on launcher threads, not in batches of the scheduler's loop"
NOT_APPLIED: Mapping[str, NotApplied] = {
    entry.option: entry
    for entry in (
        NotApplied(
            "worker_pods_creation_batch_size",
            "1",
            f"{_BATCHES}; use [hybrid_executor] pod_creation_concurrency, api_qps and api_burst",
        ),
        NotApplied(
            "async_pod_creation",
            "False",
            "pods are always created concurrently, off the scheduler's thread; use [hybrid_executor] "
            "pod_creation_concurrency",
        ),
        NotApplied("pod_creation_max_concurrency", "0", "use [hybrid_executor] pod_creation_concurrency"),
        NotApplied(
            "async_client_factory",
            None,
            "there is no asynchronous client; [hybrid_executor] client_factory makes the one client",
        ),
        NotApplied(
            "api_client_retry_configuration",
            "",
            "each API call is one attempt and the executor retries itself: creations for [hybrid_executor] "
            "pod_creation_retry_timeout, deletions and watches with backoff",
        ),
        NotApplied(
            "task_publish_max_retries",
            "0",
            "a pod refused for a reason that can clear (a full quota, 429, 5xx) is retried for [hybrid_executor] "
            "pod_creation_retry_timeout seconds",
        ),
        NotApplied(
            "logs_task_metadata",
            "False",
            "the executor's log lines name a task by its key, never by a pod's annotations",
        ),
        NotApplied(
            "worker_pods_pending_timeout",
            None,
            "Airflow 2.6 made it an alias of [scheduler] task_queued_timeout, and Airflow 3 dropped it: "
            "task_queued_timeout bounds how long a task's pod may take to start; set that, or "
            "[hybrid_executor] worker_pods_pending_timeout to fail a task sooner, with its pod's reason",
        ),
        NotApplied(
            "worker_pods_pending_timeout_check_interval",
            None,
            "Airflow 3 replaced it with [scheduler] task_queued_timeout_check_interval",
        ),
    )
}


def _normalized(text: str | None) -> str:
    return (text or "").split("#")[0].strip().lower()


def set_but_not_applied(conf: _Conf) -> list[tuple[NotApplied, str]]:
    """The options of :data:`NOT_APPLIED` set (to something other than the stock default), with their values."""
    found = []
    for entry in NOT_APPLIED.values():
        value = conf.get(SECTION, entry.option, fallback=None)
        if value is None or _normalized(value) == _normalized(entry.stock_default):
            continue
        found.append((entry, value))
    return found


def warn_about_stock_options(conf: _Conf) -> None:
    """Log one warning per stock option that is set but not applied, with what to use instead."""
    for entry, value in set_but_not_applied(conf):
        log.warning(
            "[%s] %s = %r is not applied by the hybrid executor: %s. Then remove the option.",
            SECTION,
            entry.option,
            value,
            entry.instead,
        )


__all__ = ["NOT_APPLIED", "NotApplied", "set_but_not_applied", "warn_about_stock_options"]

"""hybrid-executor: an Airflow 3 executor that sends each task to Celery or to its own Kubernetes pod.

Set ``[core] executor = hybrid_executor.HybridExecutor``. The executor is imported on first use,
so that reading the provider's metadata does not import Airflow's executors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from hybrid_executor.executor import HybridExecutor

__all__ = ["HybridExecutor", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "HybridExecutor":
        from hybrid_executor.executor import HybridExecutor

        return HybridExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

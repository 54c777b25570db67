"""What Airflow's providers manager learns about this package (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

from hybrid_executor import __version__


def get_provider_info() -> dict[str, Any]:
    # "package-name" must equal the distribution name: the providers manager refuses a mismatch.
    return {
        "package-name": "hybrid-executor",
        "name": "Hybrid Executor",
        "description": "Runs each task on Celery workers or in its own Kubernetes pod, chosen by its queue.",
        "versions": [__version__],
        "executors": [],
        "config": {},
    }

"""What Airflow's providers manager learns about this package (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

from hybrid_executor import __version__
from hybrid_executor.options import provider_config


def get_provider_info() -> dict[str, Any]:
    # "package-name" must equal the distribution name: the providers manager refuses a mismatch.
    # The config comes from settings.HYBRID_OPTIONS, the one place options and defaults are defined.
    return {
        "package-name": "hybrid-executor",
        "name": "Hybrid Executor",
        "description": "Runs each task on Celery workers or in its own Kubernetes pod, chosen by its queue.",
        "versions": [__version__],
        "executors": ["hybrid_executor.HybridExecutor"],
        # Declared so Airflow does not fall back to calling the executor's get_cli_commands().
        "cli": ["hybrid_executor.cli.get_cli_commands"],
        "config": provider_config(),
    }

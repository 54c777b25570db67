"""hybrid-executor: an Airflow 3 executor that sends each task to Celery or to its own Kubernetes pod."""

from __future__ import annotations

__version__ = "0.1.0"

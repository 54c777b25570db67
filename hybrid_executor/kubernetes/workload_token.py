"""When a workload's token expires, read from its claims (never verified, never logged): the last moment
a pod may still be created for it.

The scheduler signs each workload's token for ``[scheduler] task_queued_timeout`` from queueing. A pod
whose task starts after that cannot authenticate to Airflow's API server: it would start, fail, and
hold its quota meanwhile. So a launch must not create a pod later than the expiry, less the time a
pod takes to start its task.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import jwt

# Seconds from creating a pod to its task's first call to the API server: scheduling, the image
# (already on the node, usually), the interpreter's start.
START_MARGIN = 60.0


def launch_deadline(
    token: str,
    margin: float = START_MARGIN,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
) -> float | None:
    """On ``clock``: the last moment to create the pod of a workload with ``token``; None when it carries no expiry."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None  # not ours to judge: Airflow's API server decides whether it is valid
    expiry = claims.get("exp")
    if not isinstance(expiry, int | float):
        return None
    return clock() + (float(expiry) - wall_clock()) - margin


__all__ = ["START_MARGIN", "launch_deadline"]

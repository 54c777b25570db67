"""When a workload's token expires, read from its claims (never verified, never logged): the last moment
a pod may still be created for it.

The scheduler signs each workload's token for ``[scheduler] task_queued_timeout`` from queueing. A pod
whose task starts after that cannot authenticate to Airflow's API server: it would start, fail, and
hold its quota meanwhile. So a launch must not create a pod later than the expiry, less the time a
pod takes to start its task.
"""

from __future__ import annotations

import binascii
import json
import time
from collections.abc import Callable

from jwt.utils import base64url_decode

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
    expiry = _unverified_expiry(token)
    if expiry is None:
        return None
    return clock() + (expiry - wall_clock()) - margin


def _unverified_expiry(token: str) -> float | None:
    # The claims segment read as it is, not through jwt.decode: nothing is verified either way, and
    # PyJWT's decode checks every character of all three segments in Python, which cost the
    # scheduler's thread about 0.1 ms per task, most of a heartbeat's own time with many tasks queued.
    segments = token.split(".")
    if len(segments) != 3:
        return None  # not ours to judge: Airflow's API server decides whether it is valid
    try:
        claims = json.loads(base64url_decode(segments[1]))
    except (binascii.Error, ValueError):  # not base64url, not UTF-8, not JSON
        return None
    expiry = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(expiry, bool) or not isinstance(expiry, int | float):
        return None
    return float(expiry)


__all__ = ["START_MARGIN", "launch_deadline"]

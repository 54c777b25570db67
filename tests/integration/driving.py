"""Driving an executor as the scheduler's loop does."""

from __future__ import annotations

import time
from typing import Any


def wait_for_events(executor: Any, keys: set[Any], timeout: float = 60) -> dict[Any, Any]:
    """Heartbeat as the scheduler does until every key has a final state in the event buffer."""
    from airflow.utils.state import TaskInstanceState

    final = {TaskInstanceState.SUCCESS, TaskInstanceState.FAILED}
    seen: dict[Any, Any] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        executor.heartbeat()
        for key, (state, info) in executor.get_event_buffer().items():
            if state in final:
                seen[key] = (state, info)
        if keys <= seen.keys():
            return seen
        time.sleep(0.1)
    raise AssertionError(f"no final state for {keys - seen.keys()} after {timeout}s; seen {seen}")

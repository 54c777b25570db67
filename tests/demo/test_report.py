"""The demo's table and progress lines, from task instances as the REST API returns them."""

from __future__ import annotations

from typing import Any

from hybrid_executor.demo.report import format_table, progress_line, rows


def _ti(task_id: str, state: str | None, *, map_index: int = -1, try_number: int = 1, **extra: Any) -> dict[str, Any]:
    return {"task_id": task_id, "map_index": map_index, "try_number": try_number, "state": state} | extra


def test_a_try_with_a_pod_ran_on_kubernetes_and_any_other_on_its_celery_worker() -> None:
    tis = [
        _ti(
            "extract", "success", queue="default", hostname="worker-1", duration=1.25, start_date="2026-01-01T00:00:01"
        ),
        _ti("in_pod", "success", queue="kubernetes", hostname="x", try_number=2, start_date="2026-01-01T00:00:02"),
        _ti("never_ran", "upstream_failed", queue="default", hostname=None),
    ]
    pods = {("in_pod", -1, 2): ("workers", "in-pod-abc"), ("in_pod", -1, 1): ("workers", "in-pod-old")}

    table = rows(tis, pods)

    assert [(r.task_id, r.route, r.where) for r in table] == [
        ("extract", "celery", "worker worker-1"),
        ("in_pod", "kubernetes", "pod workers/in-pod-abc"),  # the final try's pod
        ("never_ran", "-", "-"),
    ]
    text = format_table(table).splitlines()
    assert text[0].split() == ["TASK", "TRY", "QUEUE", "RAN", "ON", "WHERE", "STATE", "DURATION"]
    assert text[1].split() == ["extract", "1", "default", "celery", "worker", "worker-1", "success", "1.2", "s"]
    assert text[3].split()[-1] == "-"  # no duration
    state_column = text[0].index("STATE")  # columns line up under their headers
    assert [line[state_column:].split()[0] for line in text[1:]] == ["success", "success", "upstream_failed"]


def test_mapped_instances_are_named_with_their_index() -> None:
    table = rows([_ti("square", "success", map_index=2, queue="kubernetes")], {("square", 2, 1): ("ns", "p")})
    assert format_table(table).splitlines()[1].startswith("square[2]  ")


def test_the_progress_line_names_what_just_finished_and_what_is_queued_and_running() -> None:
    line = progress_line(
        [
            _ti("a", "success"),
            _ti("b", "queued"),
            _ti("c", "running"),
            _ti("d", "up_for_retry"),
            _ti("e", "scheduled", map_index=0),
            _ti("f", "failed"),
            _ti("g", None),
        ]
    )
    assert line == "done 2/7 | just done: a (success), f (failed) | queued: b, e[0] | running: c, d (up_for_retry)"
    assert progress_line([_ti("a", "success"), _ti("f", "failed")], already_done={"a"}) == (
        "done 2/2 | just done: f (failed)"
    )

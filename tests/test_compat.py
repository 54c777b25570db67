"""hybrid_executor.compat against the Airflow installed: each answer is what that Airflow's own code uses."""

from __future__ import annotations

import uuid

import pytest


def test_metrics_go_where_the_base_executor_sends_its_own() -> None:
    import airflow.executors.base_executor as base_executor

    from hybrid_executor.compat import stats

    # 3.3 sends through a module's functions (re-exported by airflow.observability.stats), 3.1 and
    # 3.2 through the Stats class.
    sent_through = getattr(base_executor, "stats", None) or base_executor.Stats
    assert stats() is sent_through or stats().incr is sent_through.incr
    for method in ("incr", "gauge", "timing"):
        assert callable(getattr(stats(), method))


def test_an_id_kept_on_a_workloads_task_instance_is_read_back_and_never_serialized() -> None:
    from airflow.executors.workloads import TaskInstance

    from hybrid_executor.compat import set_external_executor_id

    ti = TaskInstance(
        id=uuid.uuid4(),
        dag_version_id=uuid.uuid4(),
        task_id="t",
        dag_id="d",
        run_id="r",
        try_number=1,
        pool_slots=1,
        queue="kubernetes",
        priority_weight=1,
    )
    set_external_executor_id(ti, "the-queueing")

    assert ti.external_executor_id == "the-queueing"
    assert "the-queueing" not in ti.model_dump_json()  # the pod's workload JSON: the Task SDK parses it
    assert type(ti).model_validate_json(ti.model_dump_json()).key == ti.key


def test_a_section_is_read_through_the_executors_conf(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.executors.base_executor import ExecutorConf

    from hybrid_executor.compat import config_section

    monkeypatch.setenv("AIRFLOW__HYBRID_EXECUTOR__API_QPS", "7")

    assert str((config_section(ExecutorConf(), "hybrid_executor") or {}).get("api_qps")) == "7"


def test_counts_and_triggers_are_those_of_the_executor_when_it_has_them() -> None:
    from airflow.executors.base_executor import BaseExecutor

    from hybrid_executor.compat import queued_callbacks, queued_connection_tests, trigger_connection_tests

    executor = BaseExecutor()
    assert queued_callbacks(executor) == len(getattr(executor, "queued_callbacks", {})) == 0
    assert queued_connection_tests(executor) == len(getattr(executor, "queued_connection_tests", {})) == 0
    trigger_connection_tests(executor)  # nothing queued: nothing sent, on every minor

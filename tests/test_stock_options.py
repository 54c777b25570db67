"""Every option the stock KubernetesExecutor reads is honoured, or warned of when set, with what to use instead."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from hybrid_executor.settings import HYBRID_OPTIONS, ExecutorConfLike
from hybrid_executor.stock_options import NOT_APPLIED, warn_about_stock_options
from hybrid_executor.testing.services import AirflowEnv


@pytest.fixture
def executor_conf(airflow_environ: AirflowEnv) -> Callable[[str | None], ExecutorConfLike]:
    from airflow.executors.base_executor import ExecutorConf

    return ExecutorConf


def test_every_option_the_stock_executor_registers_is_honoured_or_reported() -> None:
    from airflow.providers.cncf.kubernetes.get_provider_info import get_provider_info

    registered = set(get_provider_info()["config"]["kubernetes_executor"]["options"])
    honoured = {o.fallback[1] for o in HYBRID_OPTIONS.values() if o.fallback and o.fallback[0] == "kubernetes_executor"}
    assert registered - honoured - set(NOT_APPLIED) == set()
    assert honoured & set(NOT_APPLIED) == set()


def test_the_not_applied_options_defaults_are_the_providers() -> None:
    # A value equal to the stock default is not "set": the two must agree, or every scheduler warns.
    from airflow.providers.cncf.kubernetes.get_provider_info import get_provider_info

    registered = get_provider_info()["config"]["kubernetes_executor"]["options"]
    for entry in NOT_APPLIED.values():
        expected = registered[entry.option]["default"] if entry.option in registered else None
        assert entry.stock_default == expected, entry.option


def test_one_warning_per_option_set_naming_it_and_what_to_use_instead(
    executor_conf: Callable[[str | None], ExecutorConfLike],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for option, value in (
        ("WORKER_PODS_CREATION_BATCH_SIZE", "16"),
        ("WORKER_PODS_PENDING_TIMEOUT", "300"),
        ("ASYNC_POD_CREATION", "false"),  # its default, in another spelling: not set
        ("TASK_PUBLISH_MAX_RETRIES", "0"),  # its default: not set
    ):
        monkeypatch.setenv(f"AIRFLOW__KUBERNETES_EXECUTOR__{option}", value)

    with caplog.at_level(logging.WARNING, logger="hybrid_executor.stock_options"):
        warn_about_stock_options(executor_conf(None))

    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 2
    batch, pending = sorted(warnings)
    assert batch.startswith("[kubernetes_executor] worker_pods_creation_batch_size = '16' is not applied")
    assert "[hybrid_executor] pod_creation_concurrency, api_qps and api_burst" in batch
    assert pending.startswith("[kubernetes_executor] worker_pods_pending_timeout = '300' is not applied")
    assert "[scheduler] task_queued_timeout" in pending
    assert "[hybrid_executor] worker_pods_pending_timeout" in pending


def test_nothing_is_said_when_nothing_is_set(
    executor_conf: Callable[[str | None], ExecutorConfLike], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="hybrid_executor.stock_options"):
        warn_about_stock_options(executor_conf(None))
    assert caplog.records == []


def test_a_teams_options_are_read_for_its_executor(
    executor_conf: Callable[[str | None], ExecutorConfLike],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("AIRFLOW__TEAM_A___KUBERNETES_EXECUTOR__ASYNC_POD_CREATION", "True")
    with caplog.at_level(logging.WARNING, logger="hybrid_executor.stock_options"):
        warn_about_stock_options(executor_conf(None))
        assert caplog.records == []
        warn_about_stock_options(executor_conf("team_a"))
    [warning] = [record.getMessage() for record in caplog.records]
    assert "async_pod_creation = 'True' is not applied" in warning

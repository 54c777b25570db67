"""Airflow's own providers manager finds this package through its entry point."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from hybrid_executor import __version__
from hybrid_executor.provider import get_provider_info
from hybrid_executor.testing.services import AirflowEnv, airflow_command


def test_provider_info_passes_airflows_schema() -> None:
    # Found without importing airflow, which would configure itself from the developer's ~/airflow.
    spec = importlib.util.find_spec("airflow")
    assert spec is not None
    assert spec.submodule_search_locations is not None
    schema_path = Path(next(iter(spec.submodule_search_locations))) / "provider_info.schema.json"
    jsonschema.validate(get_provider_info(), json.loads(schema_path.read_text()))


@pytest.mark.slow
def test_airflow_lists_the_package_as_a_provider(airflow_env: AirflowEnv) -> None:
    result = subprocess.run(
        [*airflow_command(), "providers", "list", "--output", "json"],
        env=airflow_env.subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    providers = {p["package_name"]: p for p in json.loads(result.stdout)}
    assert "hybrid-executor" in providers, sorted(providers)
    assert providers["hybrid-executor"]["version"] == __version__


@pytest.mark.slow
def test_airflow_config_knows_every_option(airflow_env: AirflowEnv) -> None:
    from hybrid_executor.settings import HYBRID_OPTIONS

    result = subprocess.run(
        [*airflow_command(), "config", "list", "--defaults", "--section", "hybrid_executor"],
        env=airflow_env.subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for name in HYBRID_OPTIONS:
        assert f"{name} =" in result.stdout


@pytest.mark.slow
def test_airflow_loads_it_as_the_core_executor_and_keeps_the_celery_commands(airflow_env: AirflowEnv) -> None:
    env = airflow_env.subprocess_env() | {"AIRFLOW__CORE__EXECUTOR": "hybrid_executor.HybridExecutor"}
    loader = (
        "from airflow.executors.executor_loader import ExecutorLoader\n"
        "executor = ExecutorLoader.get_default_executor()\n"
        "print(type(executor).__module__, type(executor).__name__, executor.name.alias)\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", loader], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert "hybrid_executor.executor HybridExecutor" in loaded.stdout

    celery = subprocess.run(
        [*airflow_command(), "celery", "worker", "--help"], env=env, capture_output=True, text=True, timeout=300
    )
    assert celery.returncode == 0, celery.stderr[-2000:]
    assert "--concurrency" in celery.stdout

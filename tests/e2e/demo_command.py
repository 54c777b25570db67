"""The demo command as a user runs it: a child process whose output is read line by line as it comes."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

E2E_DAGS = Path(__file__).parent / "dags"


class DemoCommand:
    """``python -m hybrid_executor.demo ARGS`` running in the background, its stdout collected as it comes."""

    def __init__(self, args: list[str], folder: Path) -> None:
        self.folder = folder
        command = [sys.executable, "-m", "hybrid_executor.demo", "--folder", str(folder), *args]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.lines: list[str] = []
        self._new: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            self._new.put(line)
        self._new.put(None)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, wanted: Callable[[str], bool], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._new.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no such line within {timeout:g} s; output:\n{self.output[-5000:]}") from None
            if line is None:
                raise AssertionError(f"the demo exited ({self.process.wait()}) first; output:\n{self.output[-5000:]}")
            if wanted(line):
                return line

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def interrupt(self) -> None:
        self.process.send_signal(signal.SIGINT)

"""Fixtures of the end-to-end tests: demo commands that are always stopped, whatever the test did."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from demo_command import DemoCommand

from hybrid_executor.demo.processes import kill_all, processes_using


@pytest.fixture
def run_demo(tmp_path: Path) -> Iterator[Callable[..., DemoCommand]]:
    started: list[DemoCommand] = []

    def start(*args: str | Path) -> DemoCommand:
        demo = DemoCommand([str(arg) for arg in args], tmp_path / f"stack-{len(started)}")
        started.append(demo)
        return demo

    yield start
    for demo in started:  # a failed test must not leave its stack running
        if demo.process.poll() is None:
            demo.interrupt()
            try:
                demo.wait(120)
            except subprocess.TimeoutExpired:
                demo.process.kill()
        kill_all([pid for pid, _ in processes_using(demo.folder)])

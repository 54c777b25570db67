"""The adoption, memory, quota and end-to-end benchmarks still run, at a tiny size (figures printed, not asserted)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _run(script: str, *args: str, timeout: float = 240) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_adoption_benchmark_adopts_every_pod_both_ways() -> None:
    out = _run("adoption.py", "--pods", "12", "--rounds", "1", "--latency", "0.001")

    assert "16 threads: 12 pods adopted" in out
    assert "1 thread (serial): 12 pods adopted" in out
    assert "serial / concurrent:" in out


def test_the_memory_benchmark_reads_every_entry_it_tracks_and_judges_them() -> None:
    out = _run("memory.py", "--tasks", "12", "--every", "4", "--warmup", "4", "--parallelism", "4", "--settle", "1")

    header = next(line.split() for line in out.splitlines() if line.split()[:2] == ["mark", "finished"])
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["4"], ["8"], ["12"], ["settled"])]
    rows = [row for row in rows if len(row) == len(header) - 1]  # "RSS MiB" is one column of two words
    assert [row[0] for row in rows] == ["4", "8", "12", "settled"]
    assert all("-" not in row for row in rows)  # no entry went missing in a refactoring
    assert re.search(r"^12 tasks finished \(\d+ failed\)", out, re.MULTILINE)  # a loaded machine may fail one
    # From the first row at 4 or more finished (a heartbeat may end several tasks at once) to the end.
    assert re.search(r"^verdict, from the \d+ mark to 12 \(\d+ tasks\)", out, re.MULTILINE)


def test_the_quota_benchmark_fills_the_quota_and_reports_its_use() -> None:
    out = _run("quota_use.py", "--quota", "3", "--tasks", "9", "--task-seconds", "1", "--latency", "0")

    assert "quota 3 pods, 9 tasks of 1 s each" in out
    assert "; 0 tasks failed" in out
    assert re.search(r"^pods holding quota while tasks waited \(\d+ samples", out, re.MULTILINE)


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_the_end_to_end_benchmark_runs_ours_and_the_stock_executor_through_a_real_scheduler() -> None:
    out = _run(
        "end_to_end.py",
        *("--tasks", "6", "--latencies", "0.001", "--variants", "kubernetes"),
        *("--configurations", "ours,stock-tuned", "--deadline", "120", "--chart", "", "--raw-pods", "20"),
        timeout=840,
    )

    for name in ("ours", "stock-tuned"):
        assert re.search(rf"^1 ms, kubernetes, {name}, round 1: 6 pods, .* 6 success", out, re.MULTILINE), out
    assert "ours/stock-tuned   ratio" in out
    assert "raw client, 16 threads:" in out


def test_the_end_to_end_benchmark_says_it_needs_matplotlib_before_it_runs_anything(tmp_path: Path) -> None:
    if importlib.util.find_spec("matplotlib") is not None:
        pytest.skip("matplotlib is installed: the benchmark would draw its chart")
    chart = tmp_path / "chart.png"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "end_to_end.py"), "--tasks", "6", "--chart", str(chart)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2, done.stdout + done.stderr
    assert f"--chart {chart} needs matplotlib: pip install -e '.[bench]', or --chart '' for no chart" in done.stderr
    assert "starting" not in done.stdout  # nothing was started


def test_the_end_to_end_chart_draws_a_line_per_configuration(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from e2e_report import Round, chart
    finally:
        sys.path.remove(str(BENCHMARKS))
    rounds = [
        Round("kubernetes", name, latency, 1, {"on_kubernetes": 3}, 2.0, [0.1, 0.2, 0.3], [(0.5, "on_kubernetes")])
        for name in ("ours", "stock")
        for latency in (0.01, 0.1)
    ]

    chart(tmp_path / "chart.png", "kubernetes", rounds, ["ours", "stock"], 3)

    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

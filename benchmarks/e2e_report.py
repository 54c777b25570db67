"""The end-to-end benchmark's figures: one round's measurements, the tables, the ratios, and the chart."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BASELINE = "ours"
# One colour per configuration, the same in every chart.
COLOURS = {
    name: f"C{number}"
    for number, name in enumerate(
        ("ours", "ours-max_tis_512", "stock", "stock-tuned", "stock-tuned-max_tis_512", "celery-alone")
    )
}
CELERY_ROUTE = "on_celery"


def percentile(values: Sequence[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


@dataclass
class Round:
    variant: str
    configuration: str
    latency: float
    number: int
    expected: dict[str, int]  # mapped tasks per task_id ("on_kubernetes", "on_celery")
    window: float = 0.0  # seconds from the run's start to all tasks success, or to the round's deadline
    pods: list[float] = field(default_factory=list)  # seconds from the run's start to each pod's creation
    finished: list[tuple[float, str]] = field(default_factory=list)  # (seconds to success, task_id)
    waits: list[float] = field(default_factory=list)  # queued-to-running per task, seconds
    to_created: list[float] = field(default_factory=list)  # queued to its pod created, per Kubernetes task, seconds
    loops_ms: list[float] = field(default_factory=list)  # the scheduler's scheduler_loop_duration timer
    others: tuple[float, float] | None = None  # MachineUse: other processes' and stolen cores

    def pods_rate(self) -> tuple[float, bool] | None:
        """(pods per second from the start to all pods created, complete?); over the window if not all came."""
        wanted = self.expected.get("on_kubernetes", 0)
        if not wanted:
            return None
        if len(self.pods) >= wanted:
            return wanted / max(sorted(self.pods)[wanted - 1], 1e-9), True
        return len(self.pods) / self.window, False

    def success_rate(self, task_id: str | None = None) -> tuple[float, bool]:
        """(tasks per second from the start to all tasks success, complete?); over the window if not all did."""
        ends = [end for end, task in self.finished if task_id is None or task == task_id]
        wanted = self.expected[task_id] if task_id else sum(self.expected.values())
        if ends and len(ends) >= wanted:
            return wanted / max(max(ends), 1e-9), True
        return len(ends) / self.window, False


def baseline_of(configuration: str) -> str:
    """Which of ours a configuration is compared with: the one with the same scheduler options."""
    suffix = configuration.rpartition("-max_tis_")[2] if "-max_tis_" in configuration else None
    return f"{BASELINE}-max_tis_{suffix}" if suffix else BASELINE


# --- the tables ---------------------------------------------------------------------------------

Figure = tuple[str, Callable[[Round], "tuple[float, bool] | float | None"], bool]  # name, pick, higher is better


def figures_for(variant: str) -> list[Figure]:
    figures: list[Figure] = []
    if variant != "celery":
        figures.append(("pods/s", Round.pods_rate, True))
    figures.append(("tasks/s", lambda r: r.success_rate(), True))
    if variant != "kubernetes":
        figures.append(("celery tasks/s", lambda r: r.success_rate(CELERY_ROUTE), True))
    figures += [
        ("q->run p50 s", lambda r: percentile(r.waits, 0.5), False),
        ("q->run p99 s", lambda r: percentile(r.waits, 0.99), False),
    ]
    if variant != "celery":
        figures += [
            ("q->pod p50 s", lambda r: percentile(r.to_created, 0.5), False),
            ("q->pod p99 s", lambda r: percentile(r.to_created, 0.99), False),
        ]
    figures += [
        ("loop p50 ms", lambda r: percentile(r.loops_ms, 0.5), False),
        ("loop p99 ms", lambda r: percentile(r.loops_ms, 0.99), False),
    ]
    return figures


def _value(figure: tuple[float, bool] | float | None) -> tuple[float, bool]:
    if figure is None:
        return float("nan"), True
    if isinstance(figure, tuple):
        return figure
    return figure, True


def _cell(value: float, complete: bool) -> str:
    text = "-" if value != value else (f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}")
    return text if complete else text + "*"


def median_of(rounds: list[Round], pick: Callable[[Round], tuple[float, bool] | float | None]) -> tuple[float, bool]:
    values = [_value(pick(r)) for r in rounds]
    usable = [v for v, _ in values if v == v]
    return (statistics.median(usable) if usable else float("nan")), all(complete for _, complete in values)


def table(variant: str, latency: float, rounds: list[Round], configurations: list[str]) -> str:
    figures = figures_for(variant)
    header = ["configuration", "round", *(name for name, _, _ in figures)]
    rows = [header]
    mine = [r for r in rounds if r.variant == variant and r.latency == latency]
    for r in sorted(mine, key=lambda r: (configurations.index(r.configuration), r.number)):
        rows.append([r.configuration, str(r.number), *(_cell(*_value(pick(r))) for _, pick, _ in figures)])
    medians: dict[str, list[tuple[float, bool]]] = {}
    for name in configurations:
        theirs = [r for r in mine if r.configuration == name]
        if theirs:
            medians[name] = [median_of(theirs, pick) for _, pick, _ in figures]
            rows.append([name, "median", *(_cell(*m) for m in medians[name])])
    for name, values in medians.items():
        baseline = baseline_of(name)
        if name.startswith(BASELINE) or baseline not in medians:
            continue
        ratios = [
            _cell(ours / theirs if theirs else float("nan"), ours_complete and complete)
            for (ours, ours_complete), (theirs, complete) in zip(medians[baseline], values, strict=True)
        ]
        rows.append([f"{baseline}/{name}", "ratio", *ratios])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [f"{variant} variant, {latency * 1000:.0f} ms per API request:"]
    lines += [
        "  "
        + "  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
        for row in rows
    ]
    return "\n".join(lines)


# --- the chart ----------------------------------------------------------------------------------


def chart(path: Path, variant: str, rounds: list[Round], configurations: list[str], tasks: int) -> None:
    """Pods created and tasks finished over time, a line per configuration (its last round), a row per latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = [r for r in rounds if r.variant == variant]
    latencies = sorted({r.latency for r in mine})
    if not latencies:
        return
    figure, axes = plt.subplots(len(latencies), 2, figsize=(12, 4.2 * len(latencies)), squeeze=False)
    for row, latency in zip(axes, latencies, strict=True):
        for name in configurations:
            theirs = [r for r in mine if r.latency == latency and r.configuration == name]
            if not theirs:
                continue
            last = theirs[-1]
            for axis, times in ((row[0], sorted(last.pods)), (row[1], sorted(end for end, _ in last.finished))):
                axis.step([0.0, *times], range(len(times) + 1), where="post", label=name, color=COLOURS.get(name))
        for axis, what in zip(row, ("pods created", "tasks finished (success)"), strict=True):
            axis.set_title(f"{what}, {latency * 1000:.0f} ms per API request")
            axis.set_xlabel("seconds since the DAG run was triggered")
            axis.set_ylabel(what.split(" (")[0])
            axis.grid(alpha=0.3)
            axis.legend(loc="upper left", fontsize="small")
    figure.suptitle(f"End to end, {tasks} mapped tasks ({variant} variant): a real scheduler, one line per executor")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)

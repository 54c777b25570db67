"""What the executor's metrics cost: a pod's metrics sent through Airflow's StatsD logger, on 1 and 16 threads.

Airflow is configured as a scheduler would be (a throwaway home; ``[metrics] statsd_on`` to a UDP
socket on loopback that nobody reads, so the kernel drops what overflows it: the sender's cost is
the same) and its stats set up as ``BaseExecutor.__init__`` sets them up. "A pod" is what the happy
path of one pod sends: the create request's latency, the created counter, queued-to-created and
the Pending time (4 datagrams). A retried create adds its reason-tagged counter and dotted name (2).

For each backend (none, StatsD, StatsD with InfluxDB tags) it prints the median over ``--rounds``
of the CPU time per pod (the process's user and system time, so other processes on a shared
machine do not count), on one thread, then with ``--threads`` threads sending at once (the launcher
has 16), and what ``--pods-per-second`` pods (the launcher's measured create rate) cost in percent
of one core. A figure, not a test.

    python benchmarks/metrics_cost.py [--pods 20000] [--threads 16] [--rounds 5] [--pods-per-second 165]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

BACKENDS = {
    "no metrics": {"statsd_on": "False"},
    "StatsD": {"statsd_on": "True", "statsd_influxdb_enabled": "False"},
    "StatsD, InfluxDB tags": {"statsd_on": "True", "statsd_influxdb_enabled": "True"},
}


def _configure(folder: Path, port: int) -> None:
    from hybrid_executor.testing.services import prepare_airflow_home, select_airflow_environment

    home = folder / "airflow_home"
    metrics = {"statsd_host": "127.0.0.1", "statsd_port": str(port)}
    select_airflow_environment(
        prepare_airflow_home(
            home, f"sqlite:///{home}/airflow.db", "redis://127.0.0.1:6379/0", settings={"metrics": metrics}
        )
    )


def _use(backend: dict[str, str]) -> None:
    """Point Airflow's stats at ``backend``, as BaseExecutor.__init__ does."""
    from airflow.configuration import conf
    from airflow.observability import stats
    from airflow.observability.metrics import stats_utils

    for key, value in backend.items():
        os.environ[f"AIRFLOW__METRICS__{key.upper()}"] = value
    stats.initialize(
        factory=stats_utils.get_stats_factory(), export_legacy_names=conf.getboolean("metrics", "legacy_names_on")
    )


def _one_pod(metrics: object) -> None:
    from hybrid_executor.metrics import PodMetrics

    assert isinstance(metrics, PodMetrics)
    started = time.monotonic()
    with metrics.create_request():
        pass
    metrics.created(started)
    metrics.left_pending(started)


def _seconds_per_pod(pods: int, threads: int) -> float:
    from hybrid_executor.metrics import PodMetrics

    metrics = PodMetrics()
    each = pods // threads
    barrier = threading.Barrier(threads + 1)

    def send() -> None:
        barrier.wait()
        for _ in range(each):
            _one_pod(metrics)

    workers = [threading.Thread(target=send) for _ in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    began = time.process_time()
    for worker in workers:
        worker.join()
    return (time.process_time() - began) / (each * threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=20000, help="pods' metrics sent per measurement")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pods-per-second", type=float, default=165.0)
    args = parser.parse_args()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as name:
        _configure(Path(name), sink.getsockname()[1])
        import airflow  # noqa: F401 - configures Airflow from the environment above

        print(f"{os.cpu_count()} cores, Python {sys.version.split()[0]}; a pod = 4 metrics; medians of {args.rounds}")
        for label, backend in BACKENDS.items():
            _use(backend)
            _seconds_per_pod(1000, 1)  # warm up: the backend and Airflow's metric registry are made on first use
            one = statistics.median(_seconds_per_pod(args.pods, 1) for _ in range(args.rounds))
            many = statistics.median(_seconds_per_pod(args.pods, args.threads) for _ in range(args.rounds))
            print(
                f"  {label}: {one * 1e6:.1f} us CPU per pod on 1 thread, {many * 1e6:.1f} us on {args.threads} "
                f"threads at once; {args.pods_per_second:g} pods/s cost {one * args.pods_per_second * 100:.2f}% "
                "of one core"
            )
    sink.close()


if __name__ == "__main__":
    main()

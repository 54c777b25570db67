"""Whether finished pods' deletions keep up: pods asked for at a steady rate, the API answering slowly.

The local Kubernetes API runs in this process's thread with ``--latency`` seconds added to every
delete (a loaded API server, or one far away); the pods exist already. The executor's PodDeleter
is asked to delete ``--rate`` pods a second for ``--seconds`` seconds, as pods finishing would ask
it, with 1 thread (what it had before) and with its default number of threads, in interleaved
rounds. It prints, per round and as medians: deletes done per second, the largest backlog, and
the time from the last request to the last pod gone. A figure, not a test.

    python benchmarks/pod_deletes.py [--rate 50] [--seconds 10] [--latency 0.1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from hybrid_executor.kubernetes.api import KubeApi
from hybrid_executor.kubernetes.cleanup import PodDeleter
from hybrid_executor.testing.kube import LocalKubeAPI

NAMESPACE = "default"


class _Settings:
    in_cluster = False
    cluster_context = None
    verify_ssl = True
    ssl_ca_cert = None
    pod_creation_concurrency = 16
    enable_tcp_keepalive = True
    tcp_keep_idle, tcp_keep_intvl, tcp_keep_cnt = 120, 30, 6
    kube_client_request_args: dict[str, Any] = {}
    delete_option_kwargs: dict[str, Any] = {}
    client_factory = None

    def __init__(self, config_file: str) -> None:
        self.config_file = config_file

    def namespaces(self) -> frozenset[str]:
        return frozenset({NAMESPACE})


def _round(kube: LocalKubeAPI, api: KubeApi, threads: int, args: argparse.Namespace, number: int) -> dict[str, Any]:
    from kubernetes.client import CoreV1Api

    core = CoreV1Api(kube.api_client())
    count = int(args.rate * args.seconds)
    names = [f"r{number}-t{threads}-{index}" for index in range(count)]
    for name in names:
        core.create_namespaced_pod(
            NAMESPACE, {"metadata": {"name": name}, "spec": {"containers": [{"name": "base", "image": "busybox:1"}]}}
        )
    rule = kube.faults.add("delete", "pods", latency=args.latency)
    deleter = PodDeleter(api) if threads == 0 else PodDeleter(api, concurrency=threads)
    deleter.start()
    began, backlog = time.monotonic(), 0
    for index, name in enumerate(names):
        time.sleep(max(0.0, began + index / args.rate - time.monotonic()))
        deleter.delete(NAMESPACE, name)
        backlog = max(backlog, deleter.pending())
    asked = time.monotonic()
    while deleter.pending():
        time.sleep(0.01)
    ended = time.monotonic()
    deleter.stop(timeout=5)
    kube.faults.remove(rule)
    return {"per_second": count / (ended - began), "backlog": backlog, "tail": ended - asked}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=50.0, help="deletions asked for per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds added to each delete")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    configurations = {"1 thread (before)": 1, "default threads": 0}
    results: dict[str, list[dict[str, Any]]] = {label: [] for label in configurations}
    with LocalKubeAPI() as kube:
        api = KubeApi.from_settings(_Settings(str(kube.kubeconfig)))
        for number in range(args.rounds):
            for label, threads in configurations.items():
                figures = _round(kube, api, threads, args, number)
                results[label].append(figures)
                print(
                    f"round {number + 1}, {label}: {figures['per_second']:.1f} deletes/s, "
                    f"backlog at most {figures['backlog']}, last pod gone {figures['tail']:.2f}s after the last ask"
                )
        api.close()
    print(f"medians of {args.rounds} rounds, {args.rate:g} pods/s asked for, {args.latency * 1000:g} ms per delete:")
    for label, rounds in results.items():
        print(
            f"  {label}: {statistics.median(r['per_second'] for r in rounds):.1f} deletes/s, "
            f"backlog at most {statistics.median(r['backlog'] for r in rounds):g}, "
            f"tail {statistics.median(r['tail'] for r in rounds):.2f}s"
        )


if __name__ == "__main__":
    main()

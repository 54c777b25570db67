"""How many pod creates per second the local Kubernetes API serves to the official client.

Starts the API server as its own process (as a real one is), then has 16 client threads create
pods with ``kubernetes.client.CoreV1Api.create_namespaced_pod`` until N pods exist; repeats a
few rounds in fresh namespaces and prints each round and the median. A figure, not a test.

    python benchmarks/kube_api_creates.py [--pods 2000] [--threads 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config


def _start_server(kubeconfig: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "hybrid_executor.testing.kube", "serve", "--port", "0", "--kubeconfig", str(kubeconfig)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    process.stdout.readline()  # the URL: the server is listening
    return process


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench", "airflow-worker": "1"}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "base", "image": "apache/airflow:3.3.0", "command": ["true"]}],
        },
    }


def _round(api: client.CoreV1Api, namespace: str, pods: int, threads: int) -> float:
    api.create_namespace({"metadata": {"name": namespace}})
    counter = iter(range(pods))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work() -> None:
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            try:
                api.create_namespaced_pod(namespace, _pod(f"pod-{index}"))
            except Exception as error:  # a failed create would make the figure a lie: report it
                errors.append(error)
                return

    workers = [threading.Thread(target=work) for _ in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} creates failed, first: {errors[0]}")
    listed = api.list_namespaced_pod(namespace, limit=pods + 1)
    if len(listed.items) != pods:
        raise RuntimeError(f"expected {pods} pods, the server lists {len(listed.items)}")
    return pods / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        kubeconfig = Path(folder) / "kubeconfig"
        server = _start_server(kubeconfig)
        try:
            configuration = client.Configuration()
            config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
            configuration.connection_pool_maxsize = args.threads
            api = client.CoreV1Api(client.ApiClient(configuration))
            rates = []
            for number in range(args.rounds):
                rate = _round(api, f"bench-{number}", args.pods, args.threads)
                rates.append(rate)
                print(f"round {number + 1}: {args.pods} pods from {args.threads} threads: {rate:.0f} creates/s")
            print(f"median: {statistics.median(rates):.0f} creates/s over {args.rounds} rounds")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()

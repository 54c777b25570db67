"""How many pod creates per second the local Kubernetes API serves to the official client.

Starts the API server as its own process (as a real one is), ``--latency`` seconds added to every
request, then has 16 client threads create pods with ``kubernetes.client.CoreV1Api.create_namespaced_pod``
until N pods exist; repeats a few rounds in fresh namespaces and prints each round and the median.
A figure, not a test.

``--shape ours`` (the default) sends the pod our launcher sends for a task (built once by the
executor's own builder, then renamed per pod), ``--shape minimal`` a one-container pod. The bodies
are made before the clock starts: this is the rate of the client and the server alone, the
"raw rate" our launcher is compared with (``benchmarks/executor_kubernetes.py`` measures both in
the same run). ``--no-preload``: the client hands back raw bytes instead of deserializing each
answer into a V1Pod (the client's default, and its dearest part).

    python benchmarks/kube_api_creates.py [--pods 2000] [--threads 16] [--rounds 3] [--latency 0.01]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench_support import ApiServerProcess, airflow_environment
from kubernetes import client, config


def minimal_pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench", "airflow-worker": "1"}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "base", "image": "apache/airflow:3.3.0", "command": ["true"]}],
        },
    }


def our_pod_shape(job_id: int = 1) -> dict[str, Any]:
    """The JSON body our launcher sends for one task of ``bench_support.Workloads`` (defaults, no override)."""
    from bench_support import Workloads

    from hybrid_executor.kubernetes.executor import KubernetesPodExecutor

    executor = KubernetesPodExecutor(parallelism=1)
    executor.job_id = job_id
    workload = Workloads(executor.jwt_generator).make(1)[0]
    pod = executor._build_pod(workload)
    body: dict[str, Any] = pod if isinstance(pod, dict) else client.ApiClient().sanitize_for_serialization(pod)
    return body


def bodies_like(shape: dict[str, Any], count: int, namespace: str) -> list[dict[str, Any]]:
    """``count`` copies of ``shape``, each with a name of its own, in ``namespace``."""
    bodies = []
    for index in range(count):
        body = copy.deepcopy(shape)
        body["metadata"]["name"] = f"raw-{index:06d}"
        body["metadata"]["namespace"] = namespace
        bodies.append(body)
    return bodies


def raw_client(kubeconfig: Path, threads: int) -> client.CoreV1Api:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    configuration.connection_pool_maxsize = threads
    return client.CoreV1Api(client.ApiClient(configuration))


def raw_create_rate(
    api: client.CoreV1Api, namespace: str, bodies: list[dict[str, Any]], threads: int, *, preload: bool = True
) -> float:
    """Creates per second of ``threads`` client threads sending ``bodies`` (made beforehand) into a new namespace."""
    api.create_namespace({"metadata": {"name": namespace}})
    counter = iter(range(len(bodies)))
    lock = threading.Lock()
    errors: list[BaseException] = []
    extra = {} if preload else {"_preload_content": False}

    def work() -> None:
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            try:
                answer = api.create_namespaced_pod(namespace, bodies[index], **extra)
                if not preload:
                    answer.data  # noqa: B018 - read the whole answer
                    answer.release_conn()
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
    listed = api.list_namespaced_pod(namespace, limit=len(bodies) + 1, _preload_content=False)
    count = len(json.loads(listed.data)["items"])
    listed.release_conn()
    if count != len(bodies):
        raise RuntimeError(f"expected {len(bodies)} pods, the server lists {count}")
    return len(bodies) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every API request")
    parser.add_argument("--shape", choices=("ours", "minimal"), default="ours")
    parser.add_argument("--no-preload", action="store_true", help="read answers as bytes, not V1Pod models")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        airflow_environment(folder)
        kubeconfig = folder / "kubeconfig"
        with ApiServerProcess(kubeconfig, latency=args.latency):
            shape = our_pod_shape() if args.shape == "ours" else minimal_pod("x")
            api = raw_client(kubeconfig, args.threads)
            rates = []
            for number in range(args.rounds):
                namespace = f"bench-{number}"
                bodies = bodies_like(shape, args.pods, namespace)
                rate = raw_create_rate(api, namespace, bodies, args.threads, preload=not args.no_preload)
                rates.append(rate)
                print(
                    f"round {number + 1}: {args.pods} pods ({args.shape} shape) from {args.threads} threads, "
                    f"{args.latency * 1000:.0f} ms latency: {rate:.0f} creates/s"
                )
            print(f"median: {statistics.median(rates):.0f} creates/s over {args.rounds} rounds")


if __name__ == "__main__":
    main()

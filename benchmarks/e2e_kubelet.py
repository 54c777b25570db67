"""The end-to-end benchmark's kubelet, in a process of its own: every new pod "runs" a short fixed time, then succeeds.

It watches the worker namespace. For each pod ADDED, ``delay`` seconds after its creation, it does
what a kubelet and a task runner minimally do, the same for every executor:

1. patches the pod Running (status subresource);
2. through the Execution API, as the Task SDK's own client does (``airflow.sdk.api.client``):
   ``PATCH task-instances/{id}/run`` then ``PATCH task-instances/{id}/state`` with success. The
   token comes from the workload JSON in the pod's command (``--json-string``); it is never logged;
3. patches the pod Succeeded.

So no task code runs in pods, and an executor reports a task success only once its task instance
is success in the database (Airflow 3 treats a success for a task still QUEUED as killed
externally). It records when each ADDED was seen, per DAG run, for the pods-created figures.

Driven over a multiprocessing pipe: ``("added", run_id)`` -> creation times (epoch seconds), the
same by task instance id (the first pod of each), and the first pod of that run (for the raw
client's pods of the same shape); ``("clear",)`` deletes
the namespace's pods; ``("stop",)``.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import logging
import os
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from multiprocessing.connection import Connection
from typing import Any

from bench_support import serve_commands

log = logging.getLogger("e2e-kubelet")


def workload_of(pod: dict[str, Any]) -> dict[str, Any] | None:
    """The ExecuteTask workload a pod's base container carries, or None (not an Airflow worker pod)."""
    for container in pod.get("spec", {}).get("containers", []):
        words = [*(container.get("command") or []), *(container.get("args") or [])]
        if "--json-string" in words:
            position = words.index("--json-string")
            if position + 1 < len(words):
                workload: dict[str, Any] = json.loads(words[position + 1])
                return workload
    return None


def _status(phase: str) -> dict[str, Any]:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    state: dict[str, Any] = (
        {"running": {"startedAt": now}}
        if phase == "Running"
        else {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": now}}
    )
    container = {"name": "base", "image": "worker", "imageID": "", "ready": phase == "Running", "restartCount": 0}
    return {"status": {"phase": phase, "containerStatuses": [container | {"state": state}]}}


class Kubelet:
    def __init__(self, kubeconfig: str, namespace: str, execution_api_url: str, delay: float, threads: int) -> None:
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        configuration.connection_pool_maxsize = threads + 2
        self.core = client.CoreV1Api(client.ApiClient(configuration))
        self.namespace = namespace
        self.execution_api_url = execution_api_url
        self.delay = delay
        self.pool = ThreadPoolExecutor(threads)
        self.lock = threading.Condition()
        self.added: dict[str, list[float]] = defaultdict(list)  # run_id -> when each pod was seen
        self.added_by_ti: dict[str, dict[str, float]] = defaultdict(dict)  # run_id -> ti id -> its first pod seen
        self.first_pod: dict[str, dict[str, Any]] = {}
        self.due: list[tuple[float, int, str, dict[str, Any]]] = []  # (when, tiebreak, pod name, workload)
        self.failures = 0
        self._count = 0

    def start(self) -> None:
        threading.Thread(target=self._watch, daemon=True).start()
        threading.Thread(target=self._dispatch, daemon=True).start()

    def _watch(self) -> None:
        version = self.core.list_namespaced_pod(self.namespace, limit=1).metadata.resource_version
        while True:
            response = self.core.list_namespaced_pod(
                self.namespace,
                watch=True,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=3600,
                _preload_content=False,
            )
            for line in response:
                event = json.loads(line)
                pod = event["object"]
                version = pod["metadata"].get("resourceVersion", version)
                if event["type"] == "ADDED":
                    self._added(pod)

    def _added(self, pod: dict[str, Any]) -> None:
        now = time.time()
        workload = workload_of(pod)
        if workload is None:
            return
        run_id = workload["ti"]["run_id"]
        with self.lock:
            self.added[run_id].append(now)
            self.added_by_ti[run_id].setdefault(str(workload["ti"]["id"]), now)
            self.first_pod.setdefault(run_id, pod)
            self._count += 1
            heapq.heappush(self.due, (time.monotonic() + self.delay, self._count, pod["metadata"]["name"], workload))
            self.lock.notify()

    def _dispatch(self) -> None:
        while True:
            with self.lock:
                self.lock.wait_for(lambda: bool(self.due))
                when = self.due[0][0]
                if when > time.monotonic():
                    self.lock.wait(when - time.monotonic())
                    continue
                _, _, name, workload = heapq.heappop(self.due)
            self.pool.submit(self._run, name, workload)

    def _run(self, name: str, workload: dict[str, Any]) -> None:
        from airflow.sdk.api.client import Client

        try:
            self._patch(name, "Running")
            ti_id = workload["ti"]["id"]
            with Client(base_url=self.execution_api_url, token=workload["token"]) as api:
                api.task_instances.start(ti_id, os.getpid(), datetime.now(timezone.utc))
                api.task_instances.succeed(ti_id, datetime.now(timezone.utc), [], [], None)
            self._patch(name, "Succeeded")
        except Exception as error:  # a run cleared by the benchmark, or an overloaded api-server
            self.failures += 1
            # The error's text only: the client's exceptions carry no request headers (the token).
            log.warning("pod %s: %s: %s", name, type(error).__name__, str(error)[:200])

    def _patch(self, name: str, phase: str) -> None:
        from kubernetes.client.exceptions import ApiException

        with contextlib.suppress(ApiException):  # deleted meanwhile (a cleared round)
            # Not preloaded: the answer is not read into models, which cost this process (on the
            # machine the scheduler shares) a few ms of CPU per patch.
            response = self.core.patch_namespaced_pod_status(
                name,
                self.namespace,
                _status(phase),
                _content_type="application/merge-patch+json",
                _preload_content=False,
            )
            response.drain_conn()  # read to its end: a connection with a body left on it cannot serve the next
            response.release_conn()

    def added_for(self, run_id: str) -> tuple[list[float], dict[str, float], dict[str, Any] | None]:
        with self.lock:
            return (
                list(self.added.get(run_id, [])),
                dict(self.added_by_ti.get(run_id, {})),
                self.first_pod.get(run_id),
            )

    def clear(self) -> int:
        with self.lock:
            self.due.clear()
        pods = self.core.list_namespaced_pod(self.namespace).items
        for pod in pods:
            with contextlib.suppress(Exception):
                self.core.delete_namespaced_pod(pod.metadata.name, self.namespace, grace_period_seconds=0)
        return len(pods)


def serve(conn: Connection, env: dict[str, str], kubeconfig: str, namespace: str, api_url: str, delay: float) -> None:
    """The process's body: ``env`` selects the Airflow home (the SDK client reads its options)."""
    os.environ.update(env)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    # Threads enough that pods never wait for one: at 30 pods/s, each taking 0.3-1 s of calls on a loaded machine.
    kubelet = Kubelet(kubeconfig, namespace, api_url, delay, threads=64)
    kubelet.start()
    conn.send("ready")
    serve_commands(conn, {"added": kubelet.added_for, "clear": kubelet.clear, "failures": lambda: kubelet.failures})

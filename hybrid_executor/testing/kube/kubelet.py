"""A local kubelet (and scheduler): runs each pod's containers as processes on this machine.

It moves pods through the phases a real node does — scheduled (or Unschedulable when the node
is full), ContainerCreating, Running, Succeeded/Failed — and writes the same status a real
kubelet writes: containerStatuses (waiting, running, terminated with exit code and reason),
conditions, hostIP/podIP, startTime. Images that match a configured pattern never pull
(ErrImagePull, then ImagePullBackOff); malformed image names are InvalidImageName. Deleting a
running pod sends SIGTERM, then SIGKILL after the grace period, then removes the object.

What a container runs is its ``command`` + ``args``; an image's own entrypoint cannot be known
here, so a container with neither exits 0 at once. Env: plain ``value``s and ``fieldRef``s are
set; ``secretKeyRef``/``configMapKeyRef`` name objects this API does not serve, so such a pod
stays in CreateContainerConfigError (unless the reference is optional), as a real node would.
Every container runs once: restartPolicy Always/OnFailure restarts are not reproduced.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import re
import signal
import tempfile
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybrid_executor.testing.kube.cluster import TERMINAL_PHASES, Cluster
from hybrid_executor.testing.kube.store import Change, Key, now_rfc3339

# A reference the container runtime can parse: lower-case repository path, optional tag or digest.
_IMAGE_REFERENCE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
_UNSCHEDULABLE = (
    "0/1 nodes are available: 1 Too many pods. preemption: 0/1 nodes are available: "
    "1 No preemption victims found for incoming pod."
)
_INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")


@dataclass
class KubeletConfig:
    node_name: str = "local-node"
    capacity: int | None = None  # pods that may run at once; None for no limit
    image_pull_failure: str | None = None  # a regex: matching images never pull
    image_pull_backoff: float = 1.0  # seconds between ErrImagePull and ImagePullBackOff
    start_delay: float = 0.0  # seconds a pod spends in ContainerCreating
    base_env: dict[str, str] | None = None  # every container's starting env; default: PATH, HOME, ...
    workdir_root: str | None = None  # where containers without an existing workingDir run


class LogBuffer:
    """One container's output, as lines, with a wake-up for followers."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.started = False
        self.finished = False
        self._more = asyncio.Event()

    def append(self, line: bytes) -> None:
        self.lines.append(line)
        self._more.set()

    def finish(self) -> None:
        self.finished = True
        self._more.set()

    async def wait_for_more(self, timeout: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._more.wait(), timeout)
        self._more.clear()


@dataclass
class _PodRuntime:
    key: Key
    deleting: asyncio.Event = field(default_factory=asyncio.Event)
    deleted: asyncio.Event = field(default_factory=asyncio.Event)
    logs: dict[str, LogBuffer] = field(default_factory=dict)
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)
    holds_slot: bool = False
    killed: bool = False  # stopped by a deletion, so exit 137 is our SIGKILL and not the OOM killer
    task: asyncio.Task[None] | None = None


class Kubelet:
    def __init__(
        self, cluster: Cluster, config: KubeletConfig | None = None, api_host: str = "", api_port: int = 0
    ) -> None:
        self.cluster = cluster
        self.store = cluster.store
        self.config = config or KubeletConfig()
        self.api_host = api_host
        self.api_port = api_port
        self._pods: dict[Key, _PodRuntime] = {}
        self._waiting: deque[Key] = deque()
        self._slot_freed = asyncio.Event()
        self._running = 0
        self._next_ip = 1
        self._workdir = Path(self.config.workdir_root or tempfile.mkdtemp(prefix="local-kubelet-"))
        self.store.add_listener(self._on_change)

    # --- what the API server asks of it ------------------------------------------------

    def logs(self, namespace: str, name: str, container: str) -> LogBuffer | None:
        runtime = self._pods.get((namespace, name))
        return runtime.logs.get(container) if runtime else None

    async def stop(self) -> None:
        for runtime in list(self._pods.values()):
            _kill(runtime.processes, signal.SIGKILL)
            if runtime.task is not None:
                runtime.task.cancel()
        tasks = [r.task for r in self._pods.values() if r.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    def wake_scheduler(self) -> None:
        """Let pods waiting for room check again (after a capacity change)."""
        self._slot_freed.set()

    # --- reacting to the store -----------------------------------------------------------

    def _on_change(self, change: Change) -> None:
        if change.resource != "pods":
            return
        runtime = self._pods.get(change.key)
        if change.type == "ADDED" and not change.obj["spec"].get("nodeName"):
            runtime = _PodRuntime(change.key)
            self._pods[change.key] = runtime
            runtime.task = asyncio.get_running_loop().create_task(self._run(runtime))
        elif runtime is None:
            return
        elif change.type == "DELETED":
            runtime.deleted.set()
            runtime.deleting.set()
            if runtime.task is not None and runtime.task.done():
                self._pods.pop(change.key, None)
        elif change.obj["metadata"].get("deletionTimestamp"):
            runtime.deleting.set()

    # --- one pod's life ------------------------------------------------------------------

    async def _run(self, runtime: _PodRuntime) -> None:
        try:
            if not await self._schedule(runtime):
                return
            await self._create_and_run(runtime)
        finally:
            self._release(runtime)
            for buffer in runtime.logs.values():
                buffer.finish()
            if runtime.deleting.is_set() and not runtime.deleted.is_set():
                # The graceful deletion ends when the node has stopped everything: the kubelet's final delete.
                with contextlib.suppress(Exception):
                    self.store.remove("pods", *runtime.key)
            if runtime.deleted.is_set() or runtime.deleting.is_set():
                self._pods.pop(runtime.key, None)

    async def _schedule(self, runtime: _PodRuntime) -> bool:
        capacity = self.config.capacity
        self._waiting.append(runtime.key)
        marked = False
        try:
            while capacity is not None and (self._running >= capacity or self._waiting[0] != runtime.key):
                if not marked:
                    self._write(runtime.key, _mark_unschedulable)
                    marked = True
                self._slot_freed.clear()
                wake = asyncio.ensure_future(self._slot_freed.wait())
                gone = asyncio.ensure_future(runtime.deleting.wait())
                await asyncio.wait({wake, gone}, return_when=asyncio.FIRST_COMPLETED)
                wake.cancel()
                gone.cancel()
                if runtime.deleting.is_set():
                    return False
            if runtime.deleting.is_set():
                return False
            self._running += 1
            runtime.holds_slot = True
        finally:
            self._waiting.remove(runtime.key)
            self._slot_freed.set()  # the next in line may now check again
        ip = f"10.244.0.{self._next_ip % 250 + 2}"
        self._next_ip += 1
        return self._write(runtime.key, lambda pod: _bind(pod, self.config.node_name, ip))

    def _release(self, runtime: _PodRuntime) -> None:
        if runtime.holds_slot:
            runtime.holds_slot = False
            self._running -= 1
            self._slot_freed.set()

    async def _create_and_run(self, runtime: _PodRuntime) -> None:
        pod = self.store.find("pods", *runtime.key)
        if pod is None:
            return
        containers = pod["spec"]["containers"]
        if self.config.start_delay and await _wait_or(runtime.deleting, self.config.start_delay):
            return
        for container in containers:
            image = container.get("image", "")
            if not _IMAGE_REFERENCE.match(image):
                message = (
                    f'Failed to apply default image tag "{image}": '
                    f'couldn\'t parse image name "{image}": invalid reference format'
                )
                self._write(runtime.key, _waiting(container["name"], "InvalidImageName", message))
                await runtime.deleting.wait()
                return
            if self.config.image_pull_failure and re.search(self.config.image_pull_failure, image):
                await self._fail_to_pull(runtime, container["name"], image)
                return
        envs: dict[str, dict[str, str]] = {}
        for container in containers:
            env, problem = self._container_env(pod, container)
            if problem:
                self._write(runtime.key, _waiting(container["name"], "CreateContainerConfigError", problem))
                await runtime.deleting.wait()
                return
            envs[container["name"]] = env
        started = now_rfc3339()
        results: dict[str, tuple[int, str, str]] = {}
        waiters = []
        for container in containers:
            buffer = LogBuffer()
            runtime.logs[container["name"]] = buffer
            argv = list(container.get("command") or []) + list(container.get("args") or [])
            if not argv:
                buffer.started = True
                results[container["name"]] = (0, started, started)
                continue
            try:
                process = await asyncio.create_subprocess_exec(
                    *argv,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                    stdin=asyncio.subprocess.DEVNULL,
                    env=envs[container["name"]],
                    cwd=self._working_dir(runtime.key, container),
                    start_new_session=True,
                )
            except OSError as error:
                buffer.started = True
                message = f"failed to create containerd task: exec: {argv[0]!r}: {error.strerror}"
                results[container["name"]] = (128, started, now_rfc3339())
                self._write(runtime.key, _start_error(container["name"], message, started))
                continue
            buffer.started = True
            runtime.processes.append(process)
            waiters.append(self._collect(process, buffer, container["name"], started, results))
        self._write(runtime.key, lambda p: _running(p, started, {c["name"] for c in containers} - set(results)))
        grace_watch = asyncio.ensure_future(self._terminate_on_delete(runtime))
        try:
            await asyncio.gather(*waiters)
        finally:
            grace_watch.cancel()
        self._write(runtime.key, lambda p: _finished(p, results, runtime.killed))

    async def _collect(
        self,
        process: asyncio.subprocess.Process,
        buffer: LogBuffer,
        name: str,
        started: str,
        results: dict[str, tuple[int, str, str]],
    ) -> None:
        assert process.stdout is not None
        async for line in process.stdout:
            buffer.append(line)
        code = await process.wait()
        # A process killed by signal N ends, in a container, with exit code 128 + N.
        results[name] = (128 - code if code < 0 else code, started, now_rfc3339())

    async def _terminate_on_delete(self, runtime: _PodRuntime) -> None:
        await runtime.deleting.wait()
        pod = self.store.find("pods", *runtime.key)
        grace = 0 if pod is None else int(pod["metadata"].get("deletionGracePeriodSeconds") or 0)
        runtime.killed = True
        _kill(runtime.processes, signal.SIGTERM)
        alive = [asyncio.ensure_future(p.wait()) for p in runtime.processes if p.returncode is None]
        if grace and alive and not runtime.deleted.is_set():
            await asyncio.wait(alive, timeout=grace)
        _kill(runtime.processes, signal.SIGKILL)

    async def _fail_to_pull(self, runtime: _PodRuntime, name: str, image: str) -> None:
        pull_error = (
            f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": '
            f'failed to resolve reference "{image}": not found'
        )
        while True:
            self._write(runtime.key, _waiting(name, "ErrImagePull", pull_error))
            if await _wait_or(runtime.deleting, self.config.image_pull_backoff):
                return
            self._write(runtime.key, _waiting(name, "ImagePullBackOff", f'Back-off pulling image "{image}"'))
            if await _wait_or(runtime.deleting, self.config.image_pull_backoff):
                return

    def _container_env(self, pod: dict[str, Any], container: dict[str, Any]) -> tuple[dict[str, str], str]:
        base = self.config.base_env
        env = dict(base) if base is not None else {k: os.environ[k] for k in _INHERITED_ENV if k in os.environ}
        env["HOSTNAME"] = pod["metadata"]["name"]
        if self.api_host:
            env["KUBERNETES_SERVICE_HOST"] = self.api_host
            env["KUBERNETES_SERVICE_PORT"] = str(self.api_port)
        for item in container.get("env") or []:
            source = item.get("valueFrom")
            if source is None:
                env[item["name"]] = str(item.get("value", ""))
                continue
            if "fieldRef" in source:
                env[item["name"]] = _field_ref(pod, source["fieldRef"].get("fieldPath", ""))
                continue
            for ref_kind, noun in (("secretKeyRef", "secret"), ("configMapKeyRef", "configmap")):
                ref = source.get(ref_kind)
                if ref is not None and not ref.get("optional"):
                    return env, f'{noun} "{ref.get("name", "")}" not found'
        return env, ""

    def _working_dir(self, key: Key, container: dict[str, Any]) -> str:
        wanted = container.get("workingDir")
        if wanted and os.path.isdir(wanted):
            return str(wanted)
        folder = self._workdir / key[0] / key[1] / container["name"]
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder)

    def _write(self, key: Key, mutate: Callable[[dict[str, Any]], None]) -> bool:
        """Write what the node knows into the pod, as a new revision; False if the pod is gone."""
        pod = self.store.find("pods", *key)
        if pod is None:
            return False
        updated = copy.deepcopy(pod)
        mutate(updated)
        if updated != pod:
            self.store.update("pods", updated)
        return True


async def _wait_or(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds``; True if the event came first."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except asyncio.TimeoutError:
        return False
    return True


def _kill(processes: list[asyncio.subprocess.Process], sig: signal.Signals) -> None:
    for process in processes:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, sig)


def _field_ref(pod: dict[str, Any], path: str) -> str:
    metadata, status, spec = pod["metadata"], pod.get("status", {}), pod["spec"]
    simple = {
        "metadata.name": metadata.get("name", ""),
        "metadata.namespace": metadata.get("namespace", ""),
        "metadata.uid": metadata.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": status.get("podIP", ""),
        "status.hostIP": status.get("hostIP", ""),
    }
    if path in simple:
        return str(simple[path])
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str((metadata.get(match.group(1)) or {}).get(match.group(2), ""))
    return ""


def _condition(kind: str, status: str, reason: str = "", message: str = "") -> dict[str, Any]:
    condition: dict[str, Any] = {
        "type": kind,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": now_rfc3339(),
    }
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def _set_conditions(pod: dict[str, Any], *conditions: dict[str, Any]) -> None:
    current = {c["type"]: c for c in pod["status"].get("conditions") or []}
    for condition in conditions:
        old = current.get(condition["type"])
        if old and old["status"] == condition["status"]:
            condition["lastTransitionTime"] = old["lastTransitionTime"]
        current[condition["type"]] = condition
    order = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
    pod["status"]["conditions"] = sorted(
        current.values(), key=lambda c: order.index(c["type"]) if c["type"] in order else 99
    )


def _mark_unschedulable(pod: dict[str, Any]) -> None:
    _set_conditions(pod, _condition("PodScheduled", "False", "Unschedulable", _UNSCHEDULABLE))


def _bind(pod: dict[str, Any], node: str, ip: str) -> None:
    pod["spec"]["nodeName"] = node
    status = pod["status"]
    status.update(
        {
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": now_rfc3339(),
        }
    )
    status["containerStatuses"] = [
        _container_status(c, {"waiting": {"reason": "ContainerCreating"}}) for c in pod["spec"]["containers"]
    ]
    unready = f"containers with unready status: [{_names(pod)}]"
    _set_conditions(
        pod,
        _condition("PodReadyToStartContainers", "False"),
        _condition("Initialized", "True"),
        _condition("Ready", "False", "ContainersNotReady", unready),
        _condition("ContainersReady", "False", "ContainersNotReady", unready),
        _condition("PodScheduled", "True"),
    )


def _names(pod: dict[str, Any]) -> str:
    return " ".join(c["name"] for c in pod["spec"]["containers"])


def _container_status(container: dict[str, Any], state: dict[str, Any], **extra: Any) -> dict[str, Any]:
    status = {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "started": False,
        "state": state,
        "lastState": {},
    }
    status.update(extra)
    return status


def _waiting(name: str, reason: str, message: str) -> Callable[[dict[str, Any]], None]:
    def mutate(pod: dict[str, Any]) -> None:
        for status in pod["status"].get("containerStatuses") or []:
            if status["name"] == name:
                status["state"] = {"waiting": {"reason": reason, "message": message}}

    return mutate


def _start_error(name: str, message: str, started: str) -> Callable[[dict[str, Any]], None]:
    def mutate(pod: dict[str, Any]) -> None:
        for status in pod["status"].get("containerStatuses") or []:
            if status["name"] == name:
                status["state"] = {
                    "terminated": {
                        "exitCode": 128,
                        "reason": "StartError",
                        "message": message,
                        "startedAt": "1970-01-01T00:00:00Z",
                        "finishedAt": now_rfc3339(),
                        "containerID": f"containerd://{uuid.uuid4().hex}",
                    }
                }

    return mutate


def _running(pod: dict[str, Any], started: str, running: set[str]) -> None:
    if pod["status"].get("phase") in TERMINAL_PHASES:
        return
    pod["status"]["phase"] = "Running"
    for status in pod["status"].get("containerStatuses") or []:
        if status["name"] in running:
            status.update(
                {
                    "state": {"running": {"startedAt": started}},
                    "ready": True,
                    "started": True,
                    "containerID": f"containerd://{uuid.uuid4().hex}",
                }
            )
    all_ready = all(s.get("ready") for s in pod["status"].get("containerStatuses") or [])
    _set_conditions(
        pod,
        _condition("PodReadyToStartContainers", "True"),
        _condition("Ready", "True") if all_ready else _condition("Ready", "False", "ContainersNotReady"),
        _condition("ContainersReady", "True")
        if all_ready
        else _condition("ContainersReady", "False", "ContainersNotReady"),
    )


def _finished(pod: dict[str, Any], results: dict[str, tuple[int, str, str]], killed: bool) -> None:
    failed = False
    for status in pod["status"].get("containerStatuses") or []:
        result = results.get(status["name"])
        if result is None:
            continue
        code, started, finished = result
        previous = status.get("state", {}).get("terminated") or {}
        if previous.get("reason") == "StartError":
            failed = True
            continue
        reason = "Completed" if code == 0 else "OOMKilled" if code == 137 and not killed else "Error"
        failed = failed or code != 0
        status["state"] = {
            "terminated": {
                "exitCode": code,
                "reason": reason,
                "startedAt": started,
                "finishedAt": finished,
                "containerID": status.get("containerID") or f"containerd://{uuid.uuid4().hex}",
            }
        }
        status["ready"] = False
        status["started"] = False
    pod["status"]["phase"] = "Failed" if failed else "Succeeded"
    _set_conditions(
        pod,
        _condition("PodReadyToStartContainers", "False"),
        _condition("Ready", "False", "PodCompleted"),
        _condition("ContainersReady", "False", "PodCompleted"),
    )

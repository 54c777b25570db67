"""A local kubelet (and scheduler): runs each pod's containers as processes on this machine.

It moves pods through the phases a real node does — scheduled (or Unschedulable when the node
is full), init containers one by one, ContainerCreating, Running, Succeeded/Failed — and writes
the same status a real kubelet writes: initContainerStatuses and containerStatuses (waiting,
running, terminated with exit code and reason), conditions, hostIP/podIP, startTime. Images that
match a configured pattern never pull (ErrImagePull, then ImagePullBackOff); malformed image
names are InvalidImageName. Deleting a running pod sends SIGTERM to each container's process
group, then SIGKILL when the grace period ends (sooner if a later delete shortens it), then
removes the object. A container ends with its main process: what it left running is killed, as
a container's PID namespace goes with its first process.

What a container runs is its ``command`` + ``args``, with ``$(VAR)`` expanded and ``$$`` turned
into ``$`` as the kubelet does; an image's own entrypoint cannot be known here, so ``args``
alone run as the command (as an entrypoint that execs its arguments would) and a container
with neither exits 0 at once. Env: plain ``value``s and ``fieldRef``s are set over a small base
env (PATH, HOME, ...: the image's ENV stand-in); ``secretKeyRef``/``configMapKeyRef`` and
``envFrom`` name objects this API does not serve, so such a pod stays in
CreateContainerConfigError (unless the reference is optional), as a real node would. A SIGKILL
that no deletion sent is reported as OOMKilled (there are no cgroups here to tell).
Every container runs once: restartPolicy Always/OnFailure restarts are not reproduced, so a
failing container (or init container) fails the pod whatever its restartPolicy.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import errno
import os
import re
import signal
import tempfile
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hybrid_executor.testing.kube.cluster import TERMINAL_PHASES, Cluster
from hybrid_executor.testing.kube.errors import ApiError
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
_EXIT_POLL = 0.05  # seconds between looks at whether a container's main process has ended
_READ_SIZE = 65536


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
    """One container's output, as lines stamped with the time they came, with a wake-up for followers."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.times: list[datetime] = []  # when each line was read, as the container runtime stamps it
        self.started = False
        self.finished = False
        self._more = asyncio.Event()

    def append(self, line: bytes) -> None:
        self.lines.append(line)
        self.times.append(datetime.now(timezone.utc))
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
    uid: str
    deleting: asyncio.Event = field(default_factory=asyncio.Event)
    deleted: asyncio.Event = field(default_factory=asyncio.Event)
    regrace: asyncio.Event = field(default_factory=asyncio.Event)  # the deletion changed: a shorter grace, or gone
    logs: dict[str, LogBuffer] = field(default_factory=dict)
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)
    holds_slot: bool = False
    killed: bool = False  # stopped by a deletion, so exit 137 is our SIGKILL and not the OOM killer
    task: asyncio.Task[None] | None = None


# What a container ended with: exit code, startedAt, finishedAt, and a message when it could not start.
_Result = tuple[int, str, str, str]


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
        """Kill every container's processes, as a node that goes down does, and wait until they are gone."""
        runtimes = list(self._pods.values())
        processes = [process for runtime in runtimes for process in runtime.processes]
        _kill(processes, signal.SIGKILL)
        # Reaped here, so no process (or its pipes) outlives the event loop that started it.
        ended = [asyncio.ensure_future(process.wait()) for process in processes]
        if ended:
            await asyncio.wait(ended, timeout=5)
        tasks = [r.task for r in runtimes if r.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def wake_scheduler(self) -> None:
        """Let pods waiting for room check again (after a capacity change)."""
        self._slot_freed.set()

    # --- reacting to the store -----------------------------------------------------------

    def _on_change(self, change: Change) -> None:
        if change.resource != "pods":
            return
        runtime = self._pods.get(change.key)
        if runtime is not None and runtime.uid != change.obj["metadata"].get("uid"):
            runtime = None  # a new pod under the name of one that is still being stopped
        if change.type == "ADDED" and change.obj["spec"].get("nodeName") in (None, "", self.config.node_name):
            runtime = _PodRuntime(change.key, change.obj["metadata"].get("uid", ""))
            self._pods[change.key] = runtime
            runtime.task = asyncio.get_running_loop().create_task(self._run(runtime))
        elif runtime is None:
            return
        elif change.type == "DELETED":
            runtime.deleted.set()
            runtime.deleting.set()
            runtime.regrace.set()
            if runtime.task is not None and runtime.task.done():
                self._forget(runtime)
        elif change.obj["metadata"].get("deletionTimestamp"):
            runtime.deleting.set()
            runtime.regrace.set()

    def _forget(self, runtime: _PodRuntime) -> None:
        if self._pods.get(runtime.key) is runtime:
            del self._pods[runtime.key]

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
                # The graceful deletion ends when the node has stopped everything: the kubelet's final
                # delete, with grace 0 and its UID as precondition, through the API's own rules (so
                # finalizers still hold the pod) and never for a new pod that took the same name.
                with contextlib.suppress(ApiError):
                    self.cluster.delete_pod(*runtime.key, 0, {"uid": runtime.uid})
            if runtime.deleted.is_set() or runtime.deleting.is_set():
                self._forget(runtime)

    async def _schedule(self, runtime: _PodRuntime) -> bool:
        pod = self.store.find("pods", *runtime.key)
        if pod is not None and pod["spec"].get("nodeName"):
            # Bound to this node by its creator: no scheduler decides, the node runs it at once.
            self._running += 1
            runtime.holds_slot = True
            return self._write(runtime, lambda pod: _bind(pod, self.config.node_name, self._new_ip()))
        self._waiting.append(runtime.key)
        marked = False
        try:
            # The capacity is read afresh each time: set_capacity() may change it while pods wait.
            while not self._has_room_for(runtime.key):
                if not marked:
                    self._write(runtime, _mark_unschedulable)
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
        return self._write(runtime, lambda pod: _bind(pod, self.config.node_name, self._new_ip()))

    def _new_ip(self) -> str:
        ip = f"10.244.0.{self._next_ip % 250 + 2}"
        self._next_ip += 1
        return ip

    def _has_room_for(self, key: Key) -> bool:
        """Whether the node can start this pod now: a free slot, and no pod that came earlier still waits."""
        capacity = self.config.capacity
        return capacity is None or (self._running < capacity and self._waiting[0] == key)

    def _release(self, runtime: _PodRuntime) -> None:
        if runtime.holds_slot:
            runtime.holds_slot = False
            self._running -= 1
            self._slot_freed.set()

    async def _create_and_run(self, runtime: _PodRuntime) -> None:
        pod = self.store.find("pods", *runtime.key)
        if pod is None:
            return
        if self.config.start_delay and await _wait_or(runtime.deleting, self.config.start_delay):
            return
        grace_watch = asyncio.ensure_future(self._terminate_on_delete(runtime))
        try:
            for container in pod["spec"].get("initContainers") or []:
                if not await self._run_init_container(runtime, container):
                    return
            await self._run_containers(runtime, pod["spec"]["containers"])
        finally:
            grace_watch.cancel()

    async def _run_init_container(self, runtime: _PodRuntime, container: dict[str, Any]) -> bool:
        """Run one init container to its end; True if the pod may go on to the next step."""
        name = container["name"]
        env = await self._prepare(runtime, container)
        if env is None or runtime.deleting.is_set():
            return False
        started = now_rfc3339()
        buffer = runtime.logs[name] = LogBuffer()
        if not container.get("command") and not container.get("args"):
            buffer.started = True  # the image's own entrypoint is unknown here: it "runs" and ends at once
            self._write(runtime, lambda p: _init_ended(p, name, (0, started, started, ""), False))
            return not runtime.deleting.is_set()
        process = await self._start(runtime, container, env, buffer)
        if isinstance(process, str):
            self._write(runtime, lambda p: _init_ended(p, name, (128, started, now_rfc3339(), process), False))
            return False
        self._write(runtime, lambda p: _init_running(p, name, started))
        code = await _collect(process, buffer)
        result = (code, started, now_rfc3339(), "")
        self._write(runtime, lambda p: _init_ended(p, name, result, runtime.killed))
        return code == 0 and not runtime.deleting.is_set()

    async def _run_containers(self, runtime: _PodRuntime, containers: list[dict[str, Any]]) -> None:
        envs: dict[str, dict[str, str]] = {}
        for container in containers:
            env = await self._prepare(runtime, container)
            if env is None:
                return
            envs[container["name"]] = env
        if runtime.deleting.is_set():
            return
        started = now_rfc3339()
        results: dict[str, _Result] = {}
        waiters = []
        for container in containers:
            name = container["name"]
            buffer = runtime.logs[name] = LogBuffer()
            if not container.get("command") and not container.get("args"):
                buffer.started = True  # the image's own entrypoint is unknown here: it "runs" and ends at once
                results[name] = (0, started, started, "")
                continue
            process = await self._start(runtime, container, envs[name], buffer)
            if isinstance(process, str):
                results[name] = (128, started, now_rfc3339(), process)
                continue
            waiters.append(self._wait_for(runtime, process, buffer, name, started, results, len(containers)))
        running = {c["name"] for c in containers} - set(results)
        self._write(runtime, lambda p: _running(p, started, running, results))
        await asyncio.gather(*waiters)
        self._write(runtime, lambda p: _finished(p, results, runtime.killed))

    async def _wait_for(
        self,
        runtime: _PodRuntime,
        process: asyncio.subprocess.Process,
        buffer: LogBuffer,
        name: str,
        started: str,
        results: dict[str, _Result],
        count: int,
    ) -> None:
        code = await _collect(process, buffer)
        results[name] = (code, started, now_rfc3339(), "")
        if len(results) < count:  # others still run: this one's end shows at once, as the node reports it
            self._write(runtime, lambda p: _container_ended(p, name, results[name], runtime.killed))

    async def _prepare(self, runtime: _PodRuntime, container: dict[str, Any]) -> dict[str, str] | None:
        """Pull the image and resolve the declared env; None if either fails (the pod waits then, as on a node)."""
        name, image = container["name"], container.get("image", "")
        if not _IMAGE_REFERENCE.match(image):
            message = (
                f'Failed to apply default image tag "{image}": '
                f'couldn\'t parse image name "{image}": invalid reference format'
            )
            self._write(runtime, _waiting(name, "InvalidImageName", message))
            await runtime.deleting.wait()
            return None
        if self.config.image_pull_failure and re.search(self.config.image_pull_failure, image):
            await self._fail_to_pull(runtime, name, image)
            return None
        pod = self.store.find("pods", *runtime.key)
        if pod is None:
            return None
        declared, problem = self._container_env(pod, container)
        if problem:
            self._write(runtime, _waiting(name, "CreateContainerConfigError", problem))
            await runtime.deleting.wait()
            return None
        return declared

    async def _start(
        self, runtime: _PodRuntime, container: dict[str, Any], declared: dict[str, str], buffer: LogBuffer
    ) -> asyncio.subprocess.Process | str:
        """Start the container's process; or say, as containerd would, why it could not start.

        ``declared`` is the env the pod declares (and the service variables): what ``$(VAR)`` in
        command and args may refer to. The process gets it over the base env, as an image's ENV.
        """
        words = list(container.get("command") or []) + list(container.get("args") or [])
        argv = [expand(str(word), declared) for word in words]
        env = self._base_env()
        env["HOSTNAME"] = runtime.key[1]
        env.update(declared)
        buffer.started = True
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                env=env,
                cwd=self._working_dir(runtime.key, container),
                start_new_session=True,
            )
        except OSError as error:
            return _start_failure(argv[0], error)
        runtime.processes.append(process)
        if runtime.killed:  # the pod was deleted while this process was being started
            _kill([process], signal.SIGKILL)
        return process

    async def _terminate_on_delete(self, runtime: _PodRuntime) -> None:
        """SIGTERM at the deletion, SIGKILL when its grace period is over (at once if the pod is gone).

        A second delete with a shorter grace period, or a forced one, shortens the wait, as on a node.
        """
        await runtime.deleting.wait()
        loop = asyncio.get_running_loop()
        began = loop.time()
        runtime.killed = True
        _kill(runtime.processes, signal.SIGTERM)
        alive = {asyncio.ensure_future(p.wait()) for p in runtime.processes if p.returncode is None}
        try:
            while alive:
                remaining = began + self._grace(runtime) - loop.time()
                if remaining <= 0:
                    break
                runtime.regrace.clear()
                regrace = asyncio.ensure_future(runtime.regrace.wait())
                await asyncio.wait({*alive, regrace}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                regrace.cancel()
                alive = {waiter for waiter in alive if not waiter.done()}
        finally:
            for waiter in alive:
                waiter.cancel()
        _kill(runtime.processes, signal.SIGKILL)

    def _grace(self, runtime: _PodRuntime) -> int:
        pod = self.store.find("pods", *runtime.key)
        if pod is None or pod["metadata"].get("uid") != runtime.uid:
            return 0
        return int(pod["metadata"].get("deletionGracePeriodSeconds") or 0)

    async def _fail_to_pull(self, runtime: _PodRuntime, name: str, image: str) -> None:
        pull_error = (
            f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": '
            f'failed to resolve reference "{image}": not found'
        )
        while True:
            self._write(runtime, _waiting(name, "ErrImagePull", pull_error))
            if await _wait_or(runtime.deleting, self.config.image_pull_backoff):
                return
            self._write(runtime, _waiting(name, "ImagePullBackOff", f'Back-off pulling image "{image}"'))
            if await _wait_or(runtime.deleting, self.config.image_pull_backoff):
                return

    def _base_env(self) -> dict[str, str]:
        base = self.config.base_env
        return dict(base) if base is not None else {k: os.environ[k] for k in _INHERITED_ENV if k in os.environ}

    def _container_env(self, pod: dict[str, Any], container: dict[str, Any]) -> tuple[dict[str, str], str]:
        """The env a container declares, resolved as the kubelet does: envFrom, then env in order, ``$(VAR)`` expanded.

        A reference to a Secret or ConfigMap (this API serves neither) is the node's
        CreateContainerConfigError, unless it is optional; then it adds nothing.
        """
        declared: dict[str, str] = {}
        if self.api_host:
            declared["KUBERNETES_SERVICE_HOST"] = self.api_host
            declared["KUBERNETES_SERVICE_PORT"] = str(self.api_port)
        for source in container.get("envFrom") or []:
            for ref_kind, noun in (("secretRef", "secret"), ("configMapRef", "configmap")):
                ref = source.get(ref_kind)
                if ref is not None and not ref.get("optional"):
                    return {}, f'{noun} "{ref.get("name", "")}" not found'
        for item in container.get("env") or []:
            source = item.get("valueFrom")
            if source is None:
                declared[item["name"]] = expand(str(item.get("value") or ""), declared)
                continue
            if "fieldRef" in source:
                declared[item["name"]] = _field_ref(pod, source["fieldRef"].get("fieldPath", ""))
                continue
            for ref_kind, noun in (("secretKeyRef", "secret"), ("configMapKeyRef", "configmap")):
                ref = source.get(ref_kind)
                if ref is not None and not ref.get("optional"):
                    return {}, f'{noun} "{ref.get("name", "")}" not found'
        return declared, ""

    def _working_dir(self, key: Key, container: dict[str, Any]) -> str:
        wanted = container.get("workingDir")
        if wanted and os.path.isdir(wanted):
            return str(wanted)
        folder = self._workdir / key[0] / key[1] / container["name"]
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder)

    def _write(self, runtime: _PodRuntime, mutate: Callable[[dict[str, Any]], None]) -> bool:
        """Write what the node knows into its pod, as a new revision; False if that pod is gone.

        Only the pod with this runtime's UID: a new pod that took the name is not this one.
        """
        pod = self.store.find("pods", *runtime.key)
        if pod is None or pod["metadata"].get("uid") != runtime.uid:
            return False
        updated = copy.deepcopy(pod)
        mutate(updated)
        if updated != pod:
            self.store.update("pods", updated)
        return True


async def _collect(process: asyncio.subprocess.Process, buffer: LogBuffer) -> int:
    """Read the process's output into its log until it ends; its exit code as a container reports it.

    The container ends when its main process does: what that process left behind (a background
    child, which may still hold the output pipe) dies with it, as a PID namespace's last members do.
    """
    assert process.stdout is not None
    reader = asyncio.ensure_future(_read_lines(process.stdout, buffer))
    # Process.wait() also waits for the pipes to close, so the main process's exit is watched by itself.
    while process.returncode is None and not reader.done():
        await asyncio.wait({reader}, timeout=_EXIT_POLL)
    code = await process.wait() if process.returncode is None else process.returncode
    _kill([process], signal.SIGKILL)
    await reader
    await process.wait()
    # A process killed by signal N ends, in a container, with exit code 128 + N.
    return 128 - code if code < 0 else code


async def _read_lines(stream: asyncio.StreamReader, buffer: LogBuffer) -> None:
    """Lines of any length (StreamReader.readline stops at 64 KiB); a last line without newline too."""
    pending = bytearray()
    while chunk := await stream.read(_READ_SIZE):
        pending += chunk
        end = pending.rfind(b"\n")
        if end == -1:
            continue
        complete, pending = bytes(pending[: end + 1]), pending[end + 1 :]
        for line in complete.splitlines(keepends=True):
            buffer.append(line)
    if pending:
        buffer.append(bytes(pending))


def expand(text: str, variables: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion (k8s.io/kubernetes/third_party/forked/golang/expansion).

    ``$(NAME)`` becomes the variable's value when it is defined, and stays as written otherwise;
    ``$$`` is an escaped ``$``. The kubelet applies it to env values, command and args.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$" or i + 1 >= len(text):
            out.append(char)
            i += 1
            continue
        following = text[i + 1]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "(":
            close = text.find(")", i + 2)
            if close == -1:
                out.append("$(")
                i += 2
            else:
                name = text[i + 2 : close]
                out.append(variables.get(name, f"$({name})"))
                i = close + 1
        else:
            out.append("$" + following)
            i += 2
    return "".join(out)


def _container_id() -> str:
    return f"containerd://{uuid.uuid4().hex}{uuid.uuid4().hex}"  # 64 hex digits, as containerd's


def _start_failure(program: str, error: OSError) -> str:
    why = "executable file not found in $PATH" if error.errno == errno.ENOENT else (error.strerror or str(error))
    return (
        "failed to create containerd task: failed to create shim task: OCI runtime create failed: "
        f'runc create failed: unable to start container process: exec: "{program}": {why}: unknown'
    )


async def _wait_or(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds``; True if the event came first."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except asyncio.TimeoutError:
        return False
    return True


def _kill(processes: list[asyncio.subprocess.Process], sig: signal.Signals) -> None:
    """Signal each container's whole process group, its main process gone or not (its children may not be)."""
    for process in processes:
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
        "status.podIPs": ",".join(ip["ip"] for ip in status.get("podIPs") or []),
        "status.hostIP": status.get("hostIP", ""),
        "status.hostIPs": ",".join(ip["ip"] for ip in status.get("hostIPs") or []),
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
    init_containers = pod["spec"].get("initContainers") or []
    # The kubelet's default waiting reason: PodInitializing while a pod has init containers to run.
    waiting = {"waiting": {"reason": "PodInitializing" if init_containers else "ContainerCreating"}}
    if init_containers:
        status["initContainerStatuses"] = [_container_status(c, copy.deepcopy(waiting)) for c in init_containers]
    status["containerStatuses"] = [_container_status(c, copy.deepcopy(waiting)) for c in pod["spec"]["containers"]]
    unready = f"containers with unready status: [{_names(pod['spec']['containers'])}]"
    _set_conditions(
        pod,
        _condition("PodReadyToStartContainers", "False"),
        _condition("Initialized", "False", "ContainersNotInitialized", _incomplete(init_containers))
        if init_containers
        else _condition("Initialized", "True"),
        _condition("Ready", "False", "ContainersNotReady", unready),
        _condition("ContainersReady", "False", "ContainersNotReady", unready),
        _condition("PodScheduled", "True"),
    )


def _names(containers: list[dict[str, Any]]) -> str:
    return " ".join(c["name"] for c in containers)


def _incomplete(containers: list[dict[str, Any]]) -> str:
    return f"containers with incomplete status: [{_names(containers)}]"


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


def _statuses(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return list(pod["status"].get("initContainerStatuses") or []) + list(pod["status"].get("containerStatuses") or [])


def _waiting(name: str, reason: str, message: str) -> Callable[[dict[str, Any]], None]:
    def mutate(pod: dict[str, Any]) -> None:
        for status in _statuses(pod):
            if status["name"] == name:
                status["state"] = {"waiting": {"reason": reason, "message": message}}

    return mutate


def _terminated(status: dict[str, Any], result: _Result, killed: bool) -> None:
    """Write a container's end into its status: exit code, reason, times (StartError if it never started)."""
    code, started, finished, message = result
    container_id = status.get("containerID") or _container_id()
    if message:
        state = {
            "exitCode": code,
            "reason": "StartError",
            "message": message,
            "startedAt": "1970-01-01T00:00:00Z",  # what containerd reports for a task that never started
            "finishedAt": finished,
            "containerID": container_id,
        }
    else:
        # Exit 137 that no deletion caused stands for the OOM killer: locally, a SIGKILL from anywhere.
        reason = "Completed" if code == 0 else "OOMKilled" if code == 137 and not killed else "Error"
        state = {
            "exitCode": code,
            "reason": reason,
            "startedAt": started,
            "finishedAt": finished,
            "containerID": container_id,
        }
    status.update({"state": {"terminated": state}, "ready": False, "started": False, "containerID": container_id})


def _init_running(pod: dict[str, Any], name: str, started: str) -> None:
    for status in pod["status"].get("initContainerStatuses") or []:
        if status["name"] == name:
            status.update(
                {
                    "state": {"running": {"startedAt": started}},
                    "started": True,
                    "containerID": _container_id(),
                }
            )
    _set_conditions(pod, _condition("PodReadyToStartContainers", "True"))


def _init_ended(pod: dict[str, Any], name: str, result: _Result, killed: bool) -> None:
    """An init container's end: the next step may go on, or (it failed: restarts are not reproduced) the pod fails."""
    init_containers = pod["spec"].get("initContainers") or []
    statuses = pod["status"].get("initContainerStatuses") or []
    for status in statuses:
        if status["name"] == name:
            _terminated(status, result, killed)
            status["ready"] = result[0] == 0 and not result[3]
    done = {s["name"] for s in statuses if s.get("ready")}
    incomplete = [c for c in init_containers if c["name"] not in done]
    if not incomplete:
        _set_conditions(pod, _condition("Initialized", "True"))
        return
    _set_conditions(pod, _condition("Initialized", "False", "ContainersNotInitialized", _incomplete(incomplete)))
    if result[0] != 0 or result[3]:
        pod["status"]["phase"] = "Failed"
        _set_conditions(
            pod,
            _condition("PodReadyToStartContainers", "False"),
            _condition("Ready", "False", "PodCompleted"),
            _condition("ContainersReady", "False", "PodCompleted"),
        )


def _readiness(pod: dict[str, Any]) -> None:
    """Ready and ContainersReady from the containers' own ready flags."""
    containers = pod["spec"]["containers"]
    ready = {s["name"]: s.get("ready") for s in pod["status"].get("containerStatuses") or []}
    unready = [c for c in containers if not ready.get(c["name"])]
    if not unready:
        _set_conditions(pod, _condition("Ready", "True"), _condition("ContainersReady", "True"))
        return
    message = f"containers with unready status: [{_names(unready)}]"
    _set_conditions(
        pod,
        _condition("Ready", "False", "ContainersNotReady", message),
        _condition("ContainersReady", "False", "ContainersNotReady", message),
    )


def _running(pod: dict[str, Any], started: str, running: set[str], ended: dict[str, _Result]) -> None:
    if pod["status"].get("phase") in TERMINAL_PHASES or not running:
        return
    pod["status"]["phase"] = "Running"
    for status in pod["status"].get("containerStatuses") or []:
        if status["name"] in running:
            status.update(
                {
                    "state": {"running": {"startedAt": started}},
                    "ready": True,
                    "started": True,
                    "containerID": _container_id(),
                }
            )
        elif status["name"] in ended:
            _terminated(status, ended[status["name"]], False)
    _set_conditions(pod, _condition("PodReadyToStartContainers", "True"))
    _readiness(pod)


def _container_ended(pod: dict[str, Any], name: str, result: _Result, killed: bool) -> None:
    for status in pod["status"].get("containerStatuses") or []:
        if status["name"] == name:
            _terminated(status, result, killed)
    _readiness(pod)


def _finished(pod: dict[str, Any], results: dict[str, _Result], killed: bool) -> None:
    failed = False
    for status in pod["status"].get("containerStatuses") or []:
        result = results.get(status["name"])
        if result is None:
            continue
        _terminated(status, result, killed)
        failed = failed or result[0] != 0 or bool(result[3])
    pod["status"]["phase"] = "Failed" if failed else "Succeeded"
    _set_conditions(
        pod,
        _condition("PodReadyToStartContainers", "False"),
        _condition("Ready", "False", "PodCompleted"),
        _condition("ContainersReady", "False", "PodCompleted"),
    )

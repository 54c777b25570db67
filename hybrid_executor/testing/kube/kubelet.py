"""A local kubelet (and scheduler): runs each pod's containers as processes on this machine.

It moves pods through the phases a real node does — scheduled (or Unschedulable when the node
is full), init containers one by one, ContainerCreating, Running, Succeeded/Failed — and writes
each step into the pod as ``podstatus`` words it; ``containerstart`` says what each container
runs with. Images that match a configured pattern never pull (ErrImagePull, then
ImagePullBackOff); malformed image names are InvalidImageName. Deleting a running pod sends
SIGTERM to each container's process group, then SIGKILL when the grace period ends (sooner if a
later delete shortens it), then removes the object. A container ends with its main process: what
it left running is killed, as a container's PID namespace goes with its first process.
The node's allocatable (what the Downward API reads for a limit a container has not set) is this
machine's: its CPUs, its MemTotal and the size of the filesystem the kubelet's root is on, as
the capacity a kubelet with no reservations and no eviction thresholds would offer.
Every container runs once: restartPolicy Always/OnFailure restarts are not reproduced, so a
failing container (or init container) fails the pod whatever its restartPolicy.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import re
import shutil
import signal
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybrid_executor.testing.kube.cluster import Cluster
from hybrid_executor.testing.kube.containerstart import (
    base_env,
    declared_env,
    expand,
    image_name_problem,
    pod_hostname,
    process_env,
    start_failure_message,
    working_dir,
)
from hybrid_executor.testing.kube.errors import ApiError
from hybrid_executor.testing.kube.podlogs import LogBuffer, read_lines
from hybrid_executor.testing.kube.podstatus import (
    ContainerResult,
    bind_to_node,
    container_ended,
    container_waiting,
    containers_started,
    init_container_ended,
    init_container_running,
    mark_unschedulable,
    pod_finished,
)
from hybrid_executor.testing.kube.store import Change, Key, now_rfc3339

_EXIT_POLL = 0.05  # seconds between looks at whether a container's main process has ended


@dataclass
class KubeletConfig:
    node_name: str = "local-node"
    capacity: int | None = None  # pods that may run at once; None for no limit
    image_pull_failure: str | None = None  # a regex: matching images never pull
    image_pull_backoff: float = 1.0  # seconds between ErrImagePull and ImagePullBackOff
    start_delay: float = 0.0  # seconds a pod spends in ContainerCreating
    base_env: dict[str, str] | None = None  # every container's starting env; default: PATH, HOME, ...
    workdir_root: str | None = None  # where containers without an existing workingDir run
    # The node's allocatable (a ResourceList: {"cpu": "8", "memory": "16Gi", ...}); default: this machine's.
    allocatable: dict[str, str] | None = None


@dataclass
class _PodRuntime:
    key: Key
    uid: str
    hostname: str = ""  # the pod's, as the kubelet generates it: every container's HOSTNAME
    deleting: asyncio.Event = field(default_factory=asyncio.Event)
    deleted: asyncio.Event = field(default_factory=asyncio.Event)
    regrace: asyncio.Event = field(default_factory=asyncio.Event)  # the deletion changed: a shorter grace, or gone
    logs: dict[str, LogBuffer] = field(default_factory=dict)
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)
    # Container processes forked but not yet handed back (asyncio connects their pipes first): a
    # deletion or the node's stop waits for them, so that none escapes its signal.
    creating: set[asyncio.Future[asyncio.subprocess.Process]] = field(default_factory=set)
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
        configured = self.config.allocatable
        self.allocatable = dict(configured) if configured is not None else node_allocatable(self._workdir)
        self._stopping = False
        self.store.add_listener(self._on_change)

    # --- what the API server asks of it ------------------------------------------------

    def logs(self, namespace: str, name: str, container: str) -> LogBuffer | None:
        runtime = self._pods.get((namespace, name))
        return runtime.logs.get(container) if runtime else None

    async def stop(self) -> None:
        """Kill every container's processes, as a node that goes down does, and wait until they are gone."""
        self._stopping = True
        runtimes = list(self._pods.values())
        await _handed_over([future for runtime in runtimes for future in runtime.creating])
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
            return self._write(runtime, lambda pod: bind_to_node(pod, self.config.node_name, self._new_ip()))
        self._waiting.append(runtime.key)
        marked = False
        try:
            # The capacity is read afresh each time: set_capacity() may change it while pods wait.
            while not self._has_room_for(runtime.key):
                if not marked:
                    self._write(runtime, mark_unschedulable)
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
        return self._write(runtime, lambda pod: bind_to_node(pod, self.config.node_name, self._new_ip()))

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
        runtime.hostname = pod_hostname(pod)
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
            self._write(runtime, lambda p: init_container_ended(p, name, (0, started, started, ""), False))
            return not runtime.deleting.is_set()
        process = await self._start(runtime, container, env, buffer)
        if isinstance(process, str):
            self._write(runtime, lambda p: init_container_ended(p, name, (128, started, now_rfc3339(), process), False))
            return False
        self._write(runtime, lambda p: init_container_running(p, name, started))
        code = await _collect(process, buffer)
        result = (code, started, now_rfc3339(), "")
        self._write(runtime, lambda p: init_container_ended(p, name, result, runtime.killed))
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
        results: dict[str, ContainerResult] = {}
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
        self._write(runtime, lambda p: containers_started(p, started, running, results))
        await asyncio.gather(*waiters)
        self._write(runtime, lambda p: pod_finished(p, results, runtime.killed))

    async def _wait_for(
        self,
        runtime: _PodRuntime,
        process: asyncio.subprocess.Process,
        buffer: LogBuffer,
        name: str,
        started: str,
        results: dict[str, ContainerResult],
        count: int,
    ) -> None:
        code = await _collect(process, buffer)
        results[name] = (code, started, now_rfc3339(), "")
        if len(results) < count:  # others still run: this one's end shows at once, as the node reports it
            self._write(runtime, lambda p: container_ended(p, name, results[name], runtime.killed))

    async def _prepare(self, runtime: _PodRuntime, container: dict[str, Any]) -> dict[str, str] | None:
        """Pull the image and resolve the declared env; None if either fails (the pod waits then, as on a node)."""
        name, image = container["name"], container.get("image", "")
        problem = image_name_problem(image)
        if problem:
            self._write(runtime, container_waiting(name, "InvalidImageName", problem))
            await runtime.deleting.wait()
            return None
        if self.config.image_pull_failure and re.search(self.config.image_pull_failure, image):
            await self._fail_to_pull(runtime, name, image)
            return None
        pod = self.store.find("pods", *runtime.key)
        if pod is None:
            return None
        declared, problem = declared_env(pod, container, self.api_host, self.api_port, self.allocatable)
        if problem:
            self._write(runtime, container_waiting(name, "CreateContainerConfigError", problem))
            await runtime.deleting.wait()
            return None
        return declared

    async def _start(
        self, runtime: _PodRuntime, container: dict[str, Any], declared: dict[str, str], buffer: LogBuffer
    ) -> asyncio.subprocess.Process | str:
        """Start the container's process; or say, as containerd would, why it could not start.

        ``declared`` is the env the pod declares (and the service variables): what ``$(VAR)`` in
        command and args may refer to. The process gets it over the base env (as an image's ENV),
        which is over the pod's ``HOSTNAME``, as containerd puts them.
        """
        words = list(container.get("command") or []) + list(container.get("args") or [])
        argv = [expand(str(word), declared) for word in words]
        env = process_env(base_env(self.config.base_env), runtime.hostname, declared)
        buffer.started = True
        if self._stopping:
            return "the node is shutting down"
        creating = asyncio.ensure_future(
            asyncio.create_subprocess_exec(
                *argv,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                env=env,
                cwd=working_dir(self._workdir, runtime.key, container),
                start_new_session=True,
            )
        )
        runtime.creating.add(creating)
        creating.add_done_callback(runtime.creating.discard)
        try:
            # Shielded: a start cancelled halfway still yields its process, which is then killed
            # (cancelling the creation itself would kill only the main process, not its group).
            process = await asyncio.shield(creating)
        except OSError as error:
            return start_failure_message(argv[0], error)
        except asyncio.CancelledError:
            creating.add_done_callback(_kill_when_created)
            raise
        runtime.processes.append(process)
        if runtime.killed or self._stopping:  # deleted, or the node stopping, while it was being started
            _kill([process], signal.SIGKILL)
        return process

    async def _terminate_on_delete(self, runtime: _PodRuntime) -> None:
        """SIGTERM at the deletion, SIGKILL when its grace period is over (at once if the pod is gone).

        A second delete with a shorter grace period, or a forced one, shortens the wait, as on a node.
        """
        await runtime.deleting.wait()
        loop = asyncio.get_running_loop()
        began = loop.time()
        await _handed_over(list(runtime.creating))
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
            self._write(runtime, container_waiting(name, "ErrImagePull", pull_error))
            if await _wait_or(runtime.deleting, self.config.image_pull_backoff):
                return
            self._write(runtime, container_waiting(name, "ImagePullBackOff", f'Back-off pulling image "{image}"'))
            if await _wait_or(runtime.deleting, self.config.image_pull_backoff):
                return

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


def node_allocatable(root: Path) -> dict[str, str]:
    """This machine as a node's allocatable: cpu (its CPUs), memory (MemTotal), ephemeral-storage (root's filesystem).

    A resource that cannot be measured is left out, as a node that does not report it: a limit
    of it that a container has not set then reads as 0.
    """
    allocatable = {"cpu": str(os.cpu_count() or 1)}
    memory = _mem_total()
    if memory:
        allocatable["memory"] = memory
    with contextlib.suppress(OSError):
        allocatable["ephemeral-storage"] = str(shutil.disk_usage(root).total)
    return allocatable


def _mem_total() -> str:
    """MemTotal, as cAdvisor reads the machine's memory capacity; sysconf's count of pages if there is no /proc."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1])}Ki"
    with contextlib.suppress(OSError, ValueError, AttributeError):
        return str(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return ""


async def _collect(process: asyncio.subprocess.Process, buffer: LogBuffer) -> int:
    """Read the process's output into its log until it ends; its exit code as a container reports it.

    The container ends when its main process does: what that process left behind (a background
    child, which may still hold the output pipe) dies with it, as a PID namespace's last members do.
    """
    assert process.stdout is not None
    reader = asyncio.ensure_future(read_lines(process.stdout, buffer))
    # Process.wait() also waits for the pipes to close, so the main process's exit is watched by itself.
    while process.returncode is None and not reader.done():
        await asyncio.wait({reader}, timeout=_EXIT_POLL)
    code = await process.wait() if process.returncode is None else process.returncode
    _kill([process], signal.SIGKILL)
    await reader
    await process.wait()
    # A process killed by signal N ends, in a container, with exit code 128 + N.
    return 128 - code if code < 0 else code


async def _wait_or(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds``; True if the event came first."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except asyncio.TimeoutError:
        return False
    return True


async def _handed_over(creating: list[asyncio.Future[asyncio.subprocess.Process]]) -> None:
    """Return once these container starts have finished and their starters recorded the processes."""
    if creating:
        await asyncio.wait(creating, timeout=5)
        await asyncio.sleep(0)  # each starter was woken before us: it has appended its process now


def _kill_when_created(creating: asyncio.Future[asyncio.subprocess.Process]) -> None:
    if not creating.cancelled() and creating.exception() is None:
        _kill([creating.result()], signal.SIGKILL)


def _kill(processes: list[asyncio.subprocess.Process], sig: signal.Signals) -> None:
    """Signal each container's whole process group, its main process gone or not (its children may not be)."""
    for process in processes:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)

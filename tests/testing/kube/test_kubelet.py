"""The local kubelet, seen as the executor sees a real node: through the official client, over HTTP.

Every test starts its own local API with a kubelet; a pod's command runs as a local process
(``sh -c ...``), and what the node reports is read back with ``CoreV1Api`` and ``Watch``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from hybrid_executor.testing.kube import KubeletConfig, LocalKubeAPI

NAMESPACE = "default"
IMAGE = "busybox:1.36"

Kube = tuple[LocalKubeAPI, client.CoreV1Api]
Event = tuple[str, dict[str, Any]]


@pytest.fixture
def start() -> Iterator[Callable[..., Kube]]:
    """Start a local API whose kubelet has the given KubeletConfig fields; stopped after the test."""
    servers: list[tuple[LocalKubeAPI, client.ApiClient]] = []

    def start(**config: Any) -> Kube:
        api = LocalKubeAPI(kubelet=KubeletConfig(**config)).start()
        api_client = api.api_client()
        servers.append((api, api_client))
        return api, client.CoreV1Api(api_client)

    yield start
    for api, api_client in servers:
        api_client.close()
        api.stop()


@pytest.fixture
def kube(start: Callable[..., Kube]) -> Kube:
    return start()


@pytest.fixture
def v1(kube: Kube) -> client.CoreV1Api:
    return kube[1]


# --- helpers -----------------------------------------------------------------------------------


def pod_body(
    name: str,
    script: str,
    *,
    image: str = IMAGE,
    env: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": image, "command": ["sh", "-c", script]}
    if env:
        container["env"] = env
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def create(v1: client.CoreV1Api, body: dict[str, Any]) -> str:
    """Create the pod; the resourceVersion of its creation, to watch it from."""
    created = v1.create_namespaced_pod(NAMESPACE, body)
    return str(created.metadata.resource_version)


def watch_pod(
    v1: client.CoreV1Api, name: str, since: str, until: Callable[[str, dict[str, Any]], bool], timeout: int = 10
) -> list[Event]:
    """Every watch event of one pod after ``since``, up to the first for which ``until(type, pod)`` holds."""
    events: list[Event] = []
    stream = watch.Watch()
    for event in stream.stream(
        v1.list_namespaced_pod,
        NAMESPACE,
        field_selector=f"metadata.name={name}",
        resource_version=since,
        timeout_seconds=timeout,
    ):
        events.append((event["type"], event["raw_object"]))
        if until(event["type"], event["raw_object"]):
            stream.stop()
            return events
    pytest.fail(f"pod {name}: the awaited event did not come in {timeout}s; saw {summary(events)}")


def created_and_watched(
    v1: client.CoreV1Api, body: dict[str, Any], until: Callable[[str, dict[str, Any]], bool]
) -> list[Event]:
    """The pod's ADDED event (the creation) and every event after it, up to ``until``."""
    since = v1.list_namespaced_pod(NAMESPACE).metadata.resource_version
    v1.create_namespaced_pod(NAMESPACE, body)
    return watch_pod(v1, body["metadata"]["name"], since, until)


def finished(kind: str, pod: dict[str, Any]) -> bool:
    return phase(pod) in ("Succeeded", "Failed")


def phase(pod: dict[str, Any]) -> str:
    return str(pod.get("status", {}).get("phase", ""))


def state(pod: dict[str, Any], index: int = 0) -> dict[str, Any]:
    statuses = pod["status"].get("containerStatuses") or []
    return dict(statuses[index]["state"]) if statuses else {}


def conditions(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in pod["status"].get("conditions") or []}


def summary(events: list[Event]) -> list[str]:
    return [f"{kind} {phase(pod)} {list(state(pod))}" for kind, pod in events]


def wait_for(what: Callable[[], Any], timeout: float = 10.0, message: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(message or f"not true within {timeout}s")
        time.sleep(0.02)


def read_phase(v1: client.CoreV1Api, name: str) -> str:
    return str(v1.read_namespaced_pod(name, NAMESPACE).status.phase)


def wait_phase(v1: client.CoreV1Api, name: str, *phases: str, timeout: float = 10.0) -> client.V1Pod:
    wait_for(lambda: read_phase(v1, name) in phases, timeout, f"pod {name} never reached {phases}")
    return v1.read_namespaced_pod(name, NAMESPACE)


def log(v1: client.CoreV1Api, name: str, **options: Any) -> str:
    # Without _preload_content=False, client v36 hands back the repr of the bytes ("b'...'"), against
    # any server: kubernetes-client/python#2596. Airflow's KubernetesExecutor reads logs this way too.
    response = v1.read_namespaced_pod_log(name, NAMESPACE, _preload_content=False, **options)
    return bytes(response.data).decode()


def timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def alive(pid: int) -> bool:
    """Whether the process still runs (a zombie waiting for its parent to reap it has ended)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def pids_from(path: Path) -> list[int]:
    wait_for(path.exists, message=f"the pod never wrote {path}")
    return [int(word) for word in path.read_text().split()]


# A command that runs a child and reports both pids: "<shell> <child>" to $PIDS, written at once.
# ("$$$$" is the shell's "$$": the kubelet turns "$$" in a command into "$".)
SLEEPER = 'sleep 60 & echo $$$$ $! > "$PIDS.tmp" && mv "$PIDS.tmp" "$PIDS"; echo started; wait'


def pids_env(path: Path) -> list[dict[str, Any]]:
    return [{"name": "PIDS", "value": str(path)}]


# --- phases and status --------------------------------------------------------------------------


def test_a_pod_that_exits_0_goes_pending_running_succeeded_with_the_status_a_kubelet_writes(
    v1: client.CoreV1Api,
) -> None:
    events = created_and_watched(v1, pod_body("ok", "echo hello; exit 0"), finished)

    phases = [phase(pod) for _, pod in events]
    assert [kind for kind, _ in events] == ["ADDED"] + ["MODIFIED"] * (len(events) - 1)
    assert sorted(set(phases), key=phases.index) == ["Pending", "Running", "Succeeded"]
    assert phases == sorted(phases, key=["Pending", "Running", "Succeeded"].index)

    added = events[0][1]
    assert added["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    assert "nodeName" not in added["spec"]

    creating = next(pod for _, pod in events if state(pod).get("waiting"))
    assert phase(creating) == "Pending"
    assert creating["spec"]["nodeName"] == "local-node"
    assert state(creating) == {"waiting": {"reason": "ContainerCreating"}}
    assert creating["status"]["podIP"]
    assert creating["status"]["hostIP"] == "127.0.0.1"
    assert creating["status"]["startTime"]
    pending_conditions = conditions(creating)
    assert pending_conditions["PodScheduled"]["status"] == "True"
    assert pending_conditions["Initialized"]["status"] == "True"
    for kind in ("Ready", "ContainersReady"):
        assert pending_conditions[kind]["status"] == "False"
        assert pending_conditions[kind]["reason"] == "ContainersNotReady"
        assert pending_conditions[kind]["message"] == "containers with unready status: [main]"

    running = next(pod for _, pod in events if phase(pod) == "Running")
    assert timestamp(state(running)["running"]["startedAt"])
    main = running["status"]["containerStatuses"][0]
    assert main["ready"] is True
    assert main["started"] is True
    assert main["restartCount"] == 0
    assert main["containerID"].startswith("containerd://")
    assert {kind: c["status"] for kind, c in conditions(running).items()} == {
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "Ready": "True",
        "ContainersReady": "True",
        "PodScheduled": "True",
    }

    done = events[-1][1]
    terminated = state(done)["terminated"]
    assert terminated["exitCode"] == 0
    assert terminated["reason"] == "Completed"
    assert timestamp(terminated["startedAt"]) <= timestamp(terminated["finishedAt"])
    assert terminated["containerID"] == main["containerID"]
    assert done["status"]["containerStatuses"][0]["ready"] is False
    final = conditions(done)
    assert final["PodScheduled"]["status"] == "True"
    assert final["Initialized"]["status"] == "True"
    for kind in ("Ready", "ContainersReady"):
        assert (final[kind]["status"], final[kind]["reason"]) == ("False", "PodCompleted")

    # The typed client reads the same status back.
    typed = v1.read_namespaced_pod("ok", NAMESPACE)
    assert typed.status.phase == "Succeeded"
    assert typed.status.container_statuses[0].state.terminated.exit_code == 0
    assert isinstance(typed.status.container_statuses[0].state.terminated.finished_at, datetime)


@pytest.mark.parametrize(
    ("script", "code", "reason"),
    [
        ("echo failing >&2; exit 3", 3, "Error"),
        # The kubelet reads "$$" in command and args as an escaped "$": "$$$$" reaches the shell as "$$".
        ("kill -9 $$$$", 137, "OOMKilled"),  # no cgroup here: a SIGKILL nobody asked for stands for the OOM killer
        ("kill -15 $$$$", 143, "Error"),
    ],
)
def test_a_failing_container_fails_the_pod_with_its_exit_code_and_reason(
    v1: client.CoreV1Api, script: str, code: int, reason: str
) -> None:
    events = created_and_watched(v1, pod_body("bad", script), finished)

    done = events[-1][1]
    assert phase(done) == "Failed"
    terminated = state(done)["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (code, reason)
    assert conditions(done)["Ready"]["reason"] == "PodCompleted"
    if code == 3:
        assert log(v1, "bad") == "failing\n"  # stderr is part of the log


def test_a_command_that_does_not_exist_is_a_start_error(v1: client.CoreV1Api) -> None:
    body = pod_body("missing", "")
    body["spec"]["containers"][0]["command"] = ["/no/such/program"]
    v1.create_namespaced_pod(NAMESPACE, body)

    pod = wait_phase(v1, "missing", "Failed")

    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (128, "StartError")
    assert 'exec: "/no/such/program": executable file not found in $PATH' in terminated.message


def test_a_container_ends_with_its_main_process_even_if_a_child_lingers(v1: client.CoreV1Api, tmp_path: Path) -> None:
    # The background sleep keeps the output pipe open; on a node it dies with the container's PID namespace.
    v1.create_namespaced_pod(
        NAMESPACE, pod_body("lingering", SLEEPER.replace("; wait", "; exit 0"), env=pids_env(tmp_path / "pids"))
    )

    pod = wait_phase(v1, "lingering", "Succeeded", "Failed", timeout=5)

    assert pod.status.phase == "Succeeded"
    assert log(v1, "lingering") == "started\n"
    wait_for(lambda: not any(alive(pid) for pid in pids_from(tmp_path / "pids")), 5, "the child outlived its container")


def test_init_containers_run_first_in_order_and_a_failing_one_fails_the_pod(
    v1: client.CoreV1Api, tmp_path: Path
) -> None:
    trail = tmp_path / "trail"
    body = pod_body("with-init", f"echo main >> {trail}")
    body["spec"]["initContainers"] = [
        {"name": "first", "image": IMAGE, "command": ["sh", "-c", f"echo first >> {trail}"]},
        {"name": "second", "image": IMAGE, "command": ["sh", "-c", f"echo second >> {trail}; echo init-log"]},
    ]
    events = created_and_watched(v1, body, finished)

    assert trail.read_text().split() == ["first", "second", "main"]
    scheduled = events[1][1]
    assert [s["state"] for s in scheduled["status"]["initContainerStatuses"]] == [
        {"waiting": {"reason": "PodInitializing"}}
    ] * 2
    assert state(scheduled) == {"waiting": {"reason": "PodInitializing"}}
    initialized = conditions(scheduled)["Initialized"]
    assert (initialized["status"], initialized["reason"]) == ("False", "ContainersNotInitialized")
    assert initialized["message"] == "containers with incomplete status: [first second]"
    init_running = [
        pod for _, pod in events if pod["status"].get("initContainerStatuses", [{}])[0].get("state", {}).get("running")
    ]
    assert init_running  # an init container's run shows, and the pod is Pending meanwhile
    assert {phase(pod) for pod in init_running} == {"Pending"}
    done = events[-1][1]
    assert phase(done) == "Succeeded"
    assert [s["state"]["terminated"]["reason"] for s in done["status"]["initContainerStatuses"]] == ["Completed"] * 2
    assert conditions(done)["Initialized"]["status"] == "True"
    assert log(v1, "with-init", container="second") == "init-log\n"

    failing = pod_body("init-fails", "echo never")
    failing["spec"]["initContainers"] = [{"name": "setup", "image": IMAGE, "command": ["sh", "-c", "exit 4"]}]
    pod = created_and_watched(v1, failing, finished)[-1][1]
    assert phase(pod) == "Failed"
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 4
    assert state(pod) == {"waiting": {"reason": "PodInitializing"}}
    assert conditions(pod)["Initialized"]["message"] == "containers with incomplete status: [setup]"


def test_args_alone_run_as_the_command_and_a_container_with_neither_just_ends(v1: client.CoreV1Api) -> None:
    body = pod_body("args-only", "")
    body["spec"]["containers"][0].pop("command")
    body["spec"]["containers"][0]["args"] = ["sh", "-c", "echo from args"]
    body["spec"]["initContainers"] = [{"name": "entrypoint-only", "image": IMAGE}]
    body["spec"]["containers"].append({"name": "entrypoint-too", "image": IMAGE})
    v1.create_namespaced_pod(NAMESPACE, body)

    pod = wait_phase(v1, "args-only", "Succeeded", "Failed")

    assert pod.status.phase == "Succeeded"
    assert log(v1, "args-only", container="main") == "from args\n"
    assert pod.status.init_container_statuses[0].state.terminated.reason == "Completed"
    assert [s.state.terminated.exit_code for s in pod.status.container_statuses] == [0, 0]


# --- environment ---------------------------------------------------------------------------------


def test_plain_env_values_and_field_refs_reach_the_process_and_nothing_else_of_the_host(
    v1: client.CoreV1Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOST_ONLY_SECRET", "must-not-leak")
    env = [
        {"name": "GREETING", "value": "hello world"},
        {"name": "EMPTY", "value": ""},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "COMPOSED", "value": "$(GREETING) from $(POD_NAME), $(UNDEFINED), $$(GREETING)"},
        {"name": "OPTIONAL", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k", "optional": True}}},
    ]
    script = (
        'echo "greeting=$GREETING"; echo "empty=[${EMPTY-unset}]"; echo "pod=$POD_NAME"; '
        'echo "namespace=$POD_NAMESPACE"; echo "app=$APP"; echo "composed=$COMPOSED"; '
        'echo "optional=${OPTIONAL-unset}"; echo "leak=${HOST_ONLY_SECRET-none}"; echo "hostname=$HOSTNAME"'
    )
    body = pod_body("env", script, env=env)
    body["metadata"]["labels"] = {"app": "airflow"}
    v1.create_namespaced_pod(NAMESPACE, body)

    wait_phase(v1, "env", "Succeeded")

    assert log(v1, "env").splitlines() == [
        "greeting=hello world",
        "empty=[]",
        "pod=env",
        "namespace=default",
        "app=airflow",
        "composed=hello world from env, $(UNDEFINED), $(GREETING)",
        "optional=unset",
        "leak=none",
        "hostname=env",
    ]


def test_command_and_args_expand_env_references_as_the_kubelet_does(v1: client.CoreV1Api) -> None:
    # So does a real node, to an Airflow workload's JSON in args too: "$$" in it reaches the task as "$".
    body = pod_body("expand", "")
    body["spec"]["containers"][0].update(
        command=["echo", "$(WHO)"], args=["$$(WHO)", "$(NOT_SET)", "cost: $$5"], env=[{"name": "WHO", "value": "me"}]
    )
    v1.create_namespaced_pod(NAMESPACE, body)

    wait_phase(v1, "expand", "Succeeded")

    assert log(v1, "expand") == "me $(WHO) $(NOT_SET) cost: $5\n"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            {"valueFrom": {"secretKeyRef": {"name": "db-credentials", "key": "password"}}},
            'secret "db-credentials" not found',
        ),
        ({"valueFrom": {"configMapKeyRef": {"name": "settings", "key": "level"}}}, 'configmap "settings" not found'),
    ],
)
def test_a_reference_to_a_secret_or_config_map_is_create_container_config_error(
    v1: client.CoreV1Api, source: dict[str, Any], message: str
) -> None:
    # This API serves no Secrets or ConfigMaps: a node would find none either, and the pod never starts.
    env = [{"name": "VALUE", **source}]
    events = created_and_watched(
        v1,
        pod_body("config-error", "echo never", env=env),
        lambda _, pod: bool(state(pod).get("waiting", {}).get("message")),
    )

    pod = events[-1][1]
    assert phase(pod) == "Pending"
    assert state(pod) == {"waiting": {"reason": "CreateContainerConfigError", "message": message}}
    time.sleep(0.2)
    assert read_phase(v1, "config-error") == "Pending"
    with pytest.raises(ApiException) as caught:
        v1.read_namespaced_pod_log("config-error", NAMESPACE)
    assert caught.value.status == 400
    assert "is waiting to start: CreateContainerConfigError" in caught.value.body
    # Deleting it removes it at once: nothing runs that needs a grace period.
    v1.delete_namespaced_pod("config-error", NAMESPACE)
    wait_for(lambda: not v1.list_namespaced_pod(NAMESPACE).items, 5, "the pod was not removed")


def test_env_from_a_secret_is_create_container_config_error_unless_optional(v1: client.CoreV1Api) -> None:
    required = pod_body("env-from", "echo never")
    required["spec"]["containers"][0]["envFrom"] = [{"secretRef": {"name": "bundle"}}]
    optional = pod_body("env-from-optional", "echo ran")
    optional["spec"]["containers"][0]["envFrom"] = [{"configMapRef": {"name": "bundle", "optional": True}}]
    v1.create_namespaced_pod(NAMESPACE, required)
    v1.create_namespaced_pod(NAMESPACE, optional)

    wait_phase(v1, "env-from-optional", "Succeeded")
    pod = v1.read_namespaced_pod("env-from", NAMESPACE)  # the kubelet got to it before the one created after
    assert pod.status.phase == "Pending"
    waiting = pod.status.container_statuses[0].state.waiting
    assert (waiting.reason, waiting.message) == ("CreateContainerConfigError", 'secret "bundle" not found')


# --- logs ---------------------------------------------------------------------------------------


def test_the_output_is_the_pod_log_whole_or_its_tail(v1: client.CoreV1Api) -> None:
    v1.create_namespaced_pod(NAMESPACE, pod_body("logs", "for i in 1 2 3 4 5; do echo line $i; done; printf partial"))
    wait_phase(v1, "logs", "Succeeded")

    assert log(v1, "logs") == "line 1\nline 2\nline 3\nline 4\nline 5\npartial"
    assert log(v1, "logs", tail_lines=2) == "line 5\npartial"
    assert log(v1, "logs", tail_lines=0) == ""
    assert log(v1, "logs", tail_lines=100) == log(v1, "logs")  # more than there are: all of them
    assert log(v1, "logs", container="main", limit_bytes=9) == "line 1\nli"
    stamped = log(v1, "logs", timestamps=True).splitlines()
    assert len(stamped) == 6
    moment, text = stamped[0].split(" ", 1)
    assert text == "line 1"
    assert moment.endswith("Z")
    assert timestamp(moment)
    assert log(v1, "logs", since_seconds=60).startswith("line 1\n")


def test_log_requests_the_server_refuses(kube: Kube) -> None:
    _api, v1 = kube
    v1.create_namespaced_pod(NAMESPACE, pod_body("refused", "echo x"))
    wait_phase(v1, "refused", "Succeeded")

    for options, code, words in [
        ({"container": "other"}, 400, "container other is not valid for pod refused"),
        ({"tail_lines": -1}, 422, "tailLines: Invalid value: -1: must be greater than or equal to 0"),
        ({"previous": True}, 400, 'previous terminated container "main" in pod "refused" not found'),
    ]:
        with pytest.raises(ApiException) as caught:
            v1.read_namespaced_pod_log("refused", NAMESPACE, **options)
        assert caught.value.status == code, options
        assert words in json.loads(caught.value.body)["message"], options
    with pytest.raises(ApiException) as missing:
        v1.read_namespaced_pod_log("nobody", NAMESPACE)
    assert missing.value.status == 404


def test_follow_streams_lines_printed_after_the_request_started(v1: client.CoreV1Api, tmp_path: Path) -> None:
    go = tmp_path / "go"
    script = f'echo before; while [ ! -e "{go}" ]; do sleep 0.02; done; echo after; sleep 0.1; echo last'
    v1.create_namespaced_pod(NAMESPACE, pod_body("follow", script))
    wait_for(lambda: log(v1, "follow") if read_phase(v1, "follow") == "Running" else "", message="no first line")

    response = v1.read_namespaced_pod_log("follow", NAMESPACE, follow=True, _preload_content=False)
    lines = response.stream(amt=None, decode_content=False)
    assert next(lines) == b"before\n"
    go.touch()  # only now does the container print the rest
    rest = b"".join(lines)  # the stream ends when the container does

    assert rest == b"after\nlast\n"
    assert read_phase(v1, "follow") == "Succeeded"


def test_follow_through_watch_stream_yields_each_line(v1: client.CoreV1Api, tmp_path: Path) -> None:
    go = tmp_path / "go"
    script = f'echo one; while [ ! -e "{go}" ]; do sleep 0.02; done; echo two; echo three'
    v1.create_namespaced_pod(NAMESPACE, pod_body("follow-watch", script))
    wait_phase(v1, "follow-watch", "Running")
    wait_for(lambda: log(v1, "follow-watch"))

    seen = []
    for line in watch.Watch().stream(v1.read_namespaced_pod_log, "follow-watch", NAMESPACE):
        seen.append(line)
        if line == "one":
            go.touch()

    assert seen == ["one", "two", "three"]


# --- deletion ----------------------------------------------------------------------------------


def test_deleting_a_running_pod_stops_its_processes_and_removes_it(v1: client.CoreV1Api, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    since = create(v1, pod_body("doomed", SLEEPER, env=pids_env(pids)))
    shell, child = pids_from(pids)
    assert alive(shell)
    assert alive(child)

    began = time.monotonic()
    v1.delete_namespaced_pod("doomed", NAMESPACE)  # default grace: the pod's 30 seconds
    events = watch_pod(v1, "doomed", since, lambda kind, _: kind == "DELETED")

    assert time.monotonic() - began < 5  # the shell stops at SIGTERM: no need to wait out the grace period
    after_delete = [(kind, pod) for kind, pod in events if pod["metadata"].get("deletionTimestamp")]
    assert after_delete[0][0] == "MODIFIED"
    assert after_delete[0][1]["metadata"]["deletionGracePeriodSeconds"] == 30
    assert after_delete[-1][0] == "DELETED"
    stopped = [pod for kind, pod in after_delete if kind == "MODIFIED" and state(pod).get("terminated")]
    assert stopped
    assert state(stopped[-1])["terminated"]["exitCode"] == 143
    assert state(stopped[-1])["terminated"]["reason"] == "Error"
    wait_for(lambda: not alive(shell) and not alive(child), 5, "a process of the deleted pod still runs")
    with pytest.raises(ApiException) as caught:
        v1.read_namespaced_pod("doomed", NAMESPACE)
    assert caught.value.status == 404


def test_a_process_that_ignores_sigterm_is_killed_when_the_grace_period_ends(
    v1: client.CoreV1Api, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    since = create(v1, pod_body("stubborn", "trap '' TERM; " + SLEEPER, env=pids_env(pids)))
    shell, child = pids_from(pids)

    began = time.monotonic()
    v1.delete_namespaced_pod("stubborn", NAMESPACE, grace_period_seconds=1)
    time.sleep(0.5)
    assert alive(shell)
    assert alive(child)
    events = watch_pod(v1, "stubborn", since, lambda kind, _: kind == "DELETED")

    assert 0.9 <= time.monotonic() - began < 5
    assert not alive(shell)
    assert not alive(child)
    killed = [state(pod)["terminated"] for kind, pod in events if kind == "MODIFIED" and state(pod).get("terminated")]
    assert (killed[-1]["exitCode"], killed[-1]["reason"]) == (137, "Error")  # our SIGKILL, not the OOM killer


@pytest.mark.parametrize("second_grace", [1, 0])
def test_a_second_delete_with_a_shorter_grace_period_shortens_the_wait(
    v1: client.CoreV1Api, tmp_path: Path, second_grace: int
) -> None:
    pids = tmp_path / "pids"
    since = create(v1, pod_body("twice", "trap '' TERM; " + SLEEPER, env=pids_env(pids)))
    shell, child = pids_from(pids)
    v1.delete_namespaced_pod("twice", NAMESPACE, grace_period_seconds=30)
    time.sleep(0.2)
    assert alive(shell)

    began = time.monotonic()
    v1.delete_namespaced_pod("twice", NAMESPACE, grace_period_seconds=second_grace)
    watch_pod(v1, "twice", since, lambda kind, _: kind == "DELETED")

    wait_for(lambda: not alive(shell) and not alive(child), 5, "the processes outlived the shorter grace period")
    assert time.monotonic() - began < 3


def test_a_zero_grace_delete_removes_the_pod_at_once_and_still_kills_it(v1: client.CoreV1Api, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    since = create(v1, pod_body("forced", "trap '' TERM; " + SLEEPER, env=pids_env(pids)))
    shell, child = pids_from(pids)

    v1.delete_namespaced_pod("forced", NAMESPACE, grace_period_seconds=0)

    events = watch_pod(v1, "forced", since, lambda kind, _: kind == "DELETED")
    assert events[-1][0] == "DELETED"
    # Gone at once: the only mark before the removal is the store's own (grace 0), not a graceful wait.
    marked = [pod["metadata"] for _, pod in events if pod["metadata"].get("deletionTimestamp")]
    assert [metadata["deletionGracePeriodSeconds"] for metadata in marked] == [0, 0]
    wait_for(lambda: not alive(shell) and not alive(child), 5, "a force-deleted pod's process still runs")


def test_a_new_pod_under_a_deleted_pods_name_is_a_pod_of_its_own(v1: client.CoreV1Api, tmp_path: Path) -> None:
    v1.create_namespaced_pod(NAMESPACE, pod_body("reused", "trap '' TERM; " + SLEEPER, env=pids_env(tmp_path / "a")))
    pids_from(tmp_path / "a")
    v1.delete_namespaced_pod("reused", NAMESPACE, grace_period_seconds=0)
    wait_for(lambda: not v1.list_namespaced_pod(NAMESPACE).items)

    v1.create_namespaced_pod(NAMESPACE, pod_body("reused", "echo second life"))

    assert wait_phase(v1, "reused", "Succeeded", "Failed").status.phase == "Succeeded"
    assert log(v1, "reused") == "second life\n"


# --- images ------------------------------------------------------------------------------------


def test_an_image_that_cannot_be_pulled_stays_pending_in_image_pull_backoff(start: Callable[..., Kube]) -> None:
    _, v1 = start(image_pull_failure=r"^registry\.invalid/", image_pull_backoff=0.1)
    events = created_and_watched(
        v1,
        pod_body("unpullable", "echo never", image="registry.invalid/team/app:1.0"),
        lambda _, pod: state(pod).get("waiting", {}).get("reason") == "ImagePullBackOff",
    )

    reasons = [state(pod).get("waiting", {}).get("reason") for _, pod in events if state(pod)]
    assert reasons[:3] == ["ContainerCreating", "ErrImagePull", "ImagePullBackOff"]
    assert all(phase(pod) == "Pending" for _, pod in events)
    pull_error = next(
        state(pod)["waiting"]["message"]
        for _, pod in events
        if reasons and state(pod).get("waiting", {}).get("reason") == "ErrImagePull"
    )
    assert 'failed to pull and unpack image "registry.invalid/team/app:1.0"' in pull_error
    assert state(events[-1][1])["waiting"]["message"] == 'Back-off pulling image "registry.invalid/team/app:1.0"'


def test_an_image_name_with_capitals_is_invalid_image_name(v1: client.CoreV1Api) -> None:
    events = created_and_watched(
        v1,
        pod_body("capitals", "echo never", image="Busybox:1.36"),
        lambda _, pod: "InvalidImageName" in str(state(pod)),
    )

    waiting = state(events[-1][1])["waiting"]
    assert waiting["reason"] == "InvalidImageName"
    assert 'couldn\'t parse image name "Busybox:1.36": invalid reference format' in waiting["message"]
    assert phase(events[-1][1]) == "Pending"


# --- capacity ----------------------------------------------------------------------------------


def test_a_full_node_keeps_the_next_pod_unschedulable_until_the_first_finishes(
    start: Callable[..., Kube], tmp_path: Path
) -> None:
    _, v1 = start(capacity=1)
    go = tmp_path / "go"
    v1.create_namespaced_pod(NAMESPACE, pod_body("first", f'while [ ! -e "{go}" ]; do sleep 0.02; done'))
    wait_phase(v1, "first", "Running")
    since = create(v1, pod_body("second", "echo second"))

    waiting = wait_for(lambda: v1.read_namespaced_pod("second", NAMESPACE).status.conditions)
    scheduled = {c.type: c for c in waiting}["PodScheduled"]
    assert (scheduled.status, scheduled.reason) == ("False", "Unschedulable")
    assert scheduled.message.startswith("0/1 nodes are available: 1 Too many pods.")
    time.sleep(0.2)
    second = v1.read_namespaced_pod("second", NAMESPACE)
    assert second.status.phase == "Pending"
    assert second.spec.node_name is None
    assert second.status.container_statuses is None

    go.touch()
    events = watch_pod(v1, "second", since, finished)

    assert read_phase(v1, "first") == "Succeeded"
    assert phase(events[-1][1]) == "Succeeded"
    assert conditions(events[-1][1])["PodScheduled"]["status"] == "True"
    assert log(v1, "second") == "second\n"


def test_set_capacity_releases_waiting_pods(start: Callable[..., Kube], tmp_path: Path) -> None:
    api, v1 = start(capacity=0)
    go = tmp_path / "go"
    for name in ("a", "b"):
        v1.create_namespaced_pod(NAMESPACE, pod_body(name, f'while [ ! -e "{go}" ]; do sleep 0.02; done'))
    wait_for(lambda: all(p.status.conditions for p in v1.list_namespaced_pod(NAMESPACE).items))
    time.sleep(0.1)
    assert {read_phase(v1, "a"), read_phase(v1, "b")} == {"Pending"}

    api.set_capacity(1)
    wait_phase(v1, "a", "Running")  # first come, first served
    time.sleep(0.1)
    assert read_phase(v1, "b") == "Pending"

    api.set_capacity(None)
    wait_phase(v1, "b", "Running")
    assert read_phase(v1, "a") == "Running"  # both run at once now
    go.touch()
    wait_phase(v1, "a", "Succeeded")
    wait_phase(v1, "b", "Succeeded")


def test_deleting_a_pod_that_waits_for_room_removes_it_at_once(start: Callable[..., Kube]) -> None:
    _, v1 = start(capacity=0)
    since = create(v1, pod_body("never-scheduled", "echo never"))
    wait_for(lambda: v1.read_namespaced_pod("never-scheduled", NAMESPACE).status.conditions)

    v1.delete_namespaced_pod("never-scheduled", NAMESPACE)

    events = watch_pod(v1, "never-scheduled", since, lambda kind, _: kind == "DELETED", timeout=3)
    assert [kind for kind, _ in events][-1] == "DELETED"
    marked = [pod["metadata"] for _, pod in events if pod["metadata"].get("deletionTimestamp")]
    assert [metadata["deletionGracePeriodSeconds"] for metadata in marked] == [0, 0]  # no grace period


def test_two_containers_run_side_by_side_and_the_pod_fails_if_one_fails(v1: client.CoreV1Api) -> None:
    body = pod_body("pair", "sleep 0.3; echo slow")
    body["spec"]["containers"].append({"name": "quick", "image": IMAGE, "command": ["sh", "-c", "exit 2"]})
    events = created_and_watched(v1, body, finished)

    # The quick one's end shows while the other still runs, as a node reports it.
    midway = [pod for _, pod in events if phase(pod) == "Running" and state(pod, 1).get("terminated")]
    assert midway
    assert state(midway[0], 0).get("running")
    assert conditions(midway[0])["Ready"]["message"] == "containers with unready status: [quick]"
    done = events[-1][1]
    assert phase(done) == "Failed"
    assert [state(done, i)["terminated"]["exitCode"] for i in (0, 1)] == [0, 2]
    with pytest.raises(ApiException) as caught:
        v1.read_namespaced_pod_log("pair", NAMESPACE)
    assert "a container name must be specified for pod pair, choose one of: [main quick]" in caught.value.body
    assert log(v1, "pair", container="main") == "slow\n"


def test_a_pod_bound_to_this_node_by_its_creator_runs(v1: client.CoreV1Api) -> None:
    body = pod_body("bound", "echo bound")
    body["spec"]["nodeName"] = "local-node"
    v1.create_namespaced_pod(NAMESPACE, body)

    assert wait_phase(v1, "bound", "Succeeded").status.pod_ip


def test_a_pod_bound_to_another_node_is_left_alone(v1: client.CoreV1Api) -> None:
    body = pod_body("elsewhere", "echo never")
    body["spec"]["nodeName"] = "other-node"
    v1.create_namespaced_pod(NAMESPACE, body)
    time.sleep(0.3)

    pod = v1.read_namespaced_pod("elsewhere", NAMESPACE)
    assert pod.status.phase == "Pending"
    assert pod.status.container_statuses is None


def test_stopping_the_server_kills_what_its_pods_run(tmp_path: Path) -> None:
    api = LocalKubeAPI(kubelet=True).start()
    try:
        v1 = client.CoreV1Api(api.api_client())
        v1.create_namespaced_pod(
            NAMESPACE, pod_body("orphan", "trap '' TERM; " + SLEEPER, env=pids_env(tmp_path / "p"))
        )
        shell, child = pids_from(tmp_path / "p")
    finally:
        api.stop()
    wait_for(lambda: not alive(shell) and not alive(child), 5, "a pod's process outlived the server")

"""The command line other tooling starts: ``python -m hybrid_executor.testing.kube serve ...``.

Started as a real subprocess: its first stdout line is the URL, the kubeconfig it writes is all a
client needs, and SIGTERM or SIGINT stops it at once, with exit code 0 and nothing left running.
"""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from hybrid_executor.testing.kube.__main__ import main

NAMESPACE = "default"
COMMAND = [sys.executable, "-m", "hybrid_executor.testing.kube", "serve"]


@dataclass
class Served:
    process: subprocess.Popen[str]
    url: str
    kubeconfig: Path

    def v1(self) -> client.CoreV1Api:
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=configuration)
        return client.CoreV1Api(client.ApiClient(configuration))

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 10) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


def first_line(process: subprocess.Popen[str], timeout: float = 20) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, f"no line on stdout within {timeout}s"
    line = process.stdout.readline().strip()
    if not line:  # stdout closed: it ended before it served
        process.wait(timeout=10)
        assert process.stderr is not None
        pytest.fail(f"the server exited with {process.returncode}: {process.stderr.read()}")
    return line


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    started: list[Served] = []

    def serve(*extra: str) -> Served:
        kubeconfig = tmp_path / f"kube-{len(started)}" / "config"  # its folder does not exist yet
        process = subprocess.Popen(
            [*COMMAND, "--port", "0", "--kubeconfig", str(kubeconfig), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        served = Served(process, first_line(process), kubeconfig)
        started.append(served)
        return served

    yield serve
    for served in started:
        if served.process.poll() is None:
            served.process.kill()
            served.process.wait()
        for stream in (served.process.stdout, served.process.stderr):
            if stream is not None:
                stream.close()


def pod(name: str, script: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", script]}
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return {"metadata": {"name": name}, "spec": {"restartPolicy": "Never", "containers": [container]}}


def wait_for_phase(v1: client.CoreV1Api, name: str, phase: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while v1.read_namespaced_pod(name, NAMESPACE).status.phase != phase:
        assert time.monotonic() < deadline, f"pod {name} never reached {phase}"
        time.sleep(0.05)


def alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_serve_prints_the_url_first_and_its_kubeconfig_is_all_a_client_needs(serve: Any) -> None:
    served = serve("--kubelet", "--history", "50")

    assert served.url.startswith("http://127.0.0.1:")
    port = int(served.url.rsplit(":", 1)[1])
    assert port > 0  # --port 0 picked a free port, and the URL names it
    _, active = config.list_kube_config_contexts(config_file=str(served.kubeconfig))
    assert active["context"]["namespace"] == NAMESPACE
    v1 = served.v1()
    assert v1.api_client.configuration.host == served.url

    namespaces = {n.metadata.name for n in v1.list_namespace().items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= namespaces

    # --kubelet: pods run, and their output is their log.
    v1.create_namespaced_pod(NAMESPACE, pod("hello", "echo hello from the cli"))
    wait_for_phase(v1, "hello", "Succeeded")
    log = v1.read_namespaced_pod_log("hello", NAMESPACE, _preload_content=False).data
    assert log == b"hello from the cli\n"

    # --history 50: a watch from before the last 50 changes is too old (410 Expired, as an ERROR event).
    start = v1.list_namespace().metadata.resource_version
    for index in range(55):
        v1.create_namespace({"metadata": {"name": f"ns-{index}"}})
    with pytest.raises(ApiException) as expired:
        list(watch.Watch().stream(v1.list_namespace, resource_version=start, timeout_seconds=2))
    assert expired.value.status == 410
    assert "too old resource version" in str(expired.value.reason)

    assert served.stop() == 0
    assert served.process.stdout is not None
    assert served.process.stdout.read() == ""  # the URL was the one and only line on stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_it_promptly_with_exit_code_0_and_no_process_left(
    serve: Any, sig: signal.Signals, tmp_path: Path
) -> None:
    served = serve("--kubelet")
    v1 = served.v1()
    pid_file = tmp_path / "pid"
    # A pod that ignores SIGTERM and has a child: only a kill of its whole process group ends it.
    script = 'trap "" TERM; sleep 60 & echo $$$$ > "$PID_FILE.tmp" && mv "$PID_FILE.tmp" "$PID_FILE"; wait'
    v1.create_namespaced_pod(NAMESPACE, pod("sleeper", script, {"PID_FILE": str(pid_file)}))
    deadline = time.monotonic() + 10
    while not pid_file.exists():
        assert time.monotonic() < deadline, "the pod never started"
        time.sleep(0.02)
    descendants = psutil.Process(served.process.pid).children(recursive=True)
    assert len(descendants) >= 2  # the pod's shell and its sleep

    began = time.monotonic()
    code = served.stop(sig)

    assert code == 0
    assert time.monotonic() - began < 5
    assert not [p for p in descendants if alive(p)]
    assert served.process.stderr is not None
    assert "Traceback" not in served.process.stderr.read()


def test_a_signal_right_after_the_url_still_stops_it_cleanly(serve: Any) -> None:
    served = serve()

    assert served.stop(signal.SIGTERM) == 0


def test_a_wrong_argument_exits_non_zero_with_a_clear_message(tmp_path: Path) -> None:
    finished = subprocess.run(
        [*COMMAND, "--port", "0", "--kubeconfig", str(tmp_path / "config"), "--history", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert finished.returncode == 2
    assert finished.stdout == ""
    assert "--history must be at least 1, got 0" in finished.stderr
    assert "Traceback" not in finished.stderr
    assert not (tmp_path / "config").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--capacity", "-1"], "--capacity must be at least 0, got -1"),
        (["--port", "70000"], "--port must be within 0..65535, got 70000"),
        (["--bookmark-interval", "0"], "--bookmark-interval must be more than 0 seconds, got 0.0"),
        (["--image-pull-failure", "(unclosed"], "--image-pull-failure must be a regular expression"),
    ],
)
def test_other_values_argparse_cannot_check_are_refused_by_name(
    arguments: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--kubeconfig", str(tmp_path / "config"), *arguments]) == 2

    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["serve"], "the following arguments are required: --kubeconfig"),
        (["serve", "--kubeconfig", "x", "--port", "eighty"], "argument --port: invalid int value: 'eighty'"),
        (["run"], "invalid choice: 'run'"),
        ([], "the following arguments are required: command"),
    ],
)
def test_argparse_errors_exit_2_with_usage(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(arguments)

    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert message in error
    assert "usage:" in error


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        finished = subprocess.run(
            [*COMMAND, "--port", str(port), "--kubeconfig", str(tmp_path / "config")],
            capture_output=True,
            text=True,
            timeout=30,
        )

    assert finished.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in finished.stderr
    assert "Traceback" not in finished.stderr
    assert finished.stdout == ""


def test_the_kubeconfig_names_the_server_and_no_credentials(serve: Any) -> None:
    served = serve()

    written = served.kubeconfig.read_text()
    assert served.url in written
    document = yaml.safe_load(written)
    assert document["current-context"] == document["contexts"][0]["name"]
    assert document["users"][0]["user"] == {}
    assert served.stop() == 0


def test_allow_privileged_false_makes_a_privileged_container_invalid(serve: Any) -> None:
    served = serve("--allow-privileged", "false")
    v1 = served.v1()
    body = pod("priv", "true")
    body["spec"]["containers"][0]["securityContext"] = {"privileged": True}

    with pytest.raises(ApiException) as excinfo:
        v1.create_namespaced_pod(NAMESPACE, body, dry_run="All")

    assert excinfo.value.status == 422
    assert yaml.safe_load(excinfo.value.body)["message"] == (
        'Pod "priv" is invalid: spec.containers[0].securityContext.privileged: Forbidden: disallowed by cluster policy'
    )
    assert served.stop() == 0

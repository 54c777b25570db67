"""What a container's process finds in its env, as on a real node: HOSTNAME and the Downward API's resources.

Every test starts its own local API with a kubelet, creates pods with the official client, lets
the kubelet run ``sh -c`` scripts that print their env, and reads the pod log back over HTTP.
(The kubelet turns ``$$`` in a command into ``$``: ``$$HOSTNAME`` reaches the shell as ``$HOSTNAME``.)
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from hybrid_executor.testing.kube import KubeletConfig, LocalKubeAPI

NAMESPACE = "default"
IMAGE = "busybox:1.36"
SUPPORTED_RESOURCES = (
    '"limits.cpu", "limits.ephemeral-storage", "limits.memory", '
    '"requests.cpu", "requests.ephemeral-storage", "requests.memory"'
)
BYTE_DIVISORS = "1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei"


@pytest.fixture
def start() -> Iterator[Callable[..., client.CoreV1Api]]:
    """Start a local API whose kubelet has the given KubeletConfig fields; stopped after the test."""
    servers: list[tuple[LocalKubeAPI, client.ApiClient]] = []

    def start(**config: Any) -> client.CoreV1Api:
        api = LocalKubeAPI(kubelet=KubeletConfig(**config)).start()
        api_client = api.api_client()
        servers.append((api, api_client))
        return client.CoreV1Api(api_client)

    yield start
    for api, api_client in servers:
        api_client.close()
        api.stop()


@pytest.fixture
def v1(start: Callable[..., client.CoreV1Api]) -> client.CoreV1Api:
    return start()


def pod_body(name: str, script: str, *, env: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": IMAGE, "command": ["sh", "-c", script]}
    if env is not None:
        container["env"] = env
    body_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container], **spec}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": body_spec}


def resource_env(name: str, resource: str, **ref: Any) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"resourceFieldRef": {"resource": resource, **ref}}}


def wait_phase(v1: client.CoreV1Api, name: str, *phases: str, timeout: float = 10.0) -> client.V1Pod:
    deadline = time.monotonic() + timeout
    while True:
        pod = v1.read_namespaced_pod(name, NAMESPACE)
        if pod.status.phase in phases:
            return pod
        if time.monotonic() > deadline:
            pytest.fail(f"pod {name} never reached {phases}: {pod.status}")
        time.sleep(0.02)


def log(v1: client.CoreV1Api, name: str, **options: Any) -> str:
    # Client v36 needs _preload_content=False for the log's own bytes (kubernetes-client/python#2596).
    response = v1.read_namespaced_pod_log(name, NAMESPACE, _preload_content=False, **options)
    return bytes(response.data).decode()


def run(v1: client.CoreV1Api, body: dict[str, Any]) -> str:
    """Create the pod, let it run to Succeeded, and return the log of its container "main"."""
    v1.create_namespaced_pod(NAMESPACE, body)
    pod = wait_phase(v1, body["metadata"]["name"], "Succeeded", "Failed")
    output = log(v1, body["metadata"]["name"], container="main")
    assert pod.status.phase == "Succeeded", output
    return output


def refusal(v1: client.CoreV1Api, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    with pytest.raises(ApiException) as caught:
        v1.create_namespaced_pod(NAMESPACE, body)
    status: dict[str, Any] = json.loads(caught.value.body)
    return caught.value.status, status


# --- HOSTNAME -----------------------------------------------------------------------------------

LONG_DASH = "a" * 61 + "--" + "b" * 20  # cut at 63: "a"*61 + "--", then the trailing dashes go
LONG_DOT = "c" * 62 + ".d" + "e" * 20  # cut at 63: "c"*62 + ".", then the dot goes


@pytest.mark.parametrize(
    ("name", "spec", "env", "expected"),
    [
        pytest.param("plain", {}, None, "plain", id="the pod's name"),
        pytest.param("named", {"hostname": "my-host", "subdomain": "sub"}, None, "my-host", id="spec.hostname"),
        pytest.param(LONG_DASH, {}, None, "a" * 61, id="a long name, cut at 63 without trailing dashes"),
        pytest.param(LONG_DOT, {}, None, "c" * 62, id="a long name, cut at 63 without a trailing dot"),
        pytest.param("x" * 70, {"hostname": "short"}, None, "short", id="spec.hostname over a long name"),
        pytest.param(
            "declared", {"hostname": "ignored"}, [{"name": "HOSTNAME", "value": "mine"}], "mine", id="declared wins"
        ),
    ],
)
def test_a_container_sees_its_pods_hostname_as_hostname(
    v1: client.CoreV1Api, name: str, spec: dict[str, Any], env: list[dict[str, Any]] | None, expected: str
) -> None:
    assert run(v1, pod_body(name, "echo $$HOSTNAME", env=env, **spec)) == f"{expected}\n"


def test_a_pod_on_the_hosts_network_sees_the_nodes_hostname(v1: client.CoreV1Api) -> None:
    # The kubelet gives such a pod no hostname; containerd then uses the node's own, spec.hostname or not.
    body = pod_body("host-net", "echo $$HOSTNAME", hostNetwork=True, hostname="unused")

    assert run(v1, body) == f"{socket.gethostname()}\n"


def test_hostname_is_set_for_init_containers_too_and_is_no_variable_for_expansion(v1: client.CoreV1Api) -> None:
    # containerd adds HOSTNAME after the kubelet expanded $(VAR): "$(HOSTNAME)" in args stays as written.
    body = pod_body("with-init", "echo main $$HOSTNAME")
    body["spec"]["initContainers"] = [
        {"name": "init", "image": IMAGE, "command": ["sh", "-c", 'echo init $$HOSTNAME "$$1"', "sh", "$(HOSTNAME)"]}
    ]

    assert run(v1, body) == "main with-init\n"
    assert log(v1, "with-init", container="init") == "init with-init $(HOSTNAME)\n"


def test_the_image_env_stand_in_is_over_hostname_and_the_declared_env_over_both(
    start: Callable[..., client.CoreV1Api],
) -> None:
    # containerd's order: HOSTNAME, then the image's ENV, then the container's env.
    v1 = start(base_env={"PATH": os.environ["PATH"], "HOSTNAME": "from-image", "LEVEL": "image"})
    body = pod_body("layers", "echo $$HOSTNAME $$LEVEL", env=[{"name": "LEVEL", "value": "declared"}])

    assert run(v1, body) == "from-image declared\n"


def test_a_hostname_that_is_not_a_dns_label_is_refused(v1: client.CoreV1Api) -> None:
    code, status = refusal(v1, pod_body("bad-host", "true", hostname="Not_A_Label"))

    assert code == 422
    assert status["message"].startswith('Pod "bad-host" is invalid: spec.hostname: Invalid value: "Not_A_Label": ')
    assert "a lowercase RFC 1123 label must consist of" in status["message"]
    assert [cause["field"] for cause in status["details"]["causes"]] == ["spec.hostname"]


def test_a_hostname_that_is_no_string_does_not_decode(v1: client.CoreV1Api) -> None:
    code, status = refusal(v1, pod_body("number-host", "true", hostname=7))

    assert code == 400
    assert status["message"] == (
        'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal number into Go struct field '
        "PodSpec.spec.hostname of type string"
    )


# --- resourceFieldRef ---------------------------------------------------------------------------


def test_limits_memory_over_a_divisor_is_rounded_up(v1: client.CoreV1Api) -> None:
    env = [
        resource_env("MEM", "limits.memory", divisor="1Mi"),
        resource_env("MEM_BYTES", "limits.memory"),
        resource_env("SIDE_MB", "limits.memory", divisor="1M", containerName="side"),
        {"name": "SUMMARY", "value": "mem=$(MEM)Mi"},
    ]
    body = pod_body("memory", "echo $$MEM $$MEM_BYTES $$SIDE_MB $$SUMMARY", env=env)
    body["spec"]["containers"][0]["resources"] = {"limits": {"memory": "64Mi"}}
    body["spec"]["containers"].append(
        {"name": "side", "image": IMAGE, "command": ["true"], "resources": {"limits": {"memory": "100Mi"}}}
    )

    # 100Mi is 104857600 bytes: 104.8576 M, rounded up.
    assert run(v1, body) == f"64 {64 * 2**20} 105 mem=64Mi\n"


def test_requests_cpu_in_millicores_or_rounded_up_to_whole_cores(v1: client.CoreV1Api) -> None:
    env = [
        resource_env("CPU_MILLI", "requests.cpu", divisor="1m"),
        resource_env("CPU", "requests.cpu"),
        resource_env("LIMIT_MILLI", "limits.cpu", divisor="1m"),
    ]
    body = pod_body("cpu", "echo $$CPU_MILLI $$CPU $$LIMIT_MILLI", env=env)
    body["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "250m"}, "limits": {"cpu": "1500m"}}

    assert run(v1, body) == "250 1 1500\n"


def test_an_unset_limit_is_the_nodes_allocatable(v1: client.CoreV1Api) -> None:
    env = [
        resource_env("CPU", "limits.cpu"),
        resource_env("MEM", "limits.memory"),
        resource_env("REQUESTED", "requests.cpu", divisor="1m"),
    ]
    mem_total = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:"))

    output = run(v1, pod_body("allocatable", "echo $$CPU $$MEM $$REQUESTED", env=env))

    # A request that is not set is 0: only limits default to the node's allocatable.
    assert output == f"{os.cpu_count()} {int(mem_total.split()[1]) * 1024} 0\n"


def test_a_configured_allocatable_and_pod_level_limits(start: Callable[..., client.CoreV1Api], tmp_path: Path) -> None:
    v1 = start(allocatable={"cpu": "3", "memory": "2Gi"}, workdir_root=str(tmp_path))
    env = [
        resource_env("CPU", "limits.cpu"),
        resource_env("MEM", "limits.memory", divisor="1Mi"),
        resource_env("DISK", "limits.ephemeral-storage"),
    ]
    assert run(v1, pod_body("node", "echo $$CPU $$MEM $$DISK", env=env)) == "3 2048 0\n"  # no storage reported

    # Pod-level limits (spec.resources) stand in for the node's, for cpu and memory.
    body = pod_body("pod-level", "echo $$CPU $$MEM", env=env[:2], resources={"limits": {"cpu": "2", "memory": "1Gi"}})
    assert run(v1, body) == "2 1024\n"


def test_ephemeral_storage_defaults_to_the_size_of_the_kubelets_disk(
    start: Callable[..., client.CoreV1Api], tmp_path: Path
) -> None:
    v1 = start(workdir_root=str(tmp_path))
    env = [
        resource_env("DISK", "limits.ephemeral-storage"),
        resource_env("SET", "limits.ephemeral-storage", divisor="1Mi", containerName="sized"),
    ]
    body = pod_body("disk", "echo $$DISK $$SET", env=env)
    body["spec"]["containers"].append(
        {"name": "sized", "image": IMAGE, "resources": {"limits": {"ephemeral-storage": "1Gi"}}}
    )

    assert run(v1, body) == f"{shutil.disk_usage(tmp_path).total} 1024\n"


def test_requests_not_given_are_the_limits_and_hugepages_are_read_too(v1: client.CoreV1Api) -> None:
    env = [
        resource_env("CPU", "requests.cpu", divisor="1m"),
        resource_env("MEM", "requests.memory", divisor="1Ki"),
        resource_env("PAGES", "limits.hugepages-2Mi", divisor="1Mi"),
        resource_env("PAGES_REQUESTED", "requests.hugepages-2Mi"),
        resource_env("NO_PAGES", "limits.hugepages-1Gi"),
    ]
    body = pod_body("defaults", "echo $$CPU $$MEM $$PAGES $$PAGES_REQUESTED $$NO_PAGES", env=env)
    limits = {"cpu": "2", "memory": "1Gi", "hugepages-2Mi": "4Mi"}
    body["spec"]["containers"][0]["resources"] = {"limits": limits, "requests": {"memory": "512Mi"}}

    assert run(v1, body) == f"2000 {512 * 1024} 4 {4 * 2**20} 0\n"


def test_init_containers_read_their_own_or_a_named_containers_resources(v1: client.CoreV1Api) -> None:
    body = pod_body("init-refs", "true")
    body["spec"]["containers"][0]["resources"] = {"limits": {"memory": "32Mi"}}
    body["spec"]["initContainers"] = [
        {
            "name": "init",
            "image": IMAGE,
            "command": ["sh", "-c", "echo $$OWN $$MAIN $$CPU"],
            "resources": {"limits": {"memory": "8Mi"}},
            "env": [
                resource_env("OWN", "limits.memory", divisor="1Mi"),
                resource_env("MAIN", "limits.memory", divisor="1Mi", containerName="main"),
                resource_env("CPU", "limits.cpu"),
            ],
        }
    ]

    run(v1, body)

    assert log(v1, "init-refs", container="init") == f"8 32 {os.cpu_count()}\n"


def test_the_server_writes_each_divisor_canonical_and_an_unset_one_as_zero(v1: client.CoreV1Api) -> None:
    env = [
        resource_env("A", "limits.memory"),
        resource_env("B", "limits.memory", divisor="1024Ki"),
        resource_env("C", "requests.cpu", divisor="0.001"),
    ]
    created = v1.create_namespaced_pod(NAMESPACE, pod_body("divisors", "true", env=env))

    refs = [item.value_from.resource_field_ref for item in created.spec.containers[0].env]
    assert [(ref.resource, ref.divisor, ref.container_name) for ref in refs] == [
        ("limits.memory", "0", None),
        ("limits.memory", "1Mi", None),
        ("requests.cpu", "1m", None),
    ]


def test_a_reference_to_a_container_the_pod_lacks_is_create_container_config_error(v1: client.CoreV1Api) -> None:
    env = [resource_env("MEM", "limits.memory", containerName="nope")]
    v1.create_namespaced_pod(NAMESPACE, pod_body("no-such", "echo never", env=env))

    deadline = time.monotonic() + 10
    while True:
        statuses = v1.read_namespaced_pod("no-such", NAMESPACE).status.container_statuses or []
        waiting = statuses[0].state.waiting if statuses else None
        if waiting is not None and waiting.message:
            break
        assert time.monotonic() < deadline, "the pod never reported why it waits"
        time.sleep(0.02)
    assert (waiting.reason, waiting.message) == ("CreateContainerConfigError", "container nope not found")


@pytest.mark.parametrize(
    ("ref", "field", "message"),
    [
        (
            {"resource": "limits.nvidia.com/gpu"},
            "resource",
            f'Unsupported value: "limits.nvidia.com/gpu": supported values: {SUPPORTED_RESOURCES}',
        ),
        ({"resource": "cpu"}, "resource", f'Unsupported value: "cpu": supported values: {SUPPORTED_RESOURCES}'),
        ({"resource": ""}, "resource", "Required value"),
        (
            {"resource": "limits.cpu", "divisor": "1Mi"},
            "divisor",
            'Invalid value: "limits.cpu": only divisor\'s values 1m and 1 are supported with the cpu resource',
        ),
        (
            {"resource": "requests.memory", "divisor": "1024"},
            "divisor",
            f'Invalid value: "requests.memory": only divisor\'s values {BYTE_DIVISORS} are supported with the '
            "memory resource",
        ),
        (
            {"resource": "limits.ephemeral-storage", "divisor": "1m"},
            "divisor",
            f'Invalid value: "limits.ephemeral-storage": only divisor\'s values {BYTE_DIVISORS} are supported '
            "with the local ephemeral storage resource",
        ),
        (
            {"resource": "limits.hugepages-2Mi", "divisor": "2Mi"},
            "divisor",
            f'Invalid value: "limits.hugepages-2Mi": only divisor\'s values {BYTE_DIVISORS} are supported '
            "with the hugepages resource",
        ),
    ],
)
def test_a_resource_field_ref_the_api_refuses(
    v1: client.CoreV1Api, ref: dict[str, Any], field: str, message: str
) -> None:
    code, status = refusal(v1, pod_body("refused", "true", env=[{"name": "X", "valueFrom": {"resourceFieldRef": ref}}]))

    path = f"spec.containers[0].env[0].valueFrom.resourceFieldRef.{field}"
    assert code == 422
    assert status["reason"] == "Invalid"
    assert status["message"] == f'Pod "refused" is invalid: {path}: {message}'
    reason = {"Unsupported": "FieldValueNotSupported", "Required": "FieldValueRequired", "Invalid": "FieldValueInvalid"}
    assert status["details"]["causes"] == [{"reason": reason[message.split()[0]], "message": message, "field": path}]


def test_value_beside_value_from_and_a_divisor_that_is_no_quantity_are_refused(v1: client.CoreV1Api) -> None:
    both = [{"name": "X", "value": "1", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}]
    code, status = refusal(v1, pod_body("both", "true", env=both))
    assert code == 422
    assert status["message"] == (
        'Pod "both" is invalid: spec.containers[0].env[0].valueFrom: Invalid value: "": '
        "may not be specified when `value` is not empty"
    )

    bad = [resource_env("X", "limits.cpu", divisor="lots")]
    code, status = refusal(v1, pod_body("bad-divisor", "true", env=bad))
    assert code == 400
    assert status["message"].endswith(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )
    assert v1.list_namespaced_pod(NAMESPACE).items == []

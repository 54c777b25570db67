"""``airflow hybrid doctor | render-pod | cleanup-pods``, run as a user runs them: real ``airflow`` processes.

Each command talks to the session's PostgreSQL and Redis and to the local Kubernetes API, with the
executor settings of the test (``executor_config``), passed as ``AIRFLOW__*`` variables.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from hybrid_executor.kubernetes.pods import pod_name_for
from hybrid_executor.testing.kube import LocalKubeAPI
from hybrid_executor.testing.services import AirflowEnv, airflow_command

pytestmark = pytest.mark.slow

CLI_DAG = """
from kubernetes.client import models as k8s

OVERRIDE = {"pod_override": k8s.V1Pod(spec=k8s.V1PodSpec(containers=[
    k8s.V1Container(name="base", env=[k8s.V1EnvVar(name="FROM_OVERRIDE", value="yes")]),
]))}


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False)
def cli_render():
    @task(queue="kubernetes", executor_config=OVERRIDE)
    def in_pod():
        pass

    @task
    def on_celery():
        pass

    @task(queue="kubernetes")
    def mapped_in_pod(x):
        pass

    in_pod() >> on_celery() >> mapped_in_pod.expand(x=[1, 2])


cli_render()
"""


def hybrid(airflow_environ: AirflowEnv, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``airflow hybrid ARGS`` with the session's Airflow home and the test's executor settings."""
    env = airflow_environ.subprocess_env() | {k: v for k, v in os.environ.items() if k.startswith("AIRFLOW__")}
    return subprocess.run(
        [*airflow_command(), "hybrid", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _template(
    tmp_path: Path,
    *,
    url: str = "http://airflow-api-server.airflow.svc:8080/execution/",
    spec: dict[str, Any] | None = None,
    container: dict[str, Any] | None = None,
    **metadata: Any,
) -> Path:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "worker", **metadata},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "base",
                    "image": "registry.example.com/airflow:3.3.2",
                    "env": [{"name": "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "value": url}],
                    **(container or {}),
                }
            ],
            **(spec or {}),
        },
    }
    path = tmp_path / f"template-{len(list(tmp_path.glob('template-*')))}.yaml"
    path.write_text(yaml.safe_dump(pod))
    return path


def test_the_commands_exist_whatever_executor_is_configured(airflow_environ: AirflowEnv) -> None:
    result = hybrid(airflow_environ, "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    for command in ("doctor", "render-pod", "cleanup-pods"):
        assert command in result.stdout


def test_doctor_passes_on_a_ready_setup(
    airflow_environ: AirflowEnv, executor_config: Callable[..., None], namespace: str, tmp_path: Path
) -> None:
    executor_config("kubernetes_executor", "pod_template_file", str(_template(tmp_path)))

    result = hybrid(airflow_environ, "doctor", "--json")

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    report = json.loads(result.stdout)  # stdout is the JSON alone
    assert report["ok"] is True
    statuses = {check["name"]: check["status"] for check in report["checks"]}
    assert statuses == {
        "settings": "PASS",
        "pod template": "PASS",
        "celery broker": "PASS",
        "kubernetes api": "PASS",
        "namespace": "PASS",
        "permissions": "PASS",
        "dry-run pod": "PASS",
        "execution api": "PASS",
    }, report["checks"]


def test_doctor_names_each_problem_and_its_fix(
    airflow_environ: AirflowEnv,
    executor_config: Callable[..., None],
    namespace: str,
    tmp_path: Path,
    kube_api: LocalKubeAPI,
) -> None:
    executor_config("kubernetes_executor", "pod_template_file", str(_template(tmp_path)))
    bad_labels = _template(tmp_path, labels={"team": "data science"})  # a space: the API answers 422
    executor_config(
        "hybrid_executor",
        "kubernetes_queues",
        f"kubernetes, kubernetes-bad pod_template_file={bad_labels}, kubernetes-elsewhere namespace=no-such-namespace",
    )
    executor_config("celery", "broker_url", "redis://127.0.0.1:1/0")  # nothing listens on port 1

    result = hybrid(airflow_environ, "doctor")

    assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-2000:]
    lines = result.stdout.splitlines()
    text = "\n".join(lines)

    def line_of(start: str) -> int:
        return next(i for i, line in enumerate(lines) if line.startswith(start))

    broker = line_of("FAIL  celery broker")
    assert "redis://127.0.0.1:1/0 does not answer" in lines[broker]
    assert "fix: start the broker" in lines[broker + 1]
    missing = line_of("FAIL  namespace       no-such-namespace does not exist")
    assert "fix: kubectl create namespace no-such-namespace" in lines[missing + 1]
    dry_run = line_of("FAIL  dry-run pod     queue kubernetes-bad")
    assert 'metadata.labels: Invalid value: "data science"' in lines[dry_run]
    assert "fix: fix the queue's pod template" in lines[dry_run + 1]
    elsewhere = line_of("FAIL  dry-run pod     queue kubernetes-elsewhere")
    assert 'namespaces "no-such-namespace" not found (HTTP 404 NotFound)' in lines[elsewhere]
    assert "fix: create namespace no-such-namespace, or correct the queue's namespace" in lines[elsewhere + 1]
    assert f"PASS  dry-run pod     queue kubernetes: a dry-run create in {namespace} is accepted" in text
    url = "http://airflow-api-server.airflow.svc:8080/execution/"
    assert f"PASS  execution api   queue kubernetes: pods call {url} (from the pod template's env)" in text
    assert lines[-1].endswith("failed")
    assert " 0 failed" not in lines[-1]
    # A dry run stores nothing.
    assert kube_api.pods(namespace) == []


def test_render_pod_prints_the_pod_the_executor_would_create(
    airflow_environ: AirflowEnv,
    executor_config: Callable[..., None],
    namespace: str,
    make_dag: Callable[[str, str], str],
    kube_api: LocalKubeAPI,
    tmp_path: Path,
) -> None:
    from airflow.models.taskinstancekey import TaskInstanceKey

    make_dag("cli_render", CLI_DAG)
    executor_config("kubernetes_executor", "pod_template_file", str(_template(tmp_path)))

    result = hybrid(airflow_environ, "render-pod", "cli_render", "in_pod", "--run-id", "manual__1", "--try-number", "2")

    assert result.returncode == 0, result.stderr[-3000:]
    pod = yaml.safe_load(result.stdout)  # stdout is the YAML alone
    key = TaskInstanceKey("cli_render", "in_pod", "manual__1", 2, -1)
    assert pod["metadata"]["name"] == pod_name_for(key, "render-pod")  # the default queueing id
    assert pod["metadata"]["namespace"] == namespace
    assert pod["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "hybrid-executor"
    container = pod["spec"]["containers"][0]
    assert {"name": "FROM_OVERRIDE", "value": "yes"} in container["env"]
    workload = json.loads(container["args"][-1])
    assert workload["token"] == "***"
    assert workload["ti"]["try_number"] == 2
    assert "eyJ" not in result.stdout
    # What it prints is a pod the API accepts as it is.
    from kubernetes.client import CoreV1Api

    CoreV1Api(kube_api.api_client()).create_namespaced_pod(namespace, pod, dry_run="All")

    mapped = hybrid(airflow_environ, "render-pod", "cli_render", "mapped_in_pod", "--map-index", "1")
    assert mapped.returncode == 0, mapped.stderr[-3000:]
    assert yaml.safe_load(mapped.stdout)["metadata"]["annotations"]["map_index"] == "1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("cli_render", "on_celery"),
            "cli_render.on_celery is on queue 'default', which goes to Celery: it gets no pod",
        ),
        (("cli_render", "nope"), "DAG 'cli_render' has no task 'nope'; its tasks: in_pod, mapped_in_pod, on_celery"),
        (("cli_render", "mapped_in_pod"), "cli_render.mapped_in_pod is mapped: say which instance with --map-index N"),
        (("no_such_dag", "x"), "no DAG 'no_such_dag' in any DAG bundle"),
    ],
)
def test_render_pod_says_why_it_cannot_render(
    airflow_environ: AirflowEnv,
    executor_config: Callable[..., None],
    make_dag: Callable[[str, str], str],
    args: tuple[str, str],
    message: str,
) -> None:
    make_dag("cli_render", CLI_DAG)
    result = hybrid(airflow_environ, "render-pod", *args)
    assert result.returncode == 1
    assert f"error: {message}" in result.stderr
    assert result.stdout.strip() == ""


def _pod(name: str, script: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "base", "image": "busybox:1.36", "command": ["sh", "-c", script]}],
        },
    }


def test_cleanup_pods_deletes_only_our_finished_pods(
    airflow_environ: AirflowEnv, executor_config: Callable[..., None], namespace: str, kube_api: LocalKubeAPI
) -> None:
    from kubernetes.client import CoreV1Api

    from hybrid_executor.kubernetes.deployment import resolve_deployment_id

    unlabelled = {"app.kubernetes.io/managed-by": "hybrid-executor"}  # made by a version before the label
    ours = {**unlabelled, "hybrid-executor/deployment": resolve_deployment_id(None)}
    theirs = {**unlabelled, "hybrid-executor/deployment": "another-deployment"}
    core = CoreV1Api(kube_api.api_client())
    for pod in (
        _pod("ours-succeeded", "exit 0", ours),
        _pod("ours-failed", "exit 3", ours),
        _pod("ours-running", "sleep 600", ours),
        _pod("not-ours-succeeded", "exit 0", {"app": "other"}),
        _pod("theirs-succeeded", "exit 0", theirs),
        _pod("unlabelled-succeeded", "exit 0", unlabelled),
    ):
        core.create_namespaced_pod(namespace, pod)
    deadline = time.monotonic() + 30
    wanted = {
        "ours-succeeded": "Succeeded",
        "ours-failed": "Failed",
        "ours-running": "Running",
        "theirs-succeeded": "Succeeded",
        "unlabelled-succeeded": "Succeeded",
    }
    while {
        name: p["status"].get("phase") for name, p in _pods(kube_api, namespace).items() if name in wanted
    } != wanted:
        assert time.monotonic() < deadline, _pods(kube_api, namespace)
        time.sleep(0.2)

    dry = hybrid(airflow_environ, "cleanup-pods", "--dry-run", "--older-than", "0s")
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert f"would delete {namespace}/ours-succeeded (Succeeded" in dry.stdout
    assert (
        f"Would delete 2 finished pods (1 Failed, 1 Succeeded) of deployment {ours['hybrid-executor/deployment']}"
        in (dry.stdout)
    )
    assert set(_pods(kube_api, namespace)) == set(wanted) | {"not-ours-succeeded"}

    recent = hybrid(airflow_environ, "cleanup-pods", "--older-than", "1h")
    assert "Deleted 0 finished pods (none)" in recent.stdout
    assert "kept 2 finished less than 1h ago and 1 not finished" in recent.stdout

    done = hybrid(airflow_environ, "cleanup-pods", "--older-than", "0s")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Deleted 2 finished pods (1 Failed, 1 Succeeded)" in done.stdout
    deadline = time.monotonic() + 30
    while {"ours-succeeded", "ours-failed"} & set(_pods(kube_api, namespace)):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    left = {"ours-running", "not-ours-succeeded", "theirs-succeeded", "unlabelled-succeeded"}
    assert set(_pods(kube_api, namespace)) == left

    # Pods of older versions only when asked for; another deployment's never.
    older = hybrid(airflow_environ, "cleanup-pods", "--older-than", "0s", "--include-unlabelled")
    assert older.returncode == 0, older.stderr[-2000:]
    assert f"deleted {namespace}/unlabelled-succeeded (Succeeded" in older.stdout
    assert "Deleted 1 finished pods (1 Succeeded) of deployment" in older.stdout
    assert "and unlabelled" in older.stdout
    deadline = time.monotonic() + 30
    while "unlabelled-succeeded" in _pods(kube_api, namespace):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert set(_pods(kube_api, namespace)) == left - {"unlabelled-succeeded"}

    wrong = hybrid(airflow_environ, "cleanup-pods", "--older-than", "soon")
    assert wrong.returncode == 1
    assert "error: --older-than must be a duration such as 90s, 30m, 2h or 1d; got 'soon'" in wrong.stderr


def _pods(kube_api: LocalKubeAPI, namespace: str) -> dict[str, dict[str, Any]]:
    return {pod["metadata"]["name"]: pod for pod in kube_api.pods(namespace)}


def test_doctor_never_shows_the_brokers_password(
    airflow_environ: AirflowEnv, executor_config: Callable[..., None], namespace: str
) -> None:
    executor_config("celery", "broker_url", "redis://:hunter2-secret@127.0.0.1:1/0")
    result = hybrid(airflow_environ, "doctor")
    assert "redis://:***@127.0.0.1:1/0 does not answer" in result.stdout
    assert "hunter2" not in result.stdout + result.stderr


def test_doctor_names_each_verb_the_scheduler_may_not_use(
    airflow_environ: AirflowEnv,
    executor_config: Callable[..., None],
    namespace: str,
    tmp_path: Path,
    kube_api: LocalKubeAPI,
) -> None:
    executor_config("kubernetes_executor", "pod_template_file", str(_template(tmp_path)))
    rules = [
        kube_api.authorization.deny("delete", "pods", namespace=namespace),
        kube_api.authorization.deny("patch", "pods", namespace=namespace),
        kube_api.authorization.deny("get", "pods/log", namespace=namespace),
        kube_api.authorization.deny("get", "pods", namespace=namespace),  # the executor never gets a pod
    ]
    try:
        result = hybrid(airflow_environ, "doctor", "--json")
    finally:
        for rule in rules:
            kube_api.authorization.remove(rule)

    assert result.returncode == 1
    checks = [check for check in json.loads(result.stdout)["checks"] if check["name"] == "permissions"]
    assert checks[0]["status"] == "FAIL"
    assert checks[0]["detail"] == f"{namespace}: may not patch, delete pods"
    assert (
        f"bind this identity to a Role in {namespace} with verbs [create, list, watch, patch, delete]"
        in (checks[0]["fix"])
    )
    assert checks[1]["status"] == "WARN"
    # The api-server reads running tasks' logs, as its own identity: the check says whose need it is.
    assert checks[1]["detail"] == (
        f"{namespace}: this identity may not get pods/log; the api-server's identity (not the scheduler's) "
        "needs it, to show running tasks' logs"
    )
    assert checks[1]["fix"].startswith(f"grant the api-server's ServiceAccount get on pods/log in {namespace}")
    assert f"kubectl auth can-i get pods --subresource=log -n {namespace}" in checks[1]["fix"]


def _comparable(pod: dict[str, Any]) -> dict[str, Any]:
    """A pod without what exists only once the scheduler made the try: its ids, its run's trace parent, its token."""
    pod = json.loads(json.dumps(pod))
    pod["metadata"]["annotations"].pop("task_instance_id")
    pod["metadata"]["labels"].pop("hybrid-executor/scheduler-job")
    workload = json.loads(pod["spec"]["containers"][0]["args"][-1])
    for field in ("id", "dag_version_id", "context_carrier"):
        workload["ti"].pop(field)
    workload.pop("token")
    pod["spec"]["containers"][0]["args"][-1] = workload
    return pod


def test_render_pod_prints_what_the_executor_builds_for_a_queued_try(
    airflow_environ: AirflowEnv,
    executor_config: Callable[..., None],
    namespace: str,
    make_dag: Callable[[str, str], str],
    queue_run: Callable[..., list[Any]],
    tmp_path: Path,
) -> None:
    from kubernetes.client import ApiClient

    from hybrid_executor.kubernetes.executor import KubernetesPodExecutor

    make_dag("cli_render", CLI_DAG)
    executor_config("kubernetes_executor", "pod_template_file", str(_template(tmp_path)))
    executor = KubernetesPodExecutor()
    (queued,) = queue_run("cli_render", executor, ["in_pod"])  # as the scheduler queues it
    built = ApiClient().sanitize_for_serialization(executor._build_pod(queued.workload))

    result = hybrid(
        airflow_environ,
        "render-pod",
        "cli_render",
        "in_pod",
        "--run-id",
        queued.ti.run_id,
        "--external-executor-id",
        queued.ti.external_executor_id,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert _comparable(yaml.safe_load(result.stdout)) == _comparable(built)  # the same name too


# A quota full only because of other pods, in the ResourceQuota admission's words (a fault: the
# local kubelet would finish a filler pod before doctor runs).
FULL_QUOTA = (
    'pods "p" is forbidden: exceeded quota: hybrid-executor-workers, requested: requests.cpu=500m, '
    "used: requests.cpu=19800m, limited: requests.cpu=20"
)


def test_doctor_gives_each_refusal_its_own_fix(
    airflow_environ: AirflowEnv,
    executor_config: Callable[..., None],
    namespace: str,
    tmp_path: Path,
    kube_api: LocalKubeAPI,
) -> None:
    from kubernetes.client import CoreV1Api

    core = CoreV1Api(kube_api.api_client())

    def worker_namespace(queue: str, **labels: str) -> str:
        name = f"{namespace}-{queue}"
        core.create_namespace({"metadata": {"name": name, "labels": labels}})
        return name

    # The local API's own admission: ResourceQuota, LimitRanger, PodSecurity and ServiceAccount.
    full = worker_namespace("full")
    full_quota = kube_api.faults.add(
        "create", "pods", f"/api/v1/namespaces/{full}/pods", status=403, message=FULL_QUOTA
    )
    too_big = worker_namespace("too-big")
    core.create_namespaced_resource_quota(
        too_big, {"metadata": {"name": "hybrid-executor-workers"}, "spec": {"hard": {"requests.cpu": "20"}}}
    )
    unset = worker_namespace("unset")
    core.create_namespaced_resource_quota(
        unset, {"metadata": {"name": "q"}, "spec": {"hard": {"limits.memory": "64Gi"}}}
    )
    limits = worker_namespace("limits")
    core.create_namespaced_limit_range(
        limits, {"metadata": {"name": "l"}, "spec": {"limits": [{"type": "Container", "max": {"memory": "16Gi"}}]}}
    )
    psa = worker_namespace("psa", **{"pod-security.kubernetes.io/enforce": "restricted"})
    no_sa = worker_namespace("sa")
    templates = {
        "too-big": _template(tmp_path, container={"resources": {"requests": {"cpu": "30"}}}),
        "limits": _template(tmp_path, container={"resources": {"limits": {"memory": "32Gi"}}}),
        "sa": _template(tmp_path, spec={"serviceAccountName": "airflow-worker"}),
    }
    # A misspelt namespace, as the chart's namespaced Role sees it: no verb, and no way to read Namespaces.
    typo = f"{namespace}-wrokers"
    rules = [
        kube_api.authorization.deny("*", "pods", namespace=typo),
        kube_api.authorization.deny("get", "namespaces", name=typo),
    ]
    # hostNetwork: 127.0.0.1 is the node's own loopback, not the pod's.
    host_network = _template(tmp_path, url="http://127.0.0.1:8080/execution/", spec={"hostNetwork": True})
    loopback = _template(tmp_path, url="http://127.0.0.1:8080/execution/")
    executor_config("kubernetes_executor", "pod_template_file", str(_template(tmp_path)))
    namespaces = {"full": full, "too-big": too_big, "unset": unset, "limits": limits, "psa": psa, "sa": no_sa}
    queues = [
        f"{queue} namespace={where}" + (f" pod_template_file={templates[queue]}" if queue in templates else "")
        for queue, where in namespaces.items()
    ]
    queues += [
        f"typo namespace={typo}",
        f"host pod_template_file={host_network}",
        f"loopback pod_template_file={loopback}",
    ]
    executor_config("hybrid_executor", "kubernetes_queues", ", ".join(["kubernetes", *queues]))
    try:
        result = hybrid(airflow_environ, "doctor", "--json")
    finally:
        for rule in rules:
            kube_api.authorization.remove(rule)
        kube_api.faults.remove(full_quota)

    assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-2000:]
    checks = json.loads(result.stdout)["checks"]

    def check(name: str, start: str) -> dict[str, str]:
        (found,) = [c for c in checks if c["name"] == name and c["detail"].startswith(start)]
        return found

    # A quota full right now: the executor waits for it, so a WARN with the numbers, not a FAIL.
    full_check = check("dry-run pod", "queue full:")
    assert full_check["status"] == "WARN"
    assert full_check["detail"] == (
        f"queue full: ResourceQuota hybrid-executor-workers in {full} is full right now "
        "(requests.cpu: requested 500m, used 19800m, limited 20); pods wait for it (every other admission check passed)"
    )
    assert full_check["fix"].startswith("ResourceQuota hybrid-executor-workers is full (")

    # What no wait can clear: a FAIL with the refusal's own fix, and the API's message.
    too_big_check = check("dry-run pod", "queue too-big:")
    assert too_big_check["status"] == "FAIL"
    assert (
        "is forbidden: exceeded quota: hybrid-executor-workers, requested: requests.cpu=30, used: requests.cpu=0, "
        "limited: requests.cpu=20 (HTTP 403 Forbidden)"
    ) in too_big_check["detail"]
    assert too_big_check["fix"] == (
        "the pod alone asks for more than ResourceQuota hybrid-executor-workers allows (requests.cpu: requested 30, "
        "limited 20): lower it in the pod template or the task's pod_override, or raise the quota"
    )
    unset_check = check("dry-run pod", "queue unset:")
    assert unset_check["status"] == "FAIL"
    assert "failed quota: q: must specify limits.memory for: base" in unset_check["detail"]
    assert unset_check["fix"].startswith(
        "ResourceQuota q counts resources the pod does not set: set limits.memory for base"
    )
    limits_check = check("dry-run pod", "queue limits:")
    assert limits_check["status"] == "FAIL"
    assert "is forbidden: maximum memory usage per Container is 16Gi, but limit is 32Gi" in limits_check["detail"]
    assert limits_check["fix"].startswith(
        "the namespace's LimitRange refuses the pod (memory per Container at most 16Gi, the pod's limit is 32Gi)"
    )
    psa_check = check("dry-run pod", "queue psa:")
    assert psa_check["status"] == "FAIL"
    assert (
        'is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false'
        in psa_check["detail"]
    )
    assert psa_check["fix"].startswith("the namespace enforces the Pod Security Standard restricted:latest:")
    sa_check = check("dry-run pod", "queue sa:")
    assert sa_check["status"] == "FAIL"
    assert (
        f'is forbidden: error looking up service account {no_sa}/airflow-worker: serviceaccount "airflow-worker" '
        "not found"
    ) in sa_check["detail"]
    assert sa_check["fix"] == (
        f"create the ServiceAccount airflow-worker in namespace {no_sa} (the hybrid-executor chart does, "
        "with podTemplate.serviceAccount.create), or set the pod template's serviceAccountName to one that exists there"
    )
    for check_of_a_refusal in (too_big_check, unset_check, limits_check, psa_check, sa_check):
        assert "see the permissions and namespace checks above" not in check_of_a_refusal["fix"]

    # The misspelt namespace: not an impossible RoleBinding, but "it may not exist".
    unknown = check("namespace", f"{typo}:")
    assert unknown["status"] == "WARN"
    assert unknown["detail"] == (
        f"{typo}: cannot tell whether it exists "
        "(this identity may not get namespaces, which a namespaced Role cannot grant)"
    )
    denied = check("permissions", f"{typo}:")
    assert denied["status"] == "FAIL"
    assert denied["detail"] == f"{typo}: may not create, list, watch, patch, delete pods"
    assert denied["fix"].startswith(f"{typo} may not exist: check its spelling in [kubernetes_executor] namespace")
    typo_dry_run = check("dry-run pod", "queue typo:")
    assert typo_dry_run["status"] == "FAIL"
    assert f'cannot create resource "pods" in API group "" in the namespace "{typo}"' in typo_dry_run["detail"]
    assert typo_dry_run["fix"].startswith(f"{typo} may not exist (see the permissions check above)")
    assert f"grant system:admin the verb create on pods in namespace {typo}" in typo_dry_run["fix"]

    # A loopback execution API is the node's own with hostNetwork: no warning; without, the pod's own.
    host = check("execution api", "queue host:")
    assert host["status"] == "PASS"
    assert "with hostNetwork that is the node's own loopback" in host["detail"]
    own_loopback = check("execution api", "queue loopback:")
    assert own_loopback["status"] == "WARN"
    assert "is a loopback address: in a real cluster a pod reaches only itself there" in own_loopback["detail"]

    assert check("dry-run pod", "queue kubernetes:")["status"] == "PASS"
    assert check("execution api", "queue kubernetes:")["status"] == "PASS"


def test_doctor_says_a_cluster_wide_watch_needs_a_cluster_role(
    airflow_environ: AirflowEnv,
    executor_config: Callable[..., None],
    tmp_path: Path,
    kube_api: LocalKubeAPI,
) -> None:
    executor_config("kubernetes_executor", "pod_template_file", str(_template(tmp_path)))
    executor_config("kubernetes_executor", "multi_namespace_mode", "True")
    denied = kube_api.authorization.deny("*", "pods", namespace="")  # RoleBindings only
    try:
        result = hybrid(airflow_environ, "doctor", "--json")
    finally:
        kube_api.authorization.remove(denied)

    assert result.returncode == 1
    [check] = [c for c in json.loads(result.stdout)["checks"] if c["detail"].startswith("all namespaces:")]
    assert check["status"] == "FAIL"
    assert check["detail"].startswith("all namespaces: may not list, watch pods")
    assert "rbac.clusterWide.enabled=true" in check["fix"]

"""Pod building: the stock merge semantics, our identity (name, labels, annotations), errors, secrets.

Workloads are real ``ExecuteTask`` objects with a real JWT, built from a hand-made
``TaskInstanceDTO`` (no database row needed). Every pod is also checked against the local
Kubernetes API's validation rules, the ones the real API server applies on create.

Airflow reads its configuration when first imported, so nothing here imports Airflow (or
``hybrid_executor.kubernetes.pods``) before the session's ``airflow_environ`` is applied: the
module-scoped ``pods`` fixture does it, and helpers import inside their bodies.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hybrid_executor.testing.kube.names import dns1123_label_errors
from hybrid_executor.testing.kube.selectors import parse_label_selector
from hybrid_executor.testing.kube.validation import pod_errors

if TYPE_CHECKING:
    from airflow.executors.workloads import ExecuteTask
    from airflow.models.taskinstancekey import TaskInstanceKey
    from kubernetes.client import models as k8s

    from hybrid_executor.kubernetes.pods import PodContext

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
WORKLOAD_MODULE = "airflow.sdk.execution_time.execute_workload"

QUEUEING = "0198f3a2-5b7c-7d1e-9a4f-2c6b8e1d3f50"  # an external_executor_id, as the scheduler draws them

TEMPLATE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "ignored-template-name",
        "namespace": "template-namespace",
        "labels": {"team": "data", "kubernetes_executor": "True"},
        "annotations": {"owner": "data-platform"},
    },
    "spec": {
        "restartPolicy": "Never",
        "serviceAccountName": "airflow-worker",
        "nodeSelector": {"pool": "batch"},
        "volumes": [{"name": "logs", "emptyDir": {}}],
        "containers": [
            {
                "name": "base",
                "image": "template/airflow:1",
                "env": [{"name": "FROM_TEMPLATE", "value": "1"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                "volumeMounts": [{"name": "logs", "mountPath": "/opt/airflow/logs"}],
            },
            {"name": "log-shipper", "image": "fluent/fluent-bit:3", "args": ["--quiet"]},
        ],
    },
}


# --- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def pods(airflow_environ: object) -> ModuleType:
    from hybrid_executor.kubernetes import pods as module

    return module


@pytest.fixture(scope="module")
def jwt_generator(pods: ModuleType) -> Any:
    from airflow.api_fastapi.auth.tokens import JWTGenerator

    return JWTGenerator(secret_key="k" * 64, valid_for=600, audience="urn:airflow.apache.org:task")


@pytest.fixture
def workload(jwt_generator: Any) -> Callable[..., ExecuteTask]:
    def make(**fields: Any) -> ExecuteTask:
        return make_workload(jwt_generator, **fields)

    return make


def make_workload(
    jwt_generator: Any,
    *,
    dag_id: str = "etl_orders",
    task_id: str = "load_orders",
    run_id: str = "scheduled__2026-11-20T00:00:00+00:00",
    try_number: int = 1,
    map_index: int = -1,
    executor_config: dict[str, Any] | None = None,
    external_executor_id: str | None = "0198f3a2-5b7c-7d1e-9a4f-2c6b8e1d3f50",
) -> ExecuteTask:
    from airflow.executors.workloads import BundleInfo, ExecuteTask
    from airflow.executors.workloads.task import TaskInstanceDTO

    ti = TaskInstanceDTO(
        id=uuid.uuid4(),
        dag_id=dag_id,
        task_id=task_id,
        run_id=run_id,
        try_number=try_number,
        map_index=map_index,
        dag_version_id=uuid.uuid4(),
        queue="kubernetes",
        pool_slots=1,
        priority_weight=1,
        executor_config=executor_config,
        external_executor_id=external_executor_id,  # what the scheduler draws when it queues the task
    )
    return ExecuteTask(
        ti=ti,
        dag_rel_path=Path("etl/orders.py"),
        token=ExecuteTask.generate_token(str(ti.id), jwt_generator),
        log_path=f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}/attempt={try_number}.log",
        bundle_info=BundleInfo(name="dags-folder"),
    )


def v1pod(document: dict[str, Any]) -> k8s.V1Pod:
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator

    return PodGenerator.deserialize_model_dict(document)


def context(
    *,
    base: dict[str, Any] | None = None,
    image: str | None = "registry.example/airflow:3.3.2",
    namespace: str = "airflow",
    job_id: str = "42",
    allowed_namespaces: frozenset[str] = frozenset(),
    any_namespace: bool = False,
    deployment_id: str | None = "d0e1f2a3b4c5",
) -> PodContext:
    from hybrid_executor.kubernetes.pods import PodContext

    return PodContext(
        namespace=namespace,
        scheduler_job_id=job_id,
        image=image,
        base_pod=v1pod(TEMPLATE if base is None else base),
        allowed_namespaces=allowed_namespaces,
        any_namespace=any_namespace,
        deployment_id=deployment_id,
    )


def as_json(pod: Any) -> dict[str, Any]:
    """The pod as the API receives it (what the launcher sends)."""
    from kubernetes.client import ApiClient

    result: dict[str, Any] = ApiClient().sanitize_for_serialization(pod)
    return result


def assert_valid_for_the_api(pod: Any) -> None:
    assert pod_errors(as_json(pod)) == []


def write_template(folder: Path, document: Any, name: str = "template.yaml") -> str:
    path = folder / name
    if isinstance(document, bytes):
        path.write_bytes(document)
    else:
        path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return str(path)


def override(
    *,
    image: str | None = None,
    env: Any = None,
    resources: dict[str, Any] | None = None,
    namespace: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    name: str | None = None,
) -> k8s.V1Pod:
    from kubernetes.client import models as k8s

    if isinstance(env, dict):
        env = [k8s.V1EnvVar(name=name, value=value) for name, value in env.items()]
    container = k8s.V1Container(name="base", image=image, env=env)
    if resources is not None:
        container.resources = k8s.V1ResourceRequirements(**resources)
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name=name, namespace=namespace, labels=labels, annotations=annotations),
        spec=k8s.V1PodSpec(containers=[container]),
    )


def env_of(container: Any) -> dict[str, str]:
    return {e.name: e.value for e in container.env or []}


@pytest.fixture
def local_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Install an ``airflow_local_settings.py`` the way Airflow does: ``settings.import_local_settings``."""
    import airflow.settings

    manager = airflow.settings.get_policy_plugin_manager()
    added: list[object] = []

    def install(source: str) -> None:
        folder = tmp_path / "config"
        folder.mkdir()
        (folder / "airflow_local_settings.py").write_text(source)
        monkeypatch.syspath_prepend(str(folder))
        sys.modules.pop("airflow_local_settings", None)
        before = set(manager.get_plugins())
        airflow.settings.import_local_settings()  # type: ignore[no-untyped-call]
        added.extend(set(manager.get_plugins()) - before)

    yield install
    for plugin in added:
        manager.unregister(plugin)
    sys.modules.pop("airflow_local_settings", None)


# --- the command and the merge ---------------------------------------------------------------


def test_pod_runs_the_workload_with_the_task_sdk_command(pods: ModuleType, workload: Callable[..., Any]) -> None:
    from airflow.executors.workloads import ExecuteTask

    task = workload()
    pod = pods.build_worker_pod(task, context())

    base = pod.spec.containers[0]
    assert base.name == "base"
    assert base.args[:4] == ["python", "-m", WORKLOAD_MODULE, "--json-string"]
    sent = ExecuteTask.model_validate_json(base.args[4])
    assert sent.ti.id == task.ti.id
    assert sent.token == task.token  # the worker needs it: the pod's args carry the token
    assert env_of(base)["AIRFLOW_IS_K8S_EXECUTOR_POD"] == "True"
    assert_valid_for_the_api(pod)


def test_spec_is_what_the_stock_kubernetes_executor_builds(
    pods: ModuleType, workload: Callable[..., Any], tmp_path: Path
) -> None:
    """Same inputs through the stock executor's own calls (_build_pod_request): same spec."""
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator, workload_to_command_args

    executor_config = {"pod_override": override(env={"EXTRA": "x"}, resources={"limits": {"memory": "1Gi"}})}
    task = workload(executor_config=executor_config)
    path = write_template(tmp_path, TEMPLATE)

    ours = pods.build_worker_pod(task, context(base=TEMPLATE))
    stock = PodGenerator.construct_pod(
        namespace="airflow",
        scheduler_job_id="42",
        pod_id="stock-name",
        dag_id=task.ti.dag_id,
        task_id=task.ti.task_id,
        kube_image="registry.example/airflow:3.3.2",
        try_number=task.ti.try_number,
        map_index=task.ti.map_index,
        date=None,
        run_id=task.ti.run_id,
        args=workload_to_command_args(task),
        pod_override_object=PodGenerator.from_obj(executor_config),
        base_worker_pod=PodGenerator.deserialize_model_file(path),
        with_mutation_hook=True,
    )
    assert as_json(ours)["spec"] == as_json(stock)["spec"]
    assert ours.metadata.namespace == stock.metadata.namespace == "airflow"
    # Ours differ only by identity: our name, our labels, exact annotations, no kubernetes_executor.
    stock_labels = dict(stock.metadata.labels)
    assert stock_labels.pop("kubernetes_executor") == "True"
    assert stock_labels.pop("airflow-worker") == ours.metadata.labels["hybrid-executor/scheduler-job"]
    assert stock_labels.items() <= ours.metadata.labels.items()
    assert stock.metadata.annotations.items() <= ours.metadata.annotations.items()


def test_template_and_pod_override_merge(pods: ModuleType, workload: Callable[..., Any]) -> None:
    from kubernetes.client import models as k8s

    pod_override = override(
        image="team/airflow-ml:7",
        env={"MODEL": "resnet"},
        resources={"requests": {"cpu": "2"}, "limits": {"cpu": "4", "memory": "8Gi"}},
        labels={"cost-center": "ml"},
        annotations={"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
    )
    pod_override.spec.tolerations = [k8s.V1Toleration(key="gpu", operator="Exists", effect="NoSchedule")]
    pod = pods.build_worker_pod(workload(executor_config={"pod_override": pod_override}), context())

    base, sidecar = pod.spec.containers
    assert env_of(base) == {"FROM_TEMPLATE": "1", "AIRFLOW_IS_K8S_EXECUTOR_POD": "True", "MODEL": "resnet"}
    assert base.image == "team/airflow-ml:7"  # the override's image wins over the worker image
    # resources is one field: the override's replaces the template's, as in the stock executor
    assert base.resources.requests == {"cpu": "2"}
    assert base.resources.limits == {"cpu": "4", "memory": "8Gi"}
    assert [m.mount_path for m in base.volume_mounts] == ["/opt/airflow/logs"]
    assert (sidecar.name, sidecar.image, sidecar.args) == ("log-shipper", "fluent/fluent-bit:3", ["--quiet"])
    assert pod.spec.node_selector == {"pool": "batch"}
    assert pod.spec.service_account_name == "airflow-worker"
    assert [t.key for t in pod.spec.tolerations] == ["gpu"]
    assert [v.name for v in pod.spec.volumes] == ["logs"]
    assert pod.metadata.labels["team"] == "data"
    assert pod.metadata.labels["cost-center"] == "ml"
    assert pod.metadata.annotations["owner"] == "data-platform"
    assert pod.metadata.annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    assert_valid_for_the_api(pod)


@pytest.mark.parametrize(
    ("worker_image", "override_image", "expected"),
    [
        ("registry.example/airflow:3.3.2", None, "registry.example/airflow:3.3.2"),
        ("registry.example/airflow:3.3.2", "team/custom:1", "team/custom:1"),
        (None, None, "template/airflow:1"),
        (None, "team/custom:1", "team/custom:1"),
    ],
)
def test_image_precedence(
    pods: ModuleType,
    workload: Callable[..., Any],
    worker_image: str | None,
    override_image: str | None,
    expected: str,
) -> None:
    executor_config = {"pod_override": override(image=override_image)} if override_image else None
    pod = pods.build_worker_pod(workload(executor_config=executor_config), context(image=worker_image))
    assert pod.spec.containers[0].image == expected


def test_task_pod_template_file_replaces_the_queue_template(
    pods: ModuleType, workload: Callable[..., Any], tmp_path: Path
) -> None:
    gpu = {
        "apiVersion": "v1",
        "kind": "Pod",
        "spec": {
            "containers": [{"name": "base", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
            "nodeSelector": {"accelerator": "a100"},
        },
    }
    task_template = write_template(tmp_path, gpu)

    queue_pod = pods.build_worker_pod(workload(), context(base=TEMPLATE))
    task_pod = pods.build_worker_pod(workload(executor_config={"pod_template_file": task_template}), context())
    empty = pods.build_worker_pod(workload(executor_config={"pod_template_file": ""}), context())

    assert queue_pod.spec.node_selector == {"pool": "batch"}
    assert task_pod.spec.node_selector == {"accelerator": "a100"}
    assert task_pod.spec.containers[0].resources.limits == {"nvidia.com/gpu": "1"}
    assert len(task_pod.spec.containers) == 1  # nothing of the queue's template
    assert empty.spec.node_selector == {"pool": "batch"}  # "" means unset, as in the stock executor
    assert_valid_for_the_api(task_pod)


def test_building_never_changes_the_cached_template(
    pods: ModuleType, workload: Callable[..., Any], local_settings: Callable[[str], None]
) -> None:
    local_settings(
        "__all__ = ['pod_mutation_hook']\n"
        "def pod_mutation_hook(pod):\n"
        "    pod.spec.volumes.append(type(pod.spec.volumes[0])(name='scratch', empty_dir={}))\n"
        "    pod.spec.containers[0].env.append(type(pod.spec.containers[0].env[0])(name='HOOKED', value='1'))\n"
        "    pod.metadata.labels['hooked'] = 'yes'\n"
    )
    ctx = context()
    before = as_json(ctx.base_pod)
    first = pods.build_worker_pod(workload(), ctx)
    second = pods.build_worker_pod(workload(task_id="other"), ctx)
    assert as_json(ctx.base_pod) == before
    assert [v.name for v in second.spec.volumes] == ["logs", "scratch"]
    assert [e.name for e in second.spec.containers[0].env].count("HOOKED") == 1
    assert first.spec.containers[0] is not second.spec.containers[0]


# --- the mutation hook ---------------------------------------------------------------------------


def test_pod_mutation_hook_from_airflow_local_settings_is_applied_before_our_identity(
    pods: ModuleType, workload: Callable[..., Any], local_settings: Callable[[str], None]
) -> None:
    local_settings(
        "from kubernetes.client import models as k8s\n"
        "__all__ = ['pod_mutation_hook']\n"
        "def pod_mutation_hook(pod):\n"
        "    pod.metadata.labels['mutated'] = 'true'\n"
        "    pod.metadata.labels['kubernetes_executor'] = 'True'\n"
        "    pod.metadata.labels.pop('airflow-worker')\n"
        "    pod.metadata.name = 'renamed-by-hook'\n"
        "    pod.metadata.annotations['dag_id'] = 'tampered'\n"
        "    pod.spec.init_containers = [k8s.V1Container(name='wait-db', image='busybox:1', args=['true'])]\n"
    )
    task = workload()
    pod = pods.build_worker_pod(task, context())

    assert pod.metadata.labels["mutated"] == "true"
    assert [c.name for c in pod.spec.init_containers] == ["wait-db"]
    # Our identity has the last word: the hook cannot rename, hide or re-key the pod.
    assert pod.metadata.name == pods.pod_name_for(task.ti.key, task.ti.external_executor_id)
    assert "kubernetes_executor" not in pod.metadata.labels
    assert pod.metadata.labels["hybrid-executor/scheduler-job"] == "42"
    assert pods.task_key_from_pod(pod) == task.ti.key
    assert_valid_for_the_api(pod)


def test_mutation_hook_error_names_the_hook_and_never_the_token(
    pods: ModuleType, workload: Callable[..., Any], local_settings: Callable[[str], None]
) -> None:
    local_settings(
        "__all__ = ['pod_mutation_hook']\n"
        "def pod_mutation_hook(pod):\n"
        "    raise RuntimeError(f'refusing pod with args {pod.spec.containers[0].args}')\n"
    )
    task = workload()
    with pytest.raises(pods.PodBuildError) as caught:
        pods.build_worker_pod(task, context())

    error = caught.value
    assert "pod_mutation_hook" in str(error)
    assert "RuntimeError: refusing pod with args" in str(error)
    assert "etl_orders.load_orders" in str(error)
    assert error.key == task.ti.key
    assert "in pod_mutation_hook" in error.detail  # the hook's traceback, for the scheduler log
    assert len(str(error)) < 1000  # the hook printed the whole workload: cut short for the event log
    assert_no_token(task.token, error)


# --- identity: name, labels, annotations, key -------------------------------------------------


def test_labels_and_annotations(pods: ModuleType, workload: Callable[..., Any]) -> None:
    from airflow.providers.cncf.kubernetes.pod_generator import make_safe_label_value

    task = workload(run_id="manual__2026-11-20T10:00:00+00:00", try_number=3, map_index=7)
    pod = pods.build_worker_pod(task, context(job_id="1234"))

    labels = pod.metadata.labels
    assert labels["app.kubernetes.io/managed-by"] == "hybrid-executor"
    assert labels["hybrid-executor/scheduler-job"] == "1234"
    # Neither of the stock executor's ownership labels: a stock executor must never see our pods.
    assert "airflow-worker" not in labels
    assert "kubernetes_executor" not in labels
    assert labels["dag_id"] == "etl_orders"
    assert labels["task_id"] == "load_orders"
    assert labels["try_number"] == "3"
    assert labels["map_index"] == "7"
    # ':' and '+' are not allowed in a label value: the provider's rule, as the stock executor labels it
    assert labels["run_id"] == make_safe_label_value(task.ti.run_id) != task.ti.run_id
    assert "kubernetes_executor" not in labels  # even though the template sets it
    assert pod.metadata.annotations == {
        "owner": "data-platform",
        "dag_id": "etl_orders",
        "task_id": "load_orders",
        "run_id": "manual__2026-11-20T10:00:00+00:00",
        "try_number": "3",
        "map_index": "7",
        "hybrid-executor/external-executor-id": task.ti.external_executor_id,
        "task_instance_id": str(task.ti.id),
    }
    assert pod.metadata.name == pods.pod_name_for(task.ti.key, task.ti.external_executor_id)
    assert pod.metadata.namespace == "airflow"  # not the template's
    assert_valid_for_the_api(pod)


def test_unmapped_task_has_no_map_index_label(pods: ModuleType, workload: Callable[..., Any]) -> None:
    pod = pods.build_worker_pod(workload(map_index=-1), context())
    assert "map_index" not in pod.metadata.labels  # "-1" is not a valid label value
    assert pod.metadata.annotations["map_index"] == "-1"


def test_pod_override_cannot_rename_the_pod(pods: ModuleType, workload: Callable[..., Any]) -> None:
    task = workload(executor_config={"pod_override": override(name="my-pod")})
    pod = pods.build_worker_pod(task, context())
    assert pod.metadata.name == pods.pod_name_for(task.ti.key, task.ti.external_executor_id)


def hostile_text(min_size: int = 0) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(min_size=min_size, max_size=80),
        st.text(alphabet="-_. /:+", min_size=max(min_size, 1), max_size=20),  # nothing left after sanitising
        st.text(alphabet="éÉßçøİı\uff21中文\U0001d518\u0301", min_size=max(min_size, 1), max_size=30),
        st.text(alphabet="abcxyz_-", min_size=200, max_size=2000),  # very long
    )


task_keys = st.builds(
    lambda d, t, r, tn, mi: (d, t, r, tn, mi),
    hostile_text(min_size=1),
    hostile_text(min_size=1),
    hostile_text(min_size=1),
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=-1, max_value=10**6),
)


def key_of(fields: tuple[str, str, str, int, int]) -> TaskInstanceKey:
    from airflow.models.taskinstancekey import TaskInstanceKey

    return TaskInstanceKey(*fields)


@settings(max_examples=400, deadline=None)
@given(
    dag_id=hostile_text(),
    task_id=hostile_text(),
    run_id=hostile_text(),
    try_number=st.integers(),
    map_index=st.integers(),
)
def test_pod_name_is_a_dns_label_for_any_key(
    pods: ModuleType, dag_id: str, task_id: str, run_id: str, try_number: int, map_index: int
) -> None:
    key = key_of((dag_id, task_id, run_id, try_number, map_index))
    name = pods.pod_name_for(key, QUEUEING)
    assert len(name) <= 63
    assert DNS1123_LABEL.fullmatch(name), name
    assert dns1123_label_errors(name) == []  # the API server's own rule
    assert pods.pod_name_for(key_of((dag_id, task_id, run_id, try_number, map_index)), QUEUEING) == name


@settings(max_examples=400, deadline=None)
@given(a=task_keys, b=task_keys)
def test_different_keys_give_different_names(
    pods: ModuleType, a: tuple[str, str, str, int, int], b: tuple[str, str, str, int, int]
) -> None:
    assume(a != b)
    assert pods.pod_name_for(key_of(a), QUEUEING) != pods.pod_name_for(key_of(b), QUEUEING)


@settings(max_examples=200, deadline=None)
@given(fields=task_keys, other_try=st.integers(min_value=0), other_index=st.integers(min_value=-1))
def test_each_try_and_map_index_gets_its_own_name(
    pods: ModuleType, fields: tuple[str, str, str, int, int], other_try: int, other_index: int
) -> None:
    dag_id, task_id, run_id, try_number, map_index = fields
    name = pods.pod_name_for(key_of(fields), QUEUEING)
    if other_try != try_number:
        assert pods.pod_name_for(key_of((dag_id, task_id, run_id, other_try, map_index)), QUEUEING) != name
    if other_index != map_index:
        assert pods.pod_name_for(key_of((dag_id, task_id, run_id, try_number, other_index)), QUEUEING) != name


@settings(max_examples=200, deadline=None)
@given(fields=task_keys, a=st.uuids(), b=st.uuids())
def test_each_queueing_of_the_same_try_gets_its_own_name(
    pods: ModuleType, fields: tuple[str, str, str, int, int], a: uuid.UUID, b: uuid.UUID
) -> None:
    # A deferred task's resumption, each reschedule poke and a requeue keep the try number: the
    # scheduler's new external_executor_id is what tells the queueings apart.
    assume(a != b)
    key = key_of(fields)
    assert pods.pod_name_for(key, str(a)) != pods.pod_name_for(key, str(b))
    assert pods.pod_name_for(key, str(a)) == pods.pod_name_for(key_of(fields), str(a))  # retries: the same name


def test_a_pod_names_its_queueing_and_a_pod_without_one_is_an_older_pod(
    pods: ModuleType, workload: Callable[..., Any]
) -> None:
    task = workload()
    pod = pods.build_worker_pod(task, context())

    assert pod.metadata.annotations[pods.ANNOTATION_EXTERNAL_EXECUTOR_ID] == task.ti.external_executor_id
    assert pods.queueing_of_pod(pod) == task.ti.external_executor_id
    assert pods.queueing_of_pod(as_json(pod)) == task.ti.external_executor_id
    assert pods.queueing_of_pod({"metadata": {"annotations": {"dag_id": "d"}}}) == ""
    # Pods made before pods carried the queueing were named from the key alone: the name is kept.
    assert pods.pod_name_for(task.ti.key, None) == pods.pod_name_for(task.ti.key, "")


def test_the_selector_for_a_try_selects_its_pods_of_every_queueing(
    pods: ModuleType, workload: Callable[..., Any]
) -> None:
    first, second = workload(external_executor_id="a" * 8), workload(external_executor_id="b" * 8)
    selector = dict(part.split("=", 1) for part in pods.pod_selector_for_try(first.ti.key).split(","))

    for task in (first, second):
        labels = pods.build_worker_pod(task, context()).metadata.labels
        assert selector.items() <= labels.items()
    assert pods.LABEL_SCHEDULER_JOB not in selector  # any scheduler's: the api-server reads logs, not a scheduler
    assert "map_index" not in selector


@pytest.mark.parametrize(
    ("dag_id", "task_id", "prefix"),
    [
        ("etl_orders", "load_orders", "etl-orders-load-orders-"),
        ("Café.Daily", "Überprüfung", "cafe-daily-uberprufung-"),
        ("\uff26\uff35\uff2c\uff2c width", "group.task_1", "full-width-group-task-1-"),
        ("中文", "task", "task-"),
        ("___", "...", ""),
    ],
)
def test_pod_name_has_a_readable_prefix(pods: ModuleType, dag_id: str, task_id: str, prefix: str) -> None:
    name = pods.pod_name_for(key_of((dag_id, task_id, "run", 1, -1)), QUEUEING)
    assert name.startswith(prefix)
    assert re.fullmatch(r"[a-z2-7]{16}", name.removeprefix(prefix))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("a-b", "c", "run"), ("a", "b-c", "run")),  # same prefix "a-b-c"
        (("a_b", "t", "run"), ("a.b", "t", "run")),
        (("A", "t", "run"), ("a", "t", "run")),
        (("d", "t", "manual__1"), ("d", "t", "manual__2")),
        (("x" * 100, "t", "run"), ("x" * 101, "t", "run")),  # differ beyond the truncation
    ],
)
def test_keys_with_the_same_readable_prefix_get_different_names(
    pods: ModuleType, a: tuple[str, str, str], b: tuple[str, str, str]
) -> None:
    name_a, name_b = pods.pod_name_for(key_of((*a, 1, -1)), QUEUEING), pods.pod_name_for(key_of((*b, 1, -1)), QUEUEING)
    assert name_a[:-16] == name_b[:-16]
    assert name_a != name_b


def test_long_ids_keep_both_dag_and_task_in_the_name(pods: ModuleType) -> None:
    name = pods.pod_name_for(key_of(("d" * 300, "t" * 300, "run", 1, -1)), QUEUEING)
    assert len(name) == 63
    assert "d-t" in name
    short_dag = pods.pod_name_for(key_of(("etl", "t" * 300, "run", 1, -1)), QUEUEING)
    assert short_dag.startswith("etl-ttt")


def test_pod_names_are_the_names_earlier_releases_gave(pods: ModuleType) -> None:
    # A create retried across an upgrade, and adoption's 409 handling, rely on one queueing's pod
    # name never changing between releases: these were computed by the release before the name's
    # computation was made faster.
    key = key_of(("Étl_daily", "load.part", "manual__2026-01-01T00:00:00+00:00", 3, 7))
    assert pods.pod_name_for(key, "0b5e9c1e-4c1f-4a57-9d59-6f0c2f3b7a11") == "etl-daily-load-part-dl3ag2awo636ho2b"
    relaunched = pods.pod_name_for(key_of(("etl", "t" * 300, "run", 1, -1)), "q", 2)
    assert relaunched == "etl-tttttttttttttttttttttttttttttttttttttttttt-yas4nd7kebmd6lw7"
    assert pods.pod_name_for(key_of(("+:", "--", "r", 1, -1)), "") == "od5kstz6gd2zirml"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=task_keys, job_id=st.sampled_from(["1", "42", "9" * 70]))
def test_any_key_makes_a_pod_the_api_accepts_and_the_key_round_trips(
    pods: ModuleType, jwt_generator: Any, fields: tuple[str, str, str, int, int], job_id: str
) -> None:
    dag_id, task_id, run_id, try_number, map_index = fields
    task = make_workload(
        jwt_generator, dag_id=dag_id, task_id=task_id, run_id=run_id, try_number=try_number, map_index=map_index
    )
    pod = pods.build_worker_pod(task, context(job_id=job_id))
    assert_valid_for_the_api(pod)  # name, label keys and values, annotations
    assert pods.task_key_from_pod(pod) == task.ti.key
    assert pods.task_key_from_pod(as_json(pod)) == task.ti.key  # the raw JSON the watcher sees
    assert parse_label_selector(pods.selector_for_scheduler(job_id=job_id)).matches(as_json(pod))


def test_task_key_from_pods_that_are_not_ours(pods: ModuleType, workload: Callable[..., Any]) -> None:
    pod = as_json(pods.build_worker_pod(workload(), context()))
    assert pods.task_key_from_pod(pod) is not None

    stock = json.loads(json.dumps(pod))
    del stock["metadata"]["labels"]["app.kubernetes.io/managed-by"]
    stock["metadata"]["labels"]["kubernetes_executor"] = "True"
    assert pods.task_key_from_pod(stock) is None

    for missing in ("dag_id", "task_id", "run_id", "try_number"):
        incomplete = json.loads(json.dumps(pod))
        del incomplete["metadata"]["annotations"][missing]
        assert pods.task_key_from_pod(incomplete) is None, missing

    garbled = json.loads(json.dumps(pod))
    garbled["metadata"]["annotations"]["try_number"] = "three"
    assert pods.task_key_from_pod(garbled) is None

    no_map_index = json.loads(json.dumps(pod))
    del no_map_index["metadata"]["annotations"]["map_index"]
    assert pods.task_key_from_pod(no_map_index).map_index == -1

    assert pods.task_key_from_pod({"metadata": {}}) is None
    assert pods.task_key_from_pod({}) is None
    assert pods.task_key_from_pod(v1pod({"metadata": {"name": "x"}})) is None


def test_selectors(pods: ModuleType, workload: Callable[..., Any]) -> None:
    assert pods.selector_for_scheduler() == "app.kubernetes.io/managed-by=hybrid-executor"
    assert (
        pods.selector_for_scheduler(job_id="7")
        == "app.kubernetes.io/managed-by=hybrid-executor,hybrid-executor/scheduler-job=7"
    )
    assert (
        pods.selector_for_scheduler(exclude_job_id="7")
        == "app.kubernetes.io/managed-by=hybrid-executor,hybrid-executor/scheduler-job!=7"
    )

    mine = as_json(pods.build_worker_pod(workload(), context(job_id="7")))
    theirs = as_json(pods.build_worker_pod(workload(), context(job_id="8")))
    stock = json.loads(json.dumps(theirs))
    del stock["metadata"]["labels"]["app.kubernetes.io/managed-by"]

    def selected(selector: str) -> list[bool]:
        parsed = parse_label_selector(selector)
        return [parsed.matches(p) for p in (mine, theirs, stock)]

    assert selected(pods.selector_for_scheduler()) == [True, True, False]
    assert selected(pods.selector_for_scheduler(job_id="7")) == [True, False, False]
    assert selected(pods.selector_for_scheduler(exclude_job_id="7")) == [False, True, False]
    # A scheduler's watch: its job's pods of its own deployment, not another's numbering its jobs alike.
    other_deployment = as_json(pods.build_worker_pod(workload(), context(job_id="7", deployment_id="other")))
    watch = parse_label_selector(pods.selector_for_scheduler(job_id="7", deployment_id="d0e1f2a3b4c5"))
    assert [watch.matches(p) for p in (mine, theirs, stock, other_deployment)] == [True, False, False, False]
    # What a stock KubernetesExecutor's adoption lists never includes our pods.
    assert selected("kubernetes_executor=True,airflow-worker!=7") == [False, False, False]
    assert selected("airflow-worker=7") == [False, False, False]
    assert pods.scheduler_job_labels("8") == {"hybrid-executor/scheduler-job": "8"}
    assert pods.scheduler_job_labels("8", "prod") == {
        "hybrid-executor/scheduler-job": "8",
        "hybrid-executor/deployment": "prod",
    }


def test_every_pod_carries_its_deployment_and_the_cleanup_selects_on_it(
    pods: ModuleType, workload: Callable[..., Any]
) -> None:
    from hybrid_executor.kubernetes.identity import selector_for_deployment

    # A template or an override cannot make a pod another deployment's.
    base = {**TEMPLATE, "metadata": {"labels": {"hybrid-executor/deployment": "theirs"}}}
    ours_7 = as_json(pods.build_worker_pod(workload(), context(job_id="7", base=base, deployment_id="ours")))
    ours_8 = as_json(pods.build_worker_pod(workload(), context(job_id="8", deployment_id="ours")))
    theirs_7 = as_json(pods.build_worker_pod(workload(), context(job_id="7", deployment_id="theirs")))
    older = json.loads(json.dumps(ours_7))
    del older["metadata"]["labels"]["hybrid-executor/deployment"]
    assert ours_7["metadata"]["labels"]["hybrid-executor/deployment"] == "ours"

    def selected(selector: str) -> list[bool]:
        parsed = parse_label_selector(selector)
        return [parsed.matches(p) for p in (ours_7, ours_8, theirs_7, older)]

    assert selected(selector_for_deployment("ours")) == [True, True, False, False]
    assert selected(selector_for_deployment("ours", ["8", "9"])) == [True, False, False, False]
    assert selector_for_deployment("ours", ["9", "8", "8"]) == (
        "app.kubernetes.io/managed-by=hybrid-executor,hybrid-executor/deployment=ours,"
        "hybrid-executor/scheduler-job notin (8,9)"
    )


# --- errors ------------------------------------------------------------------------------------


def assert_no_token(token: str, error: BaseException) -> None:
    assert token.startswith("eyJ")  # a real JWT, so the check means something
    texts = [str(error), repr(error), *(str(a) for a in error.args), getattr(error, "detail", None) or ""]
    for text in texts:
        assert token not in text
        for part in token.split("."):
            assert part not in text
    # Nothing chained that a log's traceback would print (the provider's exceptions hold the pod).
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


@pytest.mark.parametrize(
    ("executor_config", "expected"),
    [
        ({"pod_override": {"spec": {"containers": []}}}, r"executor_config\['pod_override'\] is a dict, not a .*V1Pod"),
        ({"pod_override": "yaml"}, r"is a str, not a kubernetes.client.models.V1Pod"),
        ({"KubernetesExecutor": {"image": "x"}}, r"Airflow 1 'KubernetesExecutor' key"),
        ({"pod_template_file": 3}, r"executor_config\['pod_template_file'\] is a int, not a path"),
        ({"pod_template_file": "/nonexistent/gpu.yaml"}, r"'/nonexistent/gpu.yaml' does not exist"),
    ],
)
def test_bad_executor_config_is_a_build_error_naming_the_task(
    pods: ModuleType, workload: Callable[..., Any], executor_config: dict[str, Any], expected: str
) -> None:
    task = workload(executor_config=executor_config)
    with pytest.raises(pods.PodBuildError, match=expected) as caught:
        pods.build_worker_pod(task, context())
    assert "task etl_orders.load_orders (run_id scheduled__2026-11-20T00:00:00+00:00, try 1)" in str(caught.value)
    assert caught.value.key == task.ti.key
    assert_no_token(task.token, caught.value)


def test_override_that_cannot_be_merged_is_a_build_error(pods: ModuleType, workload: Callable[..., Any]) -> None:
    task = workload(executor_config={"pod_override": override(env="NOT_A_LIST")})
    with pytest.raises(pods.PodBuildError, match=r"cannot be merged .*ValueError: The chosen field must be a list"):
        pods.build_worker_pod(task, context())


def test_override_namespace_must_be_one_we_watch(pods: ModuleType, workload: Callable[..., Any]) -> None:
    task = workload(executor_config={"pod_override": override(namespace="elsewhere")})
    with pytest.raises(pods.PodBuildError, match=r"namespace 'elsewhere', which this executor does not watch"):
        pods.build_worker_pod(task, context())
    pod = pods.build_worker_pod(task, context(allowed_namespaces=frozenset({"elsewhere"})))
    assert pod.metadata.namespace == "elsewhere"
    # multi_namespace_mode without a list: one cluster-wide watch sees any namespace.
    assert pods.build_worker_pod(task, context(any_namespace=True)).metadata.namespace == "elsewhere"
    same = workload(executor_config={"pod_override": override(namespace="airflow")})
    assert pods.build_worker_pod(same, context()).metadata.namespace == "airflow"


def test_no_image_anywhere_is_a_build_error(pods: ModuleType, workload: Callable[..., Any]) -> None:
    bare = {"spec": {"containers": [{"name": "base"}]}}
    with pytest.raises(pods.PodBuildError, match=r"no image; set \[kubernetes_executor\] worker_container_repository"):
        pods.build_worker_pod(workload(), context(base=bare, image=None))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", r"holds an empty file, not a Pod manifest"),
        ("- a\n- b\n", r"holds a YAML list, not a Pod manifest"),
        ("spec: [unclosed\n", r"cannot be read as one YAML document"),
        ("kind: Pod\n---\nkind: Pod\n", r"cannot be read as one YAML document"),
        ("apiVersion: apps/v1\nkind: Deployment\nspec: {}\n", r"is apiVersion 'apps/v1' kind 'Deployment', not v1 Pod"),
        ("kind: PodList\nitems: []\n", r"kind 'PodList', not v1 Pod"),
        ("kind: Pod\nspec:\n  containers:\n  - image: x\n", r"is not a valid Pod: .*`name`, must not be `None`"),
        (b"kind: Pod\nmetadata: {name: caf\xe9}\n", r"cannot be read as one YAML document"),  # not UTF-8
    ],
)
def test_invalid_template_file_is_a_build_error_naming_the_file(
    pods: ModuleType, tmp_path: Path, content: str | bytes, expected: str
) -> None:
    path = write_template(tmp_path, content)
    with pytest.raises(pods.PodBuildError, match=expected) as caught:
        pods.load_pod_template(path)
    assert path in str(caught.value)
    assert "pod_template_file" in str(caught.value)  # the fix


def test_missing_template_file(pods: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(pods.PodBuildError, match=r"does not exist or is not a file"):
        pods.load_pod_template(str(tmp_path / "absent.yaml"))
    with pytest.raises(pods.PodBuildError, match=r"does not exist or is not a file"):
        pods.load_pod_template(str(tmp_path))


def test_template_file_in_json_is_read(pods: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "template.json"
    path.write_text(json.dumps(TEMPLATE))
    pod = pods.load_pod_template(str(path))
    assert as_json(pod) == as_json(v1pod(TEMPLATE))


# --- secrets -----------------------------------------------------------------------------------


def test_redacted_pod_summary_masks_the_token(pods: ModuleType, workload: Callable[..., Any]) -> None:
    task = workload()
    pod = pods.build_worker_pod(task, context())
    assert task.token in json.dumps(as_json(pod))  # the pod itself must carry it

    for source in (pod, as_json(pod)):
        summary = pods.redacted_pod_summary(source)
        text = json.dumps(summary)
        assert task.token not in text
        assert summary["name"] == pod.metadata.name
        assert summary["namespace"] == "airflow"
        assert summary["labels"]["hybrid-executor/scheduler-job"] == "42"
        base = summary["containers"][0]
        assert base["image"] == "registry.example/airflow:3.3.2"
        assert base["env"] == ["FROM_TEMPLATE", "AIRFLOW_IS_K8S_EXECUTOR_POD"]  # names, no values
        payload = json.loads(base["args"][4])
        assert payload["token"] == "***"
        assert payload["ti"]["id"] == str(task.ti.id)  # the rest stays useful
        assert [c["name"] for c in summary["containers"]] == ["base", "log-shipper"]


def test_redact_token(pods: ModuleType, workload: Callable[..., Any]) -> None:
    token = workload().token
    assert pods.redact_token(f"sent {token} to the API") == "sent *** to the API"
    assert pods.redact_token("opaque-secret and more", "opaque-secret") == "*** and more"
    assert pods.redact_token("nothing secret here") == "nothing secret here"
    assert pods.redact_token("not a JWT: eyJ and more") == "not a JWT: eyJ and more"


# --- a worker pod runs its try once ------------------------------------------------------------


@pytest.mark.parametrize("policy", ["Always", "OnFailure", None])
def test_a_worker_pod_never_restarts_whatever_its_template_says(
    pods: ModuleType, workload: Callable[..., Any], caplog: pytest.LogCaptureFixture, policy: str | None
) -> None:
    # A restarted container would run the task's try again; the API defaults an unset policy to Always.
    caplog.set_level(logging.WARNING, logger="hybrid_executor")
    template = copy.deepcopy(TEMPLATE)
    template["spec"].pop("restartPolicy")
    if policy is not None:
        template["spec"]["restartPolicy"] = policy
    namespace = f"restarts-{policy}"

    first = pods.build_worker_pod(workload(), context(base=template, namespace=namespace))
    second = pods.build_worker_pod(workload(task_id="another"), context(base=template, namespace=namespace))

    assert first.spec.restart_policy == second.spec.restart_policy == "Never"
    said = [r.getMessage() for r in caplog.records if "restartPolicy" in r.getMessage()]
    if policy is None:
        assert said == []  # nothing set: nothing to fix in the template
    else:
        assert len(said) == 1  # once, not per task
        assert f"for namespace {namespace} sets restartPolicy {policy}" in said[0]
        assert "set restartPolicy: Never there" in said[0]


def test_a_pod_override_cannot_make_a_worker_pod_restart(pods: ModuleType, workload: Callable[..., Any]) -> None:
    from kubernetes.client import models as k8s

    override = k8s.V1Pod(spec=k8s.V1PodSpec(restart_policy="OnFailure", containers=[k8s.V1Container(name="base")]))
    pod = pods.build_worker_pod(workload(executor_config={"pod_override": override}), context())
    assert pod.spec.restart_policy == "Never"

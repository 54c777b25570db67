"""The fast pod builder (the stock merge on JSON) gives exactly the pod the provider's merge on models gives.

``reference_body`` below is the builder as it was before the JSON merge (``PodGenerator.construct_pod``
on models, then our identity on the model, then the client's serialization): kept here, and only
here, as the reference. Hypothesis draws templates, pod_overrides (sidecars, init containers, env,
resources, volumes, labels and annotations, namespaces, images, security contexts, tolerations,
empty models and empty lists, whose truthiness the merge turns on), task keys (mapped or not) and
contexts; both builders must give the same JSON body, or the same PodBuildError.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes.client import models as k8s
from test_pods import TEMPLATE, make_workload

# --- the reference: the builder on models, as before ----------------------------------------


def reference_body(workload: Any, context: Any) -> dict[str, Any]:
    """The pod the model-based builder made (construct_pod, mutation hook, identity), as the API receives it."""
    from kubernetes.client import ApiClient

    from hybrid_executor.kubernetes import pods
    from hybrid_executor.kubernetes.identity import identity_annotations, identity_labels, pod_name_for
    from hybrid_executor.kubernetes.podtemplates import private_copy

    key = workload.ti.key
    executor_config: Mapping[str, Any] = workload.ti.executor_config or {}
    override = pods._pod_override(executor_config, key)
    template = pods._task_template(executor_config, key)
    base = private_copy(context.base_pod) if template is None else template
    queueing = workload.ti.external_executor_id or ""
    name = pod_name_for(key, queueing)
    # The provider's construct_pod on models (mutation hook included), as the builder called it.
    pod = pods._construct_pod(workload, context, name, base, override and private_copy(override))
    if pod.metadata is None:
        pod.metadata = k8s.V1ObjectMeta()
    metadata = pod.metadata
    metadata.name = name
    metadata.generate_name = None
    metadata.namespace = metadata.namespace or context.namespace
    metadata.labels = identity_labels(metadata.labels, key, context.scheduler_job_id, context.deployment_id)
    metadata.annotations = identity_annotations(metadata.annotations, key, queueing)
    if pod.spec is not None:
        pod.spec.restart_policy = "Never"
    metadata.annotations["task_instance_id"] = str(workload.ti.id)
    body: dict[str, Any] = ApiClient().sanitize_for_serialization(pod)
    pods._check_buildable(body, key, context)
    return body


def outcome(build: Callable[[], dict[str, Any]]) -> tuple[str, Any]:
    from hybrid_executor.kubernetes.pods import PodBuildError

    try:
        return "pod", build()
    except PodBuildError as error:
        return "error", error.message


# --- what hypothesis draws -------------------------------------------------------------------

_none = st.none()
_words = st.sampled_from(["", "a", "b1", "team-x", "0"])
_label_keys = st.sampled_from(["team", "app", "dag_id", "airflow_version"])
_maps = st.one_of(_none, st.dictionaries(_label_keys, _words, max_size=3))
_env = st.one_of(
    _none,
    st.lists(
        st.builds(k8s.V1EnvVar, name=st.sampled_from(["A", "B", "FROM_TEMPLATE"]), value=st.one_of(_none, _words)),
        max_size=3,
    ),
)
_resources = st.one_of(
    _none,
    st.builds(
        k8s.V1ResourceRequirements,  # all unset too: an empty model, truthy, where its JSON {} is not
        requests=st.one_of(_none, st.dictionaries(st.sampled_from(["cpu", "memory"]), st.sampled_from(["1", "1Gi"]))),
        limits=st.one_of(_none, st.dictionaries(st.sampled_from(["cpu", "memory"]), st.sampled_from(["2", "2Gi"]))),
    ),
)
_security = st.one_of(
    _none,
    st.builds(
        k8s.V1SecurityContext,
        run_as_user=st.one_of(_none, st.integers(0, 2000)),
        privileged=st.one_of(_none, st.booleans()),
        read_only_root_filesystem=st.one_of(_none, st.booleans()),
    ),
)
_mounts = st.one_of(
    _none,
    st.lists(
        st.builds(k8s.V1VolumeMount, name=st.sampled_from(["logs", "data"]), mount_path=st.sampled_from(["/a", "/b"])),
        max_size=2,
    ),
)
_ports = st.one_of(_none, st.lists(st.builds(k8s.V1ContainerPort, container_port=st.integers(80, 82)), max_size=2))
_container = st.builds(
    k8s.V1Container,
    name=st.sampled_from(["base", "sidecar", "log-shipper", "init-a"]),
    image=st.one_of(_none, st.sampled_from(["", "override/image:2", "sidecar/image:1"])),
    args=st.one_of(_none, st.lists(_words, max_size=2)),
    command=st.one_of(_none, st.lists(_words, max_size=2)),
    env=_env,
    resources=_resources,
    security_context=_security,
    volume_mounts=_mounts,
    ports=_ports,
    image_pull_policy=st.one_of(_none, st.sampled_from(["Always", "IfNotPresent"])),
)
_volumes = st.one_of(
    _none,
    st.lists(
        st.builds(
            k8s.V1Volume,
            name=st.sampled_from(["logs", "data", "cache"]),
            empty_dir=st.one_of(_none, st.builds(k8s.V1EmptyDirVolumeSource)),
        ),
        max_size=2,
    ),
)
_tolerations = st.one_of(
    _none,
    st.lists(
        st.builds(
            k8s.V1Toleration,
            key=st.one_of(_none, st.sampled_from(["spot", "gpu"])),
            operator=st.one_of(_none, st.sampled_from(["Exists", "Equal"])),
            effect=st.one_of(_none, st.sampled_from(["NoSchedule", "NoExecute"])),
        ),
        max_size=2,
    ),
)
_spec = st.builds(
    k8s.V1PodSpec,
    containers=st.lists(_container, max_size=3),
    init_containers=st.one_of(_none, st.lists(_container, max_size=2)),
    volumes=_volumes,
    tolerations=_tolerations,
    node_selector=_maps,
    security_context=st.one_of(
        _none,
        st.builds(
            k8s.V1PodSecurityContext,
            run_as_non_root=st.one_of(_none, st.booleans()),
            fs_group=st.one_of(_none, st.integers(0, 1000)),
        ),
    ),
    service_account_name=st.one_of(_none, st.sampled_from(["", "worker"])),
    restart_policy=st.one_of(_none, st.sampled_from(["Never", "Always", "OnFailure"])),
    priority_class_name=st.one_of(_none, _words),
)
_metadata = st.builds(
    k8s.V1ObjectMeta,
    name=st.one_of(_none, st.just("override-name")),
    generate_name=st.one_of(_none, st.just("gen-")),
    namespace=st.one_of(_none, st.sampled_from(["", "airflow", "elsewhere", "unwatched"])),
    labels=_maps,
    annotations=_maps,
    finalizers=st.one_of(_none, st.lists(st.sampled_from(["a/b", "c/d"]), max_size=2)),
)
_pods = st.builds(k8s.V1Pod, metadata=st.one_of(_none, _metadata), spec=st.one_of(_none, _spec))


def _as_template(pod: k8s.V1Pod) -> k8s.V1Pod:
    """A drawn pod as a template file gives it: its JSON deserialized, as load_pod_template reads one."""
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator
    from kubernetes.client import ApiClient

    return PodGenerator.deserialize_model_dict(ApiClient().sanitize_for_serialization(pod))


_templates = st.one_of(
    st.sampled_from([TEMPLATE, {}, {"spec": {"containers": [{"name": "base"}]}}]).map(
        lambda document: _as_template(k8s.V1Pod()) if not document else _document_template(document)
    ),
    _pods.map(_as_template),
)


def _document_template(document: dict[str, Any]) -> k8s.V1Pod:
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator

    return PodGenerator.deserialize_model_dict(document)


_keys = st.fixed_dictionaries(
    {
        "dag_id": st.sampled_from(["etl_orders", "Daily.Report"]),
        "task_id": st.sampled_from(["load", "group.extract_1"]),
        "run_id": st.sampled_from(["scheduled__2026-11-20T00:00:00+00:00", "manual", "+:"]),
        "try_number": st.integers(1, 3),
        "map_index": st.sampled_from([-1, 0, 7]),
        "external_executor_id": st.one_of(_none, st.just(""), st.uuids().map(str)),
    }
)


@pytest.fixture(scope="module")
def pods(airflow_environ: object) -> ModuleType:
    from hybrid_executor.kubernetes import pods as module

    return module


@pytest.fixture(scope="module")
def jwt_generator(pods: ModuleType) -> Any:
    from airflow.api_fastapi.auth.tokens import JWTGenerator

    return JWTGenerator(secret_key="k" * 64, valid_for=600, audience="urn:airflow.apache.org:task")


def _context(pods: ModuleType, template: k8s.V1Pod, image: str | None, any_namespace: bool) -> Any:
    return pods.PodContext(
        namespace="airflow",
        scheduler_job_id="42",
        image=image,
        base_pod=template,
        allowed_namespaces=frozenset({"elsewhere"}),
        any_namespace=any_namespace,
        deployment_id="d0e1f2a3b4c5",
    )


def _config(override: k8s.V1Pod | None) -> dict[str, Any]:
    return {"pod_override": override} if override is not None else {}


def _fast_only(pods: ModuleType, monkeypatch: pytest.MonkeyPatch) -> Callable[..., dict[str, Any]]:
    """The new builder, failing the test if it leaves the JSON merge for the provider's."""

    def build(workload: Any, context: Any) -> dict[str, Any]:
        with monkeypatch.context() as patch:
            patch.setattr(pods, "_construct_pod", _refuse)
            body: dict[str, Any] = pods.worker_pod_body(workload, context)
            return body

    return build


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the provider's merge ran where the JSON merge should have")


_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_SETTINGS
@given(
    template=_templates,
    override=st.one_of(_none, _pods),
    key=_keys,
    image=st.one_of(_none, st.just("registry.example/airflow:3.3.2")),
    any_namespace=st.booleans(),
)
def test_the_json_merge_gives_the_pod_the_provider_merge_gives(
    pods: ModuleType,
    jwt_generator: Any,
    monkeypatch: pytest.MonkeyPatch,
    template: k8s.V1Pod,
    override: k8s.V1Pod | None,
    key: dict[str, Any],
    image: str | None,
    any_namespace: bool,
) -> None:
    workload = make_workload(jwt_generator, executor_config=_config(override), **key)
    context = _context(pods, template, image, any_namespace)
    fast = _fast_only(pods, monkeypatch)
    assert outcome(lambda: fast(workload, context)) == outcome(lambda: reference_body(workload, context))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(template=_templates, override=st.one_of(_none, _pods), key=_keys)
def test_with_a_mutation_hook_the_hook_gets_a_v1pod_and_the_pod_is_the_same(
    pods: ModuleType,
    jwt_generator: Any,
    monkeypatch: pytest.MonkeyPatch,
    template: k8s.V1Pod,
    override: k8s.V1Pod | None,
    key: dict[str, Any],
) -> None:
    import airflow.settings

    seen: list[Any] = []

    def hook(pod: Any) -> None:
        seen.append(pod)
        pod.metadata = pod.metadata or k8s.V1ObjectMeta()
        pod.metadata.labels = {**(pod.metadata.labels or {}), "mutated": "yes"}
        if pod.spec is not None:
            pod.spec.containers = [*pod.spec.containers, k8s.V1Container(name="hooked", image="hook/image:1")]

    workload = make_workload(jwt_generator, executor_config=_config(override), **key)
    context = _context(pods, template, "registry.example/airflow:3.3.2", True)
    with monkeypatch.context() as patch:
        patch.setattr(airflow.settings, "pod_mutation_hook", hook)
        assert pods.mutation_hook_defined()
        ours = outcome(lambda: pods.worker_pod_body(workload, context))
        reference = outcome(lambda: reference_body(workload, context))
    assert ours == reference
    assert all(isinstance(pod, k8s.V1Pod) for pod in seen)


def test_no_hook_is_defined_by_default(pods: ModuleType) -> None:
    assert not pods.mutation_hook_defined()


def test_an_override_its_model_types_do_not_describe_goes_to_the_provider_merge(
    pods: ModuleType, jwt_generator: Any
) -> None:
    from hybrid_executor.kubernetes.podmerge import well_typed

    odd = k8s.V1Pod(spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="base", env=(k8s.V1EnvVar(name="A"),))]))
    assert not well_typed(odd)
    queueing = str(uuid.uuid4())
    workload = make_workload(jwt_generator, executor_config={"pod_override": odd}, external_executor_id=queueing)
    context = _context(pods, _document_template(TEMPLATE), None, False)
    with pytest.raises(pods.PodBuildError, match=r"pod_override'\] cannot be merged.*must be a list"):
        pods.worker_pod_body(workload, context)


def test_the_body_shares_nothing_with_the_cached_template(pods: ModuleType, jwt_generator: Any) -> None:
    import copy

    context = _context(pods, _document_template(TEMPLATE), None, False)
    before = copy.deepcopy(context.base_body)
    body = pods.worker_pod_body(make_workload(jwt_generator), context)
    body["spec"]["containers"][1]["args"].append("changed")
    body["spec"]["volumes"][0]["emptyDir"]["medium"] = "Memory"
    assert context.base_body == before

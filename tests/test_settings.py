"""Settings read through Airflow's real ``ExecutorConf``, with options set as Airflow users set them.

Options are set with ``AIRFLOW__SECTION__KEY`` environment variables (which Airflow reads on every
lookup) or, for what only a config file can express, with sections added to the live config and
removed afterwards. Nothing of Airflow's configuration is mocked.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib.util
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hybrid_executor.settings import (
    HYBRID_OPTIONS,
    ExecutorConfLike,
    HybridSettings,
    KubernetesSettings,
    QueueProfile,
    SettingsError,
    load_settings,
    provider_config,
)
from hybrid_executor.testing.services import AirflowEnv

SetEnv = Callable[..., None]
Load = Callable[..., HybridSettings]


@pytest.fixture
def executor_conf(airflow_environ: AirflowEnv) -> Callable[[str | None], ExecutorConfLike]:
    # Imported only now: Airflow reads its configuration once, at import, from the fixture's home.
    from airflow.executors.base_executor import ExecutorConf

    return ExecutorConf


@pytest.fixture
def setenv(monkeypatch: pytest.MonkeyPatch) -> SetEnv:
    def set_options(section: str, team: str | None = None, **values: str) -> None:
        prefix = f"AIRFLOW__{team.upper()}___" if team else "AIRFLOW__"
        for option, value in values.items():
            monkeypatch.setenv(f"{prefix}{section.upper()}__{option.upper()}", value)

    return set_options


@pytest.fixture
def load(executor_conf: Callable[[str | None], ExecutorConfLike], setenv: SetEnv) -> Load:
    """Set ``[hybrid_executor]`` options, then load the settings as the executor of ``team`` would."""

    def load_with(team: str | None = None, **options: str) -> HybridSettings:
        setenv("hybrid_executor", team, **options)
        return load_settings(executor_conf(team))

    return load_with


@pytest.fixture
def config_file_section(airflow_environ: AirflowEnv) -> Iterator[Callable[[str, dict[str, str]], None]]:
    """Add a section to the live configuration as if airflow.cfg had it; removed afterwards."""
    from airflow.configuration import conf

    added: list[str] = []

    def add(section: str, values: dict[str, str]) -> None:
        assert not conf.has_section(section), f"[{section}] is in the test home's airflow.cfg already"
        conf.add_section(section)
        added.append(section)
        for option, value in values.items():
            conf.set(section, option, value)

    yield add
    for section in added:
        conf.remove_section(section)


def raises_settings_error(load: Callable[[], object]) -> SettingsError:
    with pytest.raises(SettingsError) as raised:
        load()
    return raised.value


def template(tmp_path: Path, name: str = "pod.yaml") -> str:
    path = tmp_path / name
    path.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: base}\nspec: {containers: [{name: base}]}\n")
    return str(path)


# --- defaults ------------------------------------------------------------------------------------------


def test_with_nothing_configured_the_defaults_are_the_stock_ones(load: Load) -> None:
    settings = load()
    assert settings == HybridSettings(
        parallelism=32,  # [core] parallelism's default
        callback_queue="default",  # [operators] default_queue's
        celery_parallelism=None,
        kubernetes_parallelism=None,
        kubernetes=KubernetesSettings(
            namespace="default",
            pod_template_file=None,
            worker_container_repository=None,
            worker_container_tag=None,
            delete_worker_pods=True,
            delete_worker_pods_on_failure=False,
            worker_pods_pending_timeout=None,  # task_queued_timeout bounds a pod's start, as in stock Airflow 3
            in_cluster=True,
            config_file=None,
            cluster_context=None,
            verify_ssl=True,
            pod_creation_concurrency=16,
            api_qps=150.0,
            api_burst=300,
            pod_creation_retry_timeout=600.0,
            watch_timeout_seconds=300,
            queues={"kubernetes": QueueProfile("kubernetes")},
            ssl_ca_cert=None,
            multi_namespace_mode=False,
            multi_namespace_mode_namespace_list=(),
            worker_pod_pending_fatal_container_state_reasons=(
                "CreateContainerConfigError",
                "ErrImagePull",
                "CreateContainerError",
                "ImageInspectError",
                "InvalidImageName",
            ),
            delete_option_kwargs={},
            kube_client_request_args={},
            enable_tcp_keepalive=True,
            tcp_keep_idle=120,
            tcp_keep_intvl=30,
            tcp_keep_cnt=6,
            client_factory=None,
            running_pod_log_lines=100,
        ),
    )
    assert settings.kubernetes.image is None
    assert settings.kubernetes.namespaces() == {"default"}
    assert settings.kubernetes.watch_scopes() == ["default"]


def test_the_stock_defaults_are_the_providers(executor_conf: Callable[[str | None], ExecutorConfLike]) -> None:
    # What the cncf-kubernetes provider registers, read as the executor reads it: the same values.
    from airflow.providers.cncf.kubernetes.get_provider_info import get_provider_info

    registered = get_provider_info()["config"]["kubernetes_executor"]["options"]
    for option in HYBRID_OPTIONS.values():
        if option.fallback is None or option.fallback[0] != "kubernetes_executor" or option.default is None:
            continue
        assert registered[option.fallback[1]]["default"] == option.default, option.name


def test_the_stock_sections_have_registered_defaults_which_count_as_unset_when_empty(
    executor_conf: Callable[[str | None], ExecutorConfLike],
) -> None:
    # The cncf-kubernetes provider registers "" for these; an empty value means "not set" here.
    conf = executor_conf(None)
    for option in ("pod_template_file", "worker_container_repository", "worker_container_tag"):
        assert conf.get("kubernetes_executor", option, fallback=None) == ""
    assert conf.get("kubernetes_executor", "namespace", fallback=None) == "default"
    assert conf.get("kubernetes_executor", "worker_pods_pending_timeout", fallback=None) is None  # gone in Airflow 3
    assert conf.get("celery_kubernetes_executor", "kubernetes_queue", fallback=None) == "kubernetes"


def _field(settings: HybridSettings, option: str) -> object:
    if option == "kubernetes_queues":
        return dict(settings.kubernetes.queues)
    if hasattr(settings, option):
        return getattr(settings, option)
    value = getattr(settings.kubernetes, option)
    if isinstance(value, tuple):  # a list option, as it is written; () is unset unless empty means something
        return ",".join(value) if value or HYBRID_OPTIONS[option].empty_allowed else None
    if option in ("delete_option_kwargs", "kube_client_request_args"):  # a JSON object; {} is unset
        return json.dumps(dict(value)) if value else None
    return value


def test_every_option_is_a_field_of_the_settings_and_every_field_an_option() -> None:
    fields = {f.name for f in dataclasses.fields(HybridSettings)} - {"kubernetes"}
    fields |= {f.name for f in dataclasses.fields(KubernetesSettings)} - {"queues"}
    assert fields | {"kubernetes_queues"} == set(HYBRID_OPTIONS)


def test_the_defaults_come_from_hybrid_options(load: Load) -> None:
    settings = load()
    typed: dict[str, Callable[[str], object]] = {
        "integer": int,
        "float": float,
        "boolean": lambda text: text == "True",
        "string": str,
    }
    for option in HYBRID_OPTIONS.values():
        expected: object = None if option.default is None else typed[option.type](option.default)
        if option.name == "kubernetes_queues":
            expected = {"kubernetes": QueueProfile("kubernetes")}
        assert _field(settings, option.name) == expected, option.name


# --- fallbacks -----------------------------------------------------------------------------------------

_FALLBACKS: list[tuple[str, str, object, str, object]] = [
    # option, value in its stock section, what that gives, value in [hybrid_executor], what that gives
    (
        "kubernetes_queues",
        "k8s",
        {"k8s": QueueProfile("k8s")},
        "gpu namespace=gpu",
        {"gpu": QueueProfile("gpu", None, "gpu")},
    ),
    ("callback_queue", "celery", "celery", "callbacks", "callbacks"),
    ("parallelism", "8", 8, "12", 12),
    ("namespace", "airflow", "airflow", "pods", "pods"),
    ("worker_container_repository", "apache/airflow", "apache/airflow", "my/airflow", "my/airflow"),
    ("worker_container_tag", "3.3.2", "3.3.2", "3.3.2-python3.12", "3.3.2-python3.12"),
    ("delete_worker_pods", "False", False, "True", True),
    ("delete_worker_pods_on_failure", "True", True, "f", False),
    ("multi_namespace_mode", "True", True, "False", False),
    ("multi_namespace_mode_namespace_list", "a, b,,a", "a,b", "c", "c"),
    ("worker_pod_pending_fatal_container_state_reasons", "ErrImagePull", "ErrImagePull", "A, B", "A,B"),
    ("pod_launch_failure_retries", "0", 0, "-1", -1),
    ("pod_launch_failure_excluded_container_reasons", "Error, OOMKilled", "Error,OOMKilled", "A", "A"),
    ("delete_option_kwargs", '{"grace_period_seconds": 5}', '{"grace_period_seconds": 5}', "{}", None),
    ("kube_client_request_args", '{"_request_timeout": 5}', '{"_request_timeout": 5.0}', "{}", None),
    ("enable_tcp_keepalive", "False", False, "True", True),
    ("tcp_keep_idle", "60", 60, "30", 30),
    ("tcp_keep_intvl", "10", 10, "5", 5),
    ("tcp_keep_cnt", "3", 3, "9", 9),
    ("client_factory", "json.loads", "json.loads", "json.dumps", "json.dumps"),
    ("running_pod_log_lines", "50", 50, "500", 500),
    ("in_cluster", "False", False, "True", True),
    ("cluster_context", "staging", "staging", "production", "production"),
    ("verify_ssl", "false", False, "1", True),
    ("ssl_ca_cert", "/etc/ssl/stock.pem", "/etc/ssl/stock.pem", "/etc/ssl/ours.pem", "/etc/ssl/ours.pem"),
]


@pytest.mark.parametrize(
    ("option", "stock", "from_stock", "ours", "from_ours"), _FALLBACKS, ids=[f[0] for f in _FALLBACKS]
)
def test_an_unset_option_falls_back_to_its_stock_option(
    load: Load, setenv: SetEnv, option: str, stock: str, from_stock: object, ours: str, from_ours: object
) -> None:
    fallback = HYBRID_OPTIONS[option].fallback
    assert fallback is not None
    section, stock_option = fallback
    setenv(section, **{stock_option: stock})
    assert _field(load(), option) == from_stock
    assert _field(load(**{option: ours}), option) == from_ours  # ours wins
    # Blank is unset, but where empty is a value of its own ("no reasons").
    assert _field(load(**{option: "  "}), option) == ("" if HYBRID_OPTIONS[option].empty_allowed else from_stock)


def test_every_option_with_a_fallback_is_tested() -> None:
    tested = {f[0] for f in _FALLBACKS} | {"pod_template_file", "config_file"}
    assert tested == {o.name for o in HYBRID_OPTIONS.values() if o.fallback is not None}


def test_pod_template_file_falls_back_to_the_stock_option(load: Load, setenv: SetEnv, tmp_path: Path) -> None:
    stock, ours = template(tmp_path, "stock.yaml"), template(tmp_path, "ours.yaml")
    setenv("kubernetes_executor", pod_template_file=stock)
    assert load().kubernetes.pod_template_file == stock
    assert load(pod_template_file=ours).kubernetes.pod_template_file == ours


def test_config_file_falls_back_to_the_stock_option(load: Load, setenv: SetEnv, tmp_path: Path) -> None:
    stock, ours = tmp_path / "stock-kubeconfig", tmp_path / "our-kubeconfig"
    stock.write_text("{}")
    ours.write_text("{}")
    setenv("kubernetes_executor", config_file=str(stock), in_cluster="False")
    assert load().kubernetes.config_file == str(stock)
    assert load(config_file=str(ours)).kubernetes.config_file == str(ours)


def test_no_fatal_reasons_when_the_stock_option_is_set_empty(load: Load, setenv: SetEnv) -> None:
    # As the stock executor reads it: empty is an empty list, every pending pod waits.
    setenv("kubernetes_executor", worker_pod_pending_fatal_container_state_reasons="")
    assert load().kubernetes.worker_pod_pending_fatal_container_state_reasons == ()


def test_multi_namespace_mode_adds_its_namespaces_or_watches_them_all(load: Load, setenv: SetEnv) -> None:
    setenv("kubernetes_executor", namespace="airflow", multi_namespace_mode_namespace_list="team-a,team-b")
    assert load().kubernetes.watch_scopes() == ["airflow"]  # the list counts only in multi_namespace_mode
    listed = load(multi_namespace_mode="True", kubernetes_queues="kubernetes, gpu namespace=gpu").kubernetes
    assert (listed.all_namespaces, listed.watch_scopes()) == (False, ["airflow", "gpu", "team-a", "team-b"])
    setenv("kubernetes_executor", multi_namespace_mode="True", multi_namespace_mode_namespace_list="")
    everywhere = load().kubernetes
    assert (everywhere.all_namespaces, everywhere.watch_scopes()) == (True, [None])


def test_a_json_options_value_is_redacted_in_its_error(load: Load) -> None:
    # A bearer token's shape (header.payload.signature), assembled so no token-like literal sits here.
    header, payload = (
        base64.urlsafe_b64encode(p.encode()).decode().rstrip("=") for p in ('{"alg":"HS256"}', '{"sub":"x"}')
    )
    secret = f"{header}.{payload}.not-to-be-shown"
    error = raises_settings_error(lambda: load(kube_client_request_args=f'{{"_request_auth": "{secret}"}}'))
    assert secret not in str(error)
    assert "_request_auth" in str(error)


def test_core_parallelism_is_the_default_parallelism_and_the_old_caps_are_read_to_be_warned_of(
    load: Load, setenv: SetEnv
) -> None:
    setenv("core", parallelism="10")
    settings = load(celery_parallelism="64", kubernetes_parallelism="3")  # not applied: no bound to check
    assert (settings.parallelism, settings.celery_parallelism, settings.kubernetes_parallelism) == (10, 64, 3)


def test_image_is_repository_and_tag_when_both_are_set(load: Load, caplog: pytest.LogCaptureFixture) -> None:
    assert load(worker_container_repository="apache/airflow", worker_container_tag="3.3.2").kubernetes.image == (
        "apache/airflow:3.3.2"
    )
    with caplog.at_level(logging.WARNING, logger="hybrid_executor.settings"):
        settings = load(worker_container_repository="apache/airflow", worker_container_tag="")
    assert settings.kubernetes.image is None
    assert "Only one of worker_container_repository ('apache/airflow') and worker_container_tag" in caplog.text


def test_queue_profiles_choose_template_and_namespace(load: Load, setenv: SetEnv, tmp_path: Path) -> None:
    base, gpu = template(tmp_path, "base.yaml"), template(tmp_path, "gpu.yaml")
    setenv("kubernetes_executor", namespace="airflow", pod_template_file=base)
    kubernetes = load(
        kubernetes_queues=f"kubernetes, gpu pod_template_file={gpu} namespace=gpu, ns-only namespace=x"
    ).kubernetes
    assert kubernetes.queues["gpu"] == QueueProfile("gpu", gpu, "gpu")
    assert (kubernetes.namespace_for("gpu"), kubernetes.pod_template_file_for("gpu")) == ("gpu", gpu)
    assert (kubernetes.namespace_for("ns-only"), kubernetes.pod_template_file_for("ns-only")) == ("x", base)
    assert (kubernetes.namespace_for("kubernetes"), kubernetes.pod_template_file_for("kubernetes")) == ("airflow", base)
    assert (kubernetes.namespace_for(None), kubernetes.pod_template_file_for("unknown")) == ("airflow", base)
    assert kubernetes.namespaces() == {"airflow", "gpu", "x"}


def test_a_queue_template_may_be_quoted_and_read_from_an_environment_variable(load: Load, tmp_path: Path) -> None:
    folder = tmp_path / "pod templates"
    folder.mkdir()
    spaced = template(folder)
    queues = load(kubernetes_queues=f"kubernetes,gpu pod_template_file='{spaced}'").kubernetes.queues
    assert queues["gpu"].pod_template_file == spaced


# --- every wrong value: section, option, value, problem and fix in one message -------------------------

HE, KE = "hybrid_executor", "kubernetes_executor"


def wrong(section: str, option: str, value: str, fix: str, **also: str) -> Any:
    """A wrong ``value`` for ``[section] option`` (with ``[hybrid_executor]`` options ``also``) and its fix."""
    return pytest.param(section, option, value, fix, also, id=f"{section}.{option}={value[:20]}")


_WRONG_VALUES = [
    wrong(HE, "api_qps", "fast", "set a positive number of requests per second, e.g. 100"),
    wrong(HE, "api_qps", "0", "set a positive number of requests per second"),
    wrong(HE, "api_qps", "nan", "set a positive number"),
    wrong(HE, "api_qps", "inf", "set a positive number"),
    wrong(HE, "api_burst", "0", "set a whole number of requests, 1 or more, e.g. 300"),
    wrong(HE, "api_burst", "1.5", "set a whole number of requests"),
    wrong(HE, "pod_creation_concurrency", "many", "set a whole number of threads, 1 or more, e.g. 16"),
    wrong(HE, "pod_creation_concurrency", "-4", "1 or more"),
    wrong(HE, "pod_creation_retry_timeout", "-1", "set a number of seconds, 0 or more, e.g. 600"),
    wrong(HE, "pod_creation_retry_timeout", "10m", "set a number of seconds"),
    wrong(HE, "watch_timeout_seconds", "0", "set a whole number of seconds, 1 or more"),
    wrong(HE, "worker_pods_pending_timeout", "0", "set a positive number of seconds, e.g. 900"),
    wrong(HE, "worker_pods_pending_timeout", "soon", "set a positive number of seconds"),
    wrong(KE, "multi_namespace_mode", "sometimes", "set True or False"),
    wrong(KE, "multi_namespace_mode_namespace_list", "airflow, Data_Team", "namespace names separated by commas"),
    wrong(KE, "delete_option_kwargs", "{grace_period_seconds: 5}", "a JSON object of V1DeleteOptions arguments"),
    wrong(KE, "delete_option_kwargs", "[5]", "a JSON object of V1DeleteOptions arguments"),
    wrong(KE, "delete_option_kwargs", '{"grace_period": 5}', "use only api_version, "),
    wrong(KE, "delete_option_kwargs", '{"grace_period_seconds": -1}', "a whole number of seconds, 0 or more"),
    wrong(KE, "delete_option_kwargs", '{"propagation_policy": "Cascade"}', "one of Foreground, Background, Orphan"),
    wrong(KE, "delete_option_kwargs", '{"dry_run": ["All"]}', "remove dry_run"),
    wrong(KE, "delete_option_kwargs", '{"preconditions": {"uid": "u"}}', "remove preconditions"),
    wrong(
        KE,
        "delete_option_kwargs",
        '{"orphan_dependents": false, "propagation_policy": "Background"}',
        "keep propagation_policy only",
    ),
    wrong(KE, "kube_client_request_args", "timeout=5", "a JSON object with _request_timeout"),
    wrong(KE, "kube_client_request_args", '{"request_timeout": 5}', "keep only _request_timeout"),
    wrong(KE, "kube_client_request_args", '{"_preload_content": false}', "keep only _request_timeout"),
    wrong(KE, "kube_client_request_args", '{"_request_timeout": [1, 2, 3]}', "a list [connect, read] of two"),
    wrong(KE, "kube_client_request_args", '{"_request_timeout": 0}', "a positive number of seconds"),
    wrong(KE, "enable_tcp_keepalive", "on", "set True or False"),
    wrong(KE, "tcp_keep_idle", "0", "a whole number of seconds, 1 or more"),
    wrong(KE, "tcp_keep_cnt", "few", "a whole number of probes"),
    wrong(KE, "client_factory", "no_such_module.build", "zero-argument callable returning a kubernetes.client"),
    wrong(KE, "client_factory", "json", "module.name"),
    wrong(KE, "client_factory", "json.decoder", "zero-argument callable"),
    wrong(KE, "running_pod_log_lines", "0", "a whole number of lines, 1 or more"),
    wrong(KE, "pod_launch_failure_retries", "-2", "0 or more, or -1 for no limit"),
    wrong(HE, "pod_launch_failure_retries", "once", "a whole number of new pods"),
    wrong(HE, "parallelism", "0", "set a whole number of task slots, 1 or more"),
    wrong("core", "parallelism", "lots", "set a whole number of task slots"),
    wrong(HE, "celery_parallelism", "0", "leave it unset, and give the route's tasks a pool"),
    wrong(HE, "kubernetes_parallelism", "many", "leave it unset, and give the route's tasks a pool"),
    wrong(
        HE,
        "namespace",
        "Data_Team",
        "set a Kubernetes namespace name (lower-case letters, digits and '-'), e.g. airflow",
    ),
    wrong(KE, "namespace", "n" * 64, "set a Kubernetes namespace name"),
    wrong(KE, "delete_worker_pods", "yes", "set True or False"),
    wrong(HE, "deployment_id", "airflow prod", "set a Kubernetes label value"),
    wrong(HE, "deployment_id", "-prod", "set a Kubernetes label value"),
    wrong(HE, "deployment_id", "p" * 64, "at most 63 characters"),
    wrong(HE, "verify_ssl", "maybe", "set True or False, e.g. True"),
    wrong(
        HE,
        "pod_template_file",
        "/nonexistent/pod.yaml",
        "set the path of a pod template YAML file the scheduler can read",
    ),
    wrong(KE, "pod_template_file", "/nonexistent/stock.yaml", "pod template YAML file"),
    wrong(HE, "pod_template_file", "/", "pod template YAML file"),
    wrong(HE, "config_file", "/nonexistent/kubeconfig", "set the path of a kubeconfig file", in_cluster="False"),
    wrong(HE, "callback_queue", "kubernetes", "a queue your Celery workers serve"),
    wrong(HE, "kubernetes_queues", "gpu namespce=gpu", "did you mean namespace?"),
    wrong(HE, "kubernetes_queues", "gpu, kubernetes, gpu", "list each queue once"),
    wrong(HE, "kubernetes_queues", "kubernetes,,gpu", "remove the extra comma"),
    wrong(HE, "kubernetes_queues", "gpu namespace=GPU", "such as 'airflow-gpu'"),
    wrong(
        HE, "kubernetes_queues", "gpu pod_template_file=/nonexistent/gpu.yaml", "correct the path, or create the file"
    ),
    wrong(
        "celery_kubernetes_executor",
        "kubernetes_queue",
        "k8s gpu",
        "set it to one queue name, or list the queues in [hybrid_executor] kubernetes_queues",
    ),
]


@pytest.mark.parametrize(("section", "option", "value", "fix", "also"), _WRONG_VALUES)
def test_a_wrong_value_is_an_error_naming_section_option_value_and_fix(
    load: Load, setenv: SetEnv, section: str, option: str, value: str, fix: str, also: dict[str, str]
) -> None:
    setenv(section, **{option: value})
    error = raises_settings_error(lambda: load(**also))
    assert (error.section, error.option, error.value) == (section, option, value)
    assert str(error).startswith(f"[{section}] {option} = {value!r} {error.problem}; ")
    assert fix in error.fix
    assert error.problem
    assert error.problem != error.fix


def test_the_example_of_the_issue_word_for_word(load: Load) -> None:
    error = raises_settings_error(lambda: load(api_qps="fast"))
    assert str(error) == (
        "[hybrid_executor] api_qps = 'fast' is not a number; set a positive number of requests per second, e.g. 100"
    )


def test_a_missing_template_says_so_and_where_a_relative_path_is_read_from(load: Load) -> None:
    error = raises_settings_error(lambda: load(pod_template_file="templates/pod.yaml"))
    assert "does not exist (a relative path, read from " in error.problem


def test_a_kubeconfig_is_checked_only_when_it_is_used(load: Load) -> None:
    settings = load(in_cluster="True", config_file="/nonexistent/kubeconfig")
    assert settings.kubernetes.config_file == "/nonexistent/kubeconfig"


@pytest.mark.parametrize(
    ("written", "value"), [("1", True), ("t", True), ("TRUE", True), ("0", False), ("False # no", False)]
)
def test_booleans_are_spelt_as_airflow_spells_them(load: Load, written: str, value: bool) -> None:
    assert load(verify_ssl=written).kubernetes.verify_ssl is value


@pytest.mark.parametrize(("written", "value"), [(" 8 ", 8), ("8.0", 8), ("1_000", 1000)])
def test_whole_numbers_are_read_as_airflow_reads_them(load: Load, written: str, value: int) -> None:
    assert load(parallelism=written, celery_parallelism=written).celery_parallelism == value


def test_an_unknown_option_in_the_section_is_an_error(
    executor_conf: Callable[[str | None], ExecutorConfLike], config_file_section: Callable[[str, dict[str, str]], None]
) -> None:
    config_file_section("hybrid_executor", {"kubernetes_queue": "gpu"})
    error = raises_settings_error(lambda: load_settings(executor_conf(None)))
    assert str(error).startswith("[hybrid_executor] kubernetes_queue = 'gpu' is not an option of the hybrid executor; ")
    assert "did you mean kubernetes_queues?" in error.fix


def test_options_in_an_airflow_cfg_section_are_read(
    load: Load, config_file_section: Callable[[str, dict[str, str]], None]
) -> None:
    config_file_section("hybrid_executor", {"api_qps": "20", "kubernetes_queues": "\nkubernetes\ngpu namespace=gpu"})
    settings = load()
    assert settings.kubernetes.api_qps == 20.0
    assert list(settings.kubernetes.queues) == ["kubernetes", "gpu"]


# --- teams ----------------------------------------------------------------------------------------------


def test_a_team_reads_its_own_options_and_fallbacks(load: Load, setenv: SetEnv) -> None:
    setenv("kubernetes_executor", "team_a", namespace="team-a")
    team = load("team_a", api_qps="5", kubernetes_queues="team-a-pods")
    assert (team.kubernetes.api_qps, team.kubernetes.namespace, list(team.kubernetes.queues)) == (
        5.0,
        "team-a",
        ["team-a-pods"],
    )
    everyone = load()
    assert (everyone.kubernetes.api_qps, everyone.kubernetes.namespace, list(everyone.kubernetes.queues)) == (
        150.0,
        "default",
        ["kubernetes"],
    )


def test_a_team_does_not_inherit_the_global_values(load: Load) -> None:
    # Airflow 3.3's rule for ExecutorConf(team): the team's variables and section, then the defaults.
    assert load(api_qps="7").kubernetes.api_qps == 7.0
    assert load("team_b").kubernetes.api_qps == 150.0


def test_a_team_section_in_airflow_cfg_is_read(
    load: Load, config_file_section: Callable[[str, dict[str, str]], None]
) -> None:
    config_file_section("team_c=hybrid_executor", {"kubernetes_queues": "gpu", "parallelism": "4"})
    settings = load("team_c")
    assert (settings.parallelism, list(settings.kubernetes.queues)) == (4, ["gpu"])
    assert load().parallelism == 32


def test_a_teams_error_names_the_team(load: Load) -> None:
    error = raises_settings_error(lambda: load("team_a", api_burst="-1"))
    assert error.team == "team_a"
    assert str(error).startswith("[hybrid_executor] api_burst (team 'team_a') = '-1' is less than 1; ")


# --- the provider's config metadata ----------------------------------------------------------------------


def test_provider_config_passes_airflows_schema_and_leaves_fallbacks_reachable(airflow_environ: AirflowEnv) -> None:
    from airflow.configuration import create_default_config_parser

    spec = importlib.util.find_spec("airflow")
    assert spec is not None
    assert spec.submodule_search_locations is not None
    schema = json.loads((Path(next(iter(spec.submodule_search_locations))) / "provider_info.schema.json").read_text())
    jsonschema.validate({"config": provider_config()}, {**schema, "required": []})

    options: dict[str, Any] = provider_config()["hybrid_executor"]["options"]
    assert list(options) == list(HYBRID_OPTIONS)
    # What Airflow would serve as registered defaults: none for an option that has a fallback, or
    # Airflow would answer with it before the executor could read the stock option.
    defaults = create_default_config_parser(provider_config())
    for option in HYBRID_OPTIONS.values():
        registered = defaults.get("hybrid_executor", option.name, fallback=None)
        assert registered == (None if option.fallback else option.default), option.name
        if option.fallback:
            assert f"Unset: [{option.fallback[0]}] {option.fallback[1]}" in options[option.name]["description"]

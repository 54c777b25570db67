"""Every option the executor reads, read once when it starts, typed and validated.

The options live in ``[hybrid_executor]``. Most of them have a *fallback*: when the option is unset
(or set to an empty value), the executor reads the matching option of a stock section instead, so a
``CeleryKubernetesExecutor`` user's ``[kubernetes_executor]`` and ``[celery_kubernetes_executor]``
settings keep working unchanged. When neither is set, the option's default applies; the defaults
of options that have a fallback are the stock ones. :data:`HYBRID_OPTIONS` (defined in
:mod:`hybrid_executor.options`, re-exported here) lists every option (type, default, fallback,
description, example); it is the one source of the defaults used here, of the provider's config
metadata (:func:`provider_config`) and of the README's table.

Options are read through an Airflow ``ExecutorConf`` (``BaseExecutor.conf``), so the executor of a
team reads that team's configuration (``AIRFLOW__<TEAM>___HYBRID_EXECUTOR__<OPTION>`` or a
``[<team>=hybrid_executor]`` section), as Airflow defines it.

A value the executor cannot use is a :class:`SettingsError` at start-up whose message names the
section, the option, the value, the problem and the fix, e.g.
``[hybrid_executor] api_qps = 'fast' is not a number; set a positive number of requests per second,
e.g. 100``. An option in ``[hybrid_executor]`` that the executor does not know (a typo such as
``kubernetes_queue``) is an error too, rather than a setting silently ignored. (Airflow lists a
section's environment variables only once the section exists in airflow.cfg or in the provider's
registered config, so a misspelt variable is caught once :func:`provider_config` is registered.)

The syntax of ``kubernetes_queues`` is described in :mod:`hybrid_executor.routing`.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from hybrid_executor.compat import config_section
from hybrid_executor.kubernetes.deployment import deployment_id_problem
from hybrid_executor.kubernetes.requestoptions import (
    OptionValueError,
    check_delete_options,
    check_request_args,
    import_callable,
)
from hybrid_executor.options import HYBRID_OPTIONS, SECTION, STOCK_FATAL_REASONS, Option, provider_config
from hybrid_executor.routing import (
    QueueProfile,
    SettingsError,
    namespace_problem,
    parse_kubernetes_queues,
    queue_name_problem,
)

__all__ = [
    "HYBRID_OPTIONS",
    "SECTION",
    "ExecutorConfLike",
    "HybridSettings",
    "KubernetesSettings",
    "Option",
    "QueueProfile",
    "SettingsError",
    "load_settings",
    "provider_config",
]

log = logging.getLogger(__name__)


class ExecutorConfLike(Protocol):
    """What :func:`load_settings` needs of Airflow's ``ExecutorConf``: string values (and, where the
    Airflow has it, ``getsection``: :func:`hybrid_executor.compat.config_section`)."""

    def get(self, section: str, key: str, *, fallback: str | None) -> str | None: ...


@dataclass(frozen=True)
class KubernetesSettings:
    namespace: str
    pod_template_file: str | None
    worker_container_repository: str | None
    worker_container_tag: str | None
    delete_worker_pods: bool
    delete_worker_pods_on_failure: bool
    worker_pods_pending_timeout: float | None
    in_cluster: bool
    config_file: str | None
    cluster_context: str | None
    verify_ssl: bool
    pod_creation_concurrency: int
    api_qps: float
    api_burst: int
    pod_creation_retry_timeout: float
    watch_timeout_seconds: int
    queues: Mapping[str, QueueProfile]
    ssl_ca_cert: str | None = None
    multi_namespace_mode: bool = False
    multi_namespace_mode_namespace_list: tuple[str, ...] = ()
    worker_pod_pending_fatal_container_state_reasons: tuple[str, ...] = STOCK_FATAL_REASONS
    # A pod that failed before its task started: replaced this often (-1: no limit), unless for these reasons.
    pod_launch_failure_retries: int = 1
    pod_launch_failure_excluded_container_reasons: tuple[str, ...] = ("Error",)
    # Checked V1DeleteOptions keyword arguments, and client request arguments (``_request_timeout``).
    delete_option_kwargs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    kube_client_request_args: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    enable_tcp_keepalive: bool = True
    tcp_keep_idle: int = 120
    tcp_keep_intvl: int = 30
    tcp_keep_cnt: int = 6
    client_factory: str | None = None
    running_pod_log_lines: int = 100
    deployment_id: str | None = None  # the option; resolve_deployment_id() gives the id in use

    @property
    def image(self) -> str | None:
        """``repository:tag`` for the base container, when both are set (as the stock executor does)."""
        if self.worker_container_repository and self.worker_container_tag:
            return f"{self.worker_container_repository}:{self.worker_container_tag}"
        return None

    def namespace_for(self, queue: str | None) -> str:
        """The namespace of a pod for a task on ``queue``."""
        profile = self.queues.get(queue) if queue is not None else None
        if profile is not None and profile.namespace is not None:
            return profile.namespace
        return self.namespace

    def pod_template_file_for(self, queue: str | None) -> str | None:
        """The pod template of a task on ``queue`` (before its own executor_config is considered)."""
        profile = self.queues.get(queue) if queue is not None else None
        if profile is not None and profile.pod_template_file is not None:
            return profile.pod_template_file
        return self.pod_template_file

    def namespaces(self) -> frozenset[str]:
        """Every namespace named for pods: the executor-wide one, each queue's, and multi_namespace_mode's list."""
        listed = self.multi_namespace_mode_namespace_list if self.multi_namespace_mode else ()
        queues = {p.namespace for p in self.queues.values() if p.namespace is not None}
        return frozenset({self.namespace, *queues, *listed})

    @property
    def all_namespaces(self) -> bool:
        """multi_namespace_mode without a list: pods may be in any namespace, watched with one cluster-wide watch."""
        return self.multi_namespace_mode and not self.multi_namespace_mode_namespace_list

    def watch_scopes(self) -> list[str | None]:
        """What to list and watch pods in: each namespace, or None for all of them (see all_namespaces)."""
        if self.all_namespaces:
            return [None]
        return [*sorted(self.namespaces())]


@dataclass(frozen=True)
class HybridSettings:
    parallelism: int
    callback_queue: str  # a queue Celery serves (checked): where a callback bound for a Kubernetes queue goes
    # Read only to warn that they are no longer applied (see the options' descriptions).
    celery_parallelism: int | None
    kubernetes_parallelism: int | None
    kubernetes: KubernetesSettings


@dataclass(frozen=True)
class _Value:
    """A value as read, and where it was read (for the error message)."""

    text: str | None
    section: str
    option: str
    spec: Option

    def error(self, problem: str, fix: str | None = None) -> SettingsError:
        if fix is None:
            fix = f"set {self.spec.expects}" + (f", e.g. {self.spec.example}" if self.spec.example else "")
        return SettingsError(self.section, self.option, self.text, problem, fix)


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip()
    return text or None


def _read(conf: ExecutorConfLike, spec: Option) -> _Value:
    places = [(SECTION, spec.name)] + ([spec.fallback] if spec.fallback is not None else [])
    for section, option in places:
        raw = conf.get(section, option, fallback=None)
        text = _clean(raw)
        if text is not None:
            return _Value(text, section, option, spec)
        if raw is not None and spec.empty_allowed:
            return _Value("", section, option, spec)
    return _Value(spec.default, SECTION, spec.name, spec)


def _boolean(value: _Value) -> bool:
    # The spellings Airflow's own getboolean accepts, inline "# comment" included.
    word = (value.text or "").split("#")[0].strip().lower()
    if word in ("t", "true", "1"):
        return True
    if word in ("f", "false", "0"):
        return False
    raise value.error("is not a boolean")


def _check_bounds(value: _Value, number: float) -> None:
    spec = value.spec
    if spec.ge is not None and number < spec.ge:
        raise value.error(f"is less than {spec.ge:g}")
    if spec.gt is not None and number <= spec.gt:
        raise value.error(f"is not more than {spec.gt:g}")


def _optional_integer(value: _Value) -> int | None:
    if value.text is None:
        return None
    try:
        number = int(value.text)
    except ValueError:
        # Like Airflow's getint: "16.0" is 16.
        try:
            as_float = float(value.text)
            number = int(as_float)
        except (ValueError, OverflowError):
            raise value.error("is not a whole number") from None
        if number != as_float:
            raise value.error("is not a whole number") from None
    _check_bounds(value, number)
    return number


def _integer(value: _Value) -> int:
    number = _optional_integer(value)
    if number is None:
        raise value.error("is not set")
    return number


def _number(value: _Value) -> float:
    if value.text is None:
        raise value.error("is not set")
    try:
        number = float(value.text)
    except ValueError:
        raise value.error("is not a number") from None
    if not math.isfinite(number):
        raise value.error("is not a finite number")
    _check_bounds(value, number)
    return number


def _optional_number(value: _Value) -> float | None:
    return None if value.text is None else _number(value)


def _string(value: _Value) -> str:
    if value.text is None:
        raise value.error("is not set")
    return value.text


def _deployment_id(value: _Value) -> str | None:
    if value.text is not None and (problem := deployment_id_problem(value.text)) is not None:
        raise value.error(problem)
    return value.text


def _file_problem(path: str) -> str | None:
    """Why the scheduler cannot read the file at ``path``, or None."""
    try:
        target = Path(path)
        if target.is_dir():
            return "is a directory, not a file"
        if not target.is_file():
            where = "" if target.is_absolute() else f" (a relative path, read from {os.getcwd()})"
            return f"does not exist{where}"
        if not os.access(target, os.R_OK):
            return "cannot be read by the scheduler's user"
    except (OSError, ValueError) as error:
        return f"cannot be used as a path ({error})"
    return None


def _list(value: _Value) -> tuple[str, ...]:
    """A comma-separated list, as the stock executor splits it (each entry stripped; empty entries dropped)."""
    return tuple(dict.fromkeys(entry.strip() for entry in (value.text or "").split(",") if entry.strip()))


def _namespace_list(value: _Value) -> tuple[str, ...]:
    names = _list(value)
    for name in names:
        if (problem := namespace_problem(name)) is not None:
            raise value.error(f"lists {name!r}, which {problem}")
    return names


def _json_object(value: _Value, check: Callable[[Mapping[str, Any]], dict[str, Any]]) -> Mapping[str, Any]:
    """A JSON object option, checked by ``check``; its value is redacted in errors (it may carry a token)."""
    from hybrid_executor.kubernetes.errors import redact  # the kubernetes client: only when the option is set

    if value.text is None:
        return MappingProxyType({})
    shown = _Value(redact(value.text), value.section, value.option, value.spec)
    try:
        parsed = json.loads(value.text)
    except ValueError as error:
        raise shown.error(f"is not valid JSON ({error})") from None
    if not isinstance(parsed, dict):
        raise shown.error(f"is a JSON {type(parsed).__name__}, not an object")
    try:
        return MappingProxyType(check(parsed))
    except OptionValueError as error:
        raise shown.error(error.problem, error.fix) from None


def _import_path(value: _Value) -> str | None:
    """An import path (``module.callable``), checked to import now, not at the first pod."""
    if value.text is None:
        return None
    try:
        import_callable(value.text)
    except OptionValueError as error:
        raise value.error(error.problem, error.fix) from None
    return value.text


def _check_unknown_options(conf: ExecutorConfLike) -> None:
    section = config_section(conf, SECTION) or {}
    for name, value in section.items():
        if name in HYBRID_OPTIONS:
            continue
        close = difflib.get_close_matches(name, list(HYBRID_OPTIONS), n=1)
        fix = f"did you mean {close[0]}? Otherwise remove it" if close else "remove it"
        raise SettingsError(
            SECTION, name, str(value), "is not an option of the hybrid executor", f"{fix} (see the README's options)"
        )


def _kubernetes_queues(value: _Value) -> dict[str, QueueProfile]:
    text = _string(value)
    if value.section == SECTION:
        queues = parse_kubernetes_queues(text, section=value.section, option=value.option)
    else:
        # The stock option names one queue, compared as it is; it takes no per-queue settings.
        problem = queue_name_problem(text)
        if problem is not None:
            raise value.error(
                f"is not a single queue name: it {problem}",
                f"set it to one queue name, or list the queues in [{SECTION}] kubernetes_queues",
            )
        queues = {text: QueueProfile(text)}
    for profile in queues.values():
        if profile.pod_template_file is not None and (problem := _file_problem(profile.pod_template_file)) is not None:
            raise value.error(
                f"gives queue {profile.queue!r} the pod_template_file {profile.pod_template_file!r}, which {problem}",
                "correct the path, or create the file where the scheduler can read it",
            )
    return queues


def _load(conf: ExecutorConfLike) -> HybridSettings:
    _check_unknown_options(conf)
    # Every option read once, here; the rest only checks and converts what was read.
    read = {name: _read(conf, spec) for name, spec in HYBRID_OPTIONS.items()}
    queues = _kubernetes_queues(read["kubernetes_queues"])

    namespace = _string(read["namespace"])
    if (problem := namespace_problem(namespace)) is not None:
        raise read["namespace"].error(problem)

    template = read["pod_template_file"].text
    if template is not None and (problem := _file_problem(template)) is not None:
        raise read["pod_template_file"].error(problem)

    in_cluster = _boolean(read["in_cluster"])
    config_file = read["config_file"].text
    # Checked only when it is used: in the cluster, a leftover kubeconfig path does no harm.
    if not in_cluster and config_file is not None and (problem := _file_problem(config_file)) is not None:
        raise read["config_file"].error(problem)

    repository = read["worker_container_repository"].text
    tag = read["worker_container_tag"].text
    if bool(repository) != bool(tag):
        log.warning(
            "Only one of worker_container_repository (%r) and worker_container_tag (%r) is set: pods keep the "
            "image of their pod template, as with the stock executor. Set both to choose the image.",
            repository,
            tag,
        )

    parallelism = _integer(read["parallelism"])
    callback_queue = _callback_queue(read["callback_queue"], queues)
    kubernetes = KubernetesSettings(
        namespace=namespace,
        pod_template_file=template,
        worker_container_repository=repository,
        worker_container_tag=tag,
        delete_worker_pods=_boolean(read["delete_worker_pods"]),
        delete_worker_pods_on_failure=_boolean(read["delete_worker_pods_on_failure"]),
        worker_pods_pending_timeout=_optional_number(read["worker_pods_pending_timeout"]),
        in_cluster=in_cluster,
        config_file=config_file,
        cluster_context=read["cluster_context"].text,
        verify_ssl=_boolean(read["verify_ssl"]),
        pod_creation_concurrency=_integer(read["pod_creation_concurrency"]),
        api_qps=_number(read["api_qps"]),
        api_burst=_integer(read["api_burst"]),
        pod_creation_retry_timeout=_number(read["pod_creation_retry_timeout"]),
        watch_timeout_seconds=_integer(read["watch_timeout_seconds"]),
        queues=MappingProxyType(queues),
        ssl_ca_cert=read["ssl_ca_cert"].text,
        multi_namespace_mode=_boolean(read["multi_namespace_mode"]),
        multi_namespace_mode_namespace_list=_namespace_list(read["multi_namespace_mode_namespace_list"]),
        worker_pod_pending_fatal_container_state_reasons=_list(
            read["worker_pod_pending_fatal_container_state_reasons"]
        ),
        pod_launch_failure_retries=_integer(read["pod_launch_failure_retries"]),
        pod_launch_failure_excluded_container_reasons=_list(read["pod_launch_failure_excluded_container_reasons"]),
        delete_option_kwargs=_json_object(read["delete_option_kwargs"], check_delete_options),
        kube_client_request_args=_json_object(read["kube_client_request_args"], check_request_args),
        enable_tcp_keepalive=_boolean(read["enable_tcp_keepalive"]),
        tcp_keep_idle=_integer(read["tcp_keep_idle"]),
        tcp_keep_intvl=_integer(read["tcp_keep_intvl"]),
        tcp_keep_cnt=_integer(read["tcp_keep_cnt"]),
        client_factory=_import_path(read["client_factory"]),
        running_pod_log_lines=_integer(read["running_pod_log_lines"]),
        deployment_id=_deployment_id(read["deployment_id"]),
    )
    return HybridSettings(
        parallelism=parallelism,
        callback_queue=callback_queue,
        celery_parallelism=_optional_integer(read["celery_parallelism"]),
        kubernetes_parallelism=_optional_integer(read["kubernetes_parallelism"]),
        kubernetes=kubernetes,
    )


def _callback_queue(value: _Value, queues: Mapping[str, QueueProfile]) -> str:
    """Where callbacks go when theirs is a Kubernetes queue: it must be one a Celery worker takes them from."""
    queue = _string(value)
    if queue in queues:
        raise value.error(
            "is a Kubernetes queue, but callbacks run on Celery: no Celery worker would take them from it",
            f"set [{SECTION}] callback_queue to a queue your Celery workers serve, e.g. {value.spec.example}",
        )
    return queue


def load_kubernetes_queues(conf: ExecutorConfLike) -> dict[str, QueueProfile]:
    """Only the Kubernetes queues (to route by), read as :func:`load_settings` reads them.

    For the api-server, which builds the executor only to read task logs: a wrong value of another
    option must not stop it telling Celery tasks from pod tasks. Raises :class:`SettingsError`.
    """
    return _kubernetes_queues(_read(conf, HYBRID_OPTIONS["kubernetes_queues"]))


def load_settings(conf: ExecutorConfLike) -> HybridSettings:
    """Read and check every option through ``conf`` (``BaseExecutor.conf``, which knows the team).

    Raises :class:`SettingsError` for the first value the executor cannot use.
    """
    team = getattr(conf, "team_name", None)
    try:
        return _load(conf)
    except SettingsError as error:
        if isinstance(team, str) and team:
            raise error.for_team(team) from None
        raise

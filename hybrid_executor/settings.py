"""Every option the executor reads, read once when it starts, typed and validated.

The options live in ``[hybrid_executor]``. Most of them have a *fallback*: when the option is unset
(or set to an empty value), the executor reads the matching option of a stock section instead, so a
``CeleryKubernetesExecutor`` user's ``[kubernetes_executor]`` and ``[celery_kubernetes_executor]``
settings keep working unchanged. When neither is set, the option's default applies; the defaults
of options that have a fallback are the stock ones. :data:`HYBRID_OPTIONS` lists every option (type,
default, fallback, description, example); it is the one source of the defaults used here, of the
provider's config metadata (:func:`provider_config`) and of the README's table.

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
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Protocol

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

SECTION = "hybrid_executor"


class ExecutorConfLike(Protocol):
    """What :func:`load_settings` needs of Airflow's ``ExecutorConf``: string values, and the section."""

    def get(self, section: str, key: str, *, fallback: str | None) -> str | None: ...

    def getsection(self, section: str) -> Mapping[str, object] | None: ...


OptionType = Literal["string", "integer", "float", "boolean"]


@dataclass(frozen=True)
class Option:
    """One ``[hybrid_executor]`` option."""

    name: str
    type: OptionType
    # The value used when neither this option nor its fallback is set, as written in airflow.cfg;
    # None: unset. For options with a fallback it equals the stock default.
    default: str | None
    description: str
    # What a valid value is, for the fix in an error message: "set <expects>, e.g. <example>".
    expects: str
    example: str | None = None
    # (section, option) read when this option is unset.
    fallback: tuple[str, str] | None = None
    # Bounds of a number: at least ``ge``, more than ``gt``.
    ge: float | None = None
    gt: float | None = None
    version_added: str = "0.1.0"


_KE = "kubernetes_executor"

_OPTIONS = (
    Option(
        "kubernetes_queues",
        "string",
        "kubernetes",
        "The queues whose tasks run in a Kubernetes pod of their own; a task on any other queue runs on "
        "Celery. Entries are separated by commas or new lines; each is a queue name, optionally followed "
        "by pod_template_file=PATH and namespace=NAME for that queue's pods.",
        "queue names separated by commas, each optionally followed by pod_template_file=PATH and namespace=NAME",
        "kubernetes, kubernetes-gpu pod_template_file=/opt/airflow/gpu.yaml namespace=airflow-gpu",
        fallback=("celery_kubernetes_executor", "kubernetes_queue"),
    ),
    Option(
        "callback_queue",
        "string",
        "default",
        "The Celery queue a callback (a deadline callback) is sent to when its own queue is a Kubernetes "
        "queue, or it names none and [operators] default_queue is one: callbacks always run on Celery. "
        "It must not be a Kubernetes queue.",
        "a queue your Celery workers serve, not a Kubernetes queue",
        "default",
        fallback=("operators", "default_queue"),
    ),
    Option(
        "parallelism",
        "integer",
        "32",
        "The most task instances this executor runs at once, on Celery and Kubernetes together.",
        "a whole number of task slots, 1 or more",
        "64",
        fallback=("core", "parallelism"),
        ge=1,
    ),
    Option(
        "celery_parallelism",
        "integer",
        None,
        "Not applied any more (a warning says so when it is set): a cap inside the executor held tasks "
        "queued until task_queued_timeout failed them, and starved the other route. Cap a route with an "
        "Airflow pool instead (the README's 'Capping a route').",
        "leave it unset, and give the route's tasks a pool",
        "24",
        ge=1,
    ),
    Option(
        "kubernetes_parallelism",
        "integer",
        None,
        "Not applied any more (a warning says so when it is set): a cap inside the executor held tasks "
        "queued until task_queued_timeout failed them, and starved the other route. Cap a route with an "
        "Airflow pool instead (the README's 'Capping a route').",
        "leave it unset, and give the route's tasks a pool",
        "24",
        ge=1,
    ),
    Option(
        "namespace",
        "string",
        "default",
        "The namespace pods are created in, for a Kubernetes queue that names none of its own.",
        "a Kubernetes namespace name (lower-case letters, digits and '-')",
        "airflow",
        fallback=(_KE, "namespace"),
    ),
    Option(
        "pod_template_file",
        "string",
        None,
        "The pod template (YAML) pods are built from, for a Kubernetes queue that names none of its own "
        "and a task whose executor_config names none.",
        "the path of a pod template YAML file the scheduler can read",
        "/opt/airflow/pod_templates/default.yaml",
        fallback=(_KE, "pod_template_file"),
    ),
    Option(
        "worker_container_repository",
        "string",
        None,
        "The image repository of the base container. Used only together with worker_container_tag; "
        "unset: the image of the pod template.",
        "an image repository",
        "apache/airflow",
        fallback=(_KE, "worker_container_repository"),
    ),
    Option(
        "worker_container_tag",
        "string",
        None,
        "The image tag of the base container. Used only together with worker_container_repository.",
        "an image tag",
        "3.3.2-python3.11",
        fallback=(_KE, "worker_container_tag"),
    ),
    Option(
        "delete_worker_pods",
        "boolean",
        "True",
        "Delete a pod once its task has finished. A pod given up on while still Pending (pending "
        "timeout, an image that can never pull) is deleted whatever this says: it would hold quota "
        "and could still start a task already reported failed.",
        "True or False",
        "True",
        fallback=(_KE, "delete_worker_pods"),
    ),
    Option(
        "delete_worker_pods_on_failure",
        "boolean",
        "False",
        "Delete a pod whose task failed too (only when delete_worker_pods is True).",
        "True or False",
        "False",
        fallback=(_KE, "delete_worker_pods_on_failure"),
    ),
    Option(
        "worker_pods_pending_timeout",
        "float",
        "300",
        "Seconds a pod may stay Pending (image pull, scheduling) before its task fails with the reason. "
        "Airflow 3 no longer defines the stock option; it is still read when a configuration carries it.",
        "a positive number of seconds",
        "300",
        fallback=(_KE, "worker_pods_pending_timeout"),
        gt=0,
    ),
    Option(
        "in_cluster",
        "boolean",
        "True",
        "Reach the Kubernetes API with the pod's service account; False: with the kubeconfig "
        "(config_file, cluster_context).",
        "True or False",
        "True",
        fallback=(_KE, "in_cluster"),
    ),
    Option(
        "config_file",
        "string",
        None,
        "The kubeconfig file, when in_cluster is False. Unset: the kubernetes client's default (~/.kube/config).",
        "the path of a kubeconfig file the scheduler can read",
        "/opt/airflow/.kube/config",
        fallback=(_KE, "config_file"),
    ),
    Option(
        "cluster_context",
        "string",
        None,
        "The kubeconfig context, when in_cluster is False. Unset: the kubeconfig's current context.",
        "a context name of the kubeconfig",
        "production",
        fallback=(_KE, "cluster_context"),
    ),
    Option(
        "verify_ssl",
        "boolean",
        "True",
        "Verify the Kubernetes API server's TLS certificate.",
        "True or False",
        "True",
        fallback=(_KE, "verify_ssl"),
    ),
    Option(
        "ssl_ca_cert",
        "string",
        None,
        "A CA bundle to verify the Kubernetes API server's certificate with, instead of the configured one.",
        "the path of a PEM file",
        "/etc/ssl/certs/kube-ca.pem",
        fallback=(_KE, "ssl_ca_cert"),
    ),
    Option(
        "pod_creation_concurrency",
        "integer",
        "16",
        "Threads creating pods at once (off the scheduler's thread).",
        "a whole number of threads, 1 or more",
        "16",
        ge=1,
    ),
    Option(
        "api_qps",
        "float",
        "150",
        "Requests per second the pod creators may send to the Kubernetes API, on average.",
        "a positive number of requests per second",
        "100",
        gt=0,
    ),
    Option(
        "api_burst",
        "integer",
        "300",
        "Requests the pod creators may send at once above api_qps, after a quiet spell.",
        "a whole number of requests, 1 or more",
        "300",
        ge=1,
    ),
    Option(
        "pod_creation_retry_timeout",
        "float",
        "600",
        "Seconds a task's pod creation is retried for on retryable errors (403 quota, 429, 5xx, connection) "
        "before the task fails with the last error. 0: no retry.",
        "a number of seconds, 0 or more",
        "600",
        ge=0,
    ),
    Option(
        "watch_timeout_seconds",
        "integer",
        "300",
        "Server-side timeout of one watch request on pods; the watcher then resumes where it was.",
        "a whole number of seconds, 1 or more",
        "300",
        ge=1,
    ),
)

#: Every ``[hybrid_executor]`` option, by name, in the order the README lists them.
HYBRID_OPTIONS: Mapping[str, Option] = MappingProxyType({option.name: option for option in _OPTIONS})


@dataclass(frozen=True)
class KubernetesSettings:
    namespace: str
    pod_template_file: str | None
    worker_container_repository: str | None
    worker_container_tag: str | None
    delete_worker_pods: bool
    delete_worker_pods_on_failure: bool
    worker_pods_pending_timeout: float
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
        """Every namespace the settings send pods to: the executor-wide one and each queue's."""
        return frozenset({self.namespace} | {p.namespace for p in self.queues.values() if p.namespace is not None})


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
    text = _clean(conf.get(SECTION, spec.name, fallback=None))
    if text is not None:
        return _Value(text, SECTION, spec.name, spec)
    if spec.fallback is not None:
        section, option = spec.fallback
        text = _clean(conf.get(section, option, fallback=None))
        if text is not None:
            return _Value(text, section, option, spec)
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


def _string(value: _Value) -> str:
    if value.text is None:
        raise value.error("is not set")
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


def _check_unknown_options(conf: ExecutorConfLike) -> None:
    section = conf.getsection(SECTION) or {}
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
        worker_pods_pending_timeout=_number(read["worker_pods_pending_timeout"]),
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


def provider_config() -> dict[str, Any]:
    """The ``config`` entry of ``get_provider_info()``, made from :data:`HYBRID_OPTIONS`.

    An option with a fallback is registered without a default: Airflow returns a registered
    default before the executor could look at the fallback. Its description says what applies.
    """
    options: dict[str, dict[str, Any]] = {}
    for option in HYBRID_OPTIONS.values():
        description = option.description
        if option.fallback is not None:
            section, key = option.fallback
            otherwise = f", else {option.default}" if option.default is not None else ""
            description += f" Unset: [{section}] {key}{otherwise}."
        options[option.name] = {
            "description": description,
            "version_added": option.version_added,
            "type": option.type,
            "example": option.example,
            "default": None if option.fallback is not None else option.default,
        }
    return {
        SECTION: {
            "description": (
                "The hybrid executor: tasks on a Kubernetes queue run in a pod "
                "of their own, all others on Celery. Options left unset fall back to the stock sections "
                "([kubernetes_executor], [celery_kubernetes_executor], [core])."
            ),
            "options": options,
        }
    }

"""The ``[hybrid_executor]`` options: each one's type, default, stock fallback and description.

:data:`HYBRID_OPTIONS` is the one definition of every option: :mod:`hybrid_executor.settings` reads
and checks them, :func:`provider_config` registers them with Airflow, and the README's table is
written from them (:mod:`hybrid_executor.config_reference`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

__all__ = ["HYBRID_OPTIONS", "SECTION", "STOCK_FATAL_REASONS", "Option", "provider_config"]

SECTION = "hybrid_executor"

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
    # An empty value is a value (e.g. "no reasons"), not "unset": for options whose stock default is not empty.
    empty_allowed: bool = False


_KE = "kubernetes_executor"
# The stock default of [kubernetes_executor] worker_pod_pending_fatal_container_state_reasons.
STOCK_FATAL_REASONS = (
    "CreateContainerConfigError",
    "ErrImagePull",
    "CreateContainerError",
    "ImageInspectError",
    "InvalidImageName",
)

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
    *(
        Option(
            name,
            "integer",
            None,
            "Not applied any more (a warning says so when it is set): a cap inside the executor held tasks "
            "queued until task_queued_timeout failed them, and starved the other route. Cap a route with an "
            "Airflow pool instead (the README's 'Capping a route').",
            "leave it unset, and give the route's tasks a pool",
            "24",
            ge=1,
        )
        for name in ("celery_parallelism", "kubernetes_parallelism")
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
        "multi_namespace_mode",
        "boolean",
        "False",
        "Let pods run in namespaces beyond the executor-wide and the queues' ones: those of "
        "multi_namespace_mode_namespace_list, or, when that is empty, any namespace (one cluster-wide watch, "
        "which needs a ClusterRole: docs/real-cluster.md). A pod_override may then put a pod in any of them.",
        "True or False",
        "True",
        fallback=(_KE, "multi_namespace_mode"),
    ),
    Option(
        "multi_namespace_mode_namespace_list",
        "string",
        None,
        "With multi_namespace_mode: the namespaces, separated by commas, watched besides the executor-wide "
        "and the queues' ones (one watch each; a Role in each is enough). Empty: all namespaces.",
        "namespace names separated by commas",
        "airflow-a, airflow-b",
        fallback=(_KE, "multi_namespace_mode_namespace_list"),
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
        "delete_option_kwargs",
        "string",
        None,
        "Keyword arguments of the kubernetes client's V1DeleteOptions, as a JSON object, sent with every "
        "pod deletion (with the pod's uid as a precondition), e.g. grace_period_seconds or propagation_policy.",
        "a JSON object of V1DeleteOptions arguments",
        '{"grace_period_seconds": 10}',
        fallback=(_KE, "delete_option_kwargs"),
    ),
    Option(
        "worker_pods_pending_timeout",
        "float",
        None,
        "Seconds a pod may stay Pending (scheduling, image pull) before its task fails with the reason. "
        "Unset: no limit of the executor's own, as with the stock executor of Airflow 3: [scheduler] "
        "task_queued_timeout requeues, then fails, a task whose pod has not started. Set it shorter than "
        "task_queued_timeout to fail such a task sooner, with the pod's reason.",
        "a positive number of seconds",
        "900",
        gt=0,
    ),
    Option(
        "worker_pod_pending_fatal_container_state_reasons",
        "string",
        ",".join(STOCK_FATAL_REASONS),
        "Waiting reasons of a Pending pod's init or worker container that fail its task at once (and "
        "delete the pod), separated by commas. Empty: none, every pending pod waits. (ErrImagePull "
        "'pull QPS exceeded' is never fatal, as with the stock executor.)",
        "container waiting reasons separated by commas, or nothing",
        "ErrImagePull,InvalidImageName",
        fallback=(_KE, "worker_pod_pending_fatal_container_state_reasons"),
        empty_allowed=True,
    ),
    Option(
        "pod_launch_failure_retries",
        "integer",
        "1",
        "How many times a task whose pod failed before its task started (its task instance still queued: "
        "a node drained or scaled down, an eviction before start, an image pull that failed) gets a new "
        "pod, without the failure being reported, so no task retry is used. 0: none, the try fails at "
        "once; -1: no limit (a pod that can never start is then replaced for ever, until task_queued_timeout).",
        "a whole number of new pods, 0 or more, or -1 for no limit",
        "2",
        fallback=(_KE, "pod_launch_failure_retries"),
        ge=-1,
    ),
    Option(
        "pod_launch_failure_excluded_container_reasons",
        "string",
        "Error",
        "Container termination reasons that fail the try at once even though the task instance is still "
        "queued, separated by commas. The default Error is a container that started and whose Airflow "
        "process exited before it set the task running (a start-up error of the task, not of the node). "
        "Empty: none.",
        "container termination reasons separated by commas, or nothing",
        "Error,OOMKilled",
        fallback=(_KE, "pod_launch_failure_excluded_container_reasons"),
        empty_allowed=True,
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
        "client_factory",
        "string",
        None,
        "The import path of a zero-argument callable returning the kubernetes.client.CoreV1Api to use, for "
        "deployments that make their own credentials. It replaces the client built from in_cluster, "
        "config_file, cluster_context, verify_ssl, ssl_ca_cert and the TCP keepalive options.",
        "the import path of a callable, module.name",
        "my_company.kubernetes.build_client",
        fallback=(_KE, "client_factory"),
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
        "kube_client_request_args",
        "string",
        None,
        "Arguments of every Kubernetes API call, as a JSON object; the executor applies _request_timeout "
        "(seconds, or [connect, read]; a watch takes only its connect part, its read bound is "
        "watch_timeout_seconds). Unset: 10 s to connect, 60 s to read.",
        'a JSON object with _request_timeout, e.g. {"_request_timeout": [10, 60]}',
        '{"_request_timeout": [10, 60]}',
        fallback=(_KE, "kube_client_request_args"),
    ),
    Option(
        "enable_tcp_keepalive",
        "boolean",
        "True",
        "TCP keepalive on the connections to the Kubernetes API (this executor's only), so a connection a "
        "load balancer or NAT dropped while idle is noticed instead of hanging a watch.",
        "True or False",
        "True",
        fallback=(_KE, "enable_tcp_keepalive"),
    ),
    Option(
        "tcp_keep_idle",
        "integer",
        "120",
        "Seconds a connection is idle before the first keepalive probe (with enable_tcp_keepalive).",
        "a whole number of seconds, 1 or more",
        "120",
        fallback=(_KE, "tcp_keep_idle"),
        ge=1,
    ),
    Option(
        "tcp_keep_intvl",
        "integer",
        "30",
        "Seconds between unanswered keepalive probes (with enable_tcp_keepalive).",
        "a whole number of seconds, 1 or more",
        "30",
        fallback=(_KE, "tcp_keep_intvl"),
        ge=1,
    ),
    Option(
        "tcp_keep_cnt",
        "integer",
        "6",
        "Unanswered keepalive probes after which the connection counts as broken (with enable_tcp_keepalive).",
        "a whole number of probes, 1 or more",
        "6",
        fallback=(_KE, "tcp_keep_cnt"),
        ge=1,
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
    Option(
        "running_pod_log_lines",
        "integer",
        "100",
        "Lines read from the end of a running task's pod log for Airflow's log view.",
        "a whole number of lines, 1 or more",
        "100",
        fallback=(_KE, "running_pod_log_lines"),
        ge=1,
    ),
    Option(
        "deployment_id",
        "string",
        None,
        "The value of the hybrid-executor/deployment label on this deployment's pods. The scheduler's "
        "cleanup of pods left by dead schedulers and `airflow hybrid cleanup-pods` touch only pods with "
        "this deployment's label. Unset: a hash of the metadata database's backend, host, port and name "
        "(never its credentials). Set it when two deployments sharing a namespace reach different "
        "databases by the same URL.",
        "a Kubernetes label value (letters, digits, '-', '_', '.'; at most 63 characters)",
        "airflow-prod",
    ),
)

#: Every ``[hybrid_executor]`` option, by name, in the order the README lists them.
HYBRID_OPTIONS: Mapping[str, Option] = MappingProxyType({option.name: option for option in _OPTIONS})


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

"""``airflow hybrid doctor``: is this scheduler ready to run tasks on both routes? One screen of checks.

Each check says PASS, WARN or FAIL, what it saw, and on WARN and FAIL the fix. The checks go in
the order a task meets the pieces: settings and pod templates, the Celery broker, the Kubernetes
API, the worker namespaces, the scheduler identity's permissions there (SelfSubjectAccessReview),
each Kubernetes queue's pod as the executor builds it (a server-side dry-run create, so the API's
own 422 or admission refusal shows before any task runs), and the execution API URL that pods
will call.

A refused dry run gets the fix for what refused it (``KubeApiError.refusal``): a quota full right
now is a WARN with its numbers (the executor waits for it), a pod that no quota, LimitRange,
PodSecurity level or webhook admits, a missing ServiceAccount or a missing permission a FAIL with
that refusal's hint.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit, urlunsplit

from hybrid_executor.commands.common import kube_api, settings, workload_for
from hybrid_executor.settings import SettingsError

if TYPE_CHECKING:
    import argparse

    from kubernetes.client import V1Pod

    from hybrid_executor.kubernetes.api import KubeApi
    from hybrid_executor.kubernetes.errors import KubeApiError
    from hybrid_executor.settings import HybridSettings

Status = Literal["PASS", "WARN", "FAIL"]

# What the scheduler does to pods (docs/real-cluster.md): create, the watchers' list and watch,
# adoption's relabelling patch, delete. It never reads a single pod, so `get` is not required.
SCHEDULER_VERBS = ("create", "list", "watch", "patch", "delete")
_EXECUTION_API_ENV = "AIRFLOW__CORE__EXECUTION_API_SERVER_URL"
_LOOPBACK = ("localhost", "127.0.0.1", "::1", "0.0.0.0")  # noqa: S104 - compared with, not bound to


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


class _Doctor:
    def __init__(self) -> None:
        self.checks: list[Check] = []
        self.settings: HybridSettings | None = None
        self.api: KubeApi | None = None
        self.templates: dict[str | None, V1Pod] = {}  # by path, each read once: the ones that load
        self.namespace_exists: dict[str, bool | None] = {}  # None: this identity may not tell
        # Namespaces where every verb is denied and whose existence is unknown: perhaps misspelt.
        self.maybe_missing: set[str] = set()

    def add(self, name: str, status: Status, detail: str, fix: str = "") -> None:
        self.checks.append(Check(name, status, detail, fix))

    def run(self) -> list[Check]:
        self.check_settings()
        if self.settings is not None:
            self.check_pod_templates()
        self.check_broker()
        if self.settings is None:
            self.add("kubernetes", "WARN", "not checked: the settings do not parse (see above)")
            return self.checks
        self.check_api()
        if self.api is not None:
            self.check_namespaces()
            self.check_permissions()
            self.check_cluster_watch()
            self.check_dry_run()
        self.check_execution_api_url()
        return self.checks

    # --- settings -------------------------------------------------------------------------

    def check_settings(self) -> None:
        try:
            self.settings = settings()
        except SettingsError as error:
            self.add("settings", "FAIL", str(error), "correct the option as the message says")
            return
        queues = ", ".join(sorted(self.settings.kubernetes.queues))
        self.add("settings", "PASS", f"[hybrid_executor] and [kubernetes_executor] parse; Kubernetes queues: {queues}")

    def check_pod_templates(self) -> None:
        from hybrid_executor.kubernetes.pods import PodBuildError, base_pod_template

        assert self.settings is not None
        for queue in sorted(self.settings.kubernetes.queues):
            path = self.settings.kubernetes.pod_template_file_for(queue)
            try:
                if path not in self.templates:
                    self.templates[path] = base_pod_template(path)
            except PodBuildError as error:
                fix = "point the queue's pod_template_file (or [kubernetes_executor]'s) at a Pod manifest"
                self.add("pod template", "FAIL", f"queue {queue}: {error}", fix)
                continue
            self.add("pod template", "PASS", f"queue {queue}: {path or 'none set: the minimal worker pod'}")

    # --- celery ---------------------------------------------------------------------------

    def check_broker(self) -> None:
        from airflow.configuration import conf
        from kombu.connection import Connection

        url = conf.get("celery", "broker_url", fallback=None)
        if not url:
            self.add("celery broker", "FAIL", "[celery] broker_url is not set", "set [celery] broker_url")
            return
        with Connection(url, connect_timeout=5) as connection:  # type: ignore[no-untyped-call]
            shown = _without_password(url)
            try:
                connection.ensure_connection(max_retries=1, timeout=5)
            except Exception as error:
                fix = "start the broker, or set [celery] broker_url to where it runs"
                self.add("celery broker", "FAIL", f"{shown} does not answer: {error}", fix)
                return
        self.add("celery broker", "PASS", f"{shown} answers")

    # --- kubernetes -----------------------------------------------------------------------

    def check_api(self) -> None:
        assert self.settings is not None
        where = "in-cluster config" if self.settings.kubernetes.in_cluster else "kubeconfig"
        try:
            api = kube_api(self.settings)
            version = api.server_version()
        except Exception as error:  # a kubeconfig that does not load, a refused connection, an API error
            fix = (
                "check [kubernetes_executor] in_cluster, config_file and cluster_context, and that the API "
                "server is reachable from here"
            )
            self.add("kubernetes api", "FAIL", f"not reachable with the {where}: {_first_line(error)}", fix)
            return
        self.api = api
        host = api.core.api_client.configuration.host
        self.add("kubernetes api", "PASS", f"{host} answers, version {version} ({where})")

    def check_namespaces(self) -> None:
        from hybrid_executor.kubernetes.errors import ApiErrorKind, KubeApiError

        assert self.settings is not None
        assert self.api is not None
        for namespace in sorted(self.settings.kubernetes.namespaces()):
            try:
                exists = self.api.namespace_exists(namespace)
            except KubeApiError as error:
                if error.code == 403 or error.kind is ApiErrorKind.RETRYABLE:
                    self.namespace_exists[namespace] = None
                    if error.code == 403:
                        # The chart's namespaced Role cannot grant `get` on a Namespace (cluster-scoped):
                        # the permissions and dry-run checks below tell more.
                        why = "this identity may not get namespaces, which a namespaced Role cannot grant"
                    else:
                        why = _first_line(error)
                    self.add("namespace", "WARN", f"{namespace}: cannot tell whether it exists ({why})")
                    continue
                raise
            self.namespace_exists[namespace] = exists
            if exists:
                self.add("namespace", "PASS", f"{namespace} exists")
            else:
                fix = f"kubectl create namespace {namespace} (or correct the name where it is configured)"
                self.add("namespace", "FAIL", f"{namespace} does not exist", fix)

    def check_permissions(self) -> None:
        from hybrid_executor.kubernetes.errors import KubeApiError

        assert self.settings is not None
        assert self.api is not None
        verbs = ", ".join(SCHEDULER_VERBS)
        for namespace in sorted(self.settings.kubernetes.namespaces()):
            try:
                denied = [verb for verb in SCHEDULER_VERBS if not self.api.may(verb, "pods", namespace)[0]]
                logs_allowed = self.api.may("get", "pods", namespace, subresource="log")[0]
            except KubeApiError as error:
                self.add("permissions", "WARN", f"{namespace}: cannot ask the API ({_first_line(error)})")
                continue
            bind = (
                f"bind this identity to a Role in {namespace} with verbs [{verbs}] on pods "
                "(docs/real-cluster.md has the YAML; the hybrid-executor chart creates it)"
            )
            known = self.namespace_exists.get(namespace)
            if denied and len(denied) == len(SCHEDULER_VERBS) and known is None:
                # A RoleBinding can only exist in a namespace that exists: with nothing granted and no
                # way to read the Namespace, a misspelt name looks exactly like missing RBAC.
                self.maybe_missing.add(namespace)
                fix = (
                    f"{namespace} may not exist: check its spelling in [kubernetes_executor] namespace or "
                    f"[hybrid_executor] kubernetes_queues (kubectl get namespace {namespace}); if it exists, {bind}"
                )
                self.add("permissions", "FAIL", f"{namespace}: may not {', '.join(denied)} pods", fix)
            elif denied and known is False:
                fix = f"create the namespace first (see above), then {bind}"
                self.add("permissions", "FAIL", f"{namespace}: may not {', '.join(denied)} pods", fix)
            elif denied:
                self.add("permissions", "FAIL", f"{namespace}: may not {', '.join(denied)} pods", bind)
            else:
                self.add("permissions", "PASS", f"{namespace}: may {verbs} pods")
            if not logs_allowed:
                # The api-server reads running tasks' logs, as its own identity; the scheduler never does.
                self.add(
                    "permissions",
                    "WARN",
                    f"{namespace}: this identity may not get pods/log; the api-server's identity (not the "
                    "scheduler's) needs it, to show running tasks' logs",
                    f"grant the api-server's ServiceAccount get on pods/log in {namespace} (the hybrid-executor "
                    f"chart's api-server-logs Role does) and check it: kubectl auth can-i get pods "
                    f"--subresource=log -n {namespace} --as system:serviceaccount:<its namespace>:<its name>",
                )

    def check_cluster_watch(self) -> None:
        """multi_namespace_mode without a list: the one watch is across all namespaces, which a ClusterRole grants."""
        from hybrid_executor.kubernetes.errors import KubeApiError

        assert self.settings is not None
        assert self.api is not None
        if not self.settings.kubernetes.all_namespaces:
            return
        try:
            denied = [verb for verb in ("list", "watch") if not self.api.may(verb, "pods", "")[0]]
        except KubeApiError as error:
            self.add("permissions", "WARN", f"all namespaces: cannot ask the API ({_first_line(error)})")
            return
        if not denied:
            self.add("permissions", "PASS", "all namespaces: may list, watch pods (multi_namespace_mode)")
            return
        self.add(
            "permissions",
            "FAIL",
            f"all namespaces: may not {', '.join(denied)} pods, which multi_namespace_mode without a "
            "multi_namespace_mode_namespace_list needs",
            "bind this identity to a ClusterRole with a ClusterRoleBinding (docs/real-cluster.md, 'All "
            "namespaces'; the hybrid-executor chart: rbac.clusterWide.enabled=true), or list the worker "
            "namespaces in [kubernetes_executor] multi_namespace_mode_namespace_list",
        )

    def check_dry_run(self) -> None:
        from hybrid_executor.kubernetes.errors import KubeApiError
        from hybrid_executor.kubernetes.pods import PodBuildError, build_worker_pod, pod_context_for

        assert self.settings is not None
        assert self.api is not None
        for queue in self._queues_with_a_template():
            workload = workload_for("hybrid-doctor", "dry-run", "doctor", queue=queue)
            try:
                context = pod_context_for(self.settings.kubernetes, queue, "doctor", self.templates.__getitem__)
                pod = build_worker_pod(workload, context)
                self.api.create_pod(pod, dry_run=True)
            except PodBuildError as error:
                self.add("dry-run pod", "FAIL", f"queue {queue}: {error}", "fix the queue's pod template")
                continue
            except KubeApiError as error:
                self._dry_run_refused(queue, context.namespace, error)
                continue
            self.add("dry-run pod", "PASS", f"queue {queue}: a dry-run create in {context.namespace} is accepted")

    def _dry_run_refused(self, queue: str, namespace: str, error: KubeApiError) -> None:
        """The check's line for a dry run the API did not accept: the fix is the refusal's."""
        from hybrid_executor.kubernetes.errors import ApiErrorKind, RefusalKind

        refusal = error.refusal
        refused = f"queue {queue}: the API refused the pod: {error}"
        if refusal is None:
            if error.kind is ApiErrorKind.NOT_FOUND:
                fix = f"create namespace {namespace}, or correct the queue's namespace (check its spelling)"
                self.add("dry-run pod", "FAIL", refused, fix)
            elif error.kind is ApiErrorKind.RETRYABLE:  # 429, 5xx, a connection error: the API's state
                self.add("dry-run pod", "WARN", f"queue {queue}: not checked: {error}", "run doctor again")
            else:
                fix = "fix the queue's pod template (or [kubernetes_executor] worker_container_repository/tag)"
                self.add("dry-run pod", "FAIL", refused, fix)
            return
        if refusal.kind in (RefusalKind.QUOTA_FULL, RefusalKind.QUOTA_STATUS_UNKNOWN):
            # The executor keeps retrying these until pod_creation_retry_timeout: pods wait, no task fails.
            numbers = "; ".join(str(resource) for resource in refusal.resources)
            if refusal.kind is RefusalKind.QUOTA_FULL:
                detail = f"queue {queue}: ResourceQuota {refusal.quota} in {namespace} is full right now ({numbers})"
            else:
                detail = f"queue {queue}: ResourceQuota {refusal.quota} in {namespace} has no usage counted yet"
            # ResourceQuota is the last admission plugin: everything before it admitted the pod.
            detail += "; pods wait for it (every other admission check passed)"
            self.add("dry-run pod", "WARN", detail, refusal.hint)
        elif refusal.kind is RefusalKind.DRY_RUN_UNSUPPORTED:
            self.add("dry-run pod", "WARN", f"queue {queue}: not checked: {error}", refusal.hint)
        elif refusal.kind is RefusalKind.RBAC:
            if namespace in self.maybe_missing:
                fix = (
                    f"{namespace} may not exist (see the permissions check above): check its spelling; if it exists, "
                    f"{refusal.hint}"
                )
            else:
                fix = f"{refusal.hint}; see the permissions check above"
            self.add("dry-run pod", "FAIL", refused, fix)
        else:
            self.add("dry-run pod", "FAIL", refused, refusal.hint)

    def _queues_with_a_template(self) -> list[str]:
        """The Kubernetes queues whose template loaded (the others' failure is reported once, above)."""
        assert self.settings is not None
        kubernetes = self.settings.kubernetes
        return [
            queue for queue in sorted(kubernetes.queues) if kubernetes.pod_template_file_for(queue) in self.templates
        ]

    # --- execution api --------------------------------------------------------------------

    def check_execution_api_url(self) -> None:
        from airflow.configuration import conf

        assert self.settings is not None
        configured = conf.get("core", "execution_api_server_url", fallback=None) or ""
        for queue in self._queues_with_a_template():
            template = self.templates[self.settings.kubernetes.pod_template_file_for(queue)]
            url, source = _template_env(template, _EXECUTION_API_ENV), "the pod template's env"
            if not url:
                url, source = configured, "[core] execution_api_server_url (pods read it only if their image has it)"
            loopback = (urlsplit(url).hostname or "") in _LOOPBACK
            if not url:
                fix = (
                    f"set {_EXECUTION_API_ENV} in the pod template's env to the api-server's URL, "
                    "e.g. http://airflow-api-server:8080/execution/"
                )
                self.add("execution api", "FAIL", f"queue {queue}: pods get no execution API URL", fix)
            elif loopback and _host_network(template):
                self.add(
                    "execution api",
                    "PASS",
                    f"queue {queue}: pods call {url} (from {source}); with hostNetwork that is the node's own "
                    "loopback, where the api-server must listen",
                )
            elif loopback:
                self.add(
                    "execution api",
                    "WARN",
                    f"queue {queue}: {url} (from {source}) is a loopback address: in a real cluster a pod "
                    "reaches only itself there",
                    "set it to an address pods reach, e.g. the api-server's Service "
                    "http://airflow-api-server.airflow.svc.cluster.local:8080/execution/",
                )
            else:
                self.add("execution api", "PASS", f"queue {queue}: pods call {url} (from {source})")


def _template_env(pod: V1Pod, name: str) -> str:
    """An env value of the template's first container: the one the executor makes the worker (``base``)."""
    containers = (pod.spec.containers if pod.spec else None) or []
    for env in (containers[0].env if containers else None) or []:
        if env.name == name and env.value:
            return str(env.value)
    return ""


def _host_network(pod: V1Pod) -> bool:
    """Whether the template's pods use the node's network namespace (so 127.0.0.1 is the node)."""
    return bool(pod.spec and pod.spec.host_network)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]


def run_checks() -> list[Check]:
    return _Doctor().run()


def format_checks(checks: list[Check]) -> Iterator[str]:
    width = max((len(check.name) for check in checks), default=0)
    for check in checks:
        yield f"{check.status}  {check.name.ljust(width)}  {check.detail}"
        if check.fix and check.status != "PASS":
            yield f"{' ' * (6 + width)}  fix: {check.fix}"
    counts = {status: sum(check.status == status for check in checks) for status in ("PASS", "WARN", "FAIL")}
    yield f"{counts['PASS']} passed, {counts['WARN']} warnings, {counts['FAIL']} failed"


def doctor(args: argparse.Namespace, out: Callable[[str], None] = print) -> None:
    # What Airflow and the clients log while checking goes to stderr: stdout is the report alone.
    with contextlib.redirect_stdout(sys.stderr):
        checks = run_checks()
    failed = any(check.status == "FAIL" for check in checks)
    if getattr(args, "json", False):
        out(json.dumps({"ok": not failed, "checks": [asdict(check) for check in checks]}, indent=2))
    else:
        for line in format_checks(checks):
            out(line)
    if failed:
        sys.exit(1)

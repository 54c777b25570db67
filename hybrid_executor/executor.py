"""HybridExecutor: one executor to the scheduler, two underneath, chosen per task by its queue.

Tasks on a Kubernetes queue go to ``kubernetes_executor`` (our KubernetesPodExecutor); every other
workload — tasks, callbacks — goes to ``celery_executor`` (the Celery provider's CeleryExecutor,
used as it is). Everything the scheduler reads is the two merged; everything it asks of one task
goes to the executor that owns it, so neither ever cleans up or adopts the other's tasks.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.executors.base_executor import PARALLELISM, BaseExecutor
from airflow.providers.celery.executors.celery_executor import CeleryExecutor

from hybrid_executor.compat import queued_callbacks, queued_connection_tests, trigger_connection_tests
from hybrid_executor.kubernetes.executor import KubernetesPodExecutor
from hybrid_executor.metrics import RouteMetrics
from hybrid_executor.routing import Route, route_for_queue
from hybrid_executor.settings import HybridSettings, SettingsError, load_kubernetes_queues, load_settings
from hybrid_executor.slots import fair_shares
from hybrid_executor.stock_options import warn_about_stock_options

log = logging.getLogger(__name__)  # std logging, as the launcher's: what Airflow's handlers and caplog see

if TYPE_CHECKING:
    from airflow.callbacks.callback_requests import CallbackRequest
    from airflow.cli.cli_config import GroupCommand
    from airflow.executors import workloads
    from airflow.executors.base_executor import EventBufferValueType
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancekey import TaskInstanceKey
    from sqlalchemy.orm import Session


class HybridExecutor(BaseExecutor):
    """Routes each task by queue to Celery workers or to a pod of its own."""

    supports_ad_hoc_ti_run: bool = True
    supports_callbacks: bool = True  # callbacks go to Celery, which runs them
    supports_multi_team: bool = True
    supports_connection_test: bool = bool(getattr(CeleryExecutor, "supports_connection_test", False))
    sentry_integration: str = getattr(CeleryExecutor, "sentry_integration", "")  # Airflow 3.2+
    # Celery adopts a task by the id the scheduler assigns when it queues it: the router must ask for it.
    pre_assigns_external_executor_id = True
    is_local: bool = False
    serve_logs: bool = False

    settings: HybridSettings  # unset only when settings_error is set (see __init__)
    _job_id: int | str | None = None
    _callback_sink: Any = None
    _handed_to_scheduler: list[Any] = []  # replaced, never mutated: see _task_event_logs

    def __init__(self, parallelism: int = PARALLELISM, team_name: str | None = None) -> None:
        super().__init__(parallelism=parallelism, team_name=team_name)
        # The api-server builds the executor only to read the logs of running tasks: a wrong value
        # must not break its log view, of Celery tasks above all. The error is kept; start(), which
        # only the scheduler calls, raises it, and a pod task's log view shows it.
        self.settings_error: SettingsError | None = None
        settings: HybridSettings | None
        try:
            settings = load_settings(self.conf)
            self._kubernetes_queues = settings.kubernetes.queues
        except SettingsError as error:
            self.settings_error, settings = error, None
            try:
                self._kubernetes_queues = load_kubernetes_queues(self.conf)
            except SettingsError:
                self._kubernetes_queues = {}
        if settings is not None:
            self.settings = settings
            self.parallelism = settings.parallelism
        # Each child may use every slot: a cap of one route inside the executor cannot be right (see
        # _warn_about_route_caps); pools cap a route where the scheduler picks what to queue.
        self.celery_executor = CeleryExecutor(parallelism=self.parallelism, team_name=team_name)
        self.kubernetes_executor = KubernetesPodExecutor(
            parallelism=self.parallelism,
            team_name=team_name,
            settings=settings.kubernetes if settings else None,
        )
        self._children: tuple[BaseExecutor, BaseExecutor] = (self.celery_executor, self.kubernetes_executor)
        self._route_metrics = RouteMetrics(type(self).__name__, team_name)

    # --- identity, shared with both ------------------------------------------------------

    @property
    def job_id(self) -> int | str | None:
        return self._job_id

    @job_id.setter
    def job_id(self, value: int | str | None) -> None:
        self._job_id = value
        for child in getattr(self, "_children", ()):
            child.job_id = value

    @property
    def callback_sink(self) -> Any:
        return self._callback_sink

    @callback_sink.setter
    def callback_sink(self, value: Any) -> None:
        self._callback_sink = value
        for child in getattr(self, "_children", ()):
            child.callback_sink = value

    # --- merged views; BaseExecutor.__init__ assigns these, the children own them --------

    @property
    def queued_tasks(self) -> dict[TaskInstanceKey, workloads.ExecuteTask]:
        return {**self.celery_executor.queued_tasks, **self.kubernetes_executor.queued_tasks}

    @queued_tasks.setter
    def queued_tasks(self, value: dict[TaskInstanceKey, workloads.ExecuteTask]) -> None:
        """Ignored: each child keeps its own queue."""

    @property
    def running(self) -> set[Any]:
        return self.celery_executor.running | self.kubernetes_executor.running

    @running.setter
    def running(self, value: set[Any]) -> None:
        """Ignored: each child keeps its own running set."""

    @property
    def _task_event_logs(self) -> deque[Any]:
        # The scheduler pops from this deque: hand it Celery's, with the pod side's moved in.
        merged = self.celery_executor._task_event_logs
        pods = self.kubernetes_executor._task_event_logs
        while pods:
            merged.append(pods.popleft())
        # Airflow's SchedulerJobRunner._process_task_event_logs pops them into
        # Session.bulk_save_objects(preserve_order=False), which sorts their states into a list: a
        # state holds its object weakly, so an entry nothing else holds is freed before its row is
        # built and saved as "INSERT INTO log DEFAULT VALUES" (null "event"; any SQLAlchemy 1.4-2.1).
        # Holding what was handed out until the next call keeps every entry alive through the save.
        self._handed_to_scheduler = list(merged)
        return merged

    @_task_event_logs.setter
    def _task_event_logs(self, value: deque[Any]) -> None:
        """Ignored: each child keeps its own event log."""

    # --- routing -------------------------------------------------------------------------

    def _route(self, queue: str | None) -> BaseExecutor:
        if route_for_queue(queue, self._kubernetes_queues) is Route.KUBERNETES:
            return self.kubernetes_executor
        return self.celery_executor

    def _owner(self, key: Any) -> BaseExecutor:
        if key in self.kubernetes_executor.running or key in self.kubernetes_executor.queued_tasks:
            return self.kubernetes_executor
        return self.celery_executor

    def queue_workload(self, workload: Any, session: Session) -> None:
        from airflow.executors import workloads as workload_types

        if isinstance(workload, workload_types.ExecuteTask):
            self._route(workload.ti.queue).queue_workload(workload, session)
            return
        callback = getattr(workload, "callback", None)
        if callback is not None and isinstance(callback.data, dict):
            # Celery sends a callback to its data's "queue", else to [operators] default_queue: when that
            # is a Kubernetes queue no Celery worker would take it; callback_queue is one that does.
            queue = callback.data.get("queue") or self.conf.get("operators", "default_queue", fallback="default")
            if route_for_queue(queue, self._kubernetes_queues) is Route.KUBERNETES:
                callback.data["queue"] = self.settings.callback_queue
        self.celery_executor.queue_workload(workload, session)

    def has_task(self, task_instance: TaskInstance) -> bool:
        return any(child.has_task(task_instance) for child in self._children)

    # --- the loop ------------------------------------------------------------------------

    def start(self) -> None:
        if self.settings_error is not None:
            raise self.settings_error
        self._warn_about_route_caps()
        warn_about_stock_options(self.conf)
        for child in self._children:
            child.start()

    def _warn_about_route_caps(self) -> None:
        """Say that a per-route cap is set but not applied, and what caps a route instead.

        The scheduler asks the executor for its free slots as a whole, then queues task instances
        by priority whatever their route. A route capped inside the executor would keep what the
        scheduler queued beyond its cap: those tasks wait QUEUED in the database until
        [scheduler] task_queued_timeout fails them, and meanwhile fill the executor's slots, so the
        other route gets none. A pool is checked before a task is queued, so it caps one route and
        the rest of the slots stay the other's.
        """
        for option, value in (
            ("kubernetes_parallelism", self.settings.kubernetes_parallelism),
            ("celery_parallelism", self.settings.celery_parallelism),
        ):
            if value is not None:
                log.warning(
                    "[hybrid_executor] %s = %s is not applied: a cap inside the executor would hold tasks "
                    "QUEUED until task_queued_timeout fails them, and starve the other route. Cap the "
                    "route with an Airflow pool instead: `airflow pools set <name> %s <description>`, "
                    "and a cluster policy giving the route's tasks that pool (examples/"
                    "airflow_local_settings.py; the README's 'Capping a route'). Then remove the option.",
                    option,
                    value,
                    value,
                )

    def heartbeat(self) -> None:
        """Give each child its share of the open slots, so one backend's backlog never starves the other."""
        open_slots = self.parallelism - self._running_count()
        shares = fair_shares(open_slots, [_demand(child) for child in self._children])
        self._emit_route_metrics(open_slots, shares)
        for child, share in zip(self._children, shares, strict=True):
            self._beat(child, share)

    def _beat(self, child: BaseExecutor, share: int) -> None:
        """One child's part of the heartbeat; its error is logged, and it tries again next heartbeat.

        The Celery provider raises out of sync() while Redis does not answer (a restart, a failover):
        raised here, it would end the scheduler, and the pod route with it. What was not sent stays
        queued in the child, what was not synced is synced next time, so nothing is lost.
        """
        try:
            child.trigger_tasks(share)
            trigger_connection_tests(child)
            child.sync()
        except Exception:
            log.exception("%s failed in this heartbeat; it tries again in the next one", type(child).__name__)

    def _emit_route_metrics(self, open_slots: int, shares: list[int]) -> None:
        """BaseExecutor's executor.* gauges for the router as a whole, then each route's (hybrid_executor.route.*)."""
        queued = [_queued(child) for child in self._children]
        running = [len(child.running) for child in self._children]
        self._emit_metrics(open_slots, sum(running), sum(queued))
        routes = (Route.CELERY, Route.KUBERNETES)  # the order of self._children
        for route, share, waiting, runs in zip(routes, shares, queued, running, strict=True):
            self._route_metrics.send(route.value, open_slots=share, queued=waiting, running=runs)

    def sync(self) -> None:
        for child in self._children:
            try:
                child.sync()
            except Exception:
                log.exception("%s failed to sync; it tries again in the next heartbeat", type(child).__name__)

    def get_event_buffer(self, dag_ids: list[str] | None = None) -> dict[Any, EventBufferValueType]:
        merged: dict[Any, EventBufferValueType] = {}
        for child in self._children:
            merged.update(child.get_event_buffer(dag_ids))
        return merged

    @property
    def slots_available(self) -> int:
        return self.parallelism - self.slots_occupied

    @property
    def slots_occupied(self) -> int:
        return sum(
            len(child.running) + len(child.queued_tasks) + queued_callbacks(child) + queued_connection_tests(child)
            for child in self._children
        )

    def _running_count(self) -> int:
        # The children's sets are disjoint (a task has one route): counting beats building their union.
        return sum(len(child.running) for child in self._children)

    # --- per task: the owner decides ------------------------------------------------------

    def change_state(self, key: Any, state: Any, info: Any = None, remove_running: bool = True) -> None:
        self._owner(key).change_state(key, state, info, remove_running=remove_running)

    def fail(self, key: Any, info: Any = None) -> None:
        self._owner(key).fail(key, info)

    def success(self, key: Any, info: Any = None) -> None:
        self._owner(key).success(key, info)

    def revoke_task(self, *, ti: TaskInstance) -> None:
        self._route(ti.queue).revoke_task(ti=ti)

    def try_adopt_task_instances(self, tis: Sequence[TaskInstance]) -> Sequence[TaskInstance]:
        """Each child adopts its own route's task instances; one that raises costs neither the scheduler nor the other.

        Airflow's scheduler exits when adoption raises. A child that cannot tell what it may adopt
        (its broker or API does not answer) has its task instances answered as adopted: answered
        "not adopted", the scheduler would reset them and run second tries beside the first ones,
        which may still run. A task that does run reports its own end to Airflow's API server; one
        that does not is caught by the scheduler's own timeouts (task_queued_timeout, the task
        heartbeat timeout), as after a crash.
        """
        by_child: dict[int, list[TaskInstance]] = {0: [], 1: []}
        for ti in tis:
            by_child[1 if self._route(ti.queue) is self.kubernetes_executor else 0].append(ti)
        not_adopted: list[TaskInstance] = []
        for index, child in enumerate(self._children):
            if not by_child[index]:
                continue
            try:
                not_adopted.extend(child.try_adopt_task_instances(by_child[index]))
            except Exception:
                log.exception(
                    "%s could not adopt %d task instances; they are left to the scheduler's timeouts, not reset "
                    "(a reset would start second tries beside tasks that may still run)",
                    type(child).__name__,
                    len(by_child[index]),
                )
        return not_adopted

    def get_task_log(self, ti: TaskInstance, try_number: int) -> tuple[list[str], list[str]]:
        return self._route(ti.queue).get_task_log(ti, try_number)

    def send_callback(self, request: CallbackRequest) -> None:
        if not self.callback_sink:
            raise ValueError("Callback sink is not ready.")
        self.callback_sink.send(request)

    def end(self) -> None:
        self._stop_children("end")

    def terminate(self) -> None:
        self._stop_children("terminate")

    def _stop_children(self, how: str) -> None:
        """Stop every child even when one raises; then raise the first error, for the scheduler to log."""
        first_error: Exception | None = None
        for child in self._children:
            try:
                getattr(child, how)()
            except Exception as error:
                log.exception("%s.%s() failed; stopping the other executor all the same", type(child).__name__, how)
                first_error = first_error or error
        if first_error is not None:
            raise first_error

    def debug_dump(self) -> None:
        self.log.info("Dumping HybridExecutor state: Celery, then Kubernetes")
        for child in self._children:
            child.debug_dump()

    @staticmethod
    def get_cli_commands() -> list[GroupCommand]:
        return CeleryExecutor.get_cli_commands()


def _queued(child: BaseExecutor) -> int:
    """What BaseExecutor.heartbeat counts as queued."""
    return len(child.queued_tasks) + queued_callbacks(child) + queued_connection_tests(child)


def _demand(child: BaseExecutor) -> tuple[int, int]:
    """(work waiting, room under the child's own cap)."""
    waiting = len(child.queued_tasks) + queued_callbacks(child)
    return waiting, max(0, child.parallelism - len(child.running))

"""What differs between the Airflow 3 minors this package runs on (3.1, 3.2, 3.3), detected by feature.

The rest of the package imports these instead of reaching for an attribute one minor lacks; no
version string is compared anywhere. Each function says which Airflow has what, read from that
minor's ``airflow/executors/base_executor.py``, ``workloads`` and ``scheduler_job_runner.py``:

- connection-test workloads (``queued_connection_tests``, ``trigger_connection_tests``): 3.3;
- callback workloads (``queued_callbacks``, ``ExecuteCallback``): 3.2 and 3.3;
- ``external_executor_id`` on the workload's task instance (the scheduler pre-assigns it): 3.2 and 3.3;
  3.1's schema has no such field and the scheduler stores what the QUEUED event reports;
- the policy plugin manager (``pod_mutation_hook``): a function from 3.2, a module global in 3.1;
- ``ExecutorConf.getsection``: 3.2 and 3.3; 3.1's ``ExecutorConf`` has ``get`` and ``getboolean`` only;
- metrics: 3.3's ``airflow.observability.stats`` functions, 3.2's ``Stats`` class in that module,
  3.1's ``airflow.stats.Stats`` (3.3 keeps an ``airflow.stats`` too, but it is the Task SDK's, which
  the executor's ``[metrics]`` backend does not feed: the order below matters).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any, Protocol


class StatsSender(Protocol):
    """What the executor sends through: 3.3's module functions and 3.1/3.2's ``Stats`` class both have these."""

    def incr(self, stat: str, count: int = ..., *args: Any, **kwargs: Any) -> None: ...

    def gauge(self, stat: str, value: float, *args: Any, **kwargs: Any) -> None: ...

    def timing(self, stat: str, dt: Any, *args: Any, **kwargs: Any) -> None: ...


@functools.cache
def stats() -> StatsSender:
    """The object Airflow's executors and scheduler send their metrics through, in this Airflow."""
    try:
        from airflow.observability import stats as observability_stats
    except ImportError:  # 3.1
        from airflow.stats import Stats

        return Stats  # type: ignore[return-value, unused-ignore]
    if hasattr(observability_stats, "incr"):  # 3.3: functions of the module
        return observability_stats
    return observability_stats.Stats  # type: ignore[no-any-return, unused-ignore]  # 3.2: the class


def scheduler_pre_assigns_external_executor_id() -> bool:
    """Whether the scheduler draws a task's ``external_executor_id`` as it queues it (3.2+), for executors that ask.

    Before 3.2 the executor draws it, and the scheduler stores it from the QUEUED event the executor
    reports, one scheduler loop later: until then the task instance's row holds no id, or its
    previous queueing's.
    """
    from airflow.executors.base_executor import BaseExecutor

    return hasattr(BaseExecutor, "pre_assigns_external_executor_id")


def policy_plugin_manager() -> Any:
    """The pluggy manager Airflow's cluster policies (``pod_mutation_hook`` among them) run through.

    3.2 and later make it with ``airflow.settings.get_policy_plugin_manager()`` (cached); 3.1 keeps
    it in ``airflow.settings.POLICY_PLUGIN_MANAGER``, set when Airflow's settings initialize.
    """
    from airflow import settings

    get_manager = getattr(settings, "get_policy_plugin_manager", None)
    return get_manager() if get_manager is not None else settings.POLICY_PLUGIN_MANAGER


def queued_callbacks(executor: Any) -> int:
    """Callback workloads waiting in ``executor`` (none before Airflow 3.2, which has no callback workloads)."""
    return len(getattr(executor, "queued_callbacks", ()))


def queued_connection_tests(executor: Any) -> int:
    """Connection-test workloads waiting in ``executor`` (none before Airflow 3.3, which has none)."""
    return len(getattr(executor, "queued_connection_tests", ()))


def trigger_connection_tests(executor: Any) -> None:
    """Send ``executor``'s queued connection tests, on an Airflow that has them (3.3)."""
    trigger = getattr(executor, "trigger_connection_tests", None)
    if trigger is not None:
        trigger()


def config_section(conf: Any, section: str) -> Mapping[str, object] | None:
    """``section`` as ``conf`` (an ``ExecutorConf``) reads it, with its environment variables.

    3.1's ``ExecutorConf`` has no ``getsection``: Airflow's global config reads the section there.
    3.2's ``getsection`` answers None for a section that only a provider registers (this one) and
    that airflow.cfg does not name, even when environment variables set its options: those are read
    here, named as Airflow names them (``AIRFLOW__[<TEAM>___]<SECTION>__<OPTION>``).
    """
    getsection = getattr(conf, "getsection", None)
    if getsection is None:
        from airflow.configuration import conf as airflow_conf

        getsection = airflow_conf.getsection
    found: Mapping[str, object] | None = getsection(section)
    if found is not None:
        return found
    team = getattr(conf, "team_name", None)
    prefix = f"AIRFLOW__{f'{team.upper()}___' if team else ''}{section.upper()}__"
    from_environment = {
        name[len(prefix) :].lower().removesuffix("_cmd").removesuffix("_secret"): value
        for name, value in os.environ.items()
        if name.startswith(prefix)
    }
    return from_environment or None


def set_external_executor_id(ti: Any, value: str) -> None:
    """Keep a queueing's id on a workload's task instance, whose schema may lack the field (3.1).

    3.2 and later carry ``external_executor_id`` (excluded from the serialized workload). 3.1's
    pydantic model refuses unknown attributes on assignment, so the value is kept beside its fields,
    where ``getattr`` finds it and serialization, as with the field, leaves it out.
    """
    if "external_executor_id" in getattr(type(ti), "model_fields", {"external_executor_id": None}):
        ti.external_executor_id = value
    else:
        object.__setattr__(ti, "external_executor_id", value)


__all__ = [
    "StatsSender",
    "config_section",
    "policy_plugin_manager",
    "queued_callbacks",
    "queued_connection_tests",
    "scheduler_pre_assigns_external_executor_id",
    "set_external_executor_id",
    "stats",
    "trigger_connection_tests",
]

"""What becomes of a dead scheduler's pod, by what the database says of its task try; and the deployment id."""

from __future__ import annotations

from typing import Any

import pytest

from hybrid_executor.kubernetes.deployment import database_deployment_id, deployment_id_problem
from hybrid_executor.kubernetes.orphans import DeletionPolicy, TaskInstanceRecord, Verdict, judge

QUEUEING = "6c1f7e1e-0b9e-4d7c-9d0a-2a3f4f5e6d7c"
KEEP_ALL = DeletionPolicy(delete_worker_pods=False, delete_worker_pods_on_failure=False)
KEEP_FAILED = DeletionPolicy(delete_worker_pods=True, delete_worker_pods_on_failure=False)
DELETE_ALL = DeletionPolicy(delete_worker_pods=True, delete_worker_pods_on_failure=True)


def pod(phase: str, queueing: str = QUEUEING) -> dict[str, Any]:
    annotations = {"hybrid-executor/external-executor-id": queueing} if queueing else {}
    return {"metadata": {"annotations": annotations}, "status": {"phase": phase}}


def current(state: str | None, queueing: str | None = QUEUEING) -> TaskInstanceRecord:
    return TaskInstanceRecord(current_try=True, state=state, external_executor_id=queueing)


EARLIER_TRY = TaskInstanceRecord(current_try=False)


@pytest.mark.parametrize(
    ("phase", "record", "policy", "verdict"),
    [
        # Adoption's: the try and the queueing are current and the task instance adoptable.
        ("Succeeded", current("running"), DELETE_ALL, Verdict.ADOPTABLE),
        ("Running", current("queued"), DELETE_ALL, Verdict.ADOPTABLE),
        ("Failed", current("restarting"), DELETE_ALL, Verdict.ADOPTABLE),
        ("Running", current("running", queueing=None), DELETE_ALL, Verdict.ADOPTABLE),  # id not stored yet
        # The queueing ended: a finished pod goes by the policy, as its own scheduler would have deleted it.
        ("Succeeded", current("success"), KEEP_FAILED, Verdict.DELETE),
        ("Succeeded", current("success"), KEEP_ALL, Verdict.KEEP),
        ("Failed", current("failed"), KEEP_FAILED, Verdict.KEEP),
        ("Failed", current("up_for_retry"), DELETE_ALL, Verdict.DELETE),
        ("Succeeded", current("deferred"), KEEP_FAILED, Verdict.DELETE),
        # ... an unfinished one: a pending pod never ran and never will; a running one ends by itself.
        ("Pending", current("failed"), KEEP_ALL, Verdict.DELETE),
        ("Running", current("success"), DELETE_ALL, Verdict.WAIT),
        ("Unknown", current("failed"), DELETE_ALL, Verdict.WAIT),
        # The task instance has moved on (queued again, reset, a later try): no second copy may run.
        ("Running", current("queued", queueing="another"), KEEP_ALL, Verdict.DELETE),
        # No state, no queueing id: nothing says which queueing is next; once one is, the pod goes.
        ("Running", current(None, queueing=None), KEEP_ALL, Verdict.WAIT),
        ("Pending", EARLIER_TRY, KEEP_ALL, Verdict.DELETE),
        ("Running", EARLIER_TRY, KEEP_ALL, Verdict.DELETE),
        ("Succeeded", EARLIER_TRY, KEEP_ALL, Verdict.KEEP),
        ("Failed", EARLIER_TRY, DELETE_ALL, Verdict.DELETE),
        ("Succeeded", current("running", queueing="another"), KEEP_FAILED, Verdict.DELETE),
        # Not a task instance of this database: another deployment's (or purged); never touched.
        ("Succeeded", None, DELETE_ALL, Verdict.UNKNOWN),
        ("Running", None, DELETE_ALL, Verdict.UNKNOWN),
    ],
)
def test_a_dead_schedulers_pod_is_judged_by_its_task_try(
    phase: str, record: TaskInstanceRecord | None, policy: DeletionPolicy, verdict: Verdict
) -> None:
    judgement = judge(pod(phase), record, policy)
    assert judgement.verdict is verdict, judgement.reason
    # Deleted whatever the policy says: only pods that have not finished.
    assert judgement.despite_policy == (verdict is Verdict.DELETE and phase not in ("Succeeded", "Failed"))


def test_a_pod_made_before_pods_carried_their_queueing_is_matched_on_its_try() -> None:
    assert judge(pod("Running", queueing=""), current("running", "any"), DELETE_ALL).verdict is Verdict.ADOPTABLE
    assert judge(pod("Succeeded", queueing=""), current("success", "any"), DELETE_ALL).verdict is Verdict.DELETE


def test_the_deployment_id_is_where_the_database_is_and_never_who_reaches_it() -> None:
    base = database_deployment_id("postgresql://airflow:secret@db.example.com:5432/airflow")
    same = [
        "postgresql+psycopg2://other:another-secret@DB.example.com/airflow",  # driver, user, default port
        "postgresql://db.example.com:5432/airflow?sslmode=require",
    ]
    different = [
        "postgresql://airflow:secret@db.example.com:5432/airflow_staging",
        "postgresql://airflow:secret@db2.example.com:5432/airflow",
        "postgresql://airflow:secret@db.example.com:5433/airflow",
        "mysql://airflow:secret@db.example.com/airflow",
    ]
    assert [database_deployment_id(url) for url in same] == [base] * len(same)
    assert base not in {database_deployment_id(url) for url in different}
    assert len({database_deployment_id(url) for url in different}) == len(different)
    assert deployment_id_problem(base) is None  # a label value as it is
    assert "secret" not in base


def test_a_unix_socket_database_has_its_own_id() -> None:
    socket = database_deployment_id("postgresql:///airflow?host=/var/run/postgresql")
    assert socket != database_deployment_id("postgresql:///airflow?host=/run/other")
    assert socket != database_deployment_id("postgresql://localhost/airflow")


@pytest.mark.parametrize("value", ["airflow-prod", "a", "Prod_2.eu", "x" * 63])
def test_deployment_ids_that_are_label_values(value: str) -> None:
    assert deployment_id_problem(value) is None


@pytest.mark.parametrize("value", ["", "-prod", "prod-", "airflow prod", "prod/eu", "x" * 64])
def test_deployment_ids_that_are_not_label_values(value: str) -> None:
    assert deployment_id_problem(value)

"""The end-to-end benchmark's DAGs: N trivial mapped tasks, sized by ``HYBRID_E2E_TASKS`` at parse time.

(M = ``HYBRID_E2E_MIXED_TASKS``, default N, for the variants with Celery tasks.)

One DAG per (variant, executor family), because the stock configuration's cluster policy
(``airflow_local_settings.py``, written by the benchmark) sets ``task.executor`` at parse time, and
a scheduler running HybridExecutor alone must never see a task naming ``KubernetesExecutor``:

- ``e2e_kubernetes_ours`` / ``e2e_kubernetes_stock``: N tasks on the ``kubernetes`` queue;
- ``e2e_mixed_ours`` / ``e2e_mixed_stock``: M/2 on ``kubernetes``, M/2 on Celery's default queue;
- ``e2e_celery``: M/2 on Celery only (ours against CeleryExecutor alone);
- ``e2e_warmup_ours``: 8 + 8, run once before the measured rounds.

The map's input is a literal list, so no planning task has to run (and return XCom) before the
mapped tasks exist. The pods never run the task code (the benchmark's kubelet reports them done
through the Execution API); the Celery tasks run for real, and do nothing.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, task

TASKS = int(os.environ.get("HYBRID_E2E_TASKS", "10"))
# The Celery tasks run for real (a process each, on a few worker slots): the variants that have them
# may be given fewer tasks.
MIXED = int(os.environ.get("HYBRID_E2E_MIXED_TASKS", str(TASKS)))
WARMUP = 8


def _dag(dag_id: str, kubernetes: int, celery: int) -> DAG:
    # max_active_tasks: room for every task, so that the executors are measured, not the per-DAG cap (16).
    with DAG(
        dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_tasks=max(16, kubernetes + celery),
        tags=["benchmark"],
    ) as dag:
        if kubernetes:

            @task(queue="kubernetes")
            def on_kubernetes(index: int) -> None:
                return None

            on_kubernetes.expand(index=list(range(kubernetes)))
        if celery:

            @task
            def on_celery(index: int) -> None:
                return None

            on_celery.expand(index=list(range(celery)))
    return dag


for _family in ("ours", "stock"):
    _dag(f"e2e_kubernetes_{_family}", TASKS, 0)
    _dag(f"e2e_mixed_{_family}", MIXED // 2, MIXED - MIXED // 2)
_dag("e2e_celery", 0, MIXED - MIXED // 2)
# Run once before the measured rounds: the api-server's workers answer their first Execution API
# calls many seconds late (imports, connections), which would land on whichever round came first.
_dag("e2e_warmup_ours", WARMUP, WARMUP)

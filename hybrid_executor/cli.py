"""``airflow hybrid ...`` commands, registered through the provider's ``cli`` entry.

The provider's entry makes them exist whatever executor is configured (a scheduler still on
another executor can run ``airflow hybrid doctor`` before switching). The Celery commands
(``airflow celery worker`` and the rest) stay registered by the Celery provider itself. Each
command's module is imported only when it runs, so ``airflow --help`` stays fast.
"""

from __future__ import annotations

from typing import Any


def get_cli_commands() -> list[Any]:
    from airflow.cli.cli_config import ActionCommand, Arg, GroupCommand, lazy_load_command

    json_output = Arg(("--json",), help="print the checks as JSON", action="store_true")
    dag_id = Arg(("dag_id",), help="the DAG's id")
    task_id = Arg(("task_id",), help="the task's id")
    run_id = Arg(("--run-id",), default="manual__render-pod", help="the run id the pod is labelled with")
    map_index = Arg(("--map-index",), type=int, default=-1, help="the instance of a mapped task")
    try_number = Arg(("--try-number",), type=int, default=1, help="the try (each try gets its own pod)")
    external_executor_id = Arg(
        ("--external-executor-id",),
        default="render-pod",
        help=(
            "the queueing's id (the task instance's external_executor_id, drawn anew each time the scheduler "
            "queues the task); each queueing gets its own pod, named from it"
        ),
    )
    dry_run = Arg(("--dry-run",), action="store_true", help="list what would be deleted, delete nothing")
    older_than = Arg(
        ("--older-than",), default="1h", help="only pods that finished at least this long ago: 90s, 30m, 2h, 1d"
    )
    include_unlabelled = Arg(
        ("--include-unlabelled",),
        action="store_true",
        help=(
            "also pods without a hybrid-executor/deployment label (made by versions before it): they may be "
            "another deployment's, if two share the namespace"
        ),
    )
    commands = (
        ActionCommand(
            name="doctor",
            help="Check settings, broker, Kubernetes API, namespaces, permissions and a dry-run pod per queue",
            func=lazy_load_command("hybrid_executor.commands.doctor.doctor"),
            args=(json_output,),
        ),
        ActionCommand(
            name="render-pod",
            help="Print the pod the executor would create for a task, as YAML (token redacted)",
            func=lazy_load_command("hybrid_executor.commands.render_pod.render_pod"),
            args=(dag_id, task_id, run_id, map_index, try_number, external_executor_id),
        ),
        ActionCommand(
            name="cleanup-pods",
            help="Delete finished worker pods this deployment's executors left behind",
            func=lazy_load_command("hybrid_executor.commands.cleanup_pods.cleanup_pods"),
            args=(dry_run, older_than, include_unlabelled),
        ),
    )
    return [GroupCommand(name="hybrid", help="HybridExecutor: checks and tools", subcommands=commands)]

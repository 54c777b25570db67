"""``python -m hybrid_executor.demo``: run a DAG on a local Airflow 3 + HybridExecutor stack, then stop it.

The README's first Quick start command (``make demo``) runs this on ``examples/dags``. It starts
the stack (see :mod:`hybrid_executor.demo.stack`), triggers one run of the DAG, shows its progress,
prints where each task instance ran, and stops everything it started: also on Ctrl-C, SIGTERM or
an error. Exit code: 0 when the run succeeded, 1 when it failed or the stack could not run it, 130
when interrupted.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from hybrid_executor.demo.airflow_api import AirflowApiError
from hybrid_executor.demo.processes import kill_all, processes_using
from hybrid_executor.demo.report import follow_run, format_table, pods_of_run, rows
from hybrid_executor.demo.stack import ADMIN_USER, DemoStack, StackError

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "examples" / "dags"
EXAMPLE_DAG_ID = "hybrid_demo"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hybrid_executor.demo",
        description="Run one DAG on a local Airflow 3 stack with HybridExecutor (Celery + Kubernetes), then stop it.",
    )
    parser.add_argument("--dags-folder", type=Path, default=EXAMPLE_DAGS, help="DAG files (default: examples/dags)")
    parser.add_argument("--dag-id", default=EXAMPLE_DAG_ID, help=f"DAG to run (default: {EXAMPLE_DAG_ID})")
    parser.add_argument("--conf", default="{}", help="the run's conf, a JSON object (default: {})")
    parser.add_argument("--keep-running", action="store_true", help="after the run, keep the stack up until Ctrl-C")
    parser.add_argument("--folder", type=Path, default=None, help="where the stack keeps its files and logs")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the run (default 600)")
    parser.add_argument("--report-json", type=Path, default=None, help="also write the table as JSON to this file")
    return parser


def _conf(text: str) -> dict[str, Any]:
    try:
        conf = json.loads(text)
    except json.JSONDecodeError as error:
        raise SystemExit(f"error: --conf must be a JSON object, got {text!r}: {error}") from None
    if not isinstance(conf, dict):
        raise SystemExit(f"error: --conf must be a JSON object, got {type(conf).__name__} {text!r}")
    return conf


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def say(text: str) -> None:
    print(text, flush=True)


def run(args: argparse.Namespace) -> int:
    conf = _conf(args.conf)
    if not args.dags_folder.is_dir():
        raise SystemExit(f"error: --dags-folder {args.dags_folder} is not a folder")
    folder = args.folder or Path(tempfile.mkdtemp(prefix="hybrid-executor-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    stack = DemoStack(folder, args.dags_folder)
    began = time.monotonic()
    code = 1
    run_over = False
    try:
        say(f"Starting a local Airflow 3 stack with HybridExecutor in {stack.folder}")
        stack.start(say)
        api = stack.api()
        say(f"Waiting for the dag-processor to parse {args.dag_id!r} from {stack.dags_folder}")
        api.wait_for_dag(args.dag_id, timeout=120)
        api.unpause(args.dag_id)
        run_id = api.trigger(args.dag_id, conf)
        say(f"Triggered run {run_id!r}; tasks on a Kubernetes queue get a pod, the others go to Celery:")
        final = follow_run(api, args.dag_id, run_id, say, timeout=args.timeout)
        table = rows(api.task_instances(args.dag_id, run_id), pods_of_run(stack.kubernetes(), args.dag_id, run_id))
        say("")
        say(format_table(table))
        say("")
        say(f"Run {run_id!r}: {final['state']}, {time.monotonic() - began:.0f} s after the command started.")
        if args.report_json is not None:
            report = {"dag_id": args.dag_id, "run_id": run_id, "state": final["state"], "folder": str(stack.folder)}
            report["tasks"] = [row.as_dict() for row in table]
            args.report_json.write_text(json.dumps(report, indent=2))
        code = 0 if final["state"] == "success" else 1
        if args.keep_running:
            say(f"The stack keeps running. Airflow UI: {stack.api_url}  (login {ADMIN_USER} / {stack.password})")
            say("Press Ctrl-C to stop it.")
            run_over = True
            signal.pause()
    except KeyboardInterrupt:
        if not run_over:  # after the run, Ctrl-C is how --keep-running ends: the run's result stands
            say("Interrupted: stopping the stack.")
            code = 130
    except (StackError, AirflowApiError) as error:
        say(f"error: {error}")
        code = 1
    finally:
        _shut_down(stack)
    return code


def _shut_down(stack: DemoStack) -> None:
    # A second Ctrl-C during shutdown must not leave half the stack running.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    say("Stopping the stack ...")
    stack.stop()
    leftovers = processes_using(stack.folder)
    if leftovers:
        say(f"warning: {len(leftovers)} processes outlived the shutdown; killed them:")
        for pid, command in leftovers:
            say(f"  {pid} {command[:160]}")
        kill_all([pid for pid, _ in leftovers])
    say(f"Stopped. Logs (one file per process): {stack.logs}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

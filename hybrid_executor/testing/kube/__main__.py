"""Command line: ``python -m hybrid_executor.testing.kube serve --port 0 --kubeconfig PATH [--kubelet] [--history N]``.

``--allow-privileged false`` makes privileged containers invalid (422), as a kube-apiserver
started without ``--allow-privileged=true``; the default allows them.

Prints the server URL as the first line of stdout, writes the kubeconfig, and serves until
SIGINT or SIGTERM. Other tooling depends on this command line: keep it stable.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys
from pathlib import Path

from hybrid_executor.testing.kube.kubelet import KubeletConfig
from hybrid_executor.testing.kube.server import KubeApiServer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hybrid_executor.testing.kube")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the local Kubernetes API until SIGINT/SIGTERM")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one")
    serve.add_argument("--kubeconfig", type=Path, required=True, help="where to write the kubeconfig")
    serve.add_argument("--kubelet", action="store_true", help="run pods' commands as local processes")
    serve.add_argument("--history", type=int, default=1000, help="changes kept for watch resumption (default 1000)")
    serve.add_argument("--capacity", type=int, default=None, help="with --kubelet: pods running at once")
    serve.add_argument(
        "--image-pull-failure", default=None, metavar="REGEX", help="with --kubelet: images that never pull"
    )
    serve.add_argument("--bookmark-interval", type=float, default=5.0, help="seconds between watch bookmarks")
    serve.add_argument(
        "--allow-privileged",
        choices=("true", "false"),
        default="true",
        help="whether privileged containers are valid, as kube-apiserver's flag (default: true)",
    )
    return parser


async def _serve(args: argparse.Namespace) -> None:
    kubelet = (
        KubeletConfig(capacity=args.capacity, image_pull_failure=args.image_pull_failure) if args.kubelet else None
    )
    server = KubeApiServer(
        args.host,
        args.port,
        history=args.history,
        kubelet=kubelet,
        bookmark_interval=args.bookmark_interval,
        kubeconfig=args.kubeconfig,
        allow_privileged=args.allow_privileged == "true",
    )
    # Signals are taken over before anything is started, so a SIGTERM or SIGINT that comes at any
    # moment (even before the URL is printed) stops the server cleanly instead of killing it.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
    except OSError as error:
        await server.stop()
        raise SystemExit(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}") from None
    try:
        print(server.url, flush=True)
        await stop.wait()
    finally:
        await server.stop()


def _problems(args: argparse.Namespace) -> list[str]:
    """What argparse cannot check by type alone, each worded as: option, what it must be, what it got."""
    problems = []
    if args.history < 1:
        problems.append(f"--history must be at least 1, got {args.history}")
    if not 0 <= args.port <= 65535:
        problems.append(f"--port must be within 0..65535, got {args.port}")
    if args.capacity is not None and args.capacity < 0:
        problems.append(f"--capacity must be at least 0, got {args.capacity}")
    if not args.bookmark_interval > 0:
        problems.append(f"--bookmark-interval must be more than 0 seconds, got {args.bookmark_interval}")
    if args.image_pull_failure is not None:
        try:
            re.compile(args.image_pull_failure)
        except re.error as error:
            pattern = args.image_pull_failure
            problems.append(f"--image-pull-failure must be a regular expression, got {pattern!r}: {error}")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    problems = _problems(args)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        return 2
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Command line: ``python -m hybrid_executor.testing.kube serve --port 0 --kubeconfig PATH [--kubelet] [--history N]``.

Prints the server URL as the first line of stdout, writes the kubeconfig, and serves until
SIGINT or SIGTERM. Other tooling depends on this command line: keep it stable.
"""

from __future__ import annotations

import argparse
import asyncio
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
    )
    await server.start()
    print(server.url, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.history < 1:
        print(f"--history must be at least 1, got {args.history}", file=sys.stderr)
        return 2
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

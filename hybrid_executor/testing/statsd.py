"""A StatsD server for tests: a UDP socket on loopback that keeps every metric it receives, parsed.

Airflow's StatsD logger (``[metrics] statsd_on``) sends each metric as one datagram,
``<prefix>.<name>[,<tag>=<value>...]:<value>|<type>[|@<rate>]`` (the tags only with
``statsd_influxdb_enabled``; several lines in one datagram for a negative gauge). ``options()``
gives the ``[metrics]`` options that point Airflow at this socket.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType


@dataclass(frozen=True)
class Received:
    """One metric as it arrived: ``name`` without the prefix, ``kind`` is StatsD's (c, g, ms)."""

    name: str
    value: float
    kind: str
    tags: dict[str, str] = field(default_factory=dict)


def parse(line: str, prefix: str) -> Received:
    head, _, rest = line.partition("|")
    kind = rest.split("|", 1)[0]
    stat, _, value = head.rpartition(":")
    name, *pairs = stat.split(",")
    if prefix and name.startswith(prefix + "."):
        name = name[len(prefix) + 1 :]
    tags = dict(pair.split("=", 1) for pair in pairs)
    return Received(name, float(value), kind, tags)


class StatsdReceiver:
    """Receives on 127.0.0.1, a free port, from ``start()`` (or ``with``) to ``stop()``."""

    def __init__(self, prefix: str = "airflow") -> None:
        self.prefix = prefix
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # Room for bursts (the kernel caps it at net.core.rmem_max): a full buffer drops datagrams.
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.05)
        self.port: int = self._socket.getsockname()[1]
        self._received: list[Received] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="statsd-receiver", daemon=True)

    def options(self, *, influxdb_tags: bool = True) -> dict[str, str]:
        """The ``[metrics]`` options that send Airflow's metrics here (tags in the name, InfluxDB style)."""
        return {
            "statsd_on": "True",
            "statsd_host": "127.0.0.1",
            "statsd_port": str(self.port),
            "statsd_prefix": self.prefix,
            "statsd_influxdb_enabled": str(influxdb_tags),
        }

    def start(self) -> StatsdReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._socket.close()

    def __enter__(self) -> StatsdReceiver:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _receive(self) -> None:
        while not self._stopping.is_set():
            try:
                datagram = self._socket.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            parsed = [parse(line, self.prefix) for line in datagram.decode("ascii").splitlines() if line]
            with self._lock:
                self._received.extend(parsed)

    def received(self, name: str | None = None) -> list[Received]:
        """Everything received so far, or what came under ``name``."""
        with self._lock:
            return [metric for metric in self._received if name is None or metric.name == name]

    def names(self) -> set[str]:
        return {metric.name for metric in self.received()}

    def clear(self) -> None:
        with self._lock:
            self._received.clear()

    def wait_for(self, condition: Callable[[], bool], timeout: float = 10, what: str = "") -> None:
        """Until ``condition()`` holds: datagrams travel on their own time, after the call that sent them."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or condition}; received {sorted(self.names())}")
            time.sleep(0.02)


__all__ = ["Received", "StatsdReceiver", "parse"]

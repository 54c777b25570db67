"""Each container's output as the log endpoint serves it: time-stamped lines that followers wait on."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timezone

_READ_SIZE = 65536


class LogBuffer:
    """One container's output, as lines stamped with the time they came, with a wake-up for followers."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.times: list[datetime] = []  # when each line was read, as the container runtime stamps it
        self.started = False
        self.finished = False
        self._more = asyncio.Event()

    def append(self, line: bytes) -> None:
        self.lines.append(line)
        self.times.append(datetime.now(timezone.utc))
        self._more.set()

    def finish(self) -> None:
        self.finished = True
        self._more.set()

    async def wait_for_more(self, timeout: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._more.wait(), timeout)
        self._more.clear()


async def read_lines(stream: asyncio.StreamReader, buffer: LogBuffer) -> None:
    """Lines of any length (StreamReader.readline stops at 64 KiB); a last line without newline too."""
    pending = bytearray()
    while chunk := await stream.read(_READ_SIZE):
        pending += chunk
        end = pending.rfind(b"\n")
        if end == -1:
            continue
        complete, pending = bytes(pending[: end + 1]), pending[end + 1 :]
        for line in complete.splitlines(keepends=True):
            buffer.append(line)
    if pending:
        buffer.append(bytes(pending))

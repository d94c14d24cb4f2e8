"""The process's own upkeep: giving freed memory back to the system, and enough file
descriptors for every device, model file and HTTP client.

glibc keeps freed heap memory in its arenas (one per thread that allocated, up to 8 per core)
rather than returning it, so the server's RSS only grows with the devices it has served. Every
turn allocates and frees audio buffers, model outputs and ONNX tensors from a dozen threads. The
unit sets MALLOC_ARENA_MAX=2 (fewer arenas to fragment); on top, when a device's conversation
ends, `malloc_trim` hands the free pages back (a few ms, in a worker thread, at most every
`TRIM_EVERY_S`).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import resource
import time
from typing import Any

from loguru import logger

from edge.faults import EveryMinute
from edge.workers import Worker

TRIM_EVERY_S = 10.0


def _libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


class MemoryTrimmer:
    def __init__(self, io: Worker) -> None:
        self._libc = _libc()  # None where there is no glibc (musl, macOS): then nothing to do
        self._io = io  # the thread the trim runs in
        self._last = 0.0
        self.trims = 0

    async def after_conversation(self) -> None:
        """A device's conversation ended: give free memory back, unless that was done lately."""
        if self._libc is None or time.monotonic() - self._last < TRIM_EVERY_S:
            return
        self._last = time.monotonic()
        await self._io.run(self._libc.malloc_trim, 0)
        self.trims += 1


def raise_open_files_limit() -> tuple[int, int]:
    """Lift the soft limit on open files to the hard one (the unit sets `LimitNOFILE=`; a shell
    often starts at 1,024, which 1,100 half-open HTTP requests from one host once used up).
    Returns the limit before and after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft, soft
        return soft, target
    return soft, soft


FILES_WARN_SHARE = 0.8  # warn when this share of the open-files limit is in use


def open_files() -> int | None:
    """File descriptors this process holds (None where /proc cannot tell)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


class OpenFilesWatch:
    """A line in the log before the open-files limit is reached, not after: at the limit every
    new device, config call and /health fails, and nothing can be logged about why."""

    def __init__(self, limit: int | None = None) -> None:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.limit = limit if limit is not None else soft
        self._lines = EveryMinute()

    def check(self) -> bool:
        """True when a warning was due (and written)."""
        count = open_files()
        if count is None or self.limit == resource.RLIM_INFINITY:
            return False
        if count < self.limit * FILES_WARN_SHARE:
            return False
        repeats = self._lines.due("process", "open files")
        if repeats is None:
            return False
        logger.warning(
            "{} of {} file descriptors in use: new connections will soon fail "
            "(LimitNOFILE= in the unit; server.max_http_per_address)",
            count,
            self.limit,
        )
        return True

    async def run(self, every_s: float = 5.0) -> None:
        while True:
            await asyncio.sleep(every_s)
            self.check()

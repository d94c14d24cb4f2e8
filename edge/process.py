"""The process's own upkeep: giving freed memory back to the system, and enough file
descriptors for every device, model file and HTTP client.

glibc keeps freed heap memory in its arenas (one per thread that allocated, up to 8 per core)
rather than returning it, so the server's RSS only grows with the devices it has served. Every
turn allocates and frees audio buffers, model outputs and ONNX tensors from a dozen threads. The
unit sets MALLOC_ARENA_MAX=2 (fewer arenas to fragment); on top, when a device's conversation
ends, `malloc_trim` hands the free pages back (a few ms, in a worker thread, at most every
`TRIM_EVERY_S`), and once more when the server has gone quiet: the work that follows a
conversation (its summary, the read-ahead of the device's next prompt) frees its buffers after
the conversation's own trim, and a board's other services should find them given back. Quiet,
the prompt states of the devices that are away are left on disk (where they are kept anyway)
before that trim; start-up, whose model loading leaves memory freed but held, counts as work.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger

from edge.faults import EveryMinute
from edge.workers import Worker

TRIM_EVERY_S = 10.0
# The model idle this long before the server is quiet, and before a summary is written: devices
# often talk in bursts.
QUIET_S = 5.0


def _libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


class MemoryTrimmer:
    def __init__(
        self,
        io: Worker,
        quiet: Callable[[], bool] = lambda: True,
        model_idle: Callable[[], float] = lambda: float("inf"),
        shed: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        """`quiet()`: no device talks and no background work is waiting; `model_idle()`:
        seconds since the language model last ran (read-aheads and summaries included);
        `shed()`: once quiet, before the trim, let go of what is kept elsewhere too (the prompt
        states of devices that are away, which are on disk); the bytes let go."""
        self._libc = _libc()  # None where there is no glibc (musl, macOS): then nothing to do
        self._io = io  # the thread the trim runs in
        self._quiet = quiet
        self._model_idle = model_idle
        self._shed = shed
        self._last = 0.0
        # A conversation ended since the last trim; at first, loading the models did: reading
        # their files and warming them up leaves ~100 MB freed but held, given back once quiet.
        self._owed = True
        self.trims = 0

    async def after_conversation(self) -> None:
        """A device's conversation ended: give free memory back, unless that was done lately
        (then `run` does it once the server is quiet)."""
        self._owed = True
        if time.monotonic() - self._last >= TRIM_EVERY_S:
            await self._trim()

    async def run(self, every_s: float = TRIM_EVERY_S) -> None:
        """Trim once more when the server has gone quiet after any work since the last trim."""
        while True:
            await asyncio.sleep(every_s)
            if self.due():
                if self._shed is not None:
                    shed = await self._shed()
                    if shed:
                        logger.debug("at rest: {:.1f} MB of prompt states left on disk", shed / 1e6)
                if self.due():  # a device may have come back meanwhile
                    await self._trim()

    def due(self) -> bool:
        """Work was done since the last trim, and the server is quiet now."""
        return self._worked() and self._settled()

    def at_rest(self) -> bool:
        """Quiet, and freed memory given back since the last work: what it holds now, it
        holds while no device talks."""
        return not self._worked() and self._settled()

    def _worked(self) -> bool:
        return self._owed or self._model_idle() < time.monotonic() - self._last

    def _settled(self) -> bool:
        return self._model_idle() >= QUIET_S and self._quiet()

    async def _trim(self) -> None:
        self._last = time.monotonic()
        self._owed = False
        if self._libc is None:
            return
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

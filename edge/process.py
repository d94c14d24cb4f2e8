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

import ctypes
import ctypes.util
import resource
import time
from typing import Any

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

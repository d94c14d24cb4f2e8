"""Runs an engine's blocking calls in its own threads, with bounded concurrency and a timeout.

sherpa-onnx, onnxruntime, CTranslate2 and llama.cpp release the GIL, so a few threads per engine
keep the event loop free. A call that times out cannot be killed; its slot stays taken until the
thread really finishes, so a stuck model cannot pile up threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class EngineTimeout(TimeoutError):
    pass


class CpuTurns:
    """The heavy engines (ASR, the language model's decode steps, TTS) take turns at the CPU,
    first come, first served, instead of running at once. Each of them already spreads one call
    over every core, and their threads wait for each other at barriers by spinning: two engines
    at once on two cores leave each thread waiting for a peer that is not running, and prompt
    steps of 0.1-0.7 s took 1.5-2.8 s beside speech recognition. Turns are short (a decode step,
    one clip, one sentence), so nobody waits long. The VAD, a few milliseconds per frame on one
    thread, does not take turns. (Letting reading ahead wait for every other turn was tried:
    no gain with four devices talking at once.)"""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next = 0  # the ticket the next caller gets
        self._serving = 0  # the ticket whose turn it is

    def __enter__(self) -> None:
        with self._cond:
            ticket = self._next
            self._next += 1
            while ticket != self._serving:
                self._cond.wait()

    def __exit__(self, *_exc: object) -> None:
        with self._cond:
            self._serving += 1
            self._cond.notify_all()

    def run(self, fn: Callable[..., T], *args: object) -> T:
        with self:
            return fn(*args)


class EngineWorker:
    def __init__(
        self, name: str, threads: int = 1, timeout_s: float = 30.0, cpu: CpuTurns | None = None
    ) -> None:
        self.name = name
        self.cpu = cpu  # calls take turns at the CPU with the other heavy engines
        self.timeout_s = timeout_s
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix=f"edge-{name}"
        )
        self._slots = asyncio.Semaphore(threads)
        self.waiting = 0  # callers queued for a slot (a measure of load)

    async def run(self, fn: Callable[..., T], *args: object, timeout_s: float | None = None) -> T:
        loop = asyncio.get_running_loop()
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        try:
            if self.cpu is not None:
                future = loop.run_in_executor(self._executor, self.cpu.run, fn, *args)
            else:
                future = loop.run_in_executor(self._executor, fn, *args)
        except BaseException:
            self._slots.release()
            raise
        # The slot is released when the thread finishes, not when the caller stops waiting.
        future.add_done_callback(lambda _f: self._slots.release())
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
            # that races with the result, and an aborted reply would carry on.
            async with asyncio.timeout(timeout_s or self.timeout_s):
                return await asyncio.shield(future)
        except TimeoutError:
            raise EngineTimeout(
                f"{self.name} took longer than {timeout_s or self.timeout_s} s"
            ) from None
        finally:
            if not future.done():
                # Nobody will read the result; keep a late exception from being reported as
                # "never retrieved".
                future.add_done_callback(lambda f: f.cancelled() or f.exception())

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

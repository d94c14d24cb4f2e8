"""Blocking calls off the event loop: each `Worker` runs one component's calls (an engine's,
the memory database's) in threads of its own, with bounded concurrency and a timeout, and the
heavy engines take turns at the CPU (`CpuTurns`).

sherpa-onnx, onnxruntime, CTranslate2, llama.cpp and sqlite3 release the GIL, so a few threads
per component keep the event loop free. A call that times out cannot be killed; its slot stays
taken until the thread really finishes, so a stuck model cannot pile up threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from edge.errors import EngineTimeout

T = TypeVar("T")
WAITS_KEPT = 8192  # turns at the CPU remembered for `edge bench` (a few minutes of decoding)


def usable_threads(wanted: int) -> int:
    """`wanted` compute threads, but no more than the cores this process may run on: threads
    that wait for each other by spinning crawl when they outnumber the cores (a board pinned
    or shared by a container's CPU set)."""
    return max(1, min(wanted, len(os.sched_getaffinity(0))))


class CpuTurns:
    """The heavy engines (ASR, the language model's decode steps, TTS) take turns at the CPU
    instead of running at once. Each of them already spreads one call over every core, and their
    threads wait for each other at barriers by spinning: two engines at once on two cores leave
    each thread waiting for a peer that is not running, and prompt steps of 0.1-0.7 s took
    1.5-2.8 s beside speech recognition. The VAD, a few milliseconds per frame on one thread,
    does not take turns.

    Speech turns (one clip to recognise, one sentence to synthesise: ~0.1 s each) go before the
    language model's steps, which wait first come, first served among themselves. A clip is
    what a user who has stopped speaking waits for, and a sentence is what a device is about to
    play, while a decode step only moves text along that nobody hears until it is spoken; with
    four devices talking at once, a first-come order made each device's speech recognition wait
    behind another's prompt steps. Speech turns are bounded by the devices talking, so the model
    is never starved.

    A `narrow` step (the model on fewer threads than cores, because other processes keep the
    cores busy: `ThreadGovernor`) leaves a core to the speech engines, and a speech turn may run
    beside it. With every engine taking the CPU alone, the process used one core's share of a
    board shared with a busy service, and a device's first sentence waited out another device's
    synthesis."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._speech: deque[object] = deque()  # waiting speech turns, in arrival order
        self._steps: deque[object] = deque()  # waiting model steps, in arrival order
        self._speaking = False  # a speech turn holds the CPU
        self._step_wide: bool | None = None  # a step holds it (None: none), on every core?
        self.overlapped = 0  # turns that ran beside another
        # How long recent turns waited for the CPU, and how long they then held it:
        # (monotonic end of the wait, engine, seconds waited, seconds held), newest last.
        self.waits: deque[tuple[float, str, float, float]] = deque(maxlen=WAITS_KEPT)

    @property
    def waiting(self) -> int:
        """Turns queued for the CPU (a measure of load)."""
        with self._cond:
            return len(self._speech) + len(self._steps)

    def _may_speak(self, me: object) -> bool:
        return self._speech[0] is me and not self._speaking and self._step_wide is not True

    def _may_step(self, me: object, narrow: bool) -> bool:
        if self._steps[0] is not me or self._step_wide is not None:
            return False
        if self._speaking:
            return narrow
        return not self._speech  # speech waiting goes first (it may then be joined)

    @contextmanager
    def turn(
        self, speech: bool = False, engine: str = "llm", narrow: bool = False
    ) -> Iterator[None]:
        """Hold the CPU for one step of `engine` (a clip, a sentence, a decode step). `narrow`:
        a step that leaves cores free, so that a speech turn may run beside it."""
        me = object()
        asked = time.monotonic()
        with self._cond:
            queue = self._speech if speech else self._steps
            queue.append(me)
            while not (self._may_speak(me) if speech else self._may_step(me, narrow)):
                self._cond.wait()
            queue.popleft()
            if self._speaking or self._step_wide is not None:
                self.overlapped += 1
            if speech:
                self._speaking = True
            else:
                self._step_wide = not narrow
        got = time.monotonic()
        try:
            yield
        finally:
            with self._cond:
                if speech:
                    self._speaking = False
                else:
                    self._step_wide = None
                self.waits.append((got, engine, got - asked, time.monotonic() - got))
                self._cond.notify_all()

    def run(self, fn: Callable[..., T], *args: object, speech: bool = False, engine: str) -> T:
        with self.turn(speech, engine):
            return fn(*args)

    def waits_since(self, since: float) -> list[tuple[float, str, float, float]]:
        """The turns that got the CPU after `since` (monotonic): (when, engine, waited, held)."""
        with self._cond:
            return [w for w in self.waits if w[0] >= since]


class Worker:
    """Runs one component's blocking calls in its own threads (see the module docstring)."""

    def __init__(
        self,
        name: str,
        threads: int = 1,
        timeout_s: float = 30.0,
        cpu: CpuTurns | None = None,
        speech: bool = False,
    ) -> None:
        self.name = name
        self.cpu = cpu  # calls take turns at the CPU with the other heavy engines
        self.speech = speech  # their turns are speech turns (see CpuTurns)
        self.timeout_s = timeout_s
        self.threads = threads
        self.threads_started = 0  # the pool starts its threads on demand, up to `threads`
        self._count_lock = threading.Lock()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix=f"edge-{name}", initializer=self._started
        )
        self._slots = asyncio.Semaphore(threads)
        self.waiting = 0  # callers queued for a slot (a measure of load)

    def _started(self) -> None:
        with self._count_lock:  # runs in each new thread: two may start at once
            self.threads_started += 1

    async def run(self, fn: Callable[..., T], *args: object, timeout_s: float | None = None) -> T:
        loop = asyncio.get_running_loop()
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        try:
            if self.cpu is not None:
                future = loop.run_in_executor(
                    self._executor,
                    functools.partial(
                        self.cpu.run, fn, *args, speech=self.speech, engine=self.name
                    ),
                )
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

    def submit(self, fn: Callable[..., object], *args: object, failed: str) -> None:
        """Run `fn(*args)` soon, without waiting for it (nothing can cancel it once asked):
        for writes that must happen even when the caller is gone. An error is logged with
        `failed` as its line."""
        from loguru import logger

        def report(future: concurrent.futures.Future[object]) -> None:
            if not future.cancelled() and future.exception() is not None:
                logger.error("{}: {!r}", failed, future.exception())

        self._executor.submit(fn, *args).add_done_callback(report)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

"""50 cycles of connect, talk and disconnect (half dropped abruptly during speech) leave no extra
tasks, threads or open file descriptors behind."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import numpy as np
import pytest

from edge.sim.device import SimDevice
from tests.e2e.scenario import manual_turn
from tests.helpers import Running, ServerThread

pytestmark = pytest.mark.models
CYCLES = 50
AT_ONCE = 5


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def cycle(url: str, index: int, speech: np.ndarray) -> None:
    dev = SimDevice(url, device_id=f"1e:a4:00:00:00:{index:02x}")
    await dev.connect()
    if index % 2 == 0:
        await manual_turn(dev, speech)  # a whole conversation, then leave as devices do
    elif index % 4 == 1:
        await dev.listen_start("auto")
        await dev.stream(speech[: len(speech) // 2])  # gone in the middle of the user's speech
    else:
        await dev.listen_start("manual")
        await dev.stream(speech)
        await dev.listen_stop()
        await dev.wait_audio(3, 30)  # gone in the middle of the reply
    await dev.drop()


async def settle(server: Running, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while server.server.devices.connections and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)  # the count lives on the server's thread: poll it


async def steady_tasks(harness: ServerThread, timeout: float = 15) -> int:
    """The server's task count once it has stopped changing for a second: a conversation's
    upkeep (memory trimming, saved states) may still be finishing when the sockets are gone."""
    deadline = time.monotonic() + timeout
    last, same = harness.tasks(), 0
    while same < 5 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        now = harness.tasks()
        same = same + 1 if now == last else 0
        last = now
    return last


async def test_fifty_cycles_leave_nothing_behind(
    make_server,  # type: ignore[no-untyped-def]
    harness: ServerThread,
    speak,  # type: ignore[no-untyped-def]
    greedy: None,
) -> None:
    # Short answers: what is measured is what each cycle leaves behind, not how long a reply
    # plays in real time ("Hello there." had the model call the clock and read the date out,
    # 8 s a cycle; "Say yes." is answered in a few words, greedily the same every run).
    server: Running = make_server(llm={"max_tokens": 24})
    speech = speak("Say yes.")
    for i in range(2):  # warm up: engine worker threads start on first use
        await cycle(server.ws_url, i, speech)
    await settle(server)
    tasks, threads, fds = await steady_tasks(harness), threading.active_count(), open_fds()
    # Engine pools start their threads on demand, up to a fixed number: devices at once may
    # start a few more, and a leak would pass that bound.
    workers = harness.engines.workers()
    unstarted = sum(w.threads - w.threads_started for w in workers)

    for start in range(0, CYCLES, AT_ONCE):
        await asyncio.gather(
            *(cycle(server.ws_url, i, speech) for i in range(start, start + AT_ONCE))
        )
    await settle(server)
    await asyncio.sleep(0.5)

    assert server.server.devices.connections == 0
    assert server.server.devices.sessions == {}
    assert await steady_tasks(harness) <= tasks
    assert threading.active_count() <= threads + unstarted
    assert all(w.threads_started <= w.threads for w in workers)
    assert open_fds() <= fds

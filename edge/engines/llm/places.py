"""Places at the model: up to `llm.parallel` requests hold a sequence at once; the others wait in
arrival order, and past `llm.max_waiting` a request is refused at once (`EngineBusy`), so the
device hears an apology instead of a long silence."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from edge.errors import EngineBusy


class Places:
    """Handed out first come, first served; a caller cancelled while it waits (abort,
    disconnect) leaves the queue at once. The number of places is read at every hand-out, so
    it follows the config."""

    def __init__(self, places: Callable[[], int]) -> None:
        self._places = places
        self.held = 0
        self._queue: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._queue)

    @property
    def free(self) -> bool:
        return self.held < self._places() and not self._queue

    def try_acquire(self) -> bool:
        if not self.free:
            return False
        self.held += 1
        return True

    async def acquire(self, max_waiting: int) -> None:
        if self.try_acquire():
            return
        if len(self._queue) >= max_waiting:
            raise EngineBusy(f"{len(self._queue)} requests already wait for the language model")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # handed a place just as it was cancelled: pass it on
            else:
                self._queue.remove(future)
            raise

    def release(self) -> None:
        self.held -= 1
        while self._queue and self.held < self._places():
            future = self._queue.popleft()
            if not future.done():
                self.held += 1
                future.set_result(None)

"""The gate a turn's answer passes before the device or the memory hears of it.

An answer begun at the user's early pause (a held answer) is written and synthesized at once,
but nothing may reach the device (`stt`, then audio), the memory, or a tool until the hang-over
confirms that the pause ended the utterance. Three things wait at the gate: the first tool call,
the first audio, and the end of the writing; whichever comes first opens it, once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class TurnGate:
    def __init__(
        self,
        on_open: Callable[[], Awaitable[int | None]],
        confirmed: asyncio.Event | None = None,
    ) -> None:
        """`on_open` runs once, when the gate opens: it tells the device and stores the turn,
        returning the memory's id for it. `confirmed`: for a held answer, the gate waits for it
        before opening."""
        self._on_open = on_open
        self._confirmed = confirmed
        self._lock = asyncio.Lock()
        self.opened = False
        self.turn_id: int | None = None  # the memory's id of the turn, once open

    async def open(self) -> None:
        """Wait for the confirmation (if any), then open; at once when already open."""
        async with self._lock:
            if self.opened:
                return
            if self._confirmed is not None:
                await self._confirmed.wait()
            self.turn_id = await self._on_open()
            self.opened = True

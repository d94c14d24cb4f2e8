"""Reminders and timers the server speaks later on its own (protocol §3.3 rule 5).

Stored in the memory database, so a restart keeps them. When one falls due the device's session
speaks it; if the device is not connected then (or the delivery is cut off), it stays pending and is
spoken when the device next connects.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from loguru import logger

from edge.memory.store import MemoryStore, Reminder

Deliver = Callable[[str, str], Awaitable[bool]]  # (device id, text) → spoken?
MAX_SLEEP_S = 60.0


class ReminderScheduler:
    def __init__(self, store: MemoryStore, deliver: Deliver) -> None:
        self.store = store
        self.deliver = deliver
        self._changed = asyncio.Event()
        self._delivering: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def add(self, device_id: str, delay_s: float, text: str) -> float:
        due = time.time() + delay_s
        await self.store.add_reminder(device_id, due, text)
        self._changed.set()
        return due

    async def upcoming(self, device_id: str) -> list[Reminder]:
        """The device's reminders not yet due, soonest first (one being spoken is not)."""
        now = time.time()
        pending = await self.store.pending_reminders(device_id)
        return [r for r in pending if r.due > now and r.id not in self._delivering]

    async def cancel(self, device_id: str, reminders: list[Reminder]) -> int:
        """Cancels those of `reminders` still to be spoken; how many were."""
        cancelled = await self.store.cancel_reminders(device_id, [r.id for r in reminders])
        self._changed.set()
        return cancelled

    async def run(self) -> None:
        """The scheduler's loop; cancel it to stop (deliveries in progress are cancelled too)."""
        try:
            while True:
                self._changed.clear()
                pending = await self.store.pending_reminders()
                now = time.time()
                for reminder in pending:
                    if reminder.due <= now:
                        self._start(reminder)
                upcoming = [r.due - now for r in pending if r.due > now]
                try:
                    async with asyncio.timeout(min([MAX_SLEEP_S, *upcoming])):
                        await self._changed.wait()
                except TimeoutError:
                    pass
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def device_connected(self, device_id: str) -> None:
        """Speak what fell due while the device was away."""
        now = time.time()
        for reminder in await self.store.pending_reminders(device_id):
            if reminder.due <= now:
                self._start(reminder)

    def _start(self, reminder: Reminder) -> None:
        if reminder.id in self._delivering:
            return
        self._delivering.add(reminder.id)
        task = asyncio.create_task(self._deliver(reminder), name=f"reminder-{reminder.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, reminder: Reminder) -> None:
        log = logger.bind(device=reminder.device_id)
        try:
            if await self.deliver(reminder.device_id, reminder.text):
                await self.store.mark_delivered(reminder.id)
                log.info("reminder {} spoken: {!r}", reminder.id, reminder.text)
            else:
                log.info("reminder {} due; device away, kept for its next connection", reminder.id)
        except Exception as exc:
            log.error("reminder {} not delivered: {!r}", reminder.id, exc)
        finally:
            self._delivering.discard(reminder.id)

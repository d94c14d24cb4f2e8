"""Limits on connection attempts per network address, over a sliding one-minute window.

Two counters per address: every attempt (config calls and WebSocket upgrades), and refused ones.
A LAN device reconnects at most a few times a minute (each wake word opens a new socket), so the
limits only bite on a runaway client or on someone guessing tokens. Memory stays bounded: stale
addresses are dropped, and at most `max_addresses` are tracked (the oldest go first).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

WINDOW_S = 60.0


class AttemptLimiter:
    def __init__(
        self,
        attempts_per_minute: int,
        failures_per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = 4096,
    ) -> None:
        self.attempts_per_minute = attempts_per_minute
        self.failures_per_minute = failures_per_minute
        self._clock = clock
        self._max = max_addresses
        self._attempts: OrderedDict[str, deque[float]] = OrderedDict()
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def attempt(self, address: str) -> str | None:
        """Count an attempt; None if allowed, else why it is refused (for the log line)."""
        now = self._clock()
        failures = self._recent(self._failures, address, now)
        if self.failures_per_minute and len(failures) >= self.failures_per_minute:
            return f"{len(failures)} refused attempts in the last minute"
        attempts = self._recent(self._attempts, address, now)
        if self.attempts_per_minute and len(attempts) >= self.attempts_per_minute:
            return f"more than {self.attempts_per_minute} attempts in the last minute"
        self._push(self._attempts, address, now)
        return None

    def failed(self, address: str) -> None:
        self._push(self._failures, address, self._clock())

    def tracked(self) -> int:
        return len(self._attempts) + len(self._failures)

    def _recent(self, table: OrderedDict[str, deque[float]], address: str, now: float) -> deque:
        times = table.get(address)
        if times is None:
            return deque()
        while times and times[0] <= now - WINDOW_S:
            times.popleft()
        if not times:
            del table[address]
        return times

    def _push(self, table: OrderedDict[str, deque[float]], address: str, now: float) -> None:
        times = table.get(address)
        if times is None:
            times = table[address] = deque()
            while len(table) > self._max:
                table.popitem(last=False)
        else:
            table.move_to_end(address)
        times.append(now)

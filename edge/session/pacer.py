"""Real-time pacing of downlink Opus frames (xiaozhi protocol §4.4).

The device buffers at most 40 packets and silently drops the rest, so frames go out on an
absolute schedule: the first `lead` frames at once as a pre-buffer, then frame k at
anchor + (k - lead + 1) × frame_duration, so the device never holds more than `lead` frames
(the one playing included). When the stream stalls long enough for the device to play everything
it has, the schedule is re-anchored instead of bursting to catch up; network jitter at that moment
can leave one frame still playing, so the device's queue peaks at lead + 1. `tts stop` may only
follow once the last frame has had time to play (`wait_played`). A lead of 0 behaves as 1.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class Pacer:
    def __init__(
        self,
        frame_ms: int,
        lead_frames: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.frame_s = frame_ms / 1000.0
        self.lead = max(1, lead_frames)
        self._clock = clock
        self._sleep = sleep
        self._anchor: float | None = None
        self._sent_since_anchor = 0
        self._last_send = 0.0
        self.frames_sent = 0
        self.reanchors = 0

    def _play_end(self) -> float:
        """When the device will have played everything sent so far."""
        assert self._anchor is not None
        return self._anchor + self._sent_since_anchor * self.frame_s

    async def send(self, send: Callable[[bytes], Awaitable[bool]], packet: bytes) -> bool:
        now = self._clock()
        if self._anchor is None or now >= self._play_end():
            if self._anchor is not None:
                self.reanchors += 1
            self._anchor = now
            self._sent_since_anchor = 0
        due = self._anchor + (self._sent_since_anchor - self.lead + 1) * self.frame_s
        if due > now:
            await self._sleep(due - now)
        ok = await send(packet)
        if ok:
            self._sent_since_anchor += 1
            self.frames_sent += 1
            self._last_send = self._clock()
        return ok

    async def wait_played(self, margin_s: float) -> None:
        """Sleep until the last frame sent has been played, plus a margin for network jitter."""
        if self._anchor is None:
            return
        # Never sooner than (lead + 1) frames after the last send (the protocol notes' rule).
        played = max(self._play_end(), self._last_send + (self.lead + 1) * self.frame_s)
        remaining = played + margin_s - self._clock()
        if remaining > 0:
            await self._sleep(remaining)

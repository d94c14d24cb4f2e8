"""Firmware 2.5's `notify` as the simulated device plays it (78/xiaozhi-esp32 PR #2191,
docs/notify.md): accepted only while idle; fetched over HTTP (2xx only, no redirects); Ogg/Opus
decoded and played in real time in a `notifying` state that never opens the microphone; a second
`notify` while busy is ignored; a wake (listen start) cancels it. Older firmware does not know
the message and ignores it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np

from edge.audio.ogg import read_ogg_opus

FILE_RATE = 48000  # what libopusfile decodes to


@dataclass
class Heard:
    """One announcement: its subtitle, and what the device played (None: fetch or decode
    failed, with the reason)."""

    url: str
    subtitle: str
    pcm: np.ndarray | None = None
    error: str = ""

    @property
    def seconds(self) -> float:
        return 0.0 if self.pcm is None else len(self.pcm) / FILE_RATE


class NotifyPlayer:
    def __init__(self) -> None:
        self.heard: list[Heard] = []
        self.ignored = 0  # notify while busy, or malformed
        self._task: asyncio.Task[None] | None = None

    @property
    def playing(self) -> bool:
        return self._task is not None and not self._task.done()

    def offer(self, message: dict[str, Any], idle: bool, done: Any) -> bool:
        """A `notify` arrived; True when it is taken (the device is then `notifying` until
        `done()` is called)."""
        url = message.get("audio_url")
        subtitles = message.get("subtitles")
        subtitle = ""
        if isinstance(subtitles, list) and subtitles and isinstance(subtitles[0], dict):
            subtitle = str(subtitles[0].get("text", ""))
        if not idle or self.playing or not isinstance(url, str):
            self.ignored += 1
            return False
        self._task = asyncio.create_task(self._play(url, subtitle, done))
        return True

    async def _play(self, url: str, subtitle: str, done: Any) -> None:
        heard = Heard(url, subtitle)
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.get(url, allow_redirects=False) as response,
            ):
                if not 200 <= response.status < 300:
                    raise ValueError(f"HTTP {response.status}")
                data = await response.read()
            heard.pcm = read_ogg_opus(data)
            self.heard.append(heard)
            await asyncio.sleep(heard.seconds)  # played in real time; the device stays busy
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            heard.error = repr(exc)
            self.heard.append(heard)
        finally:
            done()

    async def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

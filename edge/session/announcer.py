"""Server-initiated speech (a reminder) to an idle firmware-2.5 device, as a `notify`.

The device then fetches an Ogg/Opus file from our HTTP port and plays it with a cue and its
subtitle, without opening its microphone or entering a conversation. The firmware accepts a
`notify` only while idle: over WebSocket that is a push-to-talk (manual mode) device after our
`tts stop`, or one that has said its hello and not yet started listening; an auto-mode device
listens between turns and closes its channel when the conversation ends. Everywhere else, and
when the file is not fetched in time (the device was busy after all: it never acknowledges),
the session speaks the text in a tts bracket as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

from edge.audio.ogg import ogg_opus
from edge.audio.opus import OpusEncoder
from edge.config import Config
from edge.protocol.firmware import plays_notify
from edge.protocol.messages import Notify
from edge.services import Services
from edge.session.link import DeviceLink

FETCH_WAIT_S = 10.0  # the device fetches at once; past this it is not going to


class IdleAnnouncer:
    def __init__(
        self, link: DeviceLink, services: Services, config: Config, device_id: str, http_base: str
    ) -> None:
        self.link = link
        self.services = services
        self.config = config
        self.device_id = device_id
        self.http_base = http_base  # where this device reached our HTTP port
        self.log: Any = link.log

    def can_announce(self, device_idle: bool) -> bool:
        return (
            device_idle
            and bool(self.http_base and self.device_id)
            and plays_notify(self.services.firmware.of(self.device_id))
        )

    async def announce(self, text: str) -> bool:
        """True once the device fetched the file (it then plays it on its own)."""
        audio = self.config.audio
        encoder = OpusEncoder(audio.downlink_sample_rate, audio.frame_duration_ms)
        try:
            packets = await self.services.engines.tts.packets(text, encoder)
        finally:
            encoder.close()
        data = ogg_opus(packets, audio.downlink_sample_rate, audio.frame_duration_ms)
        announcements = self.services.announcements
        item = announcements.publish(data)
        if not await self.link.send(Notify(self.http_base + item.path, text)):
            announcements.withdraw(item)
            return False
        try:
            async with asyncio.timeout(FETCH_WAIT_S):
                await item.fetched.wait()
        except TimeoutError:
            announcements.withdraw(item)  # a late fetch must not play it a second time
            self.log.info("announcement not fetched in {:.0f} s; speaking it", FETCH_WAIT_S)
            return False
        self.log.info("announced by notify ({} bytes): {!r}", len(data), text[:80])
        return True

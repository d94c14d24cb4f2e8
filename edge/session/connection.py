"""The one object a session sends through. Sending never raises into the pipeline: it returns
whether the frame went out, and a closed socket simply makes every later send return False."""

from __future__ import annotations

import asyncio
from typing import Any

from loguru import logger
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from edge.protocol import framing, messages


class DeviceConnection:
    def __init__(self, ws: ServerConnection, device_id: str, protocol_version: int) -> None:
        self.ws = ws
        self.device_id = device_id
        self.protocol_version = protocol_version
        self.closed = False
        self.frames_sent = 0
        self.log = logger.bind(device=device_id)

    async def send_json(self, message: dict[str, Any]) -> bool:
        return await self._send(messages.dumps(message))

    async def send_audio(self, packet: bytes, timestamp: int = 0) -> bool:
        ok = await self._send(framing.encode(self.protocol_version, packet, timestamp))
        if ok:
            self.frames_sent += 1
        return ok

    async def _send(self, data: str | bytes) -> bool:
        if self.closed:
            return False
        try:
            await self.ws.send(data)
            return True
        except ConnectionClosed:
            self.closed = True
        except (OSError, RuntimeError) as exc:  # transport torn down under us
            self.log.info("send failed, treating the connection as closed: {!r}", exc)
            self.closed = True
        return False

    async def close(self, reason: str = "") -> None:
        """Send a close frame; the firmware never answers one, so do not wait long."""
        self.closed = True
        try:
            async with asyncio.timeout(2.0):
                await self.ws.close(1000, reason[:100])
        except (TimeoutError, ConnectionClosed, OSError, RuntimeError):
            pass

"""A device's WebSocket as the session sees it (`edge.session.link.DeviceLink`): sending never
raises into the pipeline, it returns whether the frame went out, and a closed socket makes every
later send return False and ends the incoming frames cleanly. Nothing above this module sees
websockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from loguru import logger
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from edge.faults import FaultLog
from edge.protocol import framing, messages
from edge.protocol.messages import ServerMessage


class WebSocketLink:
    def __init__(
        self,
        ws: ServerConnection,
        device_id: str,
        protocol_version: int,
        faults: FaultLog | None = None,
        session_id: str = "",
    ) -> None:
        self.ws = ws
        self.device_id = device_id
        self.protocol_version = protocol_version
        self.session_id = session_id
        self.log: Any = logger.bind(device=device_id)
        self.faults = faults if faults is not None else FaultLog(self.log)
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def incoming(self) -> AsyncIterator[str | bytes]:
        try:
            async for frame in self.ws:
                yield frame
        except ConnectionClosed as exc:
            # An abrupt TCP drop (1006) is how devices always leave: not a fault.
            if exc.sent is not None and exc.sent.code == 1009:
                self.faults("oversized frame", f"closed with 1009: {exc.sent.reason}")
        finally:
            self._closed = True

    async def send(self, message: ServerMessage) -> bool:
        return await self._send(messages.encode(message, self.session_id))

    async def send_audio(self, packet: bytes) -> bool:
        return await self._send(framing.encode(self.protocol_version, packet, 0))

    async def _send(self, data: str | bytes) -> bool:
        if self._closed:
            return False
        try:
            await self.ws.send(data)
            return True
        except ConnectionClosed:
            self._closed = True
        except (OSError, RuntimeError) as exc:  # transport torn down under us
            self.log.info("send failed, treating the connection as closed: {!r}", exc)
            self._closed = True
        return False

    async def close(self, reason: str = "") -> None:
        """Send a close frame; the firmware never answers one, so do not wait long."""
        self._closed = True
        try:
            async with asyncio.timeout(2.0):
                await self.ws.close(1000, reason[:100])
        except (TimeoutError, ConnectionClosed, OSError, RuntimeError):
            pass

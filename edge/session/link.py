"""What a session needs of its device's connection, and nothing of how it is carried: the
transport (`edge.transport.connection` over websockets; a scripted stand-in in the tests)
implements it. Sending never raises: it says whether the frame went out, and once the device is
gone every send says no. The incoming frames end, cleanly, when the device goes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from edge.faults import FaultLog
from edge.protocol.messages import ServerMessage


class DeviceLink(Protocol):
    device_id: str  # the device's label in the log (its Device-Id, else its address)
    protocol_version: int  # binary framing: 1, 2 or 3
    session_id: str
    log: Any  # a loguru logger bound to the device
    faults: FaultLog  # this connection's bad input, one line per distinct fault

    @property
    def closed(self) -> bool: ...

    def incoming(self) -> AsyncIterator[str | bytes]:
        """Text and binary frames from the device, in order, until it goes."""
        ...

    async def send(self, message: ServerMessage) -> bool: ...

    async def send_audio(self, packet: bytes) -> bool:
        """One Opus packet, framed per `protocol_version`."""
        ...

    async def close(self, reason: str = "") -> None: ...

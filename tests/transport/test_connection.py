"""The session's link over a real WebSocket on loopback (no model): what a session sends arrives
framed and with its session id; when the device drops the connection, as the firmware does,
the incoming frames simply end and every later send says no; an oversized frame is one fault."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from loguru import logger
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from edge.faults import FaultLog
from edge.protocol import framing
from edge.protocol.messages import Stt, TtsStart
from edge.transport.connection import WebSocketLink


@asynccontextmanager
async def linked(version: int = 1, max_size: int = 1 << 20) -> AsyncIterator[Any]:
    """A server whose handler wraps each connection in a WebSocketLink and records its frames
    until they end; yields (client websocket, the server side's state)."""
    state: dict[str, Any] = {"frames": [], "ended": asyncio.Event(), "faults": []}

    async def handler(ws: ServerConnection) -> None:
        log = logger.bind(device="dev-1")
        faults = FaultLog(log, state["faults"].append)
        link = WebSocketLink(ws, "dev-1", version, faults, session_id="s-1")
        state["link"] = link
        async for frame in link.incoming():
            state["frames"].append(frame)
        state["ended"].set()

    async with serve(handler, "127.0.0.1", 0, max_size=max_size) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/", ping_interval=None) as client:
            while "link" not in state:  # noqa: ASYNC110 - the handler runs on this loop
                await asyncio.sleep(0.01)
            yield client, state


async def test_messages_go_out_with_the_session_id_and_audio_framed() -> None:
    async with linked(version=3) as (client, state):
        link: WebSocketLink = state["link"]
        assert await link.send(Stt("hello")) and await link.send(TtsStart())
        assert await link.send_audio(b"\x01\x02\x03")
        first, second, audio = [await client.recv() for _ in range(3)]
        assert json.loads(first) == {"session_id": "s-1", "type": "stt", "text": "hello"}
        assert json.loads(second) == {"session_id": "s-1", "type": "tts", "state": "start"}
        assert framing.decode(3, audio).payload == b"\x01\x02\x03"
        await client.send("from the device")
        await client.send(b"\x09")
        await asyncio.sleep(0.05)
        assert state["frames"] == ["from the device", b"\x09"]


async def test_a_dropped_connection_ends_the_frames_and_later_sends_say_no() -> None:
    async with linked() as (client, state):
        link: WebSocketLink = state["link"]
        client.transport.abort()  # the firmware never sends a close frame
        await asyncio.wait_for(state["ended"].wait(), 5)
        assert link.closed
        assert not await link.send(Stt("too late"))
        assert not await link.send_audio(b"\x01")
        assert state["faults"] == []  # leaving is not a fault


async def test_an_oversized_frame_is_one_fault_and_a_clean_end() -> None:
    async with linked(max_size=1000) as (client, state):
        await client.send("x" * 5000)
        await asyncio.wait_for(state["ended"].wait(), 5)
        assert state["faults"] == ["oversized frame"]
        assert state["link"].closed

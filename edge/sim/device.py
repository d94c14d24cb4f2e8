"""The simulated device, faithful to the xiaozhi-esp32 firmware where it matters to a server:

- the upgrade carries `Authorization` (omitted when the token is empty), `Protocol-Version`,
  `Device-Id` and `Client-Id`; the hello is the firmware's, and the server hello must arrive
  within 10 s and carry `transport: "websocket"`;
- microphone audio goes out as Opus (VOIP, DTX: silence becomes 1–3 byte packets), one packet per
  frame, in real time, framed per the binary protocol version;
- `tts start` takes effect only once processed (after `state_delay_s`): audio that arrives before,
  or outside a `tts start` … `tts stop` bracket, is dropped and counted;
- played audio goes through the firmware's queue, which drops on overflow (1.2 s of packets from
  firmware 2.5, 20 at 60 ms; 2.4 s before, 40), and plays at one packet per frame duration;
  `clear_queue_on_stop` emulates firmware before 2.2.2, which cut the tail;
- from 2.5, a `notify` while idle is fetched and played (`notify_player.py`);
- leaving never sends a close frame: the TCP connection is just dropped.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect

from edge.audio.opus import OpusDecoder, OpusEncoder
from edge.audio.pcm import frames
from edge.errors import SimError
from edge.protocol import framing
from edge.protocol.firmware import plays_notify
from edge.sim.mcp_tools import SimMcpServer
from edge.sim.notify_player import NotifyPlayer

UPLINK_RATE = 16000


@dataclass
class SimEvent:
    t: float  # monotonic
    kind: str  # "json" or "audio"
    message: dict[str, Any] | None = None
    size: int = 0
    accepted: bool = True  # audio: played (queued) by the device


@dataclass
class SimStats:
    dropped_not_speaking: int = 0  # audio outside a processed tts bracket
    dropped_overflow: int = 0  # playback queue full
    bad_json: int = 0
    played_packets: int = 0


@dataclass
class SimDevice:
    url: str
    device_id: str = "aa:bb:cc:dd:ee:01"
    client_id: str = "7b5d3f1e-0000-4000-8000-000000000001"
    protocol_version: int = 1
    token: str = ""
    frame_ms: int = 60
    features: dict[str, Any] | None = field(default_factory=lambda: {"mcp": True})
    state_delay_s: float = 0.02  # how long the firmware takes to act on `tts start`
    firmware: str = "2.5.0"  # sets the queue and `notify` (give fetch_ota the same version)
    queue_packets: int = 0  # 0: the firmware's own
    clear_queue_on_stop: bool = False
    extra_headers: dict[str, str] = field(default_factory=dict)
    local_address: str | None = None  # connect from this address (another host on the LAN)
    # The firmware's MCP server (answers only when the hello announced `features.mcp`).
    mcp: SimMcpServer = field(default_factory=SimMcpServer)

    events: list[SimEvent] = field(default_factory=list)
    stats: SimStats = field(default_factory=SimStats)
    server_hello: dict[str, Any] | None = None
    mode: str = "auto"
    state: str = "idle"  # the firmware's view: idle, listening, speaking, notifying
    last_speech_sent: float | None = None  # end of the user's speech, for latency figures

    def __post_init__(self) -> None:
        if not self.queue_packets:
            queue_ms = 1200 if plays_notify(self.firmware) else 2400
            self.queue_packets = queue_ms // self.frame_ms
        self.announcements = NotifyPlayer()
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._player: asyncio.Task[None] | None = None
        self._queue: deque[bytes] = deque()
        self._pcm: list[np.ndarray] = []
        self._decoder: OpusDecoder | None = None
        self._encoder = OpusEncoder(UPLINK_RATE, self.frame_ms, voip=True, dtx=True)
        self._changed = asyncio.Event()
        self._queued = asyncio.Event()
        self._speaking_since: float | None = None
        self._replies: set[asyncio.Task[None]] = set()

    # --- connection -----------------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        headers = {
            "Protocol-Version": str(self.protocol_version),
            "Device-Id": self.device_id,
            "Client-Id": self.client_id,
            **self.extra_headers,
        }
        if self.token:  # the firmware omits the header entirely for an empty token
            headers["Authorization"] = self.token if " " in self.token else f"Bearer {self.token}"
        return headers

    def hello(self) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "hello", "version": self.protocol_version}
        if self.features is not None:
            message["features"] = self.features
        message["transport"] = "websocket"
        message["audio_params"] = {
            "format": "opus",
            "sample_rate": UPLINK_RATE,
            "channels": 1,
            "frame_duration": self.frame_ms,
        }
        return message

    async def open(self) -> None:
        """The upgrade only (no hello): for tests that misbehave before the hello."""
        local: dict[str, Any] = (
            {"local_addr": (self.local_address, 0)} if self.local_address else {}
        )
        self._ws = await connect(
            self.url,
            additional_headers=self.headers(),
            compression=None,
            open_timeout=10,
            ping_interval=None,  # the firmware never pings (it answers pings)
            max_size=None,
            **local,
        )
        self._reader = asyncio.create_task(self._read())
        self._player = asyncio.create_task(self._play())

    async def connect(
        self, hello: dict[str, Any] | None = None, timeout: float = 10.0
    ) -> dict[str, Any]:
        await self.open()
        return await self.handshake(hello, timeout)

    async def handshake(
        self, hello: dict[str, Any] | None = None, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Send the hello and wait for the server's, as the firmware does (10 s limit)."""
        await self.send_json(self.hello() if hello is None else hello)
        msg = await self.wait_json(lambda m: m.get("type") == "hello", timeout)
        if msg.get("transport") != "websocket":
            raise SimError(f"server hello without transport websocket: {msg}")
        self.server_hello = msg
        rate = int(msg.get("audio_params", {}).get("sample_rate", 24000))
        self._decoder = OpusDecoder(rate)
        return msg

    async def drop(self) -> None:
        """Leave like the firmware: drop TCP, no close frame."""
        if self._ws is not None:
            self._ws.transport.abort()
        await self.announcements.cancel()
        tasks = [t for t in (self._reader, self._player, *self._replies) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._encoder.close()
        if self._decoder is not None:
            self._decoder.close()

    @property
    def closed_by_server(self) -> bool:
        return self._reader is not None and self._reader.done()

    # --- sending --------------------------------------------------------------------------

    async def send_json(self, message: dict[str, Any]) -> None:
        assert self._ws is not None
        session_id = (self.server_hello or {}).get("session_id", "")
        if message.get("type") != "hello":
            message = {"session_id": session_id, **message}
        await self._ws.send(json.dumps(message, ensure_ascii=False))

    async def send_raw(self, data: str | bytes) -> None:
        assert self._ws is not None
        await self._ws.send(data)

    async def send_packet(self, packet: bytes) -> None:
        await self.send_raw(framing.encode(self.protocol_version, packet))

    def _frames(self, pcm: np.ndarray) -> list[np.ndarray]:
        return frames(pcm.astype(np.int16), UPLINK_RATE * self.frame_ms // 1000)

    def encode(self, pcm: np.ndarray) -> list[bytes]:
        """A stretch of PCM as packets, all at once (for tests that send a burst)."""
        return [self._encoder.encode(f) for f in self._frames(pcm)]

    async def stream(self, pcm: np.ndarray, *, until: asyncio.Event | None = None) -> None:
        """Send audio in real time, one packet per frame on an absolute schedule. Each frame is
        encoded when its time comes, as the firmware does: encoding the whole stretch up front
        (45 s of silence after a question in `edge bench`: ~0.3 s of CPU) would take the CPU
        from the server at the very moment the user stops speaking."""
        frame_s = self.frame_ms / 1000
        start = time.monotonic()
        for i, frame in enumerate(self._frames(pcm)):
            if until is not None and until.is_set():
                return
            delay = start + i * frame_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.send_packet(self._encoder.encode(frame))

    async def listen_start(self, mode: str = "auto") -> None:
        await self.announcements.cancel()  # a wake cancels an announcement
        self.mode = mode
        self.state = "listening"
        await self.send_json({"type": "listen", "state": "start", "mode": mode})

    async def listen_stop(self) -> None:
        self.state = "idle"
        await self.send_json({"type": "listen", "state": "stop"})

    async def say(self, pcm: np.ndarray, *, silence_s: float = 3.0) -> None:
        """Speak, then keep the microphone open with silence (as the firmware does in auto mode)
        until the server starts its reply or `silence_s` runs out."""
        reply = asyncio.Event()
        await self.stream(pcm)
        self.last_speech_sent = time.monotonic()
        watcher = asyncio.create_task(self._wait_reply_started(reply))
        try:
            await self.stream(np.zeros(int(silence_s * UPLINK_RATE), np.int16), until=reply)
        finally:
            watcher.cancel()

    async def _wait_reply_started(self, flag: asyncio.Event) -> None:
        start = len(self.events)
        while True:
            if any(
                e.message and e.message.get("type") in ("stt", "tts") for e in self.events[start:]
            ):
                flag.set()
                return
            await self._wait_change(None)

    # --- receiving ------------------------------------------------------------------------

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for frame in self._ws:
                now = time.monotonic()
                if isinstance(frame, bytes):
                    self._on_audio(now, frame)
                else:
                    try:
                        message = json.loads(frame)
                    except ValueError:
                        self.stats.bad_json += 1
                        continue
                    if not isinstance(message, dict):
                        self.stats.bad_json += 1
                        continue
                    self.events.append(SimEvent(now, "json", message))
                    self._on_json(now, message)
                self._changed.set()
        except Exception:
            pass
        finally:
            self._changed.set()

    def _on_json(self, now: float, message: dict[str, Any]) -> None:
        if message.get("type") == "mcp" and isinstance(message.get("payload"), dict):
            if (self.features or {}).get("mcp"):
                self._reply_mcp(self.mcp.handle(message["payload"]))
            return
        if message.get("type") == "notify" and plays_notify(self.firmware):
            if self.announcements.offer(message, self.state == "idle", self._notified):
                self.state = "notifying"
            return
        if message.get("type") != "tts":
            return
        if message.get("state") == "start" and self.state in ("idle", "listening"):
            self.state = "speaking"
            self._speaking_since = now + self.state_delay_s
            self._queue.clear()  # entering speaking resets the decoder
        elif message.get("state") == "stop" and self.state == "speaking":
            self.state = "idle" if self.mode == "manual" else "listening"
            self._speaking_since = None
            if self.clear_queue_on_stop:
                self._queue.clear()

    def _notified(self) -> None:
        if self.state == "notifying":
            self.state = "idle"
        self._changed.set()

    def _reply_mcp(self, payload: dict[str, Any] | None) -> None:
        # The firmware answers from its main task, after the message handler returns.
        if payload is None:
            return
        task = asyncio.create_task(self.send_json({"type": "mcp", "payload": payload}))
        self._replies.add(task)
        task.add_done_callback(self._replies.discard)

    def release_mcp_list(self) -> None:
        """Answer the tools/list requests held by `mcp.hold_list`."""
        for reply in self.mcp.release_list():
            self._reply_mcp(reply)

    def _on_audio(self, now: float, frame: bytes) -> None:
        try:
            packet = framing.decode(self.protocol_version, frame).payload
        except framing.FramingError:
            self.stats.bad_json += 1
            return
        speaking = self.state == "speaking" and self._speaking_since is not None
        accepted = speaking and now >= (self._speaking_since or 0)
        if not accepted:
            self.stats.dropped_not_speaking += 1
        elif len(self._queue) >= self.queue_packets:
            self.stats.dropped_overflow += 1
            accepted = False
        else:
            self._queue.append(packet)
            self._queued.set()
        self.events.append(SimEvent(now, "audio", size=len(packet), accepted=accepted))

    async def _play(self) -> None:
        frame_s = self.frame_ms / 1000
        while True:
            if not self._queue:
                self._queued.clear()
                await self._queued.wait()
                continue
            packet = self._queue.popleft()
            self.stats.played_packets += 1
            if self._decoder is not None:
                self._pcm.append(self._decoder.decode(packet))
            await asyncio.sleep(frame_s)

    async def _wait_change(self, deadline: float | None) -> None:
        self._changed.clear()
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            async with asyncio.timeout(timeout):
                await self._changed.wait()
        except TimeoutError:
            pass

    async def wait_json(self, match: Any, timeout: float, *, after: int = 0) -> dict[str, Any]:
        """The first JSON message (from event index `after`) for which `match(msg)` is true."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events[after:]:
                if event.message is not None and match(event.message):
                    return event.message
            if time.monotonic() >= deadline:
                raise SimError(f"no matching message within {timeout} s")
            if self.closed_by_server and not self._changed.is_set():
                raise SimError("the server closed the connection")
            await self._wait_change(deadline)

    async def wait_audio(self, count: int, timeout: float, *, after: int = 0) -> None:
        """Until `count` audio frames have arrived (from event index `after`)."""
        deadline = time.monotonic() + timeout
        while len(self.audio_events(after)) < count:
            if time.monotonic() >= deadline:
                raise SimError(f"fewer than {count} audio frames within {timeout} s")
            if self.closed_by_server:
                raise SimError("the server closed the connection")
            await self._wait_change(deadline)

    async def wait_closed(self, timeout: float) -> bool:
        """Until the server closes the connection; False if it is still open at the deadline."""
        deadline = time.monotonic() + timeout
        while not self.closed_by_server and time.monotonic() < deadline:
            await self._wait_change(deadline)
        return self.closed_by_server

    async def wait_tts_stop(self, timeout: float = 60.0, *, after: int = 0) -> dict[str, Any]:
        return await self.wait_json(
            lambda m: m.get("type") == "tts" and m.get("state") == "stop", timeout, after=after
        )

    async def wait_played(self, timeout: float = 10.0) -> None:
        """Until the playback queue is empty (the firmware plays out what it has queued)."""
        deadline = time.monotonic() + timeout
        while self._queue and time.monotonic() < deadline:  # noqa: ASYNC110 - polls the player
            await asyncio.sleep(self.frame_ms / 1000)

    # --- results --------------------------------------------------------------------------

    def json_messages(self, after: int = 0) -> list[dict[str, Any]]:
        return [e.message for e in self.events[after:] if e.message is not None]

    def audio_events(self, after: int = 0) -> list[SimEvent]:
        return [e for e in self.events[after:] if e.kind == "audio"]

    def first_audio_latency(self, after: int = 0) -> float | None:
        """End of the user's speech → first audio frame received."""
        audio = self.audio_events(after)
        if not audio or self.last_speech_sent is None:
            return None
        return audio[0].t - self.last_speech_sent

    def reply_pcm(self) -> np.ndarray:
        return np.concatenate(self._pcm) if self._pcm else np.zeros(0, np.int16)

    @property
    def reply_rate(self) -> int:
        return self._decoder.sample_rate if self._decoder else 24000

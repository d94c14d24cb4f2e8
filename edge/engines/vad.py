"""Voice activity detection: sherpa-onnx's VoiceActivityDetector with the silero ONNX model.

Each detector keeps its own ONNX session (~12 MB), so detectors are pooled: a session borrows one
only while it listens, and an idle connected device holds none.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sherpa_onnx

from edge.config import VadConfig
from edge.engines.worker import EngineWorker

SAMPLE_RATE = 16000


@dataclass(slots=True)
class VadResult:
    speaking: bool  # the detector is inside speech right now
    utterances: list[np.ndarray]  # speech segments that ended (float32, 16 kHz)


class VadDetector:
    """One stream's detector. sherpa-onnx's detector is not thread-safe, and a feed may still be
    running in a worker thread when its session resets or returns it (a cancelled await does not
    stop the thread), so every call holds the detector's own lock; each call takes about 1 ms."""

    def __init__(self, model: Path, config: VadConfig) -> None:
        self._lock = threading.Lock()
        cfg = sherpa_onnx.VadModelConfig()
        cfg.silero_vad.model = str(model)
        cfg.silero_vad.threshold = config.threshold
        cfg.silero_vad.min_silence_duration = config.end_silence_ms / 1000.0
        cfg.silero_vad.min_speech_duration = config.min_speech_ms / 1000.0
        cfg.silero_vad.max_speech_duration = config.max_utterance_s
        cfg.silero_vad.window_size = 512
        cfg.sample_rate = SAMPLE_RATE
        cfg.num_threads = 1
        self._vad = sherpa_onnx.VoiceActivityDetector(
            cfg, buffer_size_in_seconds=config.max_utterance_s + 10
        )

    def feed(self, samples: np.ndarray) -> VadResult:
        with self._lock:
            self._vad.accept_waveform(samples)
            return VadResult(self._vad.is_speech_detected(), self._drain())

    def flush(self) -> list[np.ndarray]:
        """End of input: whatever speech is pending becomes an utterance."""
        with self._lock:
            self._vad.flush()
            return self._drain()

    def _drain(self) -> list[np.ndarray]:
        segments = []
        while not self._vad.empty():
            segments.append(np.asarray(self._vad.front.samples, dtype=np.float32))
            self._vad.pop()
        return segments

    def reset(self) -> None:
        with self._lock:
            self._vad.reset()


class VadPool:
    def __init__(self, model: Path, config: VadConfig, worker: EngineWorker) -> None:
        self.model = model
        self.config = config
        self.worker = worker
        self._idle: list[VadDetector] = [
            VadDetector(model, config) for _ in range(config.pool_size)
        ]

    def acquire(self) -> VadDetector:
        return self._idle.pop() if self._idle else VadDetector(self.model, self.config)

    def release(self, detector: VadDetector) -> None:
        detector.reset()
        if len(self._idle) < self.config.pool_size:
            self._idle.append(detector)

    async def feed(self, detector: VadDetector, samples: np.ndarray) -> VadResult:
        return await self.worker.run(detector.feed, samples)

    async def flush(self, detector: VadDetector) -> list[np.ndarray]:
        return await self.worker.run(detector.flush)

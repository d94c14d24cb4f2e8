"""Voice activity detection: sherpa-onnx's VoiceActivityDetector with the silero ONNX model.

Each detector keeps its own ONNX sessions (~12 MB each; two with early pauses on), so detectors
are pooled: a session borrows one only while it listens, and an idle connected device holds none.
The pool keeps `vad.pool_size` idle ones (1: the usual single talker never waits for one); a
device that starts talking while all are lent gets a new one made off the event loop. At rest
(no device talking, `MemoryTrimmer`) the idle ones go too: ~20 MB that a board holds for hours
between conversations, against ~0.1 s to make one again in a worker when a device next listens,
while its user is still speaking (its first frames queue meanwhile; none is lost).

Early pauses: the hang-over that ends an utterance (`end_silence_ms`, 700 ms) is long so that a
pause between sentences does not cut the user off. To keep that hang-over from adding speech
recognition's time on top, a second detector with a short hang-over (`early_asr_ms`) reports
each pause as it starts, with the speech so far; the session transcribes it at once, and uses
that text if the pause turns out to be the end of the utterance.

Pre-roll: a segment starts where silero became sure of speech, which can be a syllable late,
and Whisper tiny then heard "Quieter please." as "wider please." (`edge bench answers`). Each
segment is given the `PRE_ROLL_S` of audio before its start, from a ring buffer of the stream
(~1.4 MB per detector). It does not make every short word heard: "Unmute." alone is still
sometimes "mute".
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sherpa_onnx

from edge.config import VadConfig
from edge.workers import Worker

SAMPLE_RATE = 16000
PRE_ROLL_S = 0.25


class RecentAudio:
    """The last samples fed to a stream, by their index in it (a ring buffer)."""

    def __init__(self, seconds: float) -> None:
        self._buffer = np.zeros(int(seconds * SAMPLE_RATE), np.float32)
        self.total = 0  # samples fed since the last reset

    def add(self, samples: np.ndarray) -> None:
        size = self._buffer.size
        if samples.size >= size:
            self._buffer[:] = samples[-size:]
            self._buffer = np.roll(self._buffer, self.total + samples.size)
        else:
            self._buffer[(self.total + np.arange(samples.size)) % size] = samples
        self.total += samples.size

    def span(self, start: int, end: int) -> np.ndarray:
        """Samples [start, end) of the stream, as far as they are still held."""
        start = max(start, self.total - self._buffer.size, 0)
        end = min(end, self.total)
        if start >= end:
            return np.zeros(0, np.float32)
        return self._buffer[np.arange(start, end) % self._buffer.size]

    def reset(self) -> None:
        self.total = 0


@dataclass(slots=True)
class VadResult:
    speaking: bool  # the detector is inside speech right now
    utterances: list[np.ndarray]  # speech segments that ended (float32, 16 kHz)
    # The user has just paused for `early_asr_ms`: the speech of this utterance so far.
    early: np.ndarray | None = None
    # Counts the early pauses of this utterance; `early` is final while it stays the same.
    early_pauses: int = 0


class VadDetector:
    """One stream's detector. sherpa-onnx's detector is not thread-safe, and a feed may still be
    running in a worker thread when its session resets or returns it (a cancelled await does not
    stop the thread), so every call holds the detector's own lock; each call takes about 1 ms."""

    def __init__(self, model: Path, config: VadConfig) -> None:
        self._lock = threading.Lock()
        self._vad = _detector(model, config, config.end_silence_ms)
        early = 0 < config.early_asr_ms < config.end_silence_ms
        self._early = _detector(model, config, config.early_asr_ms) if early else None
        self._early_speech: list[np.ndarray] = []  # this utterance's speech, pause by pause
        # Segments end `end_silence_ms` after their speech, and may be as long as the longest
        # utterance: the audio before the oldest start still wanted is that far back.
        held_s = config.max_utterance_s + config.end_silence_ms / 1000 + 2 * PRE_ROLL_S + 1
        self._recent = RecentAudio(held_s)
        self._early_from = 0  # where the early detector's count began (it is reset alone)

    def feed(self, samples: np.ndarray) -> VadResult:
        with self._lock:
            self._recent.add(samples)
            self._vad.accept_waveform(samples)
            result = VadResult(self._vad.is_speech_detected(), _drain(self._vad, self._recent))
            if self._early is not None:
                self._early.accept_waveform(samples)
                paused = _drain(self._early, self._recent, self._early_from)
                if paused:
                    self._early_speech.extend(paused)
                    result.early = np.concatenate(self._early_speech)
                result.early_pauses = len(self._early_speech)
                if self._early.is_speech_detected():
                    result.early_pauses = -1  # speaking again: no early text is final
                if result.utterances:
                    self._early_speech.clear()
            return result

    def flush(self) -> list[np.ndarray]:
        """End of input: whatever speech is pending becomes an utterance."""
        with self._lock:
            self._vad.flush()
            if self._early is not None:
                self._early.reset()
                self._early_from = self._recent.total
                self._early_speech.clear()
            return _drain(self._vad, self._recent)

    def reset(self) -> None:
        with self._lock:
            self._recent.reset()  # the detectors count from 0 again
            self._early_from = 0
            self._vad.reset()
            if self._early is not None:
                self._early.reset()
            self._early_speech.clear()


def _detector(model: Path, config: VadConfig, silence_ms: int) -> Any:
    cfg = sherpa_onnx.VadModelConfig()
    cfg.silero_vad.model = str(model)
    cfg.silero_vad.threshold = config.threshold
    cfg.silero_vad.min_silence_duration = silence_ms / 1000.0
    cfg.silero_vad.min_speech_duration = config.min_speech_ms / 1000.0
    cfg.silero_vad.max_speech_duration = config.max_utterance_s
    cfg.silero_vad.window_size = 512
    cfg.sample_rate = SAMPLE_RATE
    cfg.num_threads = 1
    return sherpa_onnx.VoiceActivityDetector(
        cfg, buffer_size_in_seconds=config.max_utterance_s + 10
    )


def _drain(vad: Any, recent: RecentAudio, counted_from: int = 0) -> list[np.ndarray]:
    """The segments that ended, each with the audio before its start."""
    segments = []
    while not vad.empty():
        start = counted_from + int(vad.front.start)
        before = recent.span(start - int(PRE_ROLL_S * SAMPLE_RATE), start)
        segments.append(np.concatenate([before, np.asarray(vad.front.samples, np.float32)]))
        vad.pop()
    return segments


class VadPool:
    def __init__(self, model: Path, config: VadConfig, worker: Worker) -> None:
        self.model = model
        self.config = config
        self.worker = worker
        self._idle: list[VadDetector] = [
            VadDetector(model, config) for _ in range(config.pool_size)
        ]

    async def acquire(self) -> VadDetector:
        """An idle detector, or a new one made in a worker thread (~0.1 s: never on the event
        loop, where it would hold every device's audio up)."""
        if self._idle:
            return self._idle.pop()
        return await self.worker.run(VadDetector, self.model, self.config)

    def rest(self) -> int:
        """Let the idle detectors go (the server is at rest); how many went."""
        idle, self._idle = len(self._idle), []
        return idle

    def release(self, detector: VadDetector) -> None:
        detector.reset()
        if len(self._idle) < self.config.pool_size:
            self._idle.append(detector)

    async def feed(self, detector: VadDetector, samples: np.ndarray) -> VadResult:
        return await self.worker.run(detector.feed, samples)

    async def flush(self, detector: VadDetector) -> list[np.ndarray]:
        return await self.worker.run(detector.flush)

"""The VAD's segments carry the audio just before silero was sure of speech (its pre-roll),
taken from the stream by index, also after a reset and past a long stream. The pool lets its idle
detectors go at rest and makes one again when a device listens."""

from __future__ import annotations

import numpy as np
import pytest

from edge.config import Config
from edge.engines.loader import resolve_models
from edge.engines.vad import PRE_ROLL_S, SAMPLE_RATE, RecentAudio, VadDetector, VadPool
from edge.workers import Worker

pytestmark = pytest.mark.models


def test_recent_audio_gives_back_samples_by_their_index_in_the_stream() -> None:
    recent = RecentAudio(0.01)  # 160 samples
    stream = np.arange(1000, dtype=np.float32)
    for start in range(0, 1000, 70):
        recent.add(stream[start : start + 70])
    assert np.array_equal(recent.span(900, 1000), stream[900:1000])
    assert np.array_equal(recent.span(700, 1000), stream[840:1000])  # older ones are gone
    recent.add(np.arange(1000, 1500, dtype=np.float32))  # more than it holds, at once
    assert np.array_equal(recent.span(1400, 1500), np.arange(1400, 1500, dtype=np.float32))
    recent.reset()
    assert recent.span(0, 10).size == 0


def _speech_in_silence(speech_at_s: float) -> np.ndarray:
    rng = np.random.default_rng(1)
    stream = rng.normal(0, 0.001, int(4 * SAMPLE_RATE)).astype(np.float32)
    t = np.arange(int(0.8 * SAMPLE_RATE)) / SAMPLE_RATE
    voice = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 4 * t)) / 2
    start = int(speech_at_s * SAMPLE_RATE)
    stream[start : start + voice.size] += voice.astype(np.float32)
    return stream


def test_a_segment_starts_a_pre_roll_before_the_detected_speech() -> None:
    config = Config()
    detector = VadDetector(resolve_models(config).vad, config.vad)
    for _round in range(2):  # and the same after a reset
        stream = _speech_in_silence(1.0)
        segments: list[np.ndarray] = []
        for at in range(0, stream.size, 960):  # 60 ms frames, as devices send
            segments += detector.feed(stream[at : at + 960]).utterances
        segments += detector.flush()
        [segment] = segments
        pre_roll = int(PRE_ROLL_S * SAMPLE_RATE)
        # Its first samples are the stream's, from before the speech began.
        offset = next(
            i for i in range(stream.size) if np.allclose(stream[i : i + 64], segment[:64])
        )
        assert offset <= int(1.0 * SAMPLE_RATE) - pre_roll + 400
        assert np.allclose(stream[offset : offset + segment.size], segment)
        detector.reset()


async def test_at_rest_the_pool_lets_its_idle_detectors_go_and_makes_one_when_needed() -> None:
    config = Config()
    worker = Worker("vad-test")
    try:
        pool = VadPool(resolve_models(config).vad, config.vad, worker)
        assert pool.rest() == config.vad.pool_size == 1
        assert pool.rest() == 0
        detector = await pool.acquire()  # made in the worker
        stream = _speech_in_silence(1.0)
        segments: list[np.ndarray] = []
        for at in range(0, stream.size, 960):
            segments += (await pool.feed(detector, stream[at : at + 960])).utterances
        segments += await pool.flush(detector)
        assert len(segments) == 1
        pool.release(detector)
        assert pool.rest() == 1  # kept idle again once given back
    finally:
        worker.shutdown()

"""PCM conversions, resampling and WAV files."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import soxr


def to_float(pcm: np.ndarray) -> np.ndarray:
    return pcm.astype(np.float32) / 32768.0


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited resampling of int16 or float32 mono audio."""
    if from_rate == to_rate or samples.size == 0:
        return samples
    return soxr.resample(samples, from_rate, to_rate)


def frames(pcm: np.ndarray, frame_samples: int) -> list[np.ndarray]:
    """Split int16 PCM into whole frames; the last one is padded with silence."""
    if pcm.size == 0:
        return []
    pad = (-pcm.size) % frame_samples
    if pad:
        pcm = np.concatenate([pcm, np.zeros(pad, dtype=pcm.dtype)])
    return [pcm[i : i + frame_samples] for i in range(0, pcm.size, frame_samples)]


def read_wav(path: str | Path, rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read a 16-bit PCM WAV as mono int16, optionally resampled to `rate`."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV is supported")
        channels, src_rate = wav.getnchannels(), wav.getframerate()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1).astype(np.int16)
    if rate is not None and rate != src_rate:
        data = resample(data, src_rate, rate)
        src_rate = rate
    return data, src_rate


def write_wav(path: str | Path, pcm: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.astype(np.int16).tobytes())

"""What the benchmark's devices say: short phrases of real human speech shipped with edge, plus
short questions spoken by the piper voice, each ending exactly where the speech ends.

The real speech is cut from the two recordings in the MIT-licensed `moonshine-voice` wheel's
assets (see `speech/README.md`): three phrase pairs of Beckett, with pauses of 0.6-0.7 s inside,
and three phrases of A Tale of Two Cities.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.audio.pcm import read_wav

SPEECH_DIR = Path(__file__).with_name("speech")
RATE = 16000
LEAD_IN_S = 0.2  # silence before synthesized speech, like a microphone opened a moment early
# Spoken by the voice: short questions, as people ask a voice assistant; the last makes the
# model call a tool.
QUESTIONS = (
    "What is the capital of France?",
    "How many legs does a spider have?",
    "Who wrote Hamlet?",
    "What is the tallest mountain?",
    "How far away is the moon?",
    "What color is the sky?",
    "Tell me a joke.",
    "What time is it?",
)


@dataclass(frozen=True)
class Utterance:
    name: str
    pcm: np.ndarray  # int16, 16 kHz; the speech ends with the last sample
    real: bool  # a human recording, not the TTS voice

    @property
    def seconds(self) -> float:
        return self.pcm.size / RATE


def recorded(paths: list[Path] | None = None) -> list[Utterance]:
    """The shipped phrases, or the given 16-bit WAV files (trailing silence trimmed)."""
    chosen = paths if paths else sorted(SPEECH_DIR.glob("*.wav"))
    return [Utterance(p.stem, trim_trailing_silence(read_wav(p, RATE)[0]), True) for p in chosen]


def synthesized(pcm_of: dict[str, np.ndarray]) -> list[Utterance]:
    lead = np.zeros(int(LEAD_IN_S * RATE), np.int16)
    return [
        Utterance(text, trim_trailing_silence(np.concatenate([lead, pcm])), False)
        for text, pcm in pcm_of.items()
    ]


def trim_trailing_silence(pcm: np.ndarray, frame: int = 160, floor_db: float = -45.0) -> np.ndarray:
    """Cut after the last 10 ms frame louder than `floor_db` below full scale, so that "end of
    speech" is the last sample sent, not a guess."""
    usable = pcm.size // frame * frame
    if usable == 0:
        return pcm
    frames = pcm[:usable].astype(np.float32).reshape(-1, frame) / 32768.0
    rms = np.sqrt(np.mean(frames**2, axis=1) + 1e-12)
    loud = np.nonzero(20 * np.log10(rms) > floor_db)[0]
    return pcm[: (int(loud[-1]) + 1) * frame] if loud.size else pcm


def words(text: str) -> list[str]:
    """A transcript's words, lower-cased, to count against what was said."""
    return re.findall(r"[\w']+", text.lower())

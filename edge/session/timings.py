"""When each stage of one turn happened, reported relative to the end of the user's speech."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class TurnTimings:
    """Monotonic timestamps of one turn's stages, reported relative to the end of speech."""

    end_of_speech: float = field(default_factory=time.monotonic)
    asr_done: float | None = None
    llm_first_token: float | None = None
    tts_first_audio: float | None = None
    first_frame_sent: float | None = None

    def summary(self) -> str:
        def ms(t: float | None) -> str:
            return "-" if t is None else f"{(t - self.end_of_speech) * 1000:.0f}ms"

        return (
            f"asr {ms(self.asr_done)}, llm first token {ms(self.llm_first_token)}, "
            f"first tts audio {ms(self.tts_first_audio)}, first frame {ms(self.first_frame_sent)}"
        )

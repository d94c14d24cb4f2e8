"""Speech recognition: one interface, two back-ends.

- faster-whisper for CTranslate2 Whisper (the embedded default that PyPI ships);
- sherpa-onnx for ONNX models (Whisper, SenseVoice, Paraformer), which real boards use.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from loguru import logger

from edge.config import AsrConfig
from edge.workers import Worker, usable_threads

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class Bias:
    """A second reading of a short clip, steered towards the words of household commands: a
    Whisper prompt of them (`prompt`) and a beam search whose best hypothesis that is a command
    (`command`) is taken, if it scores within `BIAS_MARGIN` of the best one and the plain reading
    is not the same. Whisper tiny.en hears "Unmute." as "A mute." (which mutes), "Dim the
    screen." as "Then the screen.", "Volume up." as "value up."; greedy decoding with the prompt
    fixed some, the beam fixed the rest. The prompt also makes Whisper repeat short phrases
    ("Light mode. Light mode."), and can turn a near miss into a command ("Like mode." → "Light
    mode."), so a reading that repeats itself, or whose length differs from the plain one's by
    more than a word, is not taken. The second reading costs 50-100 ms of decoding here, so only
    a plain reading that `near` finds close to a command (it names what commands act on) gets
    one."""

    prompt: str
    command: Callable[[str], object | None]  # the command a text is, None for none
    near: Callable[[str], bool]


class Recognizer(Protocol):
    def transcribe(self, samples: np.ndarray, bias: Bias | None = None) -> str: ...


class FasterWhisperRecognizer:
    """Whisper in CTranslate2. faster-whisper pads every clip to Whisper's 30-second window, and
    the encoder's cost grows faster than the window (attention): a two-second question pays
    ~250 ms of encoder of the ~270 ms here. CTranslate2 accepts a shorter window, and Whisper
    transcribes a clip in a 15-second window as it does in the full one (measured on the shipped
    recordings and the test phrases: 2 of 25 differ, in punctuation; a 10-second window got a
    word wrong, and a clip plus one second of silence hallucinated on a few). The encoder then
    costs ~50 ms. So a clip is encoded in at least `MIN_WINDOW_FRAMES` (with `TAIL_FRAMES` of
    silence after it) and decoded greedily with faster-whisper's own prompt, suppressed tokens
    and no-speech rule. A doubtful result (faster-whisper would retry it at a higher
    temperature), a clip longer than the window, or a multilingual model with no language set
    goes through faster-whisper's full `transcribe`."""

    MIN_WINDOW_FRAMES = 1500  # 15 s (10 ms frames)
    TAIL_FRAMES = 200  # at least 2 s of silence after the speech
    WINDOW_FRAMES = 3000  # Whisper's 30 s
    TOKENS_BASE, TOKENS_PER_SECOND = 10, 8  # the most tokens a clip may give
    # faster-whisper's defaults for a result worth a retry, and for silence.
    COMPRESSION_RATIO_LIMIT = 2.4
    LOG_PROB_LIMIT = -1.0
    NO_SPEECH_LIMIT = 0.6
    BIAS_MAX_FRAMES = 400  # a second, biased reading for clips up to 4 s: commands are short
    BIAS_BEAM = 5
    # A plain reading that is a command needs no second one above this mean log-probability per
    # token: longer commands read at -0.1 to -0.4 on the voice; "A mute." (for "Unmute.") at -0.8.
    SURE = -0.5
    BIAS_MARGIN = (
        0.6  # how far below the best hypothesis (length-normalised log-prob) a command may be
    )

    def __init__(self, model_dir: Path, config: AsrConfig) -> None:
        _import_lazily("av")
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer

        self._model = WhisperModel(
            str(model_dir),
            device="cpu",
            compute_type="int8",
            cpu_threads=usable_threads(config.threads),
        )
        self._language = config.language or None
        multilingual = self._model.model.is_multilingual
        self._short_clips = self._language is not None or not multilingual
        self._tokenizer = Tokenizer(
            self._model.hf_tokenizer,
            multilingual,
            task="transcribe",
            language=(self._language or "en") if multilingual else None,
        )
        self._prompt = [*self._tokenizer.sot_sequence, self._tokenizer.no_timestamps]
        self._suppress = _suppressed_tokens(self._tokenizer)
        self._biased_prompts: dict[str, list[int]] = {}

    def transcribe(self, samples: np.ndarray, bias: Bias | None = None) -> str:
        features = self._model.feature_extractor(samples)
        frames = features.shape[-1]
        if self._short_clips and frames + self.TAIL_FRAMES <= self.WINDOW_FRAMES:
            text = self._transcribe_short(features, bias)
            if text is not None:
                return text
            logger.debug("asr: a doubtful short-window result; reading the full window")
        return self._transcribe_window(samples)

    def _transcribe_short(self, features: np.ndarray, bias: Bias | None = None) -> str | None:
        """None when faster-whisper would not trust the result."""
        import ctranslate2

        frames = features.shape[-1]
        padding = max(self.TAIL_FRAMES, self.MIN_WINDOW_FRAMES - frames)
        window = np.pad(features, ((0, 0), (0, padding)))[None].astype(np.float32)
        encoded = self._model.model.encode(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(window)), to_cpu=False
        )
        decoded = self._decode(encoded, self._prompt, frames)
        if decoded is None:
            return None
        plain, confidence = decoded
        if not plain or bias is None or frames > self.BIAS_MAX_FRAMES or not bias.near(plain):
            return plain
        if confidence >= self.SURE and bias.command(plain) is not None:
            return plain  # a command read with confidence ("Set the volume to 30.")
        for biased in self._commands_read(encoded, self._biased_prompt(bias.prompt), frames, bias):
            if _takes_biased(plain, biased, bias):
                logger.debug("asr: {!r} read as the command {!r}", plain, biased)
                return biased
        return plain

    def _commands_read(self, encoded: Any, prompt: list[int], frames: int, bias: Bias) -> list[str]:
        """The beam's hypotheses that are commands, best first, within the margin."""
        most = self._most_tokens(prompt, frames)
        result = self._model.model.generate(
            encoded,
            [prompt],
            beam_size=self.BIAS_BEAM,
            num_hypotheses=self.BIAS_BEAM,
            max_length=min(most, self._model.max_length),
            return_scores=True,
            suppress_blank=True,
            suppress_tokens=self._suppress,
        )[0]
        if not result.scores:
            return []
        best = result.scores[0]
        readings = [
            str(self._tokenizer.decode(tokens)).strip()
            for tokens, score in zip(result.sequences_ids, result.scores, strict=True)
            if score >= best - self.BIAS_MARGIN
        ]
        return [text for text in readings if text and bias.command(text) is not None]

    def _biased_prompt(self, prompt: str) -> list[int]:
        if prompt not in self._biased_prompts:
            words = self._tokenizer.encode(" " + prompt.strip())
            self._biased_prompts[prompt] = [self._tokenizer.sot_prev, *words, *self._prompt]
        return self._biased_prompts[prompt]

    def _most_tokens(self, prompt: list[int], frames: int) -> int:
        """Room for fast speech (~4 tokens a second) and then some: a clip that makes Whisper
        repeat itself stops here instead of at 448 tokens (over a second), and is retried."""
        return len(prompt) + int(self.TOKENS_BASE + self.TOKENS_PER_SECOND * frames / 100)

    def _decode(self, encoded: Any, prompt: list[int], frames: int) -> tuple[str, float] | None:
        """The text after `prompt` and its mean log-probability per token: "" for silence, None
        when faster-whisper would not trust it."""
        from faster_whisper.transcribe import get_compression_ratio

        most = self._most_tokens(prompt, frames)
        result = self._model.model.generate(
            encoded,
            [prompt],
            beam_size=1,
            max_length=min(most, self._model.max_length),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppress,
        )[0]
        tokens = result.sequences_ids[0]
        avg_log_prob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        if result.no_speech_prob > self.NO_SPEECH_LIMIT and avg_log_prob < self.LOG_PROB_LIMIT:
            return "", avg_log_prob  # silence or noise, as faster-whisper decides it
        text = str(self._tokenizer.decode(tokens)).strip()
        doubtful = (
            len(prompt) + len(tokens) >= most
            or get_compression_ratio(text) > self.COMPRESSION_RATIO_LIMIT
            or avg_log_prob < self.LOG_PROB_LIMIT
        )
        return None if doubtful else (text, avg_log_prob)

    def _transcribe_window(self, samples: np.ndarray) -> str:
        segments, _info = self._model.transcribe(
            samples,
            language=self._language,
            beam_size=1,
            vad_filter=False,  # our VAD already cut the utterance
            condition_on_previous_text=False,
            without_timestamps=True,
        )
        return " ".join(seg.text.strip() for seg in segments).strip()


class _ImportedOnFirstUse(types.ModuleType):
    """Stands in for a module until one of its names is used, then imports it and hands out
    its names. (The standard library's `LazyLoader` does not stay lazy on Python 3.11: an
    `import` statement of the module loads it.)"""

    def __getattr__(self, attr: str) -> Any:  # only for names the stand-in does not have
        real = sys.modules.get(self.__name__)
        if real is None or real is self:
            del sys.modules[self.__name__]
            real = sys.modules[self.__name__] = importlib.import_module(self.__name__)
        return getattr(real, attr)


def _import_lazily(name: str) -> None:
    """faster-whisper imports PyAV (FFmpeg's libraries) at once, only to decode audio files;
    edge hands it samples, and that import costs the server ~15 MB for nothing."""
    if name not in sys.modules and importlib.util.find_spec(name) is not None:
        sys.modules[name] = _ImportedOnFirstUse(name)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _takes_biased(plain: str, biased: str, bias: Bias) -> bool:
    """The biased reading when it is a command, not the plain reading's, of about the same
    length, and not repeating itself."""
    said, heard = _words(plain), _words(biased)
    pairs = list(pairwise(heard))
    command = bias.command(biased)
    return (
        command is not None
        and command != bias.command(plain)
        and abs(len(heard) - len(said)) <= 1
        and len(set(pairs)) == len(pairs)
    )


def _suppressed_tokens(tokenizer: Any) -> list[int]:
    from faster_whisper.transcribe import get_suppressed_tokens

    return list(get_suppressed_tokens(tokenizer, (-1,)))


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
        threads = usable_threads(config.threads)
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

    def transcribe(self, samples: np.ndarray, bias: Bias | None = None) -> str:
        """`bias` is not used: these models take no prompt."""
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
    def __init__(self, recognizer: Recognizer, worker: Worker) -> None:
        self.recognizer = recognizer
        self.worker = worker

    async def transcribe(
        self, samples: np.ndarray, *, timeout_s: float | None = None, bias: Bias | None = None
    ) -> str:
        if samples.size == 0:
            return ""
        started = time.monotonic()
        text = await self.worker.run(self.recognizer.transcribe, samples, bias, timeout_s=timeout_s)
        logger.debug(
            "asr: {:.1f} s of speech in {:.0f} ms (queue included)",
            samples.size / SAMPLE_RATE,
            1000 * (time.monotonic() - started),
        )
        return text

    async def warm_up(self) -> None:
        """The first decode allocates buffers and is several times slower than later ones."""
        noise = np.random.default_rng(0).normal(0, 0.01, SAMPLE_RATE).astype(np.float32)
        await self.transcribe(noise)

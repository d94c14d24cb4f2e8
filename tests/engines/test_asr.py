"""Both ASR back-ends on real human speech (the Beckett fixture)."""

import numpy as np
import pytest

from edge.audio.pcm import to_float
from edge.config import AsrConfig
from edge.engines.asr import Bias, FasterWhisperRecognizer, SherpaRecognizer, load_recognizer
from tests.helpers import BECKETT_TEXT, SHERPA_WHISPER, ServerThread, word_error_rate

pytestmark = pytest.mark.models


def test_faster_whisper_embedded_model(harness: ServerThread, beckett: np.ndarray) -> None:
    text = harness.engines.asr.recognizer.transcribe(to_float(beckett))
    assert word_error_rate(BECKETT_TEXT, text) <= 0.2, text


def test_faster_whisper_reads_short_clips_in_a_short_window(
    harness: ServerThread, beckett: np.ndarray
) -> None:
    recognizer = harness.engines.asr.recognizer
    assert isinstance(recognizer, FasterWhisperRecognizer)
    speech = to_float(beckett)
    features = recognizer._model.feature_extractor(speech)
    # The same words as in Whisper's full 30-second window, from a 15-second one.
    short = recognizer._transcribe_short(features)
    assert short is not None
    assert word_error_rate(recognizer._transcribe_window(speech), short) <= 0.1, short
    assert word_error_rate(BECKETT_TEXT, short) <= 0.2, short
    # Noise is silence for it, as for faster-whisper.
    noise = np.random.default_rng(3).normal(0, 0.02, 32000).astype(np.float32)
    assert recognizer.transcribe(noise) == ""
    # A clip longer than the window goes the full way, in 30-second pieces.
    long_clip = np.concatenate([speech, np.zeros(16000 * 12, np.float32), speech])
    twice = recognizer.transcribe(long_clip)
    assert word_error_rate(f"{BECKETT_TEXT} {BECKETT_TEXT}", twice) <= 0.2, twice


def test_sherpa_onnx_whisper(beckett: np.ndarray) -> None:
    recognizer = load_recognizer(
        AsrConfig(engine="sherpa-whisper", model_dir=str(SHERPA_WHISPER)), None
    )
    assert isinstance(recognizer, SherpaRecognizer)
    text = recognizer.transcribe(to_float(beckett))
    assert word_error_rate(BECKETT_TEXT, text) <= 0.2, text


def test_missing_model_files_are_named(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FileNotFoundError, match="tokens"):
        load_recognizer(AsrConfig(engine="sherpa-sense-voice", model_dir=str(tmp_path)), None)


def test_a_biased_second_reading_hears_commands_and_nothing_else(harness: ServerThread) -> None:
    """The command words tiny.en mishears are read again with the commands' prompt (the piper
    voice says them; its steady synthesis gives the same audio every run). Utterances that are
    not commands stay as the plain reading gives them, whatever the prompt makes of them."""
    from edge.bench.utterances import synthesized
    from edge.commands.runner import ASR_BIAS, match

    recognizer = harness.engines.asr.recognizer
    tts = harness.engines.tts

    def heard(text: str, bias: Bias | None) -> str:
        # As the devices of `edge bench answers` say it: after 0.2 s of silence.
        (said,) = synthesized({text: tts.synthesize_pcm(text, 16000, steady=True)})
        return recognizer.transcribe(to_float(said.pcm), bias)

    commands = ("Unmute the speaker.", "Dim the display.", "Volume up.", "Unmute.")
    right = [text for text in commands if match(heard(text, ASR_BIAS)) == match(text)]
    # All four here; a CPU with other int8 kernels may read one of them otherwise.
    assert len(right) >= 3, right
    for text in (
        "Where do I live?",
        "Good morning!",
        "Tell me a joke.",
        "What's the weather like?",
    ):
        assert match(heard(text, ASR_BIAS)) is None, text


@pytest.mark.parametrize(
    ("plain", "biased", "taken"),
    [
        ("A mute.", "unmute.", True),  # a command read as another: the biased one is taken
        ("Then the display.", "dim the display.", True),
        ("value up.", "Volume up.", True),
        ("Volume down.", "Volume down.", False),  # the same words
        ("Like most.", "Light mode. Light mode.", False),  # repeats itself
        ("value up.", "volume up volume up volume", False),
        ("Then.", "Turn the volume up.", False),  # three words more
        ("Tell me the joke.", "Tell me that joke.", False),  # not a command
    ],
)
def test_when_the_biased_reading_is_taken(plain: str, biased: str, taken: bool) -> None:
    from edge.commands.runner import ASR_BIAS
    from edge.engines.asr import _takes_biased

    assert _takes_biased(plain, biased, ASR_BIAS) is taken


def test_pyav_is_loaded_only_if_faster_whisper_decodes_a_file() -> None:
    # In a process of its own: this one may have imported PyAV already.
    import subprocess
    import sys

    script = """
import io, sys, wave
from pathlib import Path
from edge.config import load
from edge.engines.asr import FasterWhisperRecognizer
from edge.engines.loader import resolve_models
models = resolve_models(load(None, {}))
FasterWhisperRecognizer(models.asr_dir, models.asr)
mapped = lambda: any("/av.libs/" in line for line in open("/proc/self/maps"))
print("loaded" if mapped() else "not loaded")
from faster_whisper.audio import decode_audio
clip = io.BytesIO()
with wave.open(clip, "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000); w.writeframes(bytes(3200))
clip.seek(0)
print(decode_audio(clip).shape, "loaded" if mapped() else "not loaded")
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    ).stdout.split("\n")
    assert out[0] == "not loaded"  # recognising samples never needs FFmpeg
    assert out[1] == "(1600,) loaded"  # decoding a file still works: PyAV loads then

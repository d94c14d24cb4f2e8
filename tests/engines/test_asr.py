"""Both ASR back-ends on real human speech (the Beckett fixture)."""

import numpy as np
import pytest

from edge.audio.pcm import to_float
from edge.config import AsrConfig
from edge.engines.asr import SherpaRecognizer, load_recognizer
from tests.helpers import BECKETT_TEXT, SHERPA_WHISPER, ServerThread, word_error_rate

pytestmark = pytest.mark.models


def test_faster_whisper_embedded_model(harness: ServerThread, beckett: np.ndarray) -> None:
    text = harness.engines.asr.recognizer.transcribe(to_float(beckett))
    assert word_error_rate(BECKETT_TEXT, text) <= 0.2, text


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

"""Speech recognition started at the user's pause (vad.early_asr_ms), before the hang-over ends
the turn: its text is used only when nothing was said after that pause."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edge.bench.utterances import trim_trailing_silence
from edge.sim.device import SimDevice
from tests.e2e.scenario import assert_reply_bracket, auto_turn, texts
from tests.helpers import http_get, metric_value, silence, word_error_rate

pytestmark = pytest.mark.models


async def _early_counts(url: str) -> tuple[float, float]:
    _, _, text = await http_get(f"{url}/metrics")
    return (
        metric_value(text, "edge_early_asr_total", outcome="used"),
        metric_value(text, "edge_early_asr_total", outcome="discarded"),
    )


async def test_a_question_said_in_one_go_is_answered_from_the_early_text(
    make_server: Any, speak: Any
) -> None:
    server = make_server(tools={"enabled": False})
    dev = SimDevice(server.ws_url)
    await dev.connect()
    mark = await auto_turn(dev, speak("What is the capital of France?"))
    await dev.wait_played()
    used, _ = await _early_counts(server.http_url)
    await dev.drop()
    assert_reply_bracket(dev, mark)
    assert used == 1
    stt = texts(dev, "stt", mark)
    assert word_error_rate("What is the capital of France?", stt[0]) <= 0.2, stt
    assert "paris" in " ".join(texts(dev, "sentence", mark)).lower()


async def test_speech_after_a_pause_is_not_cut_off_by_the_early_text(
    make_server: Any, speak: Any
) -> None:
    # A 450 ms pause: long enough to start recognition (200 ms), too short to end the turn.
    server = make_server(tools={"enabled": False}, vad={"early_asr_ms": 200, "end_silence_ms": 700})
    first = trim_trailing_silence(speak("My name is Alice."))
    second = trim_trailing_silence(speak("What is my name?")[::-1])[::-1]  # its lead-in too
    said = np.concatenate([first, silence(0.45), second, silence(0.2)])
    dev = SimDevice(server.ws_url)
    await dev.connect()
    mark = await auto_turn(dev, said)
    await dev.wait_played()
    used, discarded = await _early_counts(server.http_url)
    await dev.drop()
    assert_reply_bracket(dev, mark)
    stt = texts(dev, "stt", mark)
    assert len(stt) == 1
    assert word_error_rate("My name is Alice. What is my name?", stt[0]) <= 0.2, stt
    assert discarded >= 1 and used == 1  # the pause's text was dropped, the final one used

"""Speech recognition started at the user's pause (vad.early_asr_ms), before the hang-over ends
the turn: its text is used only when nothing was said after that pause. The answer begun from it
(vad.preemptive_answer) is held: nothing reaches the device, the memory or a tool before the
turn is confirmed, and it is dropped when the user speaks on."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edge.bench.utterances import trim_trailing_silence
from edge.sim.device import SimDevice
from tests.e2e.scenario import assert_reply_bracket, auto_turn, kinds, texts
from tests.helpers import http_get, metric_value, silence, wait_until, word_error_rate

pytestmark = pytest.mark.models


async def _early_counts(url: str) -> tuple[float, float]:
    _, _, text = await http_get(f"{url}/metrics")
    return (
        metric_value(text, "edge_early_asr_total", outcome="used"),
        metric_value(text, "edge_early_asr_total", outcome="discarded"),
    )


async def _held_counts(url: str) -> dict[str, float]:
    _, _, text = await http_get(f"{url}/metrics")
    return {
        outcome: metric_value(text, "edge_held_answers_total", outcome=outcome)
        for outcome in ("used", "dropped", "declined")
    }


async def test_a_question_said_in_one_go_is_answered_from_the_early_text(
    make_server: Any, speak: Any
) -> None:
    server = make_server(tools={"enabled": False})
    dev = SimDevice(server.ws_url)
    await dev.connect()
    mark = await auto_turn(dev, speak("What is the capital of France?"))
    await dev.wait_played()
    used, _ = await _early_counts(server.http_url)
    held = await _held_counts(server.http_url)
    await dev.drop()
    assert_reply_bracket(dev, mark)
    assert used == 1
    assert held == {"used": 1, "dropped": 0, "declined": 0}  # answered while the hang-over ran
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
    held = await _held_counts(server.http_url)
    _, _, metrics = await http_get(f"{server.http_url}/metrics")
    await dev.drop()
    assert_reply_bracket(dev, mark)
    stt = texts(dev, "stt", mark)
    assert len(stt) == 1
    assert word_error_rate("My name is Alice. What is my name?", stt[0]) <= 0.2, stt
    assert discarded >= 1 and used == 1  # the pause's text was dropped, the final one used
    # The answer begun at the pause was dropped unheard: one reply, one turn, the whole question.
    assert held["dropped"] >= 1 and held["used"] == 1, held
    assert kinds(dev, mark).count("tts:start") == 1
    assert metric_value(metrics, "edge_turns_total", kind="plain") == 1


async def test_a_held_answer_calls_a_device_tool_only_once_the_turn_is_confirmed(
    make_server: Any, speak: Any
) -> None:
    server = make_server(tools={"local_commands": False})  # the model's call, not a command
    dev = SimDevice(server.ws_url)
    await dev.connect()
    # Once the device's tool list has been read into the model: answers are held only when
    # the model is free.
    llm, services = server.harness.engines.llm, server.server.services
    await wait_until(lambda: "set_volume" in str(services.warmer.warmed) and not llm.busy)
    mark = await auto_turn(dev, speak("Turn the volume down to 30."))
    await dev.wait_played()
    held = await _held_counts(server.http_url)
    await dev.drop()
    assert held["used"] == 1, held
    assert dev.mcp.calls == [("self.audio_speaker.set_volume", {"volume": 30})]
    # The model wrote the call while the hang-over ran; the device got it after the `stt`.
    messages = dev.json_messages(mark)
    stt_at = next(i for i, m in enumerate(messages) if m.get("type") == "stt")
    call_at = next(
        i
        for i, m in enumerate(messages)
        if m.get("type") == "mcp" and m["payload"].get("method") == "tools/call"
    )
    assert stt_at < call_at
    assert_reply_bracket(dev, mark)

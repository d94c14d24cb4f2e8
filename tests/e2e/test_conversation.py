"""Whole conversations: real speech in, spoken answer out, the answer heard back through ASR."""

from __future__ import annotations

import numpy as np
import pytest

from edge.assistant.prompt import PromptBuilder
from edge.audio.pcm import resample, to_float
from edge.sim.device import SimDevice
from edge.tools.registry import ToolSet
from tests.e2e.scenario import assert_reply_bracket, auto_turn, manual_turn, texts
from tests.helpers import BECKETT_TEXT, Running, ServerThread, wait_until, word_error_rate, words

pytestmark = pytest.mark.models


def heard_back(harness: ServerThread, dev: SimDevice) -> str:
    """What a listener hears in the reply: the device's decoded audio, recognised again."""
    pcm = resample(dev.reply_pcm(), dev.reply_rate, 16000)
    return harness.engines.asr.recognizer.transcribe(to_float(np.asarray(pcm, np.int16)))


def check_spoken_reply(harness: ServerThread, dev: SimDevice, mark: int) -> None:
    sentences = " ".join(texts(dev, "sentence", mark))
    assert words(sentences), "no sentence_start text"
    spoken = heard_back(harness, dev)
    # As many words heard as were said, up to three: the model may answer in two ("Fail
    # better." to Beckett's lines); the error rate below checks they are the ones said.
    assert len(words(spoken)) >= min(3, len(words(sentences))), spoken
    assert all(w.isascii() for w in words(spoken)), spoken  # English, not noise
    # The reply's voice has piper's random noise, and tiny.en sometimes mishears a name in it.
    assert word_error_rate(sentences, spoken) <= 0.5, (sentences, spoken)


async def test_real_human_speech_push_to_talk(
    server: Running, harness: ServerThread, beckett: np.ndarray
) -> None:
    dev = SimDevice(server.ws_url)
    await dev.connect()
    mark = await manual_turn(dev, beckett)
    await dev.wait_played()
    assert_reply_bracket(dev, mark)
    stt = texts(dev, "stt", mark)
    assert len(stt) == 1 and word_error_rate(BECKETT_TEXT, stt[0]) <= 0.2, stt
    check_spoken_reply(harness, dev, mark)
    await dev.drop()


async def test_synthesized_question_auto_mode(
    server: Running, harness: ServerThread, question: np.ndarray, greedy: None
) -> None:
    # Greedy: at 0.4 the model now and then answers just "Paris.", too short to hear back.
    dev = SimDevice(server.ws_url)
    await dev.connect()
    mark = await auto_turn(dev, question)
    await dev.wait_played()
    assert_reply_bracket(dev, mark)
    stt = texts(dev, "stt", mark)
    assert word_error_rate("What is the capital of France?", stt[0]) <= 0.2, stt
    check_spoken_reply(harness, dev, mark)
    assert "paris" in " ".join(texts(dev, "sentence", mark)).lower()
    await dev.drop()


async def test_the_assistant_remembers_within_a_connection(make_server, speak) -> None:  # type: ignore[no-untyped-def]
    # Not about tools: with them the 0.5B model sometimes answers "My name is Alice." by
    # calling the clock, and the memory under test is then never used.
    server = make_server(tools={"enabled": False})
    dev = SimDevice(server.ws_url)
    await dev.connect()
    await auto_turn(dev, speak("My name is Alice."))
    await dev.wait_played()
    mark = await auto_turn(dev, speak("What is my name?"))
    assert "alice" in " ".join(texts(dev, "sentence", mark)).lower()
    await dev.drop()


async def test_the_next_prompt_is_read_while_the_answer_plays(make_server, speak) -> None:  # type: ignore[no-untyped-def]
    server = make_server(tools={"enabled": False})
    llm = server.harness.engines.llm
    dev = SimDevice(server.ws_url)
    await dev.connect()
    await auto_turn(dev, speak("My name is Alice and I love long walks by the river."))
    await dev.wait_played()
    # Once the answer was written, the session had the model read the next prompt: the last
    # turn stays in the model's context as it was read and written, its clock included, so
    # that read was only the end of that turn, the new clock and the start of the next.
    prompt, found = llm._loop.placed[-1]
    assert 0 < prompt - found <= 40, (prompt, found)
    session = server.server.devices.sessions[dev.device_id]
    builder = PromptBuilder(server.server.config, ToolSet([]))
    ahead = builder.ahead(session.conversation.history(), session.conversation.summary)
    read = server.harness.call(llm.prefetch(*ahead))
    await dev.drop()
    # Left for the next turn: nothing, or the clock from its minute on if it turned meanwhile
    # (the history alone is ~60 tokens, the whole prompt a few hundred).
    assert read <= 16, read


async def test_a_returning_device_reads_only_its_new_words(make_server, speak, greedy) -> None:  # type: ignore[no-untyped-def]
    # As the firmware does: a new connection per conversation. Between them the summary is
    # written, which changes the prompt near its start; the next prompt is read ahead then.
    server = make_server(tools={"enabled": False}, memory={"summaries": True})
    llm = server.harness.engines.llm
    summarizer = server.server.services.summarizer
    dev = SimDevice(server.ws_url, device_id="aa:bb:cc:00:0e:01")
    await dev.connect()
    for text in ("My name is Alice.", "What is the capital of France?"):
        await auto_turn(dev, speak(text))
        await dev.wait_played()
    await dev.drop()
    await wait_until(lambda: summarizer.written == 1 and llm.idle_for() > 1.0, 120)

    llm._loop.placed.clear()
    back = SimDevice(server.ws_url, device_id="aa:bb:cc:00:0e:01")
    await back.connect()
    mark = await auto_turn(back, speak("What is my name?"))
    assert_reply_bracket(back, mark)
    await back.drop()
    # Each prompt read for this connection (the read-ahead while the user spoke, the question,
    # the read-ahead after the answer) found the history and the summary in place: only a
    # clock, words and the chat template around them were left (the history is ~100 tokens).
    read = [prompt - found for prompt, found in llm._loop.placed]
    assert read and max(read) <= 32, read

"""Several devices on one model: a device that aborts or leaves while its answer waits for the
model loses its place in the queue at once; the device being answered is not disturbed; a
second device is answered while the first one's long answer is still being written."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from edge.sim.device import SimDevice
from tests.e2e.scenario import assert_reply_bracket, kinds, wait_log
from tests.helpers import wait_until

STORY = "Tell me a long story about a dragon, in ten sentences."


@pytest.fixture
def no_yield(harness: Any) -> Iterator[None]:
    """With one place at the model and no sentence-by-sentence sharing, a request that waits for
    the model surely waits until the running answer ends: the queue can be observed. Greedy:
    at 0.4 the story was now and then short (44 words in one of eight samples; on CI, once,
    over before the waiter's abort was read), and "nothing waited for it to end" could not be
    seen."""
    llm = harness.engines.llm
    saved = llm.config
    llm.config = saved.replace(yield_between_sentences=False, parallel=1, temperature=0.0)
    yield
    llm.config = saved


async def _ask(dev: SimDevice, text: str) -> int:
    mark = len(dev.events)
    await dev.send_json({"type": "listen", "state": "detect", "text": text})
    return mark


@pytest.mark.parametrize("leave", ["abort", "disconnect"])
async def test_queued_work_is_cancelled_at_once(
    make_server: Any, harness: Any, no_yield: None, log_lines: list[dict[str, Any]], leave: str
) -> None:
    server = make_server(tools={"enabled": False}, llm={"max_tokens": 400})
    llm = harness.engines.llm
    talker = SimDevice(server.ws_url, device_id="aa:00:00:00:00:0a")
    waiter = SimDevice(server.ws_url, device_id="aa:00:00:00:00:0b")
    await talker.connect()
    await waiter.connect()
    try:
        talker_mark = await _ask(talker, STORY)
        await talker.wait_json(lambda m: m.get("state") == "sentence_start", 60, after=talker_mark)
        waiter_mark = await _ask(waiter, "What is two plus two?")
        await wait_until(lambda: llm.waiting == 1)  # the waiter's answer is queued for the model
        if leave == "abort":
            await waiter.send_json({"type": "abort", "reason": "wake_word_detected"})
            await wait_log(log_lines, "aa:00:00:00:00:0b", "abort (wake_word_detected)", 10)
        else:
            await waiter.drop()
        await wait_until(lambda: llm.waiting == 0, 10)
        assert llm.busy  # still the talker's story: nothing waited for it to end
        sentences = len(talker.json_messages(talker_mark))
        await talker.wait_json(
            lambda m: m.get("state") == "sentence_start", 60, after=talker_mark + sentences
        )  # the story goes on
        await talker.send_json({"type": "abort"})  # enough of it
        await talker.wait_tts_stop(30, after=talker_mark)
        assert_reply_bracket(talker, talker_mark, with_stt=True)
        log = await wait_log(log_lines, "aa:00:00:00:00:0b", "abort" if leave == "abort" else "")
        assert "turn:" not in log  # the waiter was never answered
        if leave == "abort":
            # Its answer never had a sentence, so the device never showed "speaking": no
            # `tts start` (and so no `tts stop`), no audio.
            assert kinds(waiter, waiter_mark) == ["stt"]
    finally:
        await talker.drop()
        if leave == "abort":
            await waiter.drop()


async def test_a_second_device_is_answered_while_a_long_answer_is_written(
    make_server: Any, harness: Any
) -> None:
    server = make_server(tools={"enabled": False})
    first = SimDevice(server.ws_url, device_id="aa:00:00:00:00:1a")
    second = SimDevice(server.ws_url, device_id="aa:00:00:00:00:1b")
    await first.connect()
    await second.connect()
    try:
        first_mark = await _ask(first, STORY)
        await first.wait_json(lambda m: m.get("state") == "sentence_start", 60, after=first_mark)
        second_mark = await _ask(second, "What is the capital of France?")
        await second.wait_json(lambda m: m.get("state") == "sentence_start", 60, after=second_mark)
        # The first device's story was still being told when the second device got its answer.
        assert not any(
            m.get("type") == "tts" and m.get("state") == "stop"
            for m in first.json_messages(first_mark)
        )
        await second.wait_tts_stop(60, after=second_mark)
        # The story goes on after the interruption; then the listener has heard enough.
        await first.wait_json(
            lambda m: m.get("state") == "sentence_start", 60, after=len(first.events)
        )
        await first.send_json({"type": "abort"})
        await first.wait_tts_stop(30, after=first_mark)
        for dev, mark in ((first, first_mark), (second, second_mark)):
            assert_reply_bracket(dev, mark, with_stt=True)
    finally:
        await first.drop()
        await second.drop()

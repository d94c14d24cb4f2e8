"""Which answers take part in a decode step (`edge.engines.llm.pacing`), and whether writers
take turns one per step (`edge.engines.llm.step_costs`): the rules alone, with no model. The
real model's side is in test_llm_fairness."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from edge.engines.llm.pacing import SPEECH_AHEAD_S, SPEECH_WEIGHT_PER_S, stepped_writers
from edge.engines.llm.request import Request
from edge.engines.llm.sampling import StopFilter
from edge.engines.llm.step_costs import REMEASURE_EVERY, StepCosts


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _request(
    loop: asyncio.AbstractEventLoop,
    text: str = "",
    speaking_since: float | None = None,
    ahead: bool = False,
) -> Request:
    request = Request([1, 2, 3], 50, 0.0, None, StopFilter([]), 1e9, 30.0, loop, ahead=ahead)
    request.text, request.speaking_since = text, speaking_since
    return request


SENTENCES = "The dragon flew over the hills and the river. " * 4  # ~9 s of speech


def test_nobody_waits_while_no_answer_waits_for_its_first_sentence(
    loop: asyncio.AbstractEventLoop,
) -> None:
    far_ahead = _request(loop, SENTENCES, speaking_since=100.0)
    speaking = _request(loop, "It is sunny.", speaking_since=100.0)
    assert stepped_writers([far_ahead, speaking], [], now=100.5) == [far_ahead, speaking]
    # A read-ahead or a summary being read is nobody's first sentence.
    background = _request(loop, ahead=True)
    assert stepped_writers([far_ahead], [background], now=100.5) == [far_ahead]


def test_an_answer_far_ahead_waits_while_another_waits_for_its_first_sentence(
    loop: asyncio.AbstractEventLoop,
) -> None:
    far_ahead = _request(loop, SENTENCES, speaking_since=100.0)
    just_started = _request(loop, "The capital", speaking_since=None)
    behind = _request(loop, "It is sunny.", speaking_since=100.0)  # its speech is running out
    assert stepped_writers([far_ahead, just_started, behind], [], now=100.5) == [
        just_started,
        behind,
    ]
    # A question whose prompt is still being read waits for its first sentence too.
    question = _request(loop)
    assert stepped_writers([far_ahead, behind], [question], now=100.5) == [behind]


def test_an_answer_that_waited_takes_part_again_before_its_speech_runs_out(
    loop: asyncio.AbstractEventLoop,
) -> None:
    far_ahead = _request(loop, SENTENCES, speaking_since=100.0)
    question = _request(loop)
    written_s = len(SENTENCES) / SPEECH_WEIGHT_PER_S
    waits_until = 100.0 + written_s - SPEECH_AHEAD_S
    assert stepped_writers([far_ahead], [question], now=waits_until - 0.1) == []
    assert stepped_writers([far_ahead], [question], now=waits_until + 0.1) == [far_ahead]


def test_chinese_speech_counts_each_character_as_a_syllable(
    loop: asyncio.AbstractEventLoop,
) -> None:
    # 20 characters are ~3 s of Chinese speech, but only 1 s as Latin letters.
    chinese = _request(loop, "今天天气很好，我们去公园散步吧。明天见。", speaking_since=100.0)
    question = _request(loop)
    assert stepped_writers([chinese], [question], now=100.0) == []


def test_writers_take_turns_only_while_that_is_measured_to_be_cheaper() -> None:
    costs = StepCosts()
    assert not costs.take_turns(threads=2, writers=3)  # nothing measured: together
    costs.record(2, 3, 0.090)
    assert not costs.take_turns(2, 3)  # one alone not measured yet
    costs.record(2, 1, 0.020)
    assert costs.take_turns(2, 3)  # 90 ms together against 3 x 20 ms
    assert not costs.take_turns(1, 3)  # another thread count is another board
    assert not costs.take_turns(2, 1)
    costs.record(2, 4, 0.070)
    assert not costs.take_turns(2, 4)  # 70 ms together against 4 x 20 ms: together


def test_taking_turns_steps_together_now_and_then_to_measure_again() -> None:
    costs = StepCosts()
    costs.record(2, 1, 0.020)
    costs.record(2, 2, 0.070)
    choices = [costs.take_turns(2, 2) for _ in range(3 * REMEASURE_EVERY)]
    assert choices.count(False) == 3
    # A wide step measured cheaper again (the load changed) ends the turns within a few steps.
    for _ in range(8):
        costs.record(2, 2, 0.030)
    assert not costs.take_turns(2, 2)

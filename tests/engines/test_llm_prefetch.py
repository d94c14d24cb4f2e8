"""Reading a device's prompt ahead while the user speaks, with the real model.

Counts of tokens and order of events only: no assertion on how long anything took."""

from __future__ import annotations

import asyncio
from typing import Any

from edge.config import DEFAULT_SYSTEM_PROMPT
from tests.helpers import ServerThread, wait_until

HISTORY = [
    {"role": "user", "content": "My name is Ada and I live in a small house by the sea."},
    {"role": "assistant", "content": "Nice to meet you, Ada. The sea must be lovely."},
]


def _ahead(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, *history]


async def _answer(llm: Any, messages: list[dict[str, Any]]) -> str:
    out = ""
    async for piece in llm.stream(messages, max_tokens=40):
        out += piece
    return out


def test_the_prompt_read_ahead_is_kept_for_the_answer(harness: ServerThread, llm: Any) -> None:
    async def scenario() -> tuple[int, int, str]:
        first = await llm.prefetch(_ahead(HISTORY))
        again = await llm.prefetch(_ahead(HISTORY))  # everything is in the cache already
        question = {"role": "user", "content": "What is my name?"}
        return first, again, await _answer(llm, [*_ahead(HISTORY), question])

    first, again, answer = harness.call(scenario())
    assert first > 20  # the history and the start of the user's turn
    assert again == 0
    assert "Ada" in answer


def test_reading_ahead_never_waits_and_gives_way_to_a_request(
    harness: ServerThread, llm: Any
) -> None:
    long_history = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"Line {i}: " + "word " * 40}
        for i in range(8)
    ]

    async def scenario() -> tuple[int, int, int, str]:
        # Nothing to read is done at once while the model is busy.
        answer = asyncio.create_task(_answer(llm, [*_ahead([]), HISTORY[0]]))
        await wait_until(lambda: llm.busy)
        while_busy = await llm.prefetch(_ahead(long_history))
        await answer
        # A request arriving during a long read-ahead takes the model within a chunk.
        total = 8 * 40  # the history alone has more tokens than this
        reading = asyncio.create_task(llm.prefetch(_ahead(long_history)))
        await wait_until(lambda: llm.busy)
        question = [*_ahead([]), {"role": "user", "content": "What is the capital of France?"}]
        reply = await _answer(llm, question)
        return while_busy, await reading, total, reply

    while_busy, read, total, reply = harness.call(scenario())
    assert while_busy == 0
    assert 0 < read < total, (read, total)
    assert "Paris" in reply

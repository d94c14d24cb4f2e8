"""Background work at the model (summaries, read-aheads, a device's tool prefix) gives way to a
live turn within one model step, with the real model. Order of events only."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from edge.config import DEFAULT_SYSTEM_PROMPT
from edge.errors import Preempted
from tests.helpers import ServerThread

pytestmark = pytest.mark.models


def _prompt(text: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, {"role": "user", "content": text}]


def test_a_background_generation_gives_way_to_an_answer_within_a_step(
    harness: ServerThread, llm: Any
) -> None:
    llm.config = llm.config.replace(temperature=0.0)

    async def scenario() -> tuple[list[tuple[bool, str]], bool, str]:
        written: list[tuple[bool, str]] = []  # (the answer was asked for by then, piece)
        asked = False
        first = asyncio.Event()

        async def summary() -> bool:
            try:
                story = _prompt("Tell me a long story about a dragon, in ten sentences.")
                async for piece in llm.stream(story, max_tokens=200, background=True):
                    written.append((asked, piece))
                    first.set()
            except Preempted:
                return True
            return False

        background = asyncio.create_task(summary())
        await first.wait()
        asked = True
        question = _prompt("What is the capital of France?")
        answer = "".join([p async for p in llm.stream(question, max_tokens=20)])
        return written, await background, answer

    written, preempted, answer = harness.call(scenario())
    assert preempted
    assert sum(after for after, _piece in written) <= 1  # one step at most after the question
    assert "Paris" in answer


def test_background_work_does_not_start_while_an_answer_is_written(
    harness: ServerThread, llm: Any
) -> None:
    async def scenario() -> tuple[bool, int]:
        answer = llm.stream(_prompt("Tell me a joke."), max_tokens=30)
        await answer.__anext__()  # an answer is being written
        try:
            async for _ in llm.stream(_prompt("Summarize."), max_tokens=20, background=True):
                pass
            refused = False
        except Preempted:
            refused = True
        read = await llm.prefetch(_prompt("A read-ahead.")[:1])
        await answer.aclose()
        return refused, read

    refused, read = harness.call(scenario())
    assert refused and read == 0

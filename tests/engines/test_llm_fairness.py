"""Fairness, cancellation and backpressure of the shared language model, with the real model.

Order of events only: no assertion on how long anything took."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from edge.config import DEFAULT_SYSTEM_PROMPT
from edge.engines.llm import EngineBusy
from tests.helpers import ServerThread, wait_until

STORY = "Tell me a long story about a dragon, in ten sentences."


def _prompt(text: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, {"role": "user", "content": text}]


async def _collect(
    llm: Any, name: str, text: str, log: list[tuple[str, str]], max_tokens: int = 60
) -> str:
    out = ""
    async for piece in llm.stream(_prompt(text), max_tokens=max_tokens):
        out += piece
        log.append((name, piece))
    log.append((name, "<end>"))
    return out


def test_a_waiting_device_gets_its_first_sentence_before_a_long_answer_goes_on(
    harness: ServerThread, llm: Any
) -> None:
    # Greedy: at 0.4 the 0.5B model now and then declines the story in one short sentence, and
    # then there is nothing to share.
    llm.config = dataclasses.replace(llm.config, temperature=0.0)

    async def scenario() -> tuple[list[tuple[str, str]], str, str, int]:
        log: list[tuple[str, str]] = []
        pauses = llm.pauses
        long = asyncio.create_task(_collect(llm, "A", STORY, log, max_tokens=160))
        await wait_until(lambda: any(name == "A" for name, _ in log))
        short = asyncio.create_task(_collect(llm, "B", "What is the capital of France?", log))
        b_text = await short
        a_text = await long
        return log, a_text, b_text, llm.pauses - pauses

    log, a_text, b_text, pauses = harness.call(scenario())
    order = [name for name, _ in log]
    b_first = order.index("B")
    b_end = log.index(("B", "<end>"))
    # A gave the model up at a sentence end: B was answered while A's story was unfinished...
    assert pauses >= 1, log
    a_before_b = "".join(piece for name, piece in log[:b_first] if name == "A")
    assert a_before_b.rstrip()[-1] in ".!?", a_before_b
    # It said so with an empty piece, so its listener hears that sentence meanwhile.
    assert ("A", "") in log[:b_first], log[:b_first]
    # ...and B's whole first sentence came before A wrote anything more.
    b_text_so_far, b_sentence = "", b_end
    for index in range(b_first, b_end):
        if log[index][0] == "B":
            b_text_so_far += log[index][1]
            if b_text_so_far.rstrip()[-1:] in (".", "!", "?"):
                b_sentence = index
                break
    assert "A" not in order[b_first:b_sentence], order
    assert "Paris" in b_text
    # Then A went on (B may give the model back to it after its own first sentence).
    assert "A" in order[b_sentence:], order
    # A resumed where it stopped: its story does not start over.
    assert a_text.count(a_before_b.strip()) == 1, a_text


def test_requests_are_served_in_arrival_order(harness: ServerThread, llm: Any) -> None:
    async def scenario() -> list[str]:
        log: list[tuple[str, str]] = []
        llm.config = dataclasses.replace(llm.config, yield_between_sentences=False)
        first = asyncio.create_task(_collect(llm, "A", STORY, log, max_tokens=40))
        await wait_until(lambda: bool(log))
        later = []
        for name in ("B", "C", "D"):
            later.append(asyncio.create_task(_collect(llm, name, "Say hello.", log, 12)))
            await wait_until(lambda: llm.waiting == len(later))
        await asyncio.gather(first, *later)
        starts: list[str] = []
        for name, _ in log:
            if name not in starts:
                starts.append(name)
        return starts

    assert harness.call(scenario()) == ["A", "B", "C", "D"]


def test_a_cancelled_request_leaves_the_queue_at_once(harness: ServerThread, llm: Any) -> None:
    async def scenario() -> tuple[int, bool, list[tuple[str, str]], int]:
        log: list[tuple[str, str]] = []
        pauses = llm.pauses
        long = asyncio.create_task(_collect(llm, "A", STORY, log, max_tokens=80))
        await wait_until(lambda: bool(log))
        queued = asyncio.create_task(_collect(llm, "B", "What is two plus two?", log))
        await wait_until(lambda: llm.waiting == 1)
        queued.cancel()  # what an abort or a disconnect does to the reply task
        await asyncio.gather(queued, return_exceptions=True)
        waiting_after, still_running = llm.waiting, not long.done()
        await long
        return waiting_after, still_running, log, llm.pauses - pauses

    waiting_after, still_running, log, pauses = harness.call(scenario())
    assert waiting_after == 0 and still_running
    assert not any(name == "B" for name, _ in log)  # it never ran
    assert pauses == 0  # and nobody gave the model up for it


def test_a_full_queue_refuses_at_once(harness: ServerThread, llm: Any) -> None:
    async def scenario() -> tuple[type[BaseException] | None, list[str]]:
        log: list[tuple[str, str]] = []
        llm.config = dataclasses.replace(llm.config, max_waiting=1)
        long = asyncio.create_task(_collect(llm, "A", STORY, log, max_tokens=40))
        await wait_until(lambda: bool(log))
        queued = asyncio.create_task(_collect(llm, "B", "Say hello.", log, 12))
        await wait_until(lambda: llm.waiting == 1)
        refused: type[BaseException] | None = None
        try:
            await _collect(llm, "C", "Say hello.", log, 12)
        except EngineBusy as exc:
            refused = type(exc)
            assert llm.waiting == 1 and not long.done()  # refused while the queue was full
        await asyncio.gather(long, queued)
        return refused, sorted({name for name, _ in log})

    refused, names = harness.call(scenario())
    assert refused is EngineBusy
    assert names == ["A", "B"]

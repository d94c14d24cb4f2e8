"""Prompt reuse with the real model: a device's prompt survives other devices' turns.

Counts of tokens and restores only: no assertion on how long anything took."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from edge.config import DEFAULT_SYSTEM_PROMPT
from edge.engines.llm.prompt_states import PREFIX_OWNER
from edge.sentences import pause_point
from tests.helpers import ServerThread, wait_until

# Not said in any other test: its state cannot be saved already.
ADA = [
    {"role": "user", "content": "My name is Ada and I keep three goats on a hill."},
    {"role": "assistant", "content": "Nice to meet you, Ada. Your goats must be happy there."},
]


TIDE_TOOL = {
    "type": "function",
    "function": {
        "name": "get_tide_times",
        "description": "The times of high and low tide today at a harbour the user names, for "
        "sailors and anglers planning a trip out on the water.",
        "parameters": {
            "type": "object",
            "properties": {
                "harbour": {"type": "string", "description": "The harbour's name"},
                "days_ahead": {"type": "integer", "description": "0 for today, 1 for tomorrow"},
            },
            "required": ["harbour"],
        },
    },
}


def _with_system(*messages: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, *messages]


def _pause_at_clause(text: str) -> bool:
    """The spoken rule, or the end of a clause: a greedy story may run for 120 tokens without
    a full stop ("A fox, a fox, a fox, ..."; CI saw no pause at all once), and this test is
    about resuming, not about where sentences end."""
    return pause_point(text) or text.rstrip().endswith(",")


async def _answer(
    llm: Any,
    messages: list[dict[str, Any]],
    max_tokens: int = 40,
    pause_at: Callable[[str], bool] = pause_point,
) -> str:
    out = ""
    async for piece in llm.stream(messages, max_tokens=max_tokens, pause_at=pause_at):
        out += piece
    return out


def test_a_devices_prompt_survives_other_devices_turns(harness: ServerThread, llm: Any) -> None:
    async def scenario() -> tuple[int, int, int, str]:
        first = await llm.prefetch(_with_system(*ADA))
        # As many other devices as the model has sequences ask at once: every sequence is
        # taken, Ada's history included.
        await asyncio.gather(
            *(
                _answer(llm, _with_system({"role": "user", "content": f"Name {n} big rivers."}))
                for n in range(2, 2 + llm.sequences)
            )
        )
        restored = llm.states.restored
        again = await llm.prefetch(_with_system(*ADA))
        question = {"role": "user", "content": "What is my name?"}
        reply = await _answer(llm, _with_system(*ADA, question))
        return first, again, llm.states.restored - restored, reply

    first, again, restores, reply = harness.call(scenario())
    assert first > 20
    assert again == 0  # nothing read again: the saved state came back
    assert restores == 1
    assert "Ada" in reply


def test_a_paused_answer_resumes_without_reading_its_words_again(
    harness: ServerThread, llm: Any
) -> None:
    # B has to wait for A's place. Greedy, so that the story is a story.
    llm.config = llm.config.replace(parallel=1, temperature=0.0)

    async def scenario() -> tuple[int, list[tuple[int, int]], str, str]:
        pauses = llm.pauses
        llm._loop.placed.clear()
        story = _with_system({"role": "user", "content": "Tell me a long story about a fox."})
        long = asyncio.create_task(_answer(llm, story, 120, _pause_at_clause))
        await wait_until(lambda: llm.busy)
        await asyncio.sleep(0.3)  # A is writing its first sentence
        short = await _answer(llm, _with_system({"role": "user", "content": "What is 2 + 2?"}))
        story_text = await long
        return llm.pauses - pauses, list(llm._loop.placed), story_text, short

    pauses, placed, story, short = harness.call(scenario())
    assert pauses >= 1, story
    # The story's resume (its longest prompt: the question and its own words) found nearly
    # all of it in the cells, not just the system prompt.
    prompt, found = max(placed)
    assert prompt - found <= 4, placed
    assert "4" in short or "four" in short.lower()
    assert len(story.split()) > 20


def test_saved_states_stay_within_their_budget(harness: ServerThread, llm: Any) -> None:
    states = llm.states
    budget = states.budget_bytes

    def read_ahead(text: str) -> int:
        return int(harness.call(llm.prefetch(_with_system({"role": "user", "content": text}))))

    try:
        read_ahead("I like cats.")
        states.budget_bytes = states.size_bytes  # room for what is kept now, no more
        for text in ("I like boats.", "I like clouds."):
            assert read_ahead(text) > 0
            assert states.size_bytes <= states.budget_bytes
        assert read_ahead("I like clouds.") == 0  # the newest is kept, the oldest went
        # A budget of 0 turns saving off.
        states.budget_bytes = 0
        before = len(states)
        read_ahead("I like trains.")
        assert len(states) == before
    finally:
        states.budget_bytes = budget


def test_a_new_device_leaves_another_devices_history_alone(harness: ServerThread, llm: Any) -> None:
    """Bob's first prompt starts like Ada's history (the same first words): it shares more with
    Ada's sequence than with any other, yet goes elsewhere, and Ada's next turn finds all of her
    history in the cells, with no saved state brought back."""
    opening = {"role": "user", "content": "Good evening, I have just come home from the market."}
    ada = [opening, {"role": "assistant", "content": "Welcome home, Ada. Did you buy apples?"}]
    bob = [opening, {"role": "assistant", "content": "Welcome home, Bob. Was it busy?"}]

    async def scenario() -> tuple[int, int, int]:
        first = await llm.prefetch(_with_system(*ada), owner="ada")
        await llm.prefetch(_with_system(*bob), owner="bob")
        restored = llm.states.restored
        again = await llm.prefetch(_with_system(*ada), owner="ada")
        return first, again, llm.states.restored - restored

    first, again, restores = harness.call(scenario())
    assert first > 20
    assert again == 0
    assert restores == 0


def test_a_trimmed_history_is_moved_into_place_not_read_again(
    harness: ServerThread, llm: Any
) -> None:
    """A history that drops its older turns keeps the newer ones right after the system
    prompt: their cells are moved back into place, not read again, and the model still knows
    what they said."""
    llm.config = llm.config.replace(temperature=0.0)
    pets = ["a cat", "a dog", "a parrot", "a tortoise", "a rabbit", "a goldfish"]
    turns = [
        [
            {"role": "user", "content": f"My friend number {n} has {pet}."},
            {"role": "assistant", "content": f"Friend number {n} must love {pet}, then."},
        ]
        for n, pet in enumerate(pets, start=1)
    ]
    question = {"role": "user", "content": "Which pet does my friend number 5 have?"}

    async def scenario() -> tuple[int, int, str]:
        await llm.prefetch(_with_system(*(m for turn in turns for m in turn)), owner="trim")
        kept = _with_system(*(m for turn in turns[3:] for m in turn))
        read = await llm.prefetch(kept, owner="trim")
        kept_tokens = len(llm._tokens(llm._format(messages=kept).prompt, special=True))
        reply = ""
        async for piece in llm.stream([*kept, question], max_tokens=24, owner="trim"):
            reply += piece
        return read, kept_tokens, reply

    read, kept_tokens, reply = harness.call(scenario())
    # Without moving, the three kept turns (~90 tokens) are read again.
    assert read <= 8, (read, kept_tokens)
    assert "rabbit" in reply.lower(), reply


def test_a_summary_is_not_kept_among_the_saved_states(harness: ServerThread, llm: Any) -> None:
    # A summary prompt shares only the prefix with any later prompt: kept, it would push a
    # device's state out of the budget. A read-ahead of a device's prompt is kept.
    summary = _with_system({"role": "user", "content": "Summarize: the user keeps bees in Oslo."})

    async def scenario() -> tuple[int, str, int]:
        before = len(llm.states)
        written = ""
        async for piece in llm.stream(summary, max_tokens=12, background=True):
            written += piece
        after_summary = len(llm.states)
        await llm.prefetch(_with_system({"role": "user", "content": "I keep bees in Oslo."}))
        return after_summary - before, written, len(llm.states) - after_summary

    summaries_kept, written, read_aheads_kept = harness.call(scenario())
    assert written.strip()
    assert summaries_kept == 0
    assert read_aheads_kept == 1


def test_a_devices_state_keeps_only_what_follows_the_shared_prefix(
    harness: ServerThread, llm: Any
) -> None:
    # Kept whole, the prefix; kept for a device, only its own words' cells, put back on top of
    # the prefix's cells after other devices took every sequence.
    grace = [
        {"role": "user", "content": "My name is Grace and I sail a red boat called Swift."},
        {"role": "assistant", "content": "Hello Grace! Swift sounds like a fine boat."},
    ]
    tools = [TIDE_TOOL]  # the shared prefix: the system prompt and the tools (~160 tokens)

    async def scenario() -> tuple[list[tuple[str, int, int, int]], int, int, str]:
        await llm.warm_up(tools=tools)  # the prefix and a greeting, as at start-up
        await llm.prefetch(_with_system(*grace), tools, owner="aa:bb:cc:00:41:01")
        kept = llm.states.kept()
        await asyncio.gather(
            *(
                _answer(llm, _with_system({"role": "user", "content": f"Name {n} tall trees."}))
                for n in range(2, 2 + llm.sequences)
            )
        )
        restored = llm.states.restored
        again = await llm.prefetch(_with_system(*grace), tools, owner="aa:bb:cc:00:41:01")
        question = {"role": "user", "content": "What is my boat called?"}
        reply = ""
        async for piece in llm.stream(
            _with_system(*grace, question), tools=tools, max_tokens=30, owner="aa:bb:cc:00:41:01"
        ):
            reply += piece
        return kept, again, llm.states.restored - restored, reply

    kept, again, restores, reply = harness.call(scenario())
    [prefix] = [k for k in kept if k[0] == PREFIX_OWNER and k[2] == 0][-1:]
    [(_owner, tokens, base, size)] = [k for k in kept if k[0] == "aa:bb:cc:00:41:01"]
    assert 0 < base < tokens  # a tail: from where it parts from the prefix's tokens
    assert size < (tokens - base + 8) * prefix[3] / prefix[1]  # about its own tokens' worth
    assert again == 0 and restores == 1  # all of it back, nothing read again
    assert "Swift" in reply, reply


def test_at_rest_an_away_devices_state_waits_on_disk_not_in_memory(
    harness: ServerThread, llm: Any, tmp_path: Any
) -> None:
    from edge.engines.llm.llama import LlmEngine

    engine = LlmEngine(
        llm.model_path, llm.config.replace(parallel=1, context_tokens=1024), state_dir=tmp_path
    )
    goats = _with_system(
        {"role": "user", "content": "I am Bram and my boat is called the Heron."},
        {"role": "assistant", "content": "A fine name for a boat, Bram."},
    )

    async def scenario() -> tuple[int, int, list[str], list[str], bool, int]:
        first = await engine.prefetch(goats, owner="aa:bram")
        # Another device's turn takes the only sequence: Bram's cells are overwritten.
        await _answer(engine, _with_system({"role": "user", "content": "Name two seas."}))
        before = engine.states.owners()
        freed = await engine.rest(away=lambda owner: owner == "aa:bram")
        after = engine.states.owners()
        back = await engine.preload("aa:bram")  # Bram connects again
        again = await engine.prefetch(goats, owner="aa:bram")
        return first, freed, before, after, back, again

    try:
        first, freed, before, after, back, again = harness.call(scenario())
    finally:
        engine.close()
    assert first > 20 and "aa:bram" in before
    assert freed > 0 and "aa:bram" not in after  # left to the disk
    assert back and again == 0  # read back from disk: nothing read again


def test_at_rest_the_context_goes_and_a_device_goes_on_where_it_left_off(
    harness: ServerThread, llm: Any, tmp_path: Any
) -> None:
    """The context (KV cells, compute buffers) is let go at rest; the next request makes it
    again and its prompt comes back from the saved states, not read again."""
    from edge.engines.llm.llama import LlmEngine

    engine = LlmEngine(
        llm.model_path, llm.config.replace(parallel=2, context_tokens=1024), state_dir=tmp_path
    )
    wren = _with_system(
        {"role": "user", "content": "I am Wren and I grow blue tomatoes in my garden shed."},
        {"role": "assistant", "content": "Blue tomatoes sound wonderful, Wren."},
    )
    question = {"role": "user", "content": "What colour are my tomatoes?"}

    async def scenario() -> tuple[int, bool, bool, int, int, str]:
        await engine.warm_up()
        first = await engine.prefetch(wren, owner="aa:wren")
        await engine.rest(away=lambda _owner: False)  # Wren is still connected
        resting = engine.resting
        restored = engine.states.restored
        again = await engine.prefetch(wren, owner="aa:wren")
        reply = await _answer(engine, _with_system(*wren[1:], question), max_tokens=24)
        return first, resting, engine.resting, again, engine.states.restored - restored, reply

    try:
        first, resting, still, again, restores, reply = harness.call(scenario())
    finally:
        engine.close()
    assert first > 20
    assert resting and not still  # let go at rest, made again by the next request
    assert again == 0 and restores >= 1  # the prefix and Wren's cells came back from the states
    assert "blue" in reply.lower(), reply


def test_a_rest_asked_for_during_an_answer_keeps_the_context(
    harness: ServerThread, llm: Any, tmp_path: Any
) -> None:
    from edge.engines.llm.llama import LlmEngine

    engine = LlmEngine(
        llm.model_path, llm.config.replace(parallel=1, context_tokens=1024), state_dir=tmp_path
    )
    story = _with_system({"role": "user", "content": "Tell me a long story about a lighthouse."})

    async def scenario() -> tuple[bool, bool, str]:
        await engine.warm_up()
        pieces = engine.stream(story, max_tokens=48)
        text = await anext(pieces)  # the answer is being written
        let_go = await asyncio.wrap_future(engine._loop.rest())
        async for piece in pieces:
            text += piece
        return let_go, engine.resting, text

    try:
        let_go, resting, text = harness.call(scenario())
    finally:
        engine.close()
    assert not let_go and not resting
    assert len(text.split()) > 10  # the answer went on to its end

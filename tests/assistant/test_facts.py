"""Facts the user stated, read by rule, and what the summary keeps (issue 16's examples)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from edge.assistant.facts import source_of, stated_facts
from edge.assistant.summarizer import Summarizer
from edge.config import Config
from edge.engines.llm import Message
from edge.memory.store import MemoryStore
from tests.session.fakes import ScriptedLlm


@pytest.mark.parametrize(
    ("said", "facts"),
    [
        ("My name is Alice.", ["The user's name is Alice."]),
        (
            "Hello! My name is Alice and I love long walks by the river.",
            ["The user's name is Alice.", "The user likes long walks by the river."],
        ),
        ("Call me Al, please.", ["The user likes to be called Al."]),
        ("My dog is called Rex.", ["The user's dog is called Rex."]),
        ("I live in Berlin.", ["The user lives in Berlin."]),
        ("My favourite colour is green.", ["The user's favourite colour is green."]),
        ("I really like my garden", ["The user likes their garden."]),
        ("我叫小明，我喜欢爬山。", ["用户叫小明。", "用户喜欢爬山。"]),
        ("I like it.", []),
        ("Tell me a joke.", []),
        ("What time is it?", []),
        ("my name is not important", []),
    ],
)
def test_facts_are_read_from_the_users_own_words(said: str, facts: list[str]) -> None:
    assert [f.sentence for f in stated_facts([said])] == facts


def test_each_remembered_sentence_is_traced_to_an_utterance() -> None:
    said = ["Tell me a joke.", "My name is Alice and I love long walks by the river."]
    assert source_of("The user's name is Alice.", said) == said[1]
    assert source_of("The user likes long walks.", said) == said[1]
    assert source_of("The user has a cat named Tom.", said) is None


def _summarizer(tmp_path: Path, written: str) -> tuple[Summarizer, MemoryStore]:
    def reply(_messages: list[Message]) -> str:
        return json.dumps({"summary": written})

    store = MemoryStore(tmp_path / "memory.db")
    llm = ScriptedLlm(reply, Config())
    return Summarizer(store, cast(Any, llm), 64, quiet=lambda: True), store


async def _talk(store: MemoryStore, turns: list[tuple[str, str]]) -> None:
    for user, assistant in turns:
        turn = await store.begin_turn("aa:bb:cc:00:00:01", "s", user)
        await store.finish_turn(turn, assistant, [])


async def test_the_summary_never_keeps_times_jokes_or_the_assistants_words(
    tmp_path: Path,
) -> None:
    # Recorded from the 0.5B model after conversations with no personal facts at all.
    invented = (
        "The user mentioned their name as 12:00 PM, and they said a short joke about the tomato. "
        "The user mentioned that they tried various activities, including setting reminders."
    )
    summarizer, store = _summarizer(tmp_path, invented)
    await _talk(
        store,
        [
            ("What time is it?", "The current time is 12:00 PM."),
            ("Tell me a joke.", "Why did the tomato turn red? It saw the salad dressing!"),
            ("Remind me in ten minutes to stir.", "OK. I will remind you in 10 minutes."),
        ],
    )
    assert await summarizer.summarize("aa:bb:cc:00:00:01") == ""
    store.close()


async def test_stated_facts_are_kept_even_when_the_model_finds_none(tmp_path: Path) -> None:
    summarizer, store = _summarizer(tmp_path, "none")
    await _talk(store, [("My name is Alice.", "Nice to meet you, Alice.")])
    assert await summarizer.summarize("aa:bb:cc:00:00:01") == "The user's name is Alice."
    store.close()

from __future__ import annotations

import pytest

from edge.assistant.summarizer import _grounded, _merge, _plausible, grounds

CONVERSATION = "My name is Bob and I love green tea. Nice to meet you, Bob!"


@pytest.mark.parametrize(
    ("summary", "kept"),
    [
        ("The user is called Bob and loves green tea.", True),
        # Recorded from the 0.5B model: people it made up.
        ("The user's name is John, family is Smith, preferences are to listen to music", False),
        ("Bob likes Paris.", False),
        ("用户叫小明，喜欢喝茶。", False),  # nothing of it was said here
        ("none", False),
    ],
)
def test_only_what_was_said_is_kept(summary: str, kept: bool) -> None:
    assert _grounded(summary, CONVERSATION) is kept


def test_chinese_is_compared_by_characters() -> None:
    assert _grounded("用户叫小明，喜欢喝茶。", "我叫小明，我喜欢喝茶")
    assert not _grounded("用户住在北京。", "我叫小明")
    # Both scripts in one sentence: each is checked (`edge bench answers` kept this one when
    # only its Chinese characters were).
    said = "我叫小明 Play some music. How do I boil an egg?"
    invented = (
        "The user's name is小明, family is unknown, likes to play music, plans to boil an egg."
    )
    assert not _grounded(invented, said)
    assert _grounded("The user's name is 小明 and likes music.", said)


@pytest.mark.parametrize(
    "summary",
    ["", "User: Hello there. How can I help you today?", "Assistant: hi", "x" * 500],
)
def test_echoes_and_empties_are_not_summaries(summary: str) -> None:
    assert not _plausible(summary)


def test_merging_keeps_old_facts_without_repeats() -> None:
    merged = _merge("Bob loves tea.", "Bob loves tea. He has a dog named Rex.")
    assert merged == "Bob loves tea. He has a dog named Rex."
    long = _merge(" ".join(f"Fact number {i}." for i in range(60)), "Newest fact.")
    assert long.endswith("Newest fact.") and len(long) <= 400


def test_invented_and_cut_off_sentences_are_dropped() -> None:
    from edge.assistant.summarizer import _grounded_sentences

    # Recorded from the 0.5B model (cut at the token limit).
    written = (
        "The user stated that they are Bob and love green tea. They also mentioned that they are "
        "a family member and have plans t"
    )
    assert _grounded_sentences(written, CONVERSATION) == (
        "The user stated that they are Bob and love green tea."
    )
    assert _grounded_sentences("none", CONVERSATION) == ""


def test_a_word_the_user_only_asked_about_grounds_no_fact() -> None:
    said = ["What is the capital of France?", "My name is Sam.", "I live in Lisbon."]
    assert not _grounded("They are from France.", grounds("", said))
    assert _grounded("The user's name is Sam and lives in Lisbon.", grounds("", said))
    assert _grounded("The user likes jazz.", grounds("The user likes jazz.", said))


def test_a_fact_made_of_words_from_different_utterances_is_invented() -> None:
    from edge.assistant.summarizer import adds_nothing

    said = ["My name is Sam.", "Call my mother.", "I live in Lisbon."]
    # Recorded from the 0.5B model (`edge bench answers`): each word was said, the fact never.
    assert not _grounded("Sam's mother is Sam.", grounds("", said))
    # Clauses each from one utterance are what the user said, put together.
    assert _grounded("The user's name is Sam, and lives in Lisbon.", grounds("", said))
    # Also recorded: right, but only what the rule read already; kept, the summary repeats.
    assert adds_nothing("Sam's name is Sam.", ["The user's name is Sam."])
    assert not adds_nothing("Sam lives in Lisbon.", ["The user's name is Sam."])
    # Recorded too: each clause is a fact known before (an earlier summary's, or a rule's).
    known = ["The user's name is Sam.", "The user likes jazz music.", "The user lives in Lisbon."]
    assert adds_nothing("The user's name is Sam, and they like jazz music.", known)
    assert adds_nothing("They live in Lisbon.", known)
    assert not adds_nothing("The user's name is Sam, and they have a dog.", known)

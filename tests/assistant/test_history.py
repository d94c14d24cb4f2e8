"""How the conversation history kept in the prompt is trimmed."""

from __future__ import annotations

from edge.assistant.history import trim_history


def test_the_older_half_is_dropped_at_once_so_the_prompt_only_grows_between_drops() -> None:
    turns: list[int] = []
    seen = []
    for turn in range(1, 15):
        turns.append(turn)
        trim_history(turns, 6)
        seen.append(list(turns))
    assert seen[5] == [1, 2, 3, 4, 5, 6]
    assert seen[6] == [5, 6, 7]  # the 7th turn: back to half, the newest kept
    assert seen[7] == [5, 6, 7, 8]  # the previous prompt is a prefix of this one
    assert all(len(kept) <= 6 for kept in seen) and seen[-1][-1] == 14


def test_no_history_and_a_history_of_one() -> None:
    turns = [1]
    trim_history(turns, 0)
    assert turns == []
    turns = [1, 2]
    trim_history(turns, 1)
    assert turns == [2]

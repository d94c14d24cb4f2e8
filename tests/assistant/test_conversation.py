"""A device's conversation across connections: the next connection restores exactly the history
the last one ended with (trims and clocks included), so the model's saved state still fits."""

from __future__ import annotations

from pathlib import Path

from loguru import logger

from edge.assistant.history import Conversation, SpokenTurn
from edge.memory.store import MemoryStore


def _conversation(store: MemoryStore) -> Conversation:
    return Conversation(store, "dev", keep=4, grammar_mode=False, log=logger)


async def test_the_next_connection_renders_the_same_history(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path / "m.db")
    try:
        first = _conversation(store)
        await first.restore()
        for i in range(7):  # past 4 turns the older half goes: 0-3, then 3-4, 3-5, 3-6
            turn_id = await first.begin("s1", f"question {i}")
            await first.finish(turn_id, f"answer {i}", [])
            clock = {"role": "system", "content": f"It is now 10:0{i}."}
            first.add(SpokenTurn(f"question {i}", f"answer {i}", [], clock), turn_id)
        turn_id = await first.begin("s1", "goodbye")  # an exit phrase: stored, not history
        await first.finish(turn_id, "Goodbye!", [])

        again = _conversation(store)
        await again.restore()
        assert again.history() == first.history()
        assert [m["content"] for m in again.history()][:3] == [
            "It is now 10:03.",
            "question 3",
            "answer 3",
        ]
    finally:
        store.close()

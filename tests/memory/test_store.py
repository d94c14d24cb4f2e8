from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from edge.memory.store import MemoryStore


async def test_turns_are_kept_in_order_and_restored(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path / "m.db")
    try:
        for i in range(5):
            turn = await store.begin_turn("dev-a", "s1", f"question {i}")
            await store.finish_turn(
                turn, f"answer {i}", [{"name": "t", "arguments": {}, "result": "ok"}]
            )
        unfinished = await store.begin_turn("dev-a", "s1", "cut off")
        await store.begin_turn("dev-b", "s2", "other device")
        recent = await store.recent_turns("dev-a", 3)
        assert [t.user_text for t in recent] == ["question 2", "question 3", "question 4"]
        assert recent[0].tool_calls == [{"name": "t", "arguments": {}, "result": "ok"}]
        assert unfinished not in [t.id for t in recent]  # an unfinished turn is not context
    finally:
        store.close()


async def test_the_database_is_wal_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    store = MemoryStore(path)
    turn = await store.begin_turn("dev", "s", "my name is Alice")
    await store.finish_turn(turn, "Nice to meet you, Alice.", [])
    await store.save_summary("dev", "The user is called Alice.", turn)
    store.close()
    reopened = MemoryStore(path)
    try:
        assert [t.assistant_text for t in await reopened.recent_turns("dev", 6)] == [
            "Nice to meet you, Alice."
        ]
        assert await reopened.summary("dev") == "The user is called Alice."
        assert await reopened.turns_since_summary("dev", 10) == ("The user is called Alice.", [])
    finally:
        reopened.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


async def test_reminders_pending_until_delivered(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path / "m.db")
    try:
        first = await store.add_reminder("dev", time.time() + 60, "later")
        second = await store.add_reminder("dev", time.time() - 1, "now")
        await store.add_reminder("other", time.time(), "theirs")
        assert [r.text for r in await store.pending_reminders("dev")] == ["now", "later"]
        await store.mark_delivered(second)
        assert [r.id for r in await store.pending_reminders("dev")] == [first]
    finally:
        store.close()


async def test_forget_erases_one_device_only(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path / "m.db")
    try:
        for device in ("dev-a", "dev-b"):
            turn = await store.begin_turn(device, "s", "hi")
            await store.finish_turn(turn, "hello", [])
            await store.add_reminder(device, time.time(), "r")
        assert store.forget_now("dev-a") == 1
        assert await store.recent_turns("dev-a", 6) == []
        assert await store.pending_reminders("dev-a") == []
        assert await store.summary("dev-a") == ""
        assert len(await store.recent_turns("dev-b", 6)) == 1
        assert [d[0] for d in store.devices_now()] == ["dev-b"]
    finally:
        store.close()

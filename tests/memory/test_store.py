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


async def test_the_history_window_and_its_clocks_are_kept_for_the_next_connection(
    tmp_path: Path,
) -> None:
    store = MemoryStore(tmp_path / "m.db")
    try:
        ids = []
        for i in range(8):
            turn = await store.begin_turn("dev", "s1", f"question {i}")
            await store.finish_turn(turn, f"answer {i}", [])
            ids.append(turn)
            if i != 5:  # turn 5 got no reply: it never went into the prompt's history
                # At the last one a trim dropped the older turns: the history starts at 3.
                start = ids[3] if i == 7 else None
                store.keep_in_history("dev", turn, f"It is now 10:0{i}.", start)
        history = await store.history("dev", 6)
        assert [t.user_text for t in history] == [f"question {i}" for i in (3, 4, 6, 7)]
        assert [t.clock for t in history] == [f"It is now 10:0{i}." for i in (3, 4, 6, 7)]
        assert [t.user_text for t in await store.history("dev", 2)] == ["question 6", "question 7"]
        assert await store.history("another", 6) == []
    finally:
        store.close()


def test_a_database_from_before_the_history_columns_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE devices (device_id TEXT PRIMARY KEY, first_seen REAL NOT NULL,
            last_seen REAL NOT NULL, summary TEXT NOT NULL DEFAULT '',
            summary_turn INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE turns (id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL,
            session_id TEXT NOT NULL, started REAL NOT NULL, user_text TEXT NOT NULL,
            assistant_text TEXT NOT NULL DEFAULT '', tool_calls TEXT NOT NULL DEFAULT '[]',
            complete INTEGER NOT NULL DEFAULT 0);
        INSERT INTO devices VALUES ('dev', 1, 1, '', 0);
        INSERT INTO turns (device_id, session_id, started, user_text, assistant_text, complete)
            VALUES ('dev', 's', 1, 'hello', 'hi there', 1);
        """
    )
    db.close()
    store = MemoryStore(path)
    try:
        [turn] = store._history("dev", 6)  # the old turns count as the history, without clocks
        assert (turn.user_text, turn.assistant_text, turn.clock) == ("hello", "hi there", "")
    finally:
        store.close()

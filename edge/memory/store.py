"""The memory database: per device, every turn (user text, answer, tool calls), a short long-term
summary, and reminders still to be spoken.

SQLite in WAL mode with `synchronous=NORMAL`: a commit is durable against a process crash (a
`kill -9` loses at most the transaction in flight) and the file is never left corrupt. One
connection, used from one dedicated thread (the store's `Worker`), so the event loop never
waits on the disk and no thread is made per save.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.database import open_database
from edge.workers import Worker

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    summary TEXT NOT NULL DEFAULT '',
    summary_turn INTEGER NOT NULL DEFAULT 0,  -- last turn id the summary covers
    history_from INTEGER NOT NULL DEFAULT 0  -- first turn id of the history in the prompt
);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    started REAL NOT NULL,
    user_text TEXT NOT NULL,
    assistant_text TEXT NOT NULL DEFAULT '',
    tool_calls TEXT NOT NULL DEFAULT '[]',  -- JSON list of {name, arguments, result | error}
    complete INTEGER NOT NULL DEFAULT 0,
    in_history INTEGER NOT NULL DEFAULT 0,  -- the prompt's history holds it (it was answered)
    clock TEXT NOT NULL DEFAULT ''  -- the clock its prompt carried, kept with it in the history
);
CREATE INDEX IF NOT EXISTS turns_by_device ON turns (device_id, id);
CREATE TABLE IF NOT EXISTS reminders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    due REAL NOT NULL,
    text TEXT NOT NULL,
    created REAL NOT NULL,
    delivered REAL
);
CREATE INDEX IF NOT EXISTS reminders_due ON reminders (delivered, due);
"""
# Columns added since the first release, for databases made before them: (table, column, type).
# Turns stored before `in_history` existed were all restored into the history, so they count.
MIGRATIONS = (
    ("devices", "history_from", "INTEGER NOT NULL DEFAULT 0"),
    ("turns", "in_history", "INTEGER NOT NULL DEFAULT 1"),
    ("turns", "clock", "TEXT NOT NULL DEFAULT ''"),
)


@dataclass(frozen=True)
class Turn:
    id: int
    user_text: str
    assistant_text: str
    tool_calls: list[dict[str, Any]]
    clock: str = ""  # the clock message its prompt carried (for turns in the history)


@dataclass(frozen=True)
class Reminder:
    id: int
    device_id: str
    due: float  # Unix time
    text: str


class MemoryStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_database(path, SCHEMA)
        self._migrate()
        self.worker = Worker("memory", threads=1, timeout_s=10.0)

    def close(self) -> None:
        self.worker.shutdown()
        self._db.close()

    # --- the calls the server makes (each runs on the store's thread) --------------------

    async def begin_turn(self, device_id: str, session_id: str, user_text: str) -> int:
        return await self.worker.run(self._begin_turn, device_id, session_id, user_text)

    async def finish_turn(
        self, turn_id: int, assistant_text: str, tool_calls: list[dict[str, Any]]
    ) -> None:
        await self.worker.run(self._finish_turn, turn_id, assistant_text, tool_calls)

    async def recent_turns(self, device_id: str, count: int) -> list[Turn]:
        return await self.worker.run(self.recent_turns_now, device_id, count)

    async def history(self, device_id: str, count: int) -> list[Turn]:
        """The turns the device's prompt held when it last spoke (at most `count`), oldest
        first: a new connection goes on with exactly that history."""
        return await self.worker.run(self._history, device_id, count)

    def keep_in_history(
        self, device_id: str, turn_id: int, clock: str, history_from: int | None
    ) -> None:
        """The turn went into the prompt's history, with the clock its prompt carried; with
        `history_from`, a trim made the history start at that turn. Written soon, without
        waiting: a device that leaves right after its answer still has its history kept."""
        self.worker.submit(
            self._keep_in_history,
            device_id,
            turn_id,
            clock,
            history_from,
            failed="memory could not store the history",
        )

    async def summary(self, device_id: str) -> str:
        return await self.worker.run(self.summary_now, device_id)

    async def turns_since_summary(self, device_id: str, limit: int) -> tuple[str, list[Turn]]:
        return await self.worker.run(self._turns_since_summary, device_id, limit)

    async def save_summary(self, device_id: str, summary: str, last_turn: int) -> None:
        await self.worker.run(self._save_summary, device_id, summary, last_turn)

    async def add_reminder(self, device_id: str, due: float, text: str) -> int:
        return await self.worker.run(self._add_reminder, device_id, due, text)

    async def pending_reminders(self, device_id: str | None = None) -> list[Reminder]:
        return await self.worker.run(self.pending_reminders_now, device_id)

    async def cancel_reminders(self, device_id: str, reminder_ids: list[int]) -> int:
        """Removes those of the device's reminders still to be spoken; how many."""
        return await self.worker.run(self._cancel_reminders, device_id, reminder_ids)

    async def mark_delivered(self, reminder_id: int) -> None:
        await self.worker.run(self._mark_delivered, reminder_id)

    # --- synchronous implementations (also used by the CLI, which has no loop) -----------

    def _begin_turn(self, device_id: str, session_id: str, user_text: str) -> int:
        now = time.time()
        with self._transaction():
            self._db.execute(
                "INSERT INTO devices (device_id, first_seen, last_seen) VALUES (?, ?, ?) "
                "ON CONFLICT(device_id) DO UPDATE SET last_seen = excluded.last_seen",
                (device_id, now, now),
            )
            cursor = self._db.execute(
                "INSERT INTO turns (device_id, session_id, started, user_text) VALUES (?,?,?,?)",
                (device_id, session_id, now, user_text),
            )
        return int(cursor.lastrowid or 0)

    def _finish_turn(self, turn_id: int, assistant_text: str, tools: list[dict[str, Any]]) -> None:
        with self._transaction():
            self._db.execute(
                "UPDATE turns SET assistant_text = ?, tool_calls = ?, complete = 1 WHERE id = ?",
                (assistant_text, json.dumps(tools, ensure_ascii=False), turn_id),
            )

    def recent_turns_now(self, device_id: str, count: int) -> list[Turn]:
        rows = self._db.execute(
            "SELECT id, user_text, assistant_text, tool_calls FROM turns "
            "WHERE device_id = ? AND complete = 1 ORDER BY id DESC LIMIT ?",
            (device_id, count),
        ).fetchall()
        return [Turn(r[0], r[1], r[2], json.loads(r[3])) for r in reversed(rows)]

    def _history(self, device_id: str, count: int) -> list[Turn]:
        row = self._db.execute(
            "SELECT history_from FROM devices WHERE device_id = ?", (device_id,)
        ).fetchone()
        rows = self._db.execute(
            "SELECT id, user_text, assistant_text, tool_calls, clock FROM turns "
            "WHERE device_id = ? AND complete = 1 AND in_history = 1 AND id >= ? "
            "ORDER BY id DESC LIMIT ?",
            (device_id, int(row[0]) if row else 0, count),
        ).fetchall()
        return [Turn(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in reversed(rows)]

    def _keep_in_history(
        self, device_id: str, turn_id: int, clock: str, history_from: int | None
    ) -> None:
        with self._transaction():
            self._db.execute(
                "UPDATE turns SET in_history = 1, clock = ? WHERE id = ?", (clock, turn_id)
            )
            if history_from is not None:
                self._db.execute(
                    "UPDATE devices SET history_from = ? WHERE device_id = ?",
                    (history_from, device_id),
                )

    def _migrate(self) -> None:
        for table, column, kind in MIGRATIONS:
            columns = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in columns:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def summary_now(self, device_id: str) -> str:
        row = self._db.execute(
            "SELECT summary FROM devices WHERE device_id = ?", (device_id,)
        ).fetchone()
        return str(row[0]) if row else ""

    def _turns_since_summary(self, device_id: str, limit: int) -> tuple[str, list[Turn]]:
        row = self._db.execute(
            "SELECT summary, summary_turn FROM devices WHERE device_id = ?", (device_id,)
        ).fetchone()
        summary, since = (str(row[0]), int(row[1])) if row else ("", 0)
        rows = self._db.execute(
            "SELECT id, user_text, assistant_text, tool_calls FROM turns "
            "WHERE device_id = ? AND complete = 1 AND id > ? ORDER BY id DESC LIMIT ?",
            (device_id, since, limit),
        ).fetchall()
        return summary, [Turn(r[0], r[1], r[2], json.loads(r[3])) for r in reversed(rows)]

    def _save_summary(self, device_id: str, summary: str, last_turn: int) -> None:
        with self._transaction():
            self._db.execute(
                "UPDATE devices SET summary = ?, summary_turn = ? WHERE device_id = ?",
                (summary, last_turn, device_id),
            )

    def _add_reminder(self, device_id: str, due: float, text: str) -> int:
        with self._transaction():
            cursor = self._db.execute(
                "INSERT INTO reminders (device_id, due, text, created) VALUES (?, ?, ?, ?)",
                (device_id, due, text, time.time()),
            )
        return int(cursor.lastrowid or 0)

    def pending_reminders_now(self, device_id: str | None = None) -> list[Reminder]:
        query = "SELECT id, device_id, due, text FROM reminders WHERE delivered IS NULL"
        args: tuple[Any, ...] = ()
        if device_id is not None:
            query += " AND device_id = ?"
            args = (device_id,)
        rows = self._db.execute(query + " ORDER BY due", args).fetchall()
        return [Reminder(r[0], r[1], r[2], r[3]) for r in rows]

    def _cancel_reminders(self, device_id: str, reminder_ids: list[int]) -> int:
        if not reminder_ids:
            return 0
        marks = ",".join("?" * len(reminder_ids))
        with self._transaction():
            cursor = self._db.execute(
                f"DELETE FROM reminders WHERE device_id = ? AND delivered IS NULL "
                f"AND id IN ({marks})",
                (device_id, *reminder_ids),
            )
        return cursor.rowcount

    def _mark_delivered(self, reminder_id: int) -> None:
        with self._transaction():
            self._db.execute(
                "UPDATE reminders SET delivered = ? WHERE id = ?", (time.time(), reminder_id)
            )

    def devices_now(self) -> list[tuple[str, float, int]]:
        """(device id, last seen, number of turns) for every device with memory."""
        rows = self._db.execute(
            "SELECT d.device_id, d.last_seen, COUNT(t.id) FROM devices d "
            "LEFT JOIN turns t ON t.device_id = d.device_id GROUP BY d.device_id "
            "ORDER BY d.last_seen DESC"
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def user_texts_now(self, device_id: str, count: int = 2000) -> list[str]:
        """The device's user's last `count` utterances, oldest first (`edge devices show`)."""
        rows = self._db.execute(
            "SELECT user_text FROM turns WHERE device_id = ? ORDER BY id DESC LIMIT ?",
            (device_id, count),
        ).fetchall()
        return [str(r[0]) for r in reversed(rows)]

    def forget_now(self, device_id: str) -> int:
        """Erase everything stored about one device; the number of turns erased."""
        with self._transaction():
            count = self._db.execute(
                "SELECT COUNT(*) FROM turns WHERE device_id = ?", (device_id,)
            ).fetchone()[0]
            for table in ("turns", "reminders", "devices"):
                self._db.execute(f"DELETE FROM {table} WHERE device_id = ?", (device_id,))
        return int(count)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on error (autocommit mode otherwise)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")

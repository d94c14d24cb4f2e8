"""How edge opens its SQLite files (the memory database, the device registry).

WAL mode with `synchronous=NORMAL`: a commit is durable against a process crash and the file is
never left corrupt, and readers never wait for the writer. Both files are shared between the
running server and the `edge devices` commands, so a writer waits up to 5 s for the other.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def open_database(path: Path, schema: str) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=5000")  # the server and `edge devices` write the same file
    db.executescript(schema)
    return db

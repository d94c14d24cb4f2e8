"""Which devices may talk to this server: an SQLite table of device ids, their status and token.

A device the server has not seen is recorded as `pending` when it calls the config endpoint; the
owner approves it (`edge devices approve ID`) or opens a pairing window (`edge devices pair`) in
which new devices are approved as they call. An approved device gets a random token of its own in
the config answer and must present it on the WebSocket. `edge devices revoke ID` shuts it out.

The server and the `edge devices` commands share the file (WAL mode); the server reads it on every
config request and connection, so a change from the command line counts at once. Tokens are stored
as issued: the device stores whatever the config answer says, every time it boots, so the server
must be able to say it again. The file lives in the service's private state folder (mode 0700).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from edge.database import open_database

PENDING, APPROVED, REVOKED = "pending", "approved", "revoked"
MAX_PENDING = 256  # devices waiting for approval; a household has a handful

_SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'revoked')),
    token TEXT NOT NULL DEFAULT '',
    client_id TEXT NOT NULL DEFAULT '',
    address TEXT NOT NULL DEFAULT '',
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    changed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class DeviceRecord:
    device_id: str
    status: str
    client_id: str
    address: str
    first_seen: float
    last_seen: float
    has_token: bool


class DeviceRegistry:
    """Thread-safe (one connection behind a lock); every call is a short transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_database(path, _SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- what the server asks ------------------------------------------------------------

    def on_config_request(self, device_id: str, client_id: str, address: str) -> tuple[str, str]:
        """Record a config call; (status, token to hand out). A device calling inside an open
        pairing window is approved on the spot; revoked devices stay revoked."""
        now = time.time()
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute(
                "SELECT status, token FROM devices WHERE device_id = ?", (device_id,)
            ).fetchone()
            if row is None:
                self._db.execute(
                    "INSERT INTO devices VALUES (?, ?, '', ?, ?, ?, ?, ?)",
                    (device_id, PENDING, client_id, address, now, now, now),
                )
                status, token = PENDING, ""
                self._drop_oldest_pending()
            else:
                status, token = row
                self._db.execute(
                    "UPDATE devices SET client_id = ?, address = ?, last_seen = ? "
                    "WHERE device_id = ?",
                    (client_id, address, now, device_id),
                )
            if status == PENDING and self._pairing_open(now):
                token = self._approve(device_id, now)
                status = APPROVED
            return status, token if status == APPROVED else ""

    def token_matches(self, device_id: str, token: str) -> bool:
        """True only for an approved device presenting its own token (constant-time compare)."""
        with self._lock:
            row = self._db.execute(
                "SELECT token FROM devices WHERE device_id = ? AND status = ?",
                (device_id, APPROVED),
            ).fetchone()
        expected = row[0] if row else ""
        # Compare even when there is nothing to compare with, so timing tells nothing.
        same = hmac.compare_digest(token.encode(), (expected or "\0").encode())
        return bool(expected) and same

    def status(self, device_id: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT status FROM devices WHERE device_id = ?", (device_id,)
            ).fetchone()
        return row[0] if row else None

    # --- what the owner does -------------------------------------------------------------

    def approve(self, device_id: str) -> bool:
        """Approve a known device (pending or revoked), with a fresh token. False if unknown."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            if not self._db.execute(
                "SELECT 1 FROM devices WHERE device_id = ?", (device_id,)
            ).fetchone():
                return False
            self._approve(device_id, time.time())
            return True

    def add(self, device_id: str) -> None:
        """Approve a device ahead of its first call (an allowlist written by hand)."""
        now = time.time()
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO devices VALUES (?, ?, '', '', '', ?, ?, ?)",
                (device_id, PENDING, now, now, now),
            )
            self._approve(device_id, now)

    def revoke(self, device_id: str) -> bool:
        with self._lock, self._db:
            cursor = self._db.execute(
                "UPDATE devices SET status = ?, token = '', changed_at = ? WHERE device_id = ?",
                (REVOKED, time.time(), device_id),
            )
            return cursor.rowcount > 0

    def open_pairing(self, seconds: float) -> float:
        """Approve every new device that calls in the next `seconds`; returns the end time."""
        until = time.time() + seconds
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO settings VALUES ('pairing_until', ?)", (str(until),)
            )
        return until

    def pairing_until(self) -> float:
        with self._lock:
            return self._pairing_until()

    def devices(self) -> list[DeviceRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT device_id, status, client_id, address, first_seen, last_seen, token != '' "
                "FROM devices ORDER BY last_seen DESC"
            ).fetchall()
        return [
            DeviceRecord(
                device_id=row[0],
                status=row[1],
                client_id=row[2],
                address=row[3],
                first_seen=row[4],
                last_seen=row[5],
                has_token=bool(row[6]),
            )
            for row in rows
        ]

    # --- inside a transaction ------------------------------------------------------------

    def _drop_oldest_pending(self) -> None:
        """Keep at most MAX_PENDING pending devices: made-up Device-Ids (4,000 config calls in
        4.5 s once) must not grow the registry without end. The least recently seen go first;
        a real device that was dropped is recorded again at its next config call."""
        dropped = self._db.execute(
            "SELECT device_id FROM devices WHERE status = 'pending' "
            "ORDER BY last_seen DESC LIMIT -1 OFFSET ?",
            (MAX_PENDING,),
        ).fetchall()
        if dropped:
            self._db.executemany("DELETE FROM devices WHERE device_id = ?", dropped)
            logger.warning(
                "pending device list full ({}): dropped the oldest, {}", MAX_PENDING, dropped[0][0]
            )

    def _approve(self, device_id: str, now: float) -> str:
        token = secrets.token_urlsafe(24)
        self._db.execute(
            "UPDATE devices SET status = ?, token = ?, changed_at = ? WHERE device_id = ?",
            (APPROVED, token, now, device_id),
        )
        return token

    def _pairing_until(self) -> float:
        row = self._db.execute("SELECT value FROM settings WHERE key = 'pairing_until'").fetchone()
        return float(row[0]) if row else 0.0

    def _pairing_open(self, now: float) -> bool:
        return self._pairing_until() > now

"""Announcement files for firmware 2.5's `notify`, served on the HTTP port at a short-lived,
unguessable URL. The device gives no acknowledgement; its fetch of the file is the only sign
that it took the announcement, so each file says when it was fetched."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field

NOTIFY_PATH = "/notify/"  # + token + ".ogg"
KEEP_S = 300.0  # a file is fetched within seconds of its notify; after this it is gone
MAX_FILES = 64  # a few KB each; the oldest goes first


@dataclass
class Announcement:
    token: str
    data: bytes
    created: float = field(default_factory=time.monotonic)
    fetched: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def path(self) -> str:
        return f"{NOTIFY_PATH}{self.token}.ogg"


class Announcements:
    def __init__(self) -> None:
        self._files: OrderedDict[str, Announcement] = OrderedDict()

    def publish(self, data: bytes) -> Announcement:
        self._expire()
        item = Announcement(secrets.token_urlsafe(18), data)
        self._files[item.token] = item
        while len(self._files) > MAX_FILES:
            self._files.popitem(last=False)
        return item

    def fetch(self, token: str) -> bytes | None:
        """The file's bytes for the HTTP handler (None: unknown or expired token)."""
        self._expire()
        item = self._files.get(token)
        if item is None:
            return None
        item.fetched.set()
        return item.data

    def withdraw(self, item: Announcement) -> None:
        self._files.pop(item.token, None)

    def _expire(self) -> None:
        now = time.monotonic()
        while self._files:
            oldest = next(iter(self._files.values()))
            if now - oldest.created < KEEP_S:
                break
            self._files.popitem(last=False)

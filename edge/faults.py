"""Bad input from a device gets one clear log line (with the device id) per distinct fault; a
repeat of the same fault is only counted, and each kind is capped, so a misbehaving client cannot
flood the journal. The counts are summarised when the session ends."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

MAX_LINES_PER_KIND = 20
MAX_KIND_CHARS = 60  # a kind may hold what the device sent (an unknown message type)
MAX_DETAIL_CHARS = 160
MAX_DISTINCT = 256  # distinct faults remembered per connection (each is logged once)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def bounded(text: str, limit: int) -> str:
    """`text` for one log line: control characters escaped (no forged lines), and past `limit`
    characters a prefix with the full size."""
    size = len(text)
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text[: limit + 1])
    if size <= limit and len(text) <= limit:
        return text
    return f"{text[:limit]}… ({size} chars)"


class FaultLog:
    def __init__(self, log: Any, count: Callable[[str], None] = lambda _kind: None) -> None:
        self._log = log
        self._count = count  # every fault, logged or not (the server's error metrics)
        self.counts: Counter[str] = Counter()
        self._seen: set[tuple[str, str]] = set()
        self._lines: Counter[str] = Counter()

    def __call__(self, kind: str, detail: str) -> None:
        kind, detail = bounded(kind, MAX_KIND_CHARS), bounded(detail, MAX_DETAIL_CHARS)
        self.counts[kind] += 1
        self._count(kind)
        if (kind, detail) in self._seen or len(self._seen) >= MAX_DISTINCT:
            return
        self._seen.add((kind, detail))
        self._lines[kind] += 1
        if self._lines[kind] <= MAX_LINES_PER_KIND:
            self._log.warning("{}: {}", kind, detail)
        elif self._lines[kind] == MAX_LINES_PER_KIND + 1:
            self._log.warning("{}: more of these are counted, not logged", kind)

    def summary(self) -> str:
        return ", ".join(f"{kind}×{n}" for kind, n in sorted(self.counts.items()))


class EveryMinute:
    """One log line per key (an address and a kind of fault) per `every_s`: a host repeating a
    fault many times a second is told once, and the next line says how many were left out."""

    def __init__(self, every_s: float = 60.0, max_keys: int = 1024) -> None:
        self._every_s = every_s
        self._max_keys = max_keys  # past it the memory starts over (a flood of new addresses)
        self._last: dict[tuple[str, str], float] = {}
        self._counts: Counter[tuple[str, str]] = Counter()

    def due(self, address: str, kind: str) -> int | None:
        """None: count this one and stay quiet. A number: write the line now, and say that many
        more like it came since the last line."""
        key = (address[:64], kind[:MAX_KIND_CHARS])
        now = time.monotonic()
        self._counts[key] += 1
        if now - self._last.get(key, -self._every_s) < self._every_s:
            return None
        if len(self._last) >= self._max_keys:
            self._last.clear()
            self._counts.clear()
        self._last[key] = now
        return self._counts.pop(key, 1) - 1


def left_out(repeats: int) -> str:
    return f" (and {repeats} more like it since the last line)" if repeats else ""

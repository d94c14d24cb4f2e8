"""Bad input from a device gets one clear log line (with the device id) per distinct fault; a
repeat of the same fault is only counted, and each kind is capped, so a misbehaving client cannot
flood the journal. The counts are summarised when the session ends."""

from __future__ import annotations

import re
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

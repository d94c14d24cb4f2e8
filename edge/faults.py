"""Bad input from a device gets one clear log line (with the device id) per distinct fault; a
repeat of the same fault is only counted, and each kind is capped, so a misbehaving client cannot
flood the journal. The counts are summarised when the session ends."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

MAX_LINES_PER_KIND = 20


class FaultLog:
    def __init__(self, log: Any, count: Callable[[str], None] = lambda _kind: None) -> None:
        self._log = log
        self._count = count  # every fault, logged or not (the server's error metrics)
        self.counts: Counter[str] = Counter()
        self._seen: set[tuple[str, str]] = set()
        self._lines: Counter[str] = Counter()

    def __call__(self, kind: str, detail: str) -> None:
        self.counts[kind] += 1
        self._count(kind)
        if (kind, detail) in self._seen:
            return
        self._seen.add((kind, detail))
        self._lines[kind] += 1
        if self._lines[kind] <= MAX_LINES_PER_KIND:
            self._log.warning("{}: {}", kind, detail)
        elif self._lines[kind] == MAX_LINES_PER_KIND + 1:
            self._log.warning("{}: more of these are counted, not logged", kind)

    def summary(self) -> str:
        return ", ".join(f"{kind}×{n}" for kind, n in sorted(self.counts.items()))

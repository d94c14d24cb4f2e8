"""Bad input from a device is logged once per kind (with the device id), then only counted, so a
misbehaving client cannot flood the journal; the counts are summarised when the session ends."""

from __future__ import annotations

from collections import Counter
from typing import Any


class FaultLog:
    def __init__(self, log: Any) -> None:
        self._log = log
        self.counts: Counter[str] = Counter()

    def __call__(self, kind: str, detail: str) -> None:
        self.counts[kind] += 1
        n = self.counts[kind]
        if n == 1:
            self._log.warning("{}: {}", kind, detail)
        elif n in (10, 100, 1000, 10000):
            self._log.warning("{} happened {} times; latest: {}", kind, n, detail)

    def summary(self) -> str:
        return ", ".join(f"{kind}×{n}" for kind, n in sorted(self.counts.items()))

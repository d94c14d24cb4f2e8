"""What the server measures about itself: turn latency per stage, sessions, errors by kind and
engine queue depths, in Prometheus text format at `/metrics`, plus the timestamps of recent
turns for `edge bench`.

Every server owns its own registry (tests run several servers in one process over shared
engines). Stage times count from the moment VAD decided the user had finished, the first thing
the server knows; the time between the real end of speech and that decision is only known to
the device, so `edge bench` adds it from its side.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

# Stage → the TurnTimings field that ends it.
STAGES = {
    "asr": "asr_done",
    "llm_first_token": "llm_first_token",
    "first_sentence_synthesized": "tts_first_audio",
    "first_frame_sent": "first_frame_sent",
}
_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
RECENT_TURNS = 512
CONTENT_TYPE = CONTENT_TYPE_LATEST


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """One answered turn. Times are `time.monotonic()` values, which on Linux are one clock for
    every process on the machine, so a benchmark beside the server can line them up with its
    own end of speech."""

    device: str
    vad_decision: float
    asr_done: float | None
    llm_first_token: float | None
    tts_first_audio: float | None
    first_frame_sent: float | None
    tools: int  # tool calls made in the turn


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._stage = Histogram(
            "edge_turn_stage_seconds",
            "Time from the VAD decision (end of the user's turn) to the end of each stage",
            ["stage"],
            buckets=_BUCKETS,
            registry=r,
        )
        self._turns = Counter("edge_turns", "Answered turns", ["kind"], registry=r)
        self._errors = Counter(
            "edge_errors", "Failures and bad input, by kind", ["kind"], registry=r
        )
        self._early = Counter(
            "edge_early_asr",
            "Speech recognised at a pause before the end of the turn, by outcome: used (the "
            "pause ended the turn) or discarded (the user spoke on)",
            ["outcome"],
            registry=r,
        )
        self._held = Counter(
            "edge_held_answers",
            "Answers begun at a pause and held until it ended the turn (vad.preemptive_answer), "
            "by outcome: used, dropped (the user spoke on) or declined (no words, an exit "
            "phrase, or the model busy)",
            ["outcome"],
            registry=r,
        )
        self._semantic_ends = Counter(
            "edge_semantic_ends",
            "Utterances ended at the user's first pause because their text was a complete "
            "command (vad.command_ends_turn), before the hang-over",
            registry=r,
        )
        self._models = Gauge("edge_models_loaded", "1 once every model is loaded", registry=r)
        self._recent: deque[TurnRecord] = deque(maxlen=RECENT_TURNS)
        self._refreshers: list[Callable[[], None]] = []

    def watch(
        self, name: str, help_text: str, read: Callable[[], dict[str, float]], label: str
    ) -> None:
        """A gauge family read at scrape time (sessions, queue depths): never stale, no bookkeeping
        on the hot path."""
        gauge = Gauge(name, help_text, [label], registry=self.registry)

        def collect() -> None:
            for key, value in read().items():
                gauge.labels(key).set(value)

        self._refreshers.append(collect)

    def models_loaded(self, loaded: bool) -> None:
        self._models.set(1 if loaded else 0)

    def error(self, kind: str) -> None:
        self._errors.labels(kind).inc()

    def early_asr(self, used: bool) -> None:
        self._early.labels("used" if used else "discarded").inc()

    def semantic_end(self) -> None:
        self._semantic_ends.inc()

    def held_answer(self, outcome: str) -> None:
        self._held.labels(outcome).inc()

    def turn(self, record: TurnRecord) -> None:
        self._turns.labels("tools" if record.tools else "plain").inc()
        for stage, attr in STAGES.items():
            end = getattr(record, attr)
            if end is not None:
                self._stage.labels(stage).observe(max(0.0, end - record.vad_decision))
        self._recent.append(record)

    def recent_turns(self, since: float = 0.0) -> list[dict[str, Any]]:
        return [asdict(t) for t in self._recent if t.vad_decision >= since]

    def exposition(self) -> bytes:
        for refresh in self._refreshers:
            refresh()
        return generate_latest(self.registry)

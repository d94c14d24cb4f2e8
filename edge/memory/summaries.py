"""Long-term memory: after a session ends, the language model condenses that device's new turns
(with the summary so far) into a few sentences, which later turns see after the shared prefix.

Bounded work on the existing loop and engines: one queue (a device waiting is not queued twice),
one task, one generation at a time, and only while no device is waiting for the model, so a
summary never delays an answer.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from loguru import logger

from edge.engines.llm import LlmEngine
from edge.memory.store import MemoryStore, Turn
from edge.tools.parsing import decode_json

MAX_QUEUED = 64
TURNS_PER_SUMMARY = 12
QUIET_S = 5.0  # the model must have been idle this long: devices often talk in bursts
MAX_SUMMARY_CHARS = 400
_SCHEMA = json.dumps(
    {"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]}
)
INSTRUCTION = (
    "Update the notes about the user of this speaker. Keep what matters for later conversations: "
    "their name, family, preferences, plans and facts they told you. At most three short "
    'sentences, written about the user in the third person. Answer in JSON: {"summary": "..."}'
)


def summary_prompt(system_prompt: str, previous: str, turns: list[Turn]) -> list[dict[str, Any]]:
    lines = [f"Notes so far: {previous or '(none)'}", "New conversation:"]
    for turn in turns:
        lines.append(f"User: {turn.user_text}")
        lines.append(f"Assistant: {turn.assistant_text}")
    # The same system message as live turns: the KV cache of the shared prefix survives.
    return [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": "\n".join(lines) + "\n\n" + INSTRUCTION},
    ]


class Summarizer:
    def __init__(self, store: MemoryStore, llm: LlmEngine, max_tokens: int) -> None:
        self.store = store
        self.llm = llm
        self.max_tokens = max_tokens
        self._queue: asyncio.Queue[tuple[str, list[dict[str, Any]]]] = asyncio.Queue(MAX_QUEUED)
        self._queued: set[str] = set()
        self.written = 0

    def request(self, device_id: str, tools: list[dict[str, Any]] | None = None) -> None:
        """Summarize this device's new turns soon. `tools` are the specs its turns were given:
        the summary prompt shows them too, so the cached prompt prefix survives it."""
        if device_id in self._queued:
            return
        try:
            self._queue.put_nowait((device_id, tools or []))
            self._queued.add(device_id)
        except asyncio.QueueFull:
            logger.bind(device=device_id).warning("summary queue full; summary skipped")

    async def run(self) -> None:
        while True:
            device_id, tools = await self._queue.get()
            self._queued.discard(device_id)
            while self.llm.idle_for() < QUIET_S:  # noqa: ASYNC110 - live turns first
                await asyncio.sleep(1.0)
            try:
                await self.summarize(device_id, tools)
            except Exception as exc:
                logger.bind(device=device_id).error("summary failed: {!r}", exc)

    async def summarize(
        self, device_id: str, tools: list[dict[str, Any]] | None = None
    ) -> str | None:
        previous, turns = await self.store.turns_since_summary(device_id, TURNS_PER_SUMMARY)
        if not turns:
            return None
        prompt = summary_prompt(self.llm.config.system_prompt, previous, turns)
        raw = ""
        async for piece in self.llm.stream(
            prompt,
            max_tokens=self.max_tokens,
            json_schema=_SCHEMA,
            tools=tools or None,
            timeout_s=60,
        ):
            raw += piece
        summary = _read(raw)
        if not _plausible(summary):
            logger.bind(device=device_id).info("memory summary discarded: {!r}", summary[:120])
            summary = previous
        await self.store.save_summary(device_id, summary, turns[-1].id)
        self.written += 1
        logger.bind(device=device_id).info("memory summary updated: {!r}", summary[:120])
        return summary


def _plausible(summary: str) -> bool:
    """Small models sometimes echo the prompt instead of summarizing it."""
    if not summary or len(summary) > MAX_SUMMARY_CHARS:
        return False
    lowered = summary.lower()
    return not any(marker in lowered for marker in ("user:", "assistant:", "notes so far", "json"))


def _read(raw: str) -> str:
    value = decode_json(raw)
    if isinstance(value, dict) and isinstance(value.get("summary"), str):
        return str(value["summary"]).strip()
    return ""

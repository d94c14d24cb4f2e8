"""Long-term memory: after a session ends, the language model condenses that device's new turns
(with the summary so far) into a few sentences, which later turns see after the shared prefix.

Bounded work on the existing loop and engines, at the lowest priority: one queue (a device
waiting is not queued twice), one task, one generation at a time, started only when no device
is talking and the model has been idle a while, and given up (to be tried again later) within
one model step when a device starts talking or an answer needs the model (a background
generation, `Preempted`): a summary never delays a live turn by more than a step. Facts the
user stated in the common forms are read by rule (`facts`); of what the 0.5B model proposes
(it echoes the prompt, invents people, takes times and jokes for facts) only sentences whose
names and words are found in the user's own turns are kept, never times.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger

from edge.assistant.facts import stated_facts
from edge.assistant.relevance import is_question
from edge.engines.llm import LanguageModel
from edge.errors import Preempted
from edge.memory.store import MemoryStore, Turn
from edge.process import QUIET_S  # the model idle this long: devices often talk in bursts
from edge.tools.parsing import decode_json

MAX_QUEUED = 64
TURNS_PER_SUMMARY = 12
MAX_SUMMARY_CHARS = 400
_SCHEMA = json.dumps(
    {"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]}
)
INSTRUCTION = (
    "What personal facts did the user state about themselves in this conversation (their name, "
    "family, likes, plans)? Write them as one or two short sentences about the user, using only "
    'what the user said. If there are none, write "none". Answer in JSON: {"summary": "..."}'
)


def summary_prompt(system_prompt: str, previous: str, turns: list[Turn]) -> list[dict[str, Any]]:
    lines = ["Conversation:"]
    for turn in turns:
        lines.append(f"User: {turn.user_text}")
        lines.append(f"Assistant: {turn.assistant_text}")
    if previous:
        lines.append(f"\nAlready known about the user: {previous}")
    # The same system message as live turns: the KV cache of the shared prefix survives.
    return [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": "\n".join(lines) + "\n\n" + INSTRUCTION},
    ]


class Summarizer:
    def __init__(
        self,
        store: MemoryStore,
        llm: LanguageModel,
        max_tokens: int,
        quiet: Callable[[], bool] = lambda: True,
        after: Callable[[str, list[dict[str, Any]]], Awaitable[object]] | None = None,
    ) -> None:
        """`quiet()`: no device is talking (speaking, or waiting for its answer). `after(device,
        tools)`: called once a device's summary changed (its next prompt is read ahead)."""
        self.store = store
        self.llm = llm
        self.max_tokens = max_tokens
        self.quiet = quiet
        self.after = after
        self._queue: asyncio.Queue[tuple[str, list[dict[str, Any]]]] = asyncio.Queue(MAX_QUEUED)
        self._queued: set[str] = set()
        self._writing = False
        self.written = 0

    @property
    def pending(self) -> bool:
        """Summaries are queued or being written."""
        return bool(self._queued) or self._writing

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
            self._writing = True
            try:
                while not self._free():  # noqa: ASYNC110 - live turns first
                    await asyncio.sleep(1.0)
                changed = await self.summarize(device_id, tools)
                if changed is not None and self.after is not None and self._free(0.0):
                    await self.after(device_id, tools)
            except Preempted:
                logger.bind(device=device_id).debug("summary gave way to a live turn")
                await asyncio.sleep(QUIET_S)
                self.request(device_id, tools)  # tried again when the model is free
            except Exception as exc:
                logger.bind(device=device_id).error("summary failed: {!r}", exc)
            finally:
                self._writing = False

    def _free(self, quiet_s: float = QUIET_S) -> bool:
        """No device talks, none waits for the model, and it has been idle `quiet_s`."""
        return self.quiet() and not self.llm.waiting and self.llm.idle_for() >= quiet_s

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
            background=True,
        ):
            raw += piece
            if not self._free(quiet_s=0.0):
                raise Preempted("a device is talking")
        written = _read(raw)
        # Only the user's own words ground a fact: the assistant's answers (a joke about a
        # tomato, "I set a reminder") are not facts about the user.
        said = [t.user_text for t in turns]
        facts = [fact.sentence for fact in stated_facts(said)]
        grounded = _grounded_sentences(written, grounds(previous, said))
        known = [*facts, *sentences(previous)]
        kept = " ".join(s for s in sentences(grounded) if not adds_nothing(s, known))
        if kept != written:
            logger.bind(device=device_id).info(
                "memory summary: kept {!r} of {!r}", kept, written[:160]
            )
        summary = _merge(previous, " ".join([*facts, kept]).strip())
        await self.store.save_summary(device_id, summary, turns[-1].id)
        self.written += 1
        logger.bind(device=device_id).info("memory summary updated: {!r}", summary[:120])
        return summary


_STOPWORDS = set(
    "the user users their they them this that with from have has about likes like loves love "
    "name named called wants want prefers prefer enjoys enjoy lives live told said says asked "
    "asks also when what which will would there here been being into more most some very "
    "stated mentioned shared person speaker and has are was his her she him who its for not "
    "but all any can own".split()
)


def _words(text: str, shortest: int = 4) -> list[str]:
    return re.findall(rf"[^\W\d_]{{{shortest},}}", text.lower())


# Characters a Chinese summary sentence adds around what the user said ("用户叫小明。").
_CJK_FRAME = set("用户他她它们的了是也和在叫喜欢住有")
_CJK = re.compile(r"[\u3400-\u9fff]")


# Where a sentence's clauses part: each clause must come from one thing the user said.
_CLAUSES = re.compile(r"[,;，；、]| and | but ")


def _content(text: str) -> tuple[list[str], list[str]]:
    """The words of `text` that say something (names, numbers, content words), and its Chinese
    characters (no spaces between words: compared one by one)."""
    cjk = _CJK.findall(text)
    latin = _CJK.sub(" ", text)
    words = [w for w in _words(latin, 3) if w not in _STOPWORDS]  # "Sam" counts too
    return words + re.findall(r"\d+", latin), cjk


def _covers(source: str, words: list[str], cjk: list[str]) -> bool:
    seen = set(_CJK.findall(source)) | _CJK_FRAME
    latin = _CJK.sub(" ", source)
    known = set(_words(latin, 2)) | set(re.findall(r"\d+", latin))
    return all(ch in seen for ch in cjk) and all(w in known for w in words)


def _grounded(summary: str, sources: str | list[str]) -> bool:
    """Every clause of the summary sentence says only what one thing the user said says: each
    of its names, numbers and content words, and each of its Chinese characters (a sentence in
    both scripts is checked in both: "The user's name is小明, family is unknown, likes to play
    music…" got in when only its Chinese characters were). Words gathered from different
    utterances make new facts: "Sam's mother is Sam." from "My name is Sam." and "Call my
    mother." (`edge bench answers`), as half of the words made "Sam is a 25-year-old from
    France." once. `sources`: one text, or each thing said apart."""
    pool = [sources] if isinstance(sources, str) else sources
    words, cjk = _content(summary)
    if not words and not cjk:
        return False
    clauses = [_content(clause) for clause in _CLAUSES.split(summary)]
    return all(
        any(_covers(source, words, cjk) for source in pool)
        for words, cjk in clauses
        if words or cjk
    )


def adds_nothing(sentence: str, facts: list[str]) -> bool:
    """Whether each clause of a sentence says no more than one of the facts already known
    ("Sam's name is Sam." beside "The user's name is Sam."; "They live in Lisbon." beside "The
    user lives in Lisbon." from an earlier summary): kept twice, the summary repeats itself."""
    clauses = [_content(clause) for clause in _CLAUSES.split(sentence)]
    return all(any(_covers(fact, words, cjk) for fact in facts) for words, cjk in clauses)


def grounds(previous: str, said: list[str]) -> list[str]:
    """What a new fact's words may come from, each apart: the facts kept so far, and what the
    user stated, not what they asked ("What is the capital of France?" grounded "They are from
    France.", `edge bench answers`)."""
    return [previous, *(text for text in said if not is_question(text))]


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?。！？])\s*", text) if s.strip()]


def _grounded_sentences(written: str, sources: str | list[str]) -> str:
    """The sentences of the model's notes that are complete, plausible and grounded (it often
    starts well, then invents, then runs into the token limit)."""
    kept = [
        sentence
        for sentence in sentences(written)
        if sentence[-1] in ".!?。！？"
        and _plausible(sentence)
        and not _CLOCK.search(sentence)  # "their name as 12:00 PM": times are never facts
        and _grounded(sentence, sources)
    ]
    return " ".join(kept)


_CLOCK = re.compile(r"\d{1,2}[:.]\d{2}|\b\d{1,2} ?[ap]\.?m\b|\b[AP]M\b|\d+点", re.I)


def _merge(previous: str, new: str) -> str:
    """Old facts stay unless the notes grow too long; then the oldest go first."""
    merged: list[str] = []
    for sentence in sentences(f"{previous} {new}"):
        if sentence.lower() not in (s.lower() for s in merged):
            merged.append(sentence)
    while len(" ".join(merged)) > MAX_SUMMARY_CHARS and len(merged) > 1:
        merged.pop(0)
    return " ".join(merged)


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

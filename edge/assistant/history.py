"""One device's conversation as the model sees it again: the turns kept (each with the clock its
prompt carried, the question and the answer), the long-term summary, and their storage in the
memory database, which outlives the connection.

A device opens a new connection for every conversation. The memory keeps, besides the turns,
which of them the prompt's history held and the clock each carried, so the next connection
renders the very same history, token for token: the model's saved state of this device's last
prompt still fits it, and the first question reads only its new words."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge.engines.llm import Message
from edge.memory.store import MemoryStore
from edge.tools.registry import function_name


@dataclass
class SpokenTurn:
    """One finished turn: what the user said, what was answered, the tools it called."""

    user_text: str
    reply: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    clock: Message | None = None  # the clock message its prompt carried


class Conversation:
    def __init__(
        self,
        memory: MemoryStore | None,
        device_id: str,
        *,
        keep: int,
        grammar_mode: bool,
        log: Any,
        on_error: Callable[[str], None] = lambda _kind: None,
    ) -> None:
        self.memory = memory if device_id else None  # a device without an id: nothing stored
        self.device_id = device_id
        self.keep = keep  # turns in the prompt, at most (`llm.history_turns`)
        self.grammar_mode = grammar_mode
        self.log = log
        self.on_error = on_error  # counts failures by kind (the server's error metrics)
        self.summary = ""
        self.turns: list[list[Message]] = []  # each turn as prompt messages
        # The memory's id of each kept turn (None: not stored), so that a trim can be stored
        # and the next connection restores exactly the history this one ends with.
        self._ids: list[int | None] = []

    async def restore(self) -> None:
        """The last turns and the summary from the memory: a new connection (or a restart) goes
        on where the device left off."""
        if self.memory is None:
            return
        try:
            stored = await self.memory.history(self.device_id, self.keep)
            self.summary = await self.memory.summary(self.device_id)
        except Exception as exc:
            self.log.error("memory could not be read: {!r}", exc)
            self.on_error("memory")
            return
        restored = [
            self._entry(
                SpokenTurn(
                    t.user_text,
                    t.assistant_text,
                    t.tool_calls,
                    {"role": "system", "content": t.clock} if t.clock else None,
                )
            )
            for t in stored
        ]
        self.turns = restored + self.turns
        self._ids = [*(t.id for t in stored), *self._ids]
        if stored or self.summary:
            self.log.info(
                "memory restored: {} turns{}", len(stored), ", summary" if self.summary else ""
            )

    def history(self) -> list[Message]:
        """The kept turns, as prompt messages."""
        return _flatten(self.turns, self.keep)

    def history_after(self, turn: SpokenTurn) -> list[Message]:
        """The history once `turn` is added (and trimmed as it will be): the next prompt."""
        turns = [*self.turns, self._entry(turn)]
        trim_history(turns, self.keep)
        return _flatten(turns, self.keep)

    def add(self, turn: SpokenTurn, turn_id: int | None) -> None:
        """Keep `turn` (stored as `turn_id`) in the history; past `keep` turns, drop the
        older half. The memory learns both, for the next connection (written in the
        background: nothing here waits, so the reply that called this ends at once)."""
        self.turns.append(self._entry(turn))
        self._ids.append(turn_id)
        trimmed = trim_history(self.turns, self.keep)
        del self._ids[: len(self._ids) - len(self.turns)]
        if self.memory is None or turn_id is None:
            return
        start = self._ids[0] if trimmed and self._ids else None
        clock = str(turn.clock["content"]) if turn.clock else ""
        self.memory.keep_in_history(self.device_id, turn_id, clock, start)

    def _entry(self, turn: SpokenTurn) -> list[Message]:
        clock = [turn.clock] if turn.clock else []
        return [
            *clock,
            *turn_messages(turn.user_text, turn.reply, turn.tool_calls, self.grammar_mode),
        ]

    # --- storage -----------------------------------------------------------------------------

    async def begin(self, session_id: str, text: str) -> int | None:
        """Store the user's words as a turn in progress; its id, or None (nothing stored)."""
        if self.memory is None:
            return None
        try:
            return await self.memory.begin_turn(self.device_id, session_id, text)
        except Exception as exc:
            self.log.error("memory could not store the turn: {!r}", exc)
            self.on_error("memory")
            return None

    async def finish(self, turn_id: int | None, reply: str, calls: list[dict[str, Any]]) -> None:
        """Store the answer of a turn `begin` stored."""
        if self.memory is None or turn_id is None:
            return
        try:
            await self.memory.finish_turn(turn_id, reply, calls)
        except Exception as exc:
            self.log.error("memory could not store the answer: {!r}", exc)
            self.on_error("memory")


def _flatten(turns: list[list[Message]], keep: int) -> list[Message]:
    return [m for turn in (turns[-keep:] if keep else []) for m in turn]


def trim_history(turns: list[Any], keep: int) -> bool:
    """Past `keep` turns, drop the older half at once rather than one turn per turn: a window
    sliding by one turn changes the prompt right after the system prompt every turn, and the
    model re-reads the whole history each time; dropped in halves, the prompt only grows
    between drops and the model's cache of it is reused. Whether any were dropped."""
    if len(turns) > keep:
        del turns[: len(turns) - (max(1, keep // 2) if keep else 0)]
        return True
    return False


def turn_messages(
    user_text: str, assistant_text: str, tool_calls: list[dict[str, Any]], grammar_mode: bool
) -> list[Message]:
    """One past turn as the model sees it again in later prompts.

    Template mode leaves turns that used tools out: with "the volume has been set" in its
    history, the 0.5B model (and the 1.5B too) answers the next request in words and calls no
    tool, announcing a change that never happened (measured: 1 call in 8 requests after the
    first). Grammar mode keeps them, as JSON like its own output, and then still calls tools
    (8 in 8)."""
    if _words(assistant_text) == _words(user_text):
        # An echo: kept as an answer, the model would echo every question after it. What the
        # user said still counts ("my name is Alice").
        return [{"role": "user", "content": user_text}]
    if not grammar_mode:
        if tool_calls:
            return []
        return [
            {"role": "user", "content": user_text},
            {"role": "assistant", "content": assistant_text},
        ]
    messages: list[Message] = [{"role": "user", "content": user_text}]
    for call in tool_calls:
        name, arguments = function_name(str(call.get("name", ""))), call.get("arguments") or {}
        text = json.dumps({"tool": name, "arguments": arguments}, ensure_ascii=False)
        messages.append({"role": "assistant", "content": text})
        result = call.get("result") if "result" in call else f"error: {call.get('error')}"
        messages.append({"role": "tool", "content": str(result)})
    reply = {"tool": "none", "reply": assistant_text}
    messages.append({"role": "assistant", "content": json.dumps(reply, ensure_ascii=False)})
    return messages


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())

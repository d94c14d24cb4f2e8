"""The messages of one request to the model, in an order that keeps its cache valid: what every
device shares first (the system prompt, and the tool list the chat template renders after it),
then what stays the same for a device from turn to turn (its summary, its history), then what
changes every turn (the clock, the user's words)."""

from __future__ import annotations

from edge.config import Config
from edge.engines.llm import Message, ToolSpec
from edge.tools import grammar
from edge.tools.builtin import local_now, spoken_time
from edge.tools.registry import ToolSet

CLOCK_PREFIX = "It is now "


class PromptBuilder:
    def __init__(self, config: Config, tools: ToolSet) -> None:
        self.config = config
        self.tools = tools if config.tools.enabled else ToolSet([])
        # Grammar mode: the model answers in JSON, its tools described in the system prompt.
        self.grammar_mode = config.tools.mode == "grammar" and bool(self.tools)

    def tool_specs(self) -> list[ToolSpec] | None:
        """The tools the chat template shows (template mode), else None."""
        return self.tools.specs() if self.tools and not self.grammar_mode else None

    def clock(self) -> Message:
        """The local time. It goes last, after everything that stays the same from turn to turn,
        so the cached prompt stays valid (and a read-ahead reads it while the user speaks), and
        it stays in the history with its turn, so the next prompt only adds to this one. Knowing
        the time, the small model answers date questions from it (there is no clock tool), nor
        makes a time up when it has no tools."""
        now = spoken_time(local_now(self.config.tools.timezone))
        return {"role": "system", "content": f"{CLOCK_PREFIX}{now}."}

    def messages(
        self, user_text: str, history: list[Message], summary: str, clock: Message | None = None
    ) -> list[Message]:
        """`clock`: the one this turn keeps in the history (default: now)."""
        system = self.config.llm.system_prompt
        if self.grammar_mode:
            system += grammar.instructions(self.tools)
        prompt: list[Message] = [{"role": "system", "content": system}]
        if summary:
            prompt.append(
                {"role": "system", "content": f"What you remember about this user: {summary}"}
            )
        clock = clock or self.clock()
        return [*prompt, *history, clock, {"role": "user", "content": user_text}]

    def ahead(
        self, history: list[Message], summary: str
    ) -> tuple[list[Message], list[ToolSpec] | None]:
        """The messages and tools of the next request, up to the user's coming words: what
        `LanguageModel.prefetch` reads while the user speaks."""
        return self.messages("", history, summary)[:-1], self.tool_specs()

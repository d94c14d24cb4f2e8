"""The one place where the prompt prefix every turn starts with (the system prompt and the tool
list the chat template renders after it) is evaluated before anyone asks.

At start-up: with the server's shared tools, extended by the tool list the last device offered
(kept on disk), so that the first question after a restart finds it ready. When a device lists
tools that extend it: again, while the model is free (devices of one kind share the list).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loguru import logger

from edge.assistant.history import Conversation
from edge.assistant.prompt import PromptBuilder
from edge.config import Config
from edge.engines.llm import LanguageModel, Progress, ToolSpec
from edge.memory.store import MemoryStore
from edge.tools.registry import ToolRegistry, ToolSet


class PrefixWarmer:
    def __init__(
        self,
        llm: LanguageModel,
        config: Config,
        registry: ToolRegistry,
        tools_file: Path | None = None,
    ) -> None:
        self.llm = llm
        self.config = config
        self.registry = registry
        # Where the last device's full tool list is kept for the next start (template mode
        # only: in grammar mode the tools are in the system prompt, and no list is shown).
        self.tools_file = tools_file
        self.warmed: list[ToolSpec] = []  # the tool specs whose prefix was last evaluated

    async def at_start(self, progress: Progress | None = None) -> float:
        """Evaluate the prefix with the shared tools, or with the remembered list of the last
        device when it extends them; the seconds it took. No time limit: a slow or busy
        board takes longer but still gets there (`progress(read, total)` hears how far)."""
        prompt = PromptBuilder(self.config, ToolSet(self.registry.tools()))
        specs = prompt.tool_specs()
        known = self._remembered()
        if specs and known[: len(specs)] == specs and len(known) > len(specs):
            specs = known
        self.warmed = specs or []
        messages = prompt.messages("Hello", [], "", prompt.clock())
        seconds = await self.llm.warm_up(messages, specs, progress=progress)
        logger.info("prompt prefix ({} tools) evaluated in {:.2f} s", len(specs or []), seconds)
        return seconds

    async def for_device(self, tools: ToolSet, log: Any) -> None:
        """A device listed its tools: evaluate the prefix with them now, unless it already was
        or the model is busy (the first question then reads it)."""
        if not tools or self.config.tools.mode != "template":
            return
        specs = tools.specs()
        if specs == self.warmed:
            log.debug("prompt prefix with the device's tools: already evaluated")
            return
        if self.llm.busy:
            log.debug("prompt prefix with the device's tools: left for the first question")
            return
        self.warmed = specs
        # In the background: a device that starts talking meanwhile goes first, and reads the
        # rest of the prefix with its question.
        seconds = await self.llm.warm_up(tools=specs, background=True)
        log.info("prompt prefix with the device's tools evaluated in {:.2f} s", seconds)
        self._remember(specs)

    async def for_returning_device(
        self, memory: MemoryStore, device_id: str, specs: list[ToolSpec]
    ) -> int:
        """Read a device's next prompt (its summary, its history: all but the coming clock and
        words) while it is away, in the background: after a new summary, which changes the
        prompt near its start, the device's next question would read its history again. The
        model's saved state of it (`edge.engines.llm.prompt_states`) waits for the device.
        Template mode only (`specs`: the tools its turns were given); the tokens read."""
        if self.config.tools.mode != "template":
            return 0
        conversation = Conversation(
            memory,
            device_id,
            keep=self.config.llm.history_turns,
            grammar_mode=False,
            log=logger.bind(device=device_id),
        )
        await conversation.restore()
        prompt = PromptBuilder(self.config, ToolSet([]))
        messages, _tools = prompt.ahead(conversation.history(), conversation.summary)
        return await self.llm.prefetch(messages, specs or None, owner=device_id)

    def _remember(self, specs: list[ToolSpec]) -> None:
        if self.tools_file is None:
            return
        try:
            self.tools_file.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.tools_file.with_suffix(".tmp")
            temporary.write_text(json.dumps(specs, ensure_ascii=False))
            temporary.replace(self.tools_file)
        except OSError as exc:
            logger.warning("could not keep the tool list for the next start: {}", exc)

    def _remembered(self) -> list[ToolSpec]:
        if self.tools_file is None or not self.tools_file.exists():
            return []
        try:
            specs = json.loads(self.tools_file.read_text())
        except (OSError, ValueError) as exc:
            logger.warning("ignoring {}: {}", self.tools_file, exc)
            return []
        return specs if isinstance(specs, list) else []

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

from edge.assistant.prompt import PromptBuilder
from edge.config import Config
from edge.engines.llm import LanguageModel, ToolSpec
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

    async def at_start(self) -> float:
        """Evaluate the prefix with the shared tools, or with the remembered list of the last
        device when it extends them; the seconds it took."""
        prompt = PromptBuilder(self.config, ToolSet(self.registry.tools()))
        specs = prompt.tool_specs()
        known = self._remembered()
        if specs and known[: len(specs)] == specs and len(known) > len(specs):
            specs = known
        self.warmed = specs or []
        messages = prompt.messages("Hello", [], "", prompt.clock())
        seconds = await self.llm.warm_up(messages, specs)
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
        seconds = await self.llm.warm_up(tools=specs)
        log.info("prompt prefix with the device's tools evaluated in {:.2f} s", seconds)
        self._remember(specs)

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

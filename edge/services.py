"""Everything a device session uses that outlives it: the engines, the shared tools, memory,
reminders and the summarizer. Built once by `EdgeServer`, shared by every session."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger

from edge.engines.loader import Engines
from edge.memory.store import MemoryStore
from edge.memory.summaries import Summarizer
from edge.metrics import Metrics
from edge.tools.registry import ToolRegistry
from edge.tools.reminders import ReminderScheduler


@dataclass
class Services:
    engines: Engines
    registry: ToolRegistry = field(default_factory=ToolRegistry)
    metrics: Metrics = field(default_factory=Metrics)
    memory: MemoryStore | None = None
    reminders: ReminderScheduler | None = None
    summarizer: Summarizer | None = None
    # The tool specs whose prompt prefix was last evaluated (see DeviceSession._start_mcp).
    warmed_tools: list[dict[str, Any]] = field(default_factory=list)
    http_port: int = 0  # for the vision URL given to devices in MCP `initialize` (§7.1)
    # Where the last device's full tool list is kept, so that the next start evaluates the
    # prefix with it and the first question after a restart does not pay for it.
    prefix_tools_file: Path | None = None

    def remember_prefix_tools(self, specs: list[dict[str, Any]]) -> None:
        if self.prefix_tools_file is None:
            return
        try:
            self.prefix_tools_file.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.prefix_tools_file.with_suffix(".tmp")
            temporary.write_text(json.dumps(specs, ensure_ascii=False))
            temporary.replace(self.prefix_tools_file)
        except OSError as exc:
            logger.warning("could not keep the tool list for the next start: {}", exc)

    def remembered_prefix_tools(self) -> list[dict[str, Any]]:
        if self.prefix_tools_file is None or not self.prefix_tools_file.exists():
            return []
        try:
            specs = json.loads(self.prefix_tools_file.read_text())
        except (OSError, ValueError) as exc:
            logger.warning("ignoring {}: {}", self.prefix_tools_file, exc)
            return []
        return specs if isinstance(specs, list) else []

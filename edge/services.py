"""Everything a device session uses that outlives it: the engines, the shared tools, memory,
reminders and the summarizer. Built once by `EdgeServer`, shared by every session."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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

"""Everything a device session uses that outlives it: the engines, the shared tools, memory,
reminders, the summarizer and the prompt-prefix warmer. Built once by `EdgeServer` before any
device can connect, shared by every session, never replaced."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge.announcements import Announcements
from edge.assistant.summarizer import Summarizer
from edge.assistant.warmup import PrefixWarmer
from edge.commands.runner import CommandRunner
from edge.engines.loader import Engines
from edge.memory.store import MemoryStore
from edge.metrics import Metrics
from edge.protocol.firmware import FirmwareVersions
from edge.tools.registry import ToolRegistry
from edge.tools.reminders import ReminderScheduler


@dataclass(frozen=True)
class Services:
    engines: Engines
    registry: ToolRegistry
    metrics: Metrics
    warmer: PrefixWarmer
    memory: MemoryStore | None = None
    reminders: ReminderScheduler | None = None
    summarizer: Summarizer | None = None
    commands: CommandRunner | None = None  # None: every turn goes to the model
    # Firmware-2.5 announcement files, and the firmware each device reported in its config call.
    announcements: Announcements = field(default_factory=Announcements)
    firmware: FirmwareVersions = field(default_factory=FirmwareVersions)

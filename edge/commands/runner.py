"""Carrying out a recognised command with the tools this device actually offers.

A level or theme command is mapped onto a device tool by name and schema (the firmware's
`self.audio_speaker.set_volume`, an IoT `iot.Speaker.SetVolume`, another board's `set_volume`):
a tool whose name holds the target word and whose parameters take a number (a string for the
theme). "Louder" reads the current level from the device's status tool first. Timers go to the
server's own reminder tool. When the device has no such tool the answer says so; the command is
never mapped onto another tool. A command that cannot be carried out with confidence (a relative
change with no way to read the current level) is left to the model (`can_run`).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from edge.commands import chinese, english, replies
from edge.commands.intents import (
    AskAbilities,
    AskClock,
    Command,
    Introduce,
    Language,
    ManageReminders,
    SetLevel,
    SetTheme,
    StartTimer,
    Target,
    duration_words,
)
from edge.engines.asr import Bias
from edge.errors import ToolError
from edge.memory.store import Reminder
from edge.tools.builtin import local_now, local_time
from edge.tools.registry import Tool, ToolContext, ToolSet
from edge.tools.reminders import ReminderScheduler

STEP = 10  # "louder": how far one step moves a 0-100 level
UNMUTED_VOLUME = 50  # "unmute" when the volume before muting is not known
MAX_DEVICES = 256  # volumes remembered for "unmute"
LISTED = 3  # reminders read out by "what reminders do I have"; the rest are counted
_NAMES: dict[Target, tuple[str, ...]] = {"volume": ("volume",), "brightness": ("brightness",)}
_STATUS_KEYS: dict[Target, tuple[str, str]] = {
    "volume": ("audio_speaker", "volume"),
    "brightness": ("screen", "brightness"),
}


@dataclass(frozen=True)
class Done:
    """What to say, and what was done (for the log): the tool called, if any, and whether it
    did what was asked."""

    spoken: str
    tool: str = ""
    ok: bool = True
    keep: bool = False  # a turn for the history and the memory (a fact the user stated)


def match(text: str) -> Command | None:
    """The command `text` is, with confidence; None sends it to the model."""
    return chinese.match(text) or english.match(text)


# What speech recognition is steered towards, for a second reading of a short clip.
ASR_BIAS = Bias(english.ASR_PROMPT, match, english.near_command)


class CommandRunner:
    def __init__(self, timezone: str, reminders: ReminderScheduler | None = None) -> None:
        self.timezone = timezone
        self.reminders = reminders  # for cancelling and listing them
        self._volume_before_mute: dict[str, int] = {}  # by device, for "unmute"

    def can_run(self, command: Command, tools: ToolSet) -> bool:
        """Whether the command can be carried out with confidence here, decided before anything
        is sent: "louder" needs the device's status tool to know where it starts (the model
        gets the others)."""
        if isinstance(command, SetLevel) and command.step:
            found = _level_tool(tools, command.target)
            return found is None or _status_tool(tools) is not None
        return True

    async def run(self, command: Command, tools: ToolSet, context: ToolContext) -> Done:
        if isinstance(command, Introduce):
            return Done(replies.say("introduced", command.language, name=command.name), keep=True)
        if isinstance(command, AskClock):
            return Done(replies.clock(local_now(self.timezone), command.what, command.language))
        if isinstance(command, AskAbilities):
            return Done(replies.abilities(self._abilities(tools), command.language))
        if isinstance(command, SetLevel):
            return await self._level(command, tools, context)
        if isinstance(command, SetTheme):
            return await self._theme(command, tools, context)
        if isinstance(command, ManageReminders):
            return await self._manage(command, tools, context)
        return await self._timer(command, tools, context)

    async def _level(self, command: SetLevel, tools: ToolSet, context: ToolContext) -> Done:
        lang, target = command.language, command.target
        found = _level_tool(tools, target)
        if found is None:
            return Done(replies.say(f"no {target}", lang))
        tool, parameter = found
        low, high = _bounds(tool.properties[parameter])
        value = command.value
        if command.step or (target == "volume" and value == 0):
            current = await _current_level(tools, target, context)
            if target == "volume" and value == 0 and current:
                self._volume_before_mute[context.device_id] = current
                if len(self._volume_before_mute) > MAX_DEVICES:
                    del self._volume_before_mute[next(iter(self._volume_before_mute))]
            if command.step:
                if current is None:  # the status tool failed (`can_run` saw one)
                    return Done(replies.say("failed", lang), tool.name, ok=False)
                value = current + command.step * STEP
        if command.restore:
            value = self._volume_before_mute.pop(context.device_id, UNMUTED_VOLUME)
        assert value is not None
        value = min(max(value, low), high)
        if not await _call(tool, {parameter: value}, context):
            return Done(replies.say("failed", lang), tool.name, ok=False)
        return Done(replies.level_set(target, value, lang), tool.name)

    async def _theme(self, command: SetTheme, tools: ToolSet, context: ToolContext) -> Done:
        lang = command.language
        found = _theme_tool(tools)
        if found is None:
            return Done(replies.say("no theme", lang))
        tool, parameter = found
        if await _call(tool, {parameter: command.theme}, context):
            return Done(replies.say(f"theme {command.theme}", lang), tool.name)
        return Done(replies.say("failed", lang), tool.name, ok=False)

    async def _timer(self, command: StartTimer, tools: ToolSet, context: ToolContext) -> Done:
        lang = command.language
        tool = tools.find("set_reminder")
        if tool is None or tool.source != "builtin":
            return Done(replies.say("no reminders", lang))
        seconds = command.seconds or _seconds_until(command.clock, local_now(self.timezone))
        length = duration_words(seconds, lang)
        if command.text:
            later = replies.say("reminder", lang, text=command.text)
        else:
            later = replies.say("timer done", lang, duration=length)
        if not await _call(tool, {"minutes": 0, "seconds": seconds, "text": later}, context):
            return Done(replies.say("failed", lang), tool.name, ok=False)
        if command.clock:
            return Done(replies.say("reminder at", lang, clock=command.clock), tool.name)
        key = "reminder set" if command.text else "timer set"
        return Done(replies.say(key, lang, duration=length), tool.name)

    async def _manage(self, command: ManageReminders, tools: ToolSet, context: ToolContext) -> Done:
        """Read out, or cancel, what is still to come. "Cancel the timer" with several pending
        cancels none: which one was meant is not known."""
        lang, scheduler = command.language, self.reminders
        tool = tools.find("set_reminder")
        if scheduler is None or tool is None or tool.source != "builtin":
            return Done(replies.say("no reminders", lang))
        upcoming = await scheduler.upcoming(context.device_id)
        if command.action == "list":
            return Done(self._listed(upcoming, lang))
        if not upcoming:
            return Done(replies.say("none to cancel", lang))
        if len(upcoming) > 1 and not command.every:
            return Done(replies.say("which to cancel", lang, count=len(upcoming)))
        cancelled = await scheduler.cancel(context.device_id, upcoming)
        if cancelled == 0:  # spoken or cancelled meanwhile
            return Done(replies.say("none to cancel", lang))
        if len(upcoming) == 1:
            clock = f"{self._local(upcoming[0].due):%H:%M}"
            return Done(replies.say("cancelled one", lang, clock=clock), "reminders")
        return Done(replies.say("cancelled", lang, count=cancelled), "reminders")

    def _abilities(self, tools: ToolSet) -> list[str]:
        """What this device can be asked, as the commands would find its tools."""
        reminders = tools.find("set_reminder")
        found = {
            "reminders": reminders is not None and reminders.source == "builtin",
            "volume": _level_tool(tools, "volume") is not None,
            "brightness": _level_tool(tools, "brightness") is not None,
            "theme": _theme_tool(tools) is not None,
        }
        return ["questions", "clock", *(key for key, offered in found.items() if offered)]

    def _listed(self, upcoming: list[Reminder], lang: Language) -> str:
        if not upcoming:
            return replies.say("none pending", lang)
        count = len(upcoming)
        said = [replies.say("one pending" if count == 1 else "pending", lang, count=count)]
        now = local_now(self.timezone)
        for reminder in upcoming[:LISTED]:
            due = self._local(reminder.due)
            seconds = max(1, round((due - now).total_seconds()))
            if seconds >= 60:
                seconds = max(60, round(seconds / 60) * 60)  # "in 4 minutes", not seconds
            duration = duration_words(seconds, lang)
            text = reminder.text.strip().rstrip(".。")
            clock = f"{due:%H:%M}"
            said.append(
                replies.say("pending item", lang, duration=duration, clock=clock, text=text)
            )
        if count > LISTED:
            said.append(replies.say("more pending", lang, count=count - LISTED))
        return ("" if lang == "zh" else " ").join(said)

    def _local(self, moment: float) -> dt.datetime:
        return local_time(moment, self.timezone)


def _device_tools(tools: ToolSet) -> list[Tool]:
    return [tool for tool in tools.tools if tool.source != "builtin"]


def _kind(schema: Any) -> str:
    return str(schema.get("type", "")) if isinstance(schema, dict) else ""


def _level_tool(tools: ToolSet, target: Target) -> tuple[Tool, str] | None:
    """The device's tool that sets `target`, and the parameter that takes the level."""
    for tool in _device_tools(tools):
        name = tool.name.lower()
        if not any(word in name for word in _NAMES[target]) or "get" in name.split(".")[-1]:
            continue
        numbers = [k for k, v in tool.properties.items() if _kind(v) in ("integer", "number")]
        named = [k for k in numbers if target in k.lower()]
        if named or len(numbers) == 1:
            return tool, (named or numbers)[0]
    return None


def _theme_tool(tools: ToolSet) -> tuple[Tool, str] | None:
    """The device's tool that sets the theme, and the parameter that takes its name."""
    for tool in _device_tools(tools):
        strings = [k for k, v in tool.properties.items() if _kind(v) == "string"]
        if "theme" in tool.name.lower() and len(strings) == 1:
            return tool, strings[0]
    return None


def _bounds(schema: Any) -> tuple[int, int]:
    low, high = schema.get("minimum", 0), schema.get("maximum", 100)
    ok = isinstance(low, int | float) and isinstance(high, int | float) and low <= high
    return (int(low), int(high)) if ok else (0, 100)


async def _current_level(tools: ToolSet, target: Target, context: ToolContext) -> int | None:
    """The level the device reports in its status (the firmware's `self.get_device_status`:
    `{"audio_speaker": {"volume": 70}, "screen": {"brightness": 80}}`), or None."""
    tool = _status_tool(tools)
    if tool is None:
        return None
    try:
        status = json.loads(await tool.call({}, context))
        section, key = _STATUS_KEYS[target]
        value = status[section][key]
    except (ToolError, ValueError, KeyError, TypeError):
        return None
    return int(value) if isinstance(value, int | float) and value == value else None


def _status_tool(tools: ToolSet) -> Tool | None:
    for tool in _device_tools(tools):
        if tool.name.lower().endswith("get_device_status"):
            return tool
    return None


async def _call(tool: Tool, arguments: dict[str, Any], context: ToolContext) -> bool:
    """True when the tool did it: no error, and not the firmware's `false` for a bad value."""
    try:
        result = await tool.call(tool.clean_arguments(arguments), context)
    except ToolError:
        return False
    return result.strip().lower() != "false"


def _seconds_until(clock: str, now: dt.datetime) -> int:
    hour, minute = (int(part) for part in clock.split(":"))
    due = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if due <= now:
        due += dt.timedelta(days=1)
    return max(1, int((due - now).total_seconds()))

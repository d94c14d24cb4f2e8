"""Tools the server itself provides: reminders and timers, ending the conversation.

There is no clock tool: the time is in every prompt (`PromptBuilder.clock`) and "what time is
it" is a household command (edge/commands). The 0.5B model called a clock tool for greetings,
names and unrelated questions, then read the date out instead of answering."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from edge.errors import ToolArgumentError, ToolError
from edge.tools.registry import Tool, ToolContext
from edge.tools.reminders import ReminderScheduler

MAX_REMINDER_S = 7 * 24 * 3600


def local_now(timezone: str) -> dt.datetime:
    if timezone:
        return dt.datetime.now(ZoneInfo(timezone))
    return dt.datetime.now().astimezone()


def local_time(moment: float, timezone: str) -> dt.datetime:
    """A Unix time (a reminder's due time) on the household's clock."""
    return dt.datetime.fromtimestamp(moment, local_now(timezone).tzinfo)


def reminder_delay(args: dict[str, Any]) -> float:
    """Seconds until a `set_reminder` call's reminder is due (its minutes and seconds)."""
    return float(args.get("minutes") or 0) * 60 + float(args.get("seconds") or 0)


def spoken_time(moment: dt.datetime) -> str:
    return f"{moment:%A} {moment.day} {moment:%B %Y}, {moment:%H:%M}"


def builtin_tools(
    timezone: str, reminders: ReminderScheduler | None, timeout_s: float
) -> list[Tool]:
    async def set_reminder(args: dict[str, Any], ctx: ToolContext) -> str:
        assert reminders is not None
        delay = reminder_delay(args)
        if delay <= 0:
            raise ToolArgumentError("the delay (minutes or seconds) must be more than zero")
        if delay > MAX_REMINDER_S:
            raise ToolError("reminders can be at most a week ahead")
        text = str(args.get("text") or "").strip() or "This is your reminder."
        due = await reminders.add(ctx.device_id, delay, text)
        at = local_time(due, timezone)
        return f"Reminder set for {at:%H:%M:%S}: {text}"

    async def end_conversation(_args: dict[str, Any], ctx: ToolContext) -> str:
        ctx.end_conversation = True
        return "ending"

    tools = [
        Tool(
            "end_conversation",
            "End the conversation, only when the user says goodbye or asks you to stop.",
            {"type": "object", "properties": {}},
            end_conversation,
            timeout_s,
            terminal=True,
        ),
    ]
    if reminders is not None:
        tools.insert(
            0,
            Tool(
                "set_reminder",
                "Set a timer or reminder: after the delay, the text is spoken to the user.",
                {
                    "type": "object",
                    "properties": {
                        "minutes": {"type": "number", "minimum": 0, "description": "delay"},
                        "seconds": {"type": "number", "minimum": 0, "description": "more delay"},
                        "text": {"type": "string", "description": "what to say then"},
                    },
                    "required": ["minutes", "text"],
                },
                set_reminder,
                timeout_s,
            ),
        )
    return tools

"""A call's arguments checked against what the user said, before the call runs.

Both default models turn "Remind me in thirty seconds to stir the soup." into a 30-minute
reminder (`edge bench tools`): the number is the user's, the unit is not. Where the user's
words state the delay plainly, that delay is what the reminder gets; where they do not, the
model's arguments stand. In a session the command layer serves the plain forms first; this
covers the requests it leaves to the model ("could you maybe in thirty seconds remind me to…").
"""

from __future__ import annotations

import re
from typing import Any

from edge.commands import chinese, english
from edge.tools.builtin import reminder_delay
from edge.tools.registry import Tool

# Where an English delay starts: "in thirty seconds", "for ten minutes", "after an hour".
_DELAY_START = re.compile(r"\b(?:in|for|after)\s+", re.IGNORECASE)
_MOST_DELAY_WORDS = 6  # "one hour and thirty five minutes"
_ZH_DELAY = re.compile(rf"{chinese.ZH_DURATION}(?:以|之)?后")


def stated_delay(user_text: str) -> int | None:
    """Seconds of the one delay the user's words state, or None (none, or more than one)."""
    found = set()
    for start in _DELAY_START.finditer(user_text):
        words = re.findall(r"[\w'-]+", user_text[start.end() :].lower())[:_MOST_DELAY_WORDS]
        for end in range(len(words), 0, -1):  # the longest run of words that is a delay
            seconds = english.duration(" ".join(words[:end]))
            if seconds is not None:
                found.add(seconds)
                break
    for match in _ZH_DELAY.finditer(user_text):
        seconds = chinese.duration(match.group("d"))
        if seconds is not None:
            found.add(seconds)
    return found.pop() if len(found) == 1 else None


def grounded(tool: Tool, arguments: dict[str, Any], user_text: str) -> dict[str, Any]:
    """`arguments` for `tool`, with a reminder's delay as the user stated it."""
    if tool.source != "builtin" or "minutes" not in tool.properties:
        return arguments
    said = stated_delay(user_text)
    if said is None:
        return arguments
    try:
        asked = reminder_delay(arguments)
    except (TypeError, ValueError):
        return arguments  # the tool refuses it, and the model gets its one repair
    if asked == said:
        return arguments
    minutes, seconds = divmod(said, 60)
    return {**arguments, "minutes": minutes, "seconds": seconds}

"""What a recognised command asks for, whatever the language it was said in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Language = Literal["en", "zh"]
Target = Literal["volume", "brightness"]


@dataclass(frozen=True)
class SetLevel:
    """The speaker's volume or the screen's brightness: to `value`, or one `step` up (+1) or
    down (-1) from where it is; `restore` for "unmute"."""

    language: Language
    target: Target
    value: int | None = None
    step: int = 0
    restore: bool = False


@dataclass(frozen=True)
class SetTheme:
    language: Language
    theme: Literal["light", "dark"]


@dataclass(frozen=True)
class StartTimer:
    """A timer (no `text`) or a reminder of `text` (in the user's words, turned to "you"),
    `seconds` from now; `clock` when the user named the time ("at 7:30") rather than a delay."""

    language: Language
    seconds: int
    text: str = ""
    clock: str = ""


@dataclass(frozen=True)
class ManageReminders:
    """ "Cancel the timer", "cancel all reminders", "what reminders do I have": the device's
    pending reminders and timers (one kind to the user), cancelled or read out. `every`: the user
    named them all ("all", a plural); "cancel the timer" with several pending cancels none."""

    language: Language
    action: Literal["cancel", "list"]
    every: bool = False


@dataclass(frozen=True)
class AskClock:
    language: Language
    what: Literal["time", "date"]


@dataclass(frozen=True)
class Introduce:
    """ "My name is Alice": a fact about the user, answered at once and kept in the history
    (unlike other commands) so the model and the summary know it."""

    language: Language
    name: str


@dataclass(frozen=True)
class AskAbilities:
    """ "What can you do?": answered from what this device offers, never by the model, which
    reads its tool list out ("You could call the set reminder function…")."""

    language: Language


Command = SetLevel | SetTheme | StartTimer | ManageReminders | AskClock | Introduce | AskAbilities

MAX_TIMER_S = 7 * 24 * 3600  # the reminder tool's own limit


def duration_words(seconds: int, language: Language) -> str:
    """10 minutes, 1 hour 30 minutes; 十分钟, 1小时30分钟."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if language == "zh":
        parts = [(hours, "小时"), (minutes, "分钟"), (secs, "秒")]
        return "".join(f"{n}{unit}" for n, unit in parts if n)
    units = [(hours, "hour"), (minutes, "minute"), (secs, "second")]
    return " ".join(f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in units if n)

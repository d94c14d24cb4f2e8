"""What the assistant may not say: its machinery, and actions it did not take.

Every written sentence is judged before it is spoken. A sentence that talks about functions,
tools, JSON or its instructions ("You could call the set reminder function…"), reads a tool's
description out, or claims an action no tool of its kind carried out in this turn ("I set the
volume to 30" when no volume tool succeeded) is never spoken: the answer stops there, a short
neutral sentence is said instead (when nothing was said yet), and the turn is kept out of the
history so the model cannot learn from it. A sentence that reads the prompt's clock out for a
question not about time is caught too; the writer then asks again without the clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from edge.assistant.relevance import is_question
from edge.tools.registry import ToolSet

UNCLEAR = "Sorry, I am not sure what you mean. Could you say it another way?"
NOT_DONE = "Sorry, I could not do that."
UNCLEAR_ZH = "抱歉，我没听明白，请换个说法。"
NOT_DONE_ZH = "抱歉，这个我做不到。"
NOT_READ = "Sorry, I cannot read that on this device."
NOT_READ_ZH = "抱歉，我读不到这个设备的当前状态。"

_MACHINERY = re.compile(
    r"\b(?:call|calls|calling|invoke|invoking|trigger)\s+"
    r"(?:the\s+|a\s+|an\s+|this\s+|that\s+|my\s+)?(?:[\w.-]+\s+){0,5}(?:functions?|tools?)\b"
    # "You can use the set reminder function to set a timer" (`edge bench answers`, copied into
    # five answers of a conversation); a tool to use is ordinary words, a function is not.
    r"|\b(?:use|uses|using)\s+(?:the\s+|a\s+|an\s+|this\s+|that\s+|my\s+)?(?:[\w.-]+\s+){0,5}"
    r"functions?\b"
    r"|\b(?:json|system prompt|my instructions|tool calls?|function calls?)"
    r"|<tool_call>|\{\s*\"(?:name|arguments|function|tool)\"\s*:"  # a call written as speech
    r"|\b(?:functions?|tools?) (?:called|named)\b"
    # Its tool list, named as such ("Turn on the kitchen light." → "Here's an example of how
    # you might use the provided tools to set the kitchen light to 50%", `edge bench answers`).
    r"|\b(?:provided|available|given) (?:functions?|tools?)\b"
    # What its tools do, named as tools: "I don't have a reminder tool available." (`edge bench
    # answers`, "Remind.": false as well, and copied to the next fragments).
    r"|\b(?:reminders?|timers?|volume|brightness|theme|screen|speaker|status|clock)\s+"
    r"(?:tools?|functions?)\b"
    # "Here is the louder version of the tool's response in XML format with the same function
    # name and arguments" (`edge bench tools`, "Could you make it louder, like 80?").
    r"|\bxml\b|\btool'?s?'? (?:response|output|result|tags?)\b|\bfunction names?\b"
    # The reminder tool's "the text is spoken to the user", framing an answer ("How far away is
    # the moon?" → 'The text to be spoken is "The moon is…"', `edge bench answers`).
    r"|\bthe text (?:to be |is |will be )?spoken\b"
    r"|调用|函数|工具",
    re.IGNORECASE,
)
_CLAIM = re.compile(
    r"\bi(?:'ve| have)?\s+(?:just\s+|now\s+|already\s+)?(?:set|turned|changed|muted|unmuted|"
    r"adjusted|switched|lowered|raised|increased|decreased|reduced|dimmed|brightened|scheduled|"
    r"created|added|started|cancell?ed|activated|enabled|disabled)\b"
    r"|\b(?:has|have) been (?:set|turned|changed|adjusted|muted|switched|scheduled|lowered|"
    r"raised|increased|decreased|started|cancell?ed)\b"
    r"|\bi(?:'ll| will) remind you\b|\b(?:reminder|timer|alarm) (?:is |has been )?set\b"
    r"|已经?(?:把|将|为你|帮你|给你)|已(?:调|设|切换|静音|打开|关闭)|(?:设置|调|设)好了"
    r"|(?:设置|调整|调节|切换|打开|关闭)成功"
    # A device's new state, said as if it were done ("打开客厅的灯" → "The light is on.").
    r"|\b(?:the |your )?(?:\w+ )?(?:lights?|lamps?|tv|television|heater|fan|door|"
    r"air conditioner|music) (?:is|are) (?:now )?(?:on|off|open|closed|locked|unlocked|playing)\b"
    r"|灯(?:已经?)?(?:打开|开|关|关闭)了",
    re.IGNORECASE,
)
# The device's current level, stated as a fact ("How loud is the speaker right now?" → "The
# volume is set to 75%." with no status read, `edge bench tools`): known only from a tool.
_LEVEL_STATED = re.compile(
    r"\b(?:volume|brightness)\b(?:\s+(?:level|of|the|your|speaker|screen|device|currently|now))*"
    r"\s+(?:is|was|at)\b(?:\s+(?:now|currently|set|to|at|about|around))*\s+\d+"  # not "of a cube"
    r"|\b(?:volume|brightness)(?:\s+level)?\s+(?:of|at)\s+\d+\s*(?:%|percent|per cent)"
    r"|\b\d+\s*(?:%|percent|per cent)\s+(?:volume|brightness)\b"
    r"|\b(?:speaker|screen|sound)\b(?:\s+\w+){0,3}?\s+(?:is|was|at)\b(?:\s+\w+){0,3}?\s+\d+\s*"
    r"(?:%|percent|per cent)"
    r"|(?:音量|亮度)(?:现在|目前|当前)?(?:是|为|在)\s*(?:百分之)?[\d零一二三四五六七八九十百]+",
    re.IGNORECASE,
)
UNREAD_LEVEL = "states a level it did not read"
# What a claim is about, and a word the name of the tool that does it holds.
_OBJECTS = [
    (re.compile(r"volume|sound|speaker|mute|louder|quieter|音量|声音|静音", re.I), "volume"),
    (re.compile(r"brightness|brighter|dimm|亮度", re.I), "brightness"),
    (re.compile(r"theme|dark mode|light mode|主题|模式", re.I), "theme"),
    (re.compile(r"remind|timer|alarm|提醒|计时|闹钟", re.I), "reminder"),
]


# A question about the time or date: only then may an answer restate the prompt's clock.
_ABOUT_TIME = re.compile(
    r"time|date|day|today|tomorrow|yesterday|tonight|week|month|year|clock|hour|minute|late|"
    r"early|when|几点|时间|日期|星期|礼拜|今天|明天|昨天|几号|现在",
    re.IGNORECASE,
)
CLOCK_ECHO = "reads the clock out"
QUESTION_ECHO = "only repeats the question"  # "现在几点了？" → "现在几点了？" (`edge bench tools`)


RECITED_WORDS = 4  # words in a row, small words aside


# Left out of the runs: the model adds or drops them when it reads a description out ("You can
# ask questions about the current condition" from "…questions about current condition…").
_SMALL_WORDS = {"the", "a", "an", "of", "to", "is", "are", "and", "or", "e", "g"}


def _runs(text: str, n: int) -> set[tuple[str, ...]]:
    words = [w for w in re.findall(r"\w+", text.lower()) if w not in _SMALL_WORDS]
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _spaced(name: str) -> str:
    return re.sub(r"[._\s-]+", " ", name).strip().lower()


class HonestyCheck:
    def __init__(self, tools: ToolSet) -> None:
        # Tool names as the model might say them: identifiers ("set_reminder",
        # "self.audio_speaker.set_volume") and their long spoken forms ("self audio speaker set
        # volume"). Short spoken forms ("set volume") are ordinary words, left to _MACHINERY.
        names: set[str] = set()
        for tool in tools.tools:
            names |= {n.lower() for n in (tool.name, tool.function) if re.search(r"[._]", n)}
            if len(spoken := _spaced(tool.name).split()) >= 3:
                names.add(" ".join(spoken))
        # Runs of four words from the tools' descriptions: the model reads them out ("To set a
        # timer or reminder after 5 minutes, the text is spoken to the user.").
        # After a tool ran, its description's words may well describe what it did ("The volume
        # of the audio speaker has been set to 30"): only other tools' count.
        self._recited: dict[tuple[str, ...], set[str]] = {}
        for tool in tools.tools:
            for run in _runs(tool.description, RECITED_WORDS):
                self._recited.setdefault(run, set()).add(tool.name.lower())
        # Short spoken forms ("set reminder", "end conversation", "get device status"): ordinary
        # words alone, but two of them, or one of three words, are a list of the tools ("I can
        # set a timer or reminder, end the conversation, or get device status.").
        self._short: set[str] = set()
        for tool in tools.tools:
            last = re.split(r"[.]", tool.name)[-1]
            short = " ".join(w for w in _spaced(last).split() if w not in _SMALL_WORDS)
            if len(short.split()) >= 2:
                self._short.add(short)
        words = sorted(names, key=len, reverse=True)
        self._names = (
            re.compile(
                r"(?<![\w.])(?:" + "|".join(re.escape(n) for n in words) + r")(?![\w])", re.I
            )
            if words
            else None
        )

    def fault(
        self, sentence: str, succeeded: Iterable[str], user_text: str = "", clock: str = ""
    ) -> str | None:
        """Why `sentence` may not be spoken, given the tools that succeeded this turn (their
        names), what the user said and the clock the prompt carried; None when it may. The
        0.5B model answers "My name is Alice." or "Good morning!" with the prompt's clock."""
        if clock and _restates(sentence, clock) and not _ABOUT_TIME.search(user_text):
            return CLOCK_ECHO
        if is_question(user_text) and _bare(sentence) == _bare(user_text):
            return QUESTION_ECHO
        if _MACHINERY.search(sentence):
            return "speaks of its tools"
        if self._names is not None and (
            self._names.search(sentence) or self._names.search(_spaced(sentence))
        ):
            return "names a tool"
        if self._lists_tools(sentence):
            return "lists its tools"
        ran = {name.lower() for name in succeeded}
        for run in _runs(sentence, RECITED_WORDS):
            if run in self._recited and not self._recited[run] & ran:
                return "recites a tool's description"
        if _CLAIM.search(sentence) and not _backed(sentence, sorted(ran)):
            return "claims an action no tool took"
        if _LEVEL_STATED.search(sentence) and not (
            any(reads_status(name) for name in ran) or _backed(sentence, sorted(ran))
        ):
            return UNREAD_LEVEL
        return None

    def _lists_tools(self, sentence: str) -> bool:
        words = re.findall(r"[^\W_]+", sentence.lower())  # punctuation and "_" apart
        # "set reminders" names "set reminder" ("I can set reminders or end the conversation").
        words = [w for w in words if w not in _SMALL_WORDS]
        plain = " " + " ".join(words) + " "
        plain += "| " + " ".join(w.removesuffix("s") for w in words) + " "
        named = [short for short in self._short if f" {short} " in plain]
        if any(re.search(rf" {short} (?:functions?|tools?) ", plain) for short in named):
            return True  # "the set reminder function"
        return len(named) >= 2 or any(len(short.split()) >= 3 for short in named)


def reads_status(tool_name: str) -> bool:
    """The device's status tool (`self.get_device_status`): what a stated level comes from."""
    return "status" in tool_name.lower()


def _bare(text: str) -> str:
    return " ".join(re.findall(r"[^\W_]+", text.lower()))


def _restates(sentence: str, clock: str) -> bool:
    """The sentence reads the clock out ("It is now Sunday 6 December 2026, 08:05."), word for
    word or with the day changed."""
    date = re.search(r"\d{1,2} \w+ \d{4}", clock)
    weekday = clock[: date.start()] if date is not None else clock  # "It is now Sunday "
    return sentence.startswith(weekday) or (date is not None and date.group() in sentence)


def _backed(sentence: str, succeeded: list[str]) -> bool:
    """A claim is backed by a tool of the same kind that succeeded this turn (any tool, when
    the claim names nothing a tool kind is known for)."""
    kinds = [word for pattern, word in _OBJECTS if pattern.search(sentence)]
    if not kinds:
        return bool(succeeded)
    return all(any(kind in name for name in succeeded) for kind in kinds)


def neutral(fault: str, sentence: str) -> str:
    """What is said instead of a sentence that may not be spoken, in its language."""
    chinese = re.search(r"[\u4e00-\u9fff]", sentence) is not None
    if fault.startswith("claims"):
        return NOT_DONE_ZH if chinese else NOT_DONE
    if fault == UNREAD_LEVEL:
        return NOT_READ_ZH if chinese else NOT_READ
    return UNCLEAR_ZH if chinese else UNCLEAR

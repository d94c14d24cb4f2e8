"""What the assistant may not say: its machinery, and actions it did not take.

Every written sentence is judged before it is spoken. A sentence that talks about functions,
tools, JSON or its instructions ("You could call the set reminder function…") or that claims an
action no tool carried out in this turn ("I set the volume to 30" when no volume tool succeeded)
is never spoken: the answer stops there, a short neutral sentence is said instead (when nothing
was said yet), and the turn is kept out of the history so the model cannot learn from it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from edge.tools.registry import ToolSet

UNCLEAR = "Sorry, I am not sure what you mean. Could you say it another way?"
NOT_DONE = "Sorry, I could not do that."
UNCLEAR_ZH = "抱歉，我没听明白，请换个说法。"
NOT_DONE_ZH = "抱歉，这个我做不到。"

_MACHINERY = re.compile(
    r"\b(?:call|calls|calling|invoke|invoking|trigger)\s+"
    r"(?:the\s+|a\s+|an\s+|this\s+|that\s+|my\s+)?(?:[\w.-]+\s+){0,5}(?:functions?|tools?)\b"
    r"|\b(?:json|system prompt|my instructions|tool calls?|function calls?|<tool_call>)"
    r"|\b(?:functions?|tools?) (?:called|named)\b"
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
    r"|已经?(?:把|将|为你|帮你|给你)|已(?:调|设|切换|静音|打开|关闭)|(?:设置|调|设)好了",
    re.IGNORECASE,
)
# What a claim is about, and a word the name of the tool that does it holds.
_OBJECTS = [
    (re.compile(r"volume|sound|speaker|mute|louder|quieter|音量|声音|静音", re.I), "volume"),
    (re.compile(r"brightness|brighter|dimm|亮度", re.I), "brightness"),
    (re.compile(r"theme|dark mode|light mode|主题|模式", re.I), "theme"),
    (re.compile(r"remind|timer|alarm|提醒|计时|闹钟", re.I), "reminder"),
]


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
        words = sorted(names, key=len, reverse=True)
        self._names = (
            re.compile(
                r"(?<![\w.])(?:" + "|".join(re.escape(n) for n in words) + r")(?![\w])", re.I
            )
            if words
            else None
        )

    def fault(self, sentence: str, succeeded: Iterable[str]) -> str | None:
        """Why `sentence` may not be spoken, given the tools that succeeded this turn (their
        names); None when it may."""
        if _MACHINERY.search(sentence):
            return "speaks of its tools"
        if self._names is not None and (
            self._names.search(sentence) or self._names.search(_spaced(sentence))
        ):
            return "names a tool"
        if _CLAIM.search(sentence) and not _backed(sentence, [n.lower() for n in succeeded]):
            return "claims an action no tool took"
        return None


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
    return UNCLEAR_ZH if chinese else UNCLEAR

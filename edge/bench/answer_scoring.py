"""How `edge bench answers` scores a turn: what a command should have left behind, and what an
answer may not say (tool talk, claims without a call, a wrong time, facts the user never said).
Independent of the server's own filters on purpose: the bench checks them, it does not reuse
them."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.assistant.honesty import reads_status
from edge.assistant.relevance import is_question
from edge.bench.answer_sets import Item
from edge.sim.mcp_tools import COMMON_TOOLS, USER_ONLY_TOOLS

TOOL_TALK = re.compile(
    r"\b(functions?|tools?|json|api|parameters?|arguments?|instructions?)\b|[{}]|\w+_\w+"
    r"|\bself\.|函数|工具|参数|指令"
    # Machinery framing an answer: 'The text to be spoken is "The sky is blue."' (a whole run
    # of them once, copied from the history, and none counted).
    r"|\b(?:text|words?|message|response|output) (?:to be |is |will be )?(?:spoken|said)\b",
    re.IGNORECASE,
)
CLAIM = re.compile(
    r"\b(i(?:'ve| have)? (?:set|turned|changed|adjusted|muted|switched|increased|decreased|"
    r"lowered|raised|dimmed|brightened|started|scheduled|called|ordered|played|opened)|"
    r"i(?:'ll| will) remind|(?:reminder|timer|volume|brightness|theme) (?:is |has been )?"
    r"(?:set|changed|muted)|is now (?:set|on|off|muted))"
    r"|已经?(?:把|将|为你|帮你|设置|调|打开|关闭|切换)|(?:设置|调整|切换|打开|关闭)成功",
    re.IGNORECASE,
)
REFUSAL = re.compile(r"\bno\b|\bnot\b|can't|cannot|没有|不能|无法|不支持", re.IGNORECASE)
CLOCK = re.compile(r"(\d{1,2})\s*(?::|点|时)\s*(\d{1,2})?")
CJK_FRAME = set("用户他她它们的了是也和在叫喜欢住有")
STOP_WORDS = set(
    "the user users user's their they them has have had and for with that this who was were "
    "are is been about also named name called likes like lives live mentioned said says say "
    "from into some very much enjoys enjoy prefers prefer favourite favorite loves love".split()
)


@dataclass
class Result:
    device: str
    conversation: int
    text: str
    kind: str
    language: str
    spoken: bool
    answer: str = ""
    right: bool | None = None  # commands only
    tool_talk: bool = False
    false_claim: bool = False
    wrong_time: bool = False
    acted_on_fragment: bool = False
    first_audio: float | None = None
    calls: list[Any] = field(default_factory=list)
    heard: str = ""  # the `stt` of the turn
    cut_short: bool = False  # fewer words heard than said: the turn ended at a pause inside


def _now(timezone_offset_s: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=timezone_offset_s)


def says_the_time(answer: str, now: dt.datetime) -> bool:
    """A time in the answer within a minute of `now` (24- or 12-hour)."""
    moments = [now, now - dt.timedelta(minutes=1), now + dt.timedelta(minutes=1)]
    for match in CLOCK.finditer(answer):
        hour, minute = int(match.group(1)), int(match.group(2) or 0)
        for moment in moments:
            if minute == moment.minute and hour in (moment.hour, moment.hour % 12 or 12):
                return True
    return False


def says_the_date(answer: str, now: dt.datetime) -> bool:
    lower = answer.lower()
    weekdays_zh = "一二三四五六日"
    return (
        now.strftime("%A").lower() in lower
        or (str(now.day) in answer and now.strftime("%B").lower() in lower)
        or f"{now.month}月{now.day}" in answer
        or f"星期{weekdays_zh[now.weekday()]}" in answer
        or f"{now.day}号" in answer
        or f"{now.day}日" in answer
    )


def command_right(
    item: Item, before: dict[str, Any], after: dict[str, Any], result: Result, reminders: list
) -> bool:
    expect = item.expect
    assert expect is not None
    # A level or theme it already had is right only if it was set again (a tool was called).
    called = {name.rsplit(".", 1)[-1] for name, _args in result.calls}
    if expect.what in ("volume", "brightness"):
        was, now_level = before[expect.what], after[expect.what]
        if expect.value == "+":
            return bool(now_level > was or was == 100)
        if expect.value == "-":
            return bool(now_level < was or was == 0)
        if expect.value == "restore":
            return bool(now_level > 0) and f"set_{expect.what}" in called
        return bool(now_level == expect.value) and f"set_{expect.what}" in called
    if expect.what == "theme":
        return bool(after["theme"] == expect.value) and "set_theme" in called
    if expect.what == "remind":
        return any(abs(due - created - float(expect.value or 0)) <= 5 for due, created in reminders)
    if expect.what == "list reminders":
        return _says_count(result.answer, before["pending"])
    if expect.what == "cancel reminders":
        none = re.search(r"no reminders|没有可以取消", result.answer)
        done = re.search(rf"Cancelled (?:the|{before['pending']})|已取消", result.answer)
        return after["pending"] == 0 and bool(done if before["pending"] else none)
    if expect.what == "time":
        return says_the_time(result.answer, _now(after["tz"]))
    if expect.what == "date":
        return says_the_date(result.answer, _now(after["tz"]))
    if expect.what == "refuse":
        return not result.calls and not reminders and bool(REFUSAL.search(result.answer))
    return False


def _says_count(answer: str, count: int) -> bool:
    """ "You have 2 reminders.", "你有一个提醒。", "You have no reminders or timers." """
    if count == 0:
        return bool(re.search(r"no reminders|没有提醒", answer))
    if count == 1:
        return bool(re.search(r"one reminder|一个提醒", answer))
    return bool(re.search(rf"\b{count} reminders|{count}个提醒", answer))


_LINKS = {"the", "a", "an", "of", "to", "is", "are", "and", "or", "e", "g"}


def _shingles(text: str, n: int = 4) -> set[tuple[str, ...]]:
    words = [w for w in re.findall(r"[a-z0-9']+", text.lower()) if w not in _LINKS]
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


# Four words in a row (small words aside) from a tool's description: the model reading its
# instructions aloud ("You can ask questions about the current condition").
# A tool that ran may be described in its own words ("The current volume of the audio speaker
# is 70" after a status read), as the server's honesty check allows: only other tools' count.
DESCRIBED = {t["name"]: _shingles(t["description"]) for t in COMMON_TOOLS + USER_ONLY_TOOLS}
DESCRIPTIONS = set().union(*DESCRIBED.values())


# The tools' names as words ("get device status", "end conversation", "set volume"): two in
# one answer are a list of the tools ("I can set reminders, end the conversation, get device
# status, set volume…").
SPOKEN_NAMES = {
    re.sub(r"[_.]+", " ", name.rsplit(".", 1)[-1]).lower()
    for name in [
        *(t["name"] for t in COMMON_TOOLS + USER_ONLY_TOOLS),
        "set_reminder",
        "end_conversation",
    ]
}


def _names_tools(answer: str) -> bool:
    words = " " + " ".join(w for w in re.findall(r"[a-z]+", answer.lower()) if w != "the") + " "
    named = [n for n in SPOKEN_NAMES if len(n.split()) >= 2 and re.search(rf" {n}s? ", words)]
    return len(named) >= 2


def talks_about_tools(answer: str, ran: tuple[str, ...] = ()) -> bool:
    """`ran`: the names of the tools called this turn."""
    others = set().union(*(s for name, s in DESCRIBED.items() if name not in ran))
    return (
        bool(TOOL_TALK.search(answer)) or bool(_shingles(answer) & others) or _names_tools(answer)
    )


def changes_something(calls: list[list[Any]]) -> bool:
    """Whether a turn's device calls did anything: a status read changes nothing."""
    return any(not reads_status(str(call[0])) for call in calls)


def invented_facts(db: Path, device_id: str) -> tuple[str, list[str]]:
    """The device's summary, and its sentences with a word the user never said."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute(
            "SELECT summary FROM devices WHERE device_id = ?", (device_id,)
        ).fetchone()
        # What the user stated: a word they only asked about ("What is the capital of
        # France?") is no fact about them ("They are from France.").
        said = " ".join(
            r[0]
            for r in conn.execute("SELECT user_text FROM turns WHERE device_id = ?", (device_id,))
            if not is_question(r[0])
        ).lower()
    summary = str(row[0]) if row else ""
    invented = []
    for sentence in re.split(r"(?<=[.!?。！？])\s*", summary):
        # Quotes apart from their words: "said: 'User called小明'" is no new word "'user".
        words = [w.strip("'") for w in re.findall(r"[a-z']+", sentence.lower())]
        words = [w for w in words if len(w) > 2]
        # Chinese has no spaces: every character but those a summary adds around the facts.
        chars = [c for c in re.findall(r"[\u4e00-\u9fff]", sentence) if c not in CJK_FRAME]
        unknown = [w for w in words if w not in STOP_WORDS and w not in said]
        unknown += [c for c in chars if c not in said]
        unknown += [n for n in re.findall(r"\d+", sentence) if n not in said]
        if unknown:
            invented.append(sentence.strip())
    return summary, invented

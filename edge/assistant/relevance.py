"""Whether the user asked for what a tool does, before the model's call to it runs.

The 0.5B model calls tools for statements: "My name is Alice." set a 30-minute reminder "It's
time to wake up!" and read the device's status aloud. A call to a tool of a known kind (the
server's reminders and conversation end, the firmware's volume, brightness, theme and status)
runs only when the user's words are about that kind; otherwise the model answers in words
without tools. Tools of unknown kinds (external MCP servers, IoT things) are not judged. Words
that only name what a level or reminder tool sets ("音量", "The volume.", "提醒") do not say to
what or when: the model set the volume to 50 for "音量", and a reminder "Hey, how are you?" for
"提醒" (`edge bench answers`), so such a call does not run either.
"""

from __future__ import annotations

import re

from edge.tools.registry import Tool

# (what the tool's name holds, words of a request for it)
_KINDS: list[tuple[re.Pattern[str], re.Pattern[str]]] = [
    (
        re.compile(r"reminder|timer|alarm"),
        re.compile(
            r"remind|timer|alarm|minute|second|hour|o'?clock|later|tomorrow|countdown|wake|"
            r"\d{1,2}[:.]\d{2}|提醒|计时|闹钟|分钟|秒|小时|点|叫醒",
            re.I,
        ),
    ),
    (
        re.compile(r"end_conversation|goodbye|exit"),
        re.compile(
            r"bye|good ?night|see you|that'?s all|stop|quit|exit|end|finish|enough|leave|"
            r"thank|再见|拜拜|结束|退出|晚安|不聊|停",
            re.I,
        ),
    ),
    (
        re.compile(r"status|state|info"),
        re.compile(
            r"volume|loud|quiet|bright|dim|dark|light|battery|charge|status|screen|display|"
            r"network|wi-?fi|signal|theme|device|speaker|sound|音量|亮度|电量|状态|网络|屏幕|"
            r"主题|声音|设备",
            re.I,
        ),
    ),
    (
        re.compile(r"volume|speaker|mute"),
        re.compile(
            r"volume|loud|quiet|soft|sound|mute|speaker|hear|noise|音量|声音|静音|大声|小声|吵",
            re.I,
        ),
    ),
    (
        re.compile(r"brightness|backlight"),
        re.compile(r"bright|dim|dark|screen|display|light|glare|亮|暗|屏幕", re.I),
    ),
    (
        re.compile(r"theme"),
        re.compile(r"theme|dark|light|mode|night|day|主题|模式|深色|浅色|黑|白", re.I),
    ),
]


_NAMED_ONLY_TOOL = re.compile(r"volume|brightness|backlight|reminder|timer|alarm")
_ONLY_NAMED = re.compile(
    r"^[\W_]*(?:(?:the|my|your|a)\s+)?(?:volume|sound|speaker|brightness|screen|display|"
    r"remind(?:er)?|timer|alarm|音量|声音|亮度|屏幕|提醒|计时|闹钟)[\W_]*$",
    re.I,
)


# A question about a level asks to read it, not to set it: "How loud is the speaker right
# now?" once set the volume to 75 (`edge bench tools`). A question that says what the level
# should be ("Could you make it louder, like 80?") still sets it.
_LEVEL_TOOL = re.compile(r"volume|brightness|backlight")
_QUESTION = re.compile(
    r"^\W*(?:how|what|what's|whats|which|is|are|tell me)\b|\?\W*$|多少|多大|多亮|吗|几|什么", re.I
)
_LEVEL_WORD = re.compile(
    r"\d|\b(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|twenty|thirty|forty|fifty|"
    r"sixty|seventy|eighty|ninety|hundred|half|full|max(?:imum)?|min(?:imum)?|mute|unmute|up|"
    r"down|louder|quieter|softer|higher|lower|brighter|dimmer|darker|more|less|bit|little)\b"
    r"|百分之|[零一二三四五六七八九十百半]|大|小|高|低|调|静音|最",
    re.I,
)


def asked_for(tool: Tool, user_text: str) -> bool:
    """False when `tool` is of a known kind and `user_text` says nothing about it; for a
    level or reminder tool, when it only names what the tool sets ("音量", "提醒": to what?
    when?); and for a level tool, when it asks what the level is."""
    name = tool.name.lower()
    if tool.source not in ("builtin", "device", "iot"):
        return True
    if _LEVEL_TOOL.search(name) and is_question(user_text):
        if not _LEVEL_WORD.search(user_text):
            return False
    for kind, request in _KINDS:
        if kind.search(name):
            if _NAMED_ONLY_TOOL.search(name) and _ONLY_NAMED.match(user_text):
                return False
            return bool(request.search(user_text))
    return True


def is_question(text: str) -> bool:
    """Whether the user asked something ("How loud is it?", "现在几点了")."""
    return _QUESTION.search(text) is not None

"""Chinese commands: the whole utterance, once politeness is set aside (请, 帮我, 一下, 吧…), must
be one of the shapes below ("把音量调到七", "音量大一点", "十分钟后提醒我关火", "现在几点了");
anything else goes to the model."""

from __future__ import annotations

import re

from edge.commands.intents import (
    MAX_TIMER_S,
    AskAbilities,
    AskClock,
    Command,
    Introduce,
    ManageReminders,
    SetLevel,
    SetTheme,
    StartTimer,
    Target,
)
from edge.commands.numbers import ZH_NUMERAL, chinese_number

_PUNCTUATION = re.compile(r"[\s，。！？、,.!?；;：:~～\"“”'‘’]+")
_POLITE = re.compile(
    r"^(?:请你?|麻烦你?|帮我|给我|你|能不能|可以)+|(?:一下|吧|呢|啊|呀|哦|好吗|可以吗|谢谢)+$"
)

_N = rf"(?P<n>{ZH_NUMERAL})"
_TO = r"(?:调|设|设置|调整|改|开|放)?(?:到|成|为|在)?"
_MORE = r"(?:一点|一些|点|些)?"
_VOLUME = r"(?:音量|声音)"
_BRIGHT = r"(?:屏幕)?亮度"
_SCREEN = rf"(?:{_BRIGHT}|屏幕)"
_TURN = r"(?:调|开|放)?"

_LEVELS: list[tuple[re.Pattern[str], Target, str]] = [
    # (pattern, target, what: "set" (number in n), "up", "down", "max", "min", "mute", "unmute")
    (re.compile(rf"把?{_VOLUME}{_TO}(?:百分之)?{_N}(?:%|的音量)?"), "volume", "set"),
    (re.compile(rf"把?{_VOLUME}{_TO}最大"), "volume", "max"),
    (re.compile(rf"把?{_VOLUME}{_TO}最小"), "volume", "min"),
    (re.compile(rf"把?{_VOLUME}{_TURN}[大高]{_MORE}|大声{_MORE}|调大{_VOLUME}"), "volume", "up"),
    (re.compile(rf"把?{_VOLUME}{_TURN}[小低]{_MORE}|小声{_MORE}|调小{_VOLUME}"), "volume", "down"),
    (re.compile(r"静音"), "volume", "mute"),
    (re.compile(r"(?:取消|解除|关闭)静音"), "volume", "unmute"),
    (re.compile(rf"把?{_BRIGHT}{_TO}(?:百分之)?{_N}%?"), "brightness", "set"),
    (re.compile(rf"把?{_BRIGHT}{_TO}最(?:大|高|亮)"), "brightness", "max"),
    (re.compile(rf"把?{_BRIGHT}{_TO}最(?:小|低|暗)"), "brightness", "min"),
    (re.compile(rf"把?{_SCREEN}调?[亮高]{_MORE}|调亮(?:屏幕)?{_MORE}"), "brightness", "up"),
    (re.compile(rf"把?{_SCREEN}调?[暗低]{_MORE}|调暗(?:屏幕)?{_MORE}"), "brightness", "down"),
]  # fmt: skip

_THEME = re.compile(
    r"(?:把?(?:屏幕|主题|界面)?)?(?:切换|换|调|设置|设|改|变)?(?:到|成|为)?"
    r"(?P<t>深色|暗色|黑色|夜间|黑暗|浅色|亮色|白色|日间|明亮)(?:模式|主题)"
)
_DARK = {"深色", "暗色", "黑色", "夜间", "黑暗"}

_TIME = re.compile(
    r"(?:现在)?(?:是)?几点(?:钟)?(?:了)?|现在(?:是)?什么时间|现在的?时间(?:是)?(?:多少)?"
)
_DATE = re.compile(
    r"今天(?:是)?(?:几月)?几(?:号|日)|今天(?:是)?(?:星期|礼拜|周)几|"
    r"今天(?:是)?什么日期|今天的?日期(?:是)?"
)

_UNIT = r"(?:个)?(?:小时|钟头)|分钟|分|秒钟?"
ZH_DURATION = rf"(?P<d>(?:{ZH_NUMERAL}(?:{_UNIT}))+|半(?:个)?小时)"
_REMIND = [
    re.compile(rf"{ZH_DURATION}(?:以|之)?后提醒我(?P<t>.*)"),
    re.compile(rf"提醒我{ZH_DURATION}(?:以|之)?后(?P<t>.*)"),
]
_TIMER = [
    re.compile(rf"(?:设|定|设置|开|来)?(?:一)?个?{ZH_DURATION}的?(?:计时器?|定时器?|倒计时|闹钟)"),
    re.compile(rf"(?:倒计时|计时){ZH_DURATION}"),
]
_ZH_KIND = r"(?:提醒|计时器?|定时器?|倒计时|闹钟)"
_ZH_CANCEL = re.compile(
    rf"(?:取消|删除|删掉|关掉|停止|清除|清空)(?P<all>所有|全部)?(?:的)?(?:{_ZH_KIND}(?:和|或)?)+|"
    rf"把(?P<all2>所有|全部)?(?:的)?(?:{_ZH_KIND}(?:和|或)?)+(?P<all3>都|全)?(?:取消|删除|删掉|关掉)(?:掉|了)?"
)
_ZH_LIST = re.compile(
    rf"我?(?:现在)?(?:有|设了|设置了)(?:哪些|什么|几个|多少个?)(?:{_ZH_KIND}(?:和|或)?)+|"
    rf"(?:现在)?有(?:没有)?(?:什么)?(?:{_ZH_KIND}(?:和|或)?)+吗?|"
    rf"(?:我的)?(?:{_ZH_KIND}(?:和|或)?)+(?:有哪些|都有什么|还剩多久|还有多久)|"
    r"(?:还剩|还有)多(?:久|长时间)"
)
_SECONDS = {"小时": 3600, "钟头": 3600, "分钟": 60, "分": 60, "秒": 1, "秒钟": 1}
_SWAP = str.maketrans({"我": "你"})


def match(text: str) -> Command | None:
    if not re.search(r"[\u4e00-\u9fff]", text):
        return None
    sentence = _PUNCTUATION.sub("", text)
    for _ in range(3):  # politeness at both ends, nested: "请帮我…一下吧"
        sentence = _POLITE.sub("", sentence)
    if not sentence or len(sentence) > 30:
        return None
    return (
        _clock(sentence)
        or _abilities(_PUNCTUATION.sub("", text))
        or _reminders(sentence)
        or _introduction(sentence)
        or _timer(sentence)
        or _theme(sentence)
        or _level(sentence)
    )


_NAME = re.compile(
    r"(?:我叫|我的名字是|我的名字叫|叫我)(?P<name>[\u4e00-\u9fff]{1,4}|[A-Za-z]{2,20})"
)


def _introduction(sentence: str) -> Introduce | None:
    m = _NAME.fullmatch(sentence)
    return Introduce("zh", m["name"]) if m else None


def _reminders(sentence: str) -> ManageReminders | None:
    m = _ZH_CANCEL.fullmatch(sentence)
    if m:
        return ManageReminders("zh", "cancel", every=bool(m["all"] or m["all2"] or m["all3"]))
    if _ZH_LIST.fullmatch(sentence):
        return ManageReminders("zh", "list")
    return None


def _level(sentence: str) -> SetLevel | None:
    for pattern, target, what in _LEVELS:
        m = pattern.fullmatch(sentence)
        if not m:
            continue
        if what == "set":
            value = chinese_number(m["n"])
            return None if value is None else SetLevel("zh", target, value=value)
        if what in ("max", "min", "mute"):
            return SetLevel("zh", target, value=100 if what == "max" else 0)
        if what == "unmute":
            return SetLevel("zh", "volume", restore=True)
        return SetLevel("zh", target, step=1 if what == "up" else -1)
    return None


def _theme(sentence: str) -> SetTheme | None:
    m = _THEME.fullmatch(sentence)
    if not m:
        return None
    return SetTheme("zh", "dark" if m["t"] in _DARK else "light")


# Matched before politeness is taken off: "你" and "可以" are what make it a question to the
# assistant ("做什么" alone is not).
_ABILITIES = re.compile(
    r"(?:请问)?你(?:都|还)?(?:能|会|可以)(?:帮我)?(?:做|干)?(?:些)?(?:什么|啥)(?:事情?)?(?:呢|啊|呀)?|"
    r"(?:请问)?你有(?:哪些|什么)(?:功能|本领|技能)(?:呢|啊|呀)?"
)


def _abilities(sentence: str) -> AskAbilities | None:
    return AskAbilities("zh") if _ABILITIES.fullmatch(sentence) else None


def _clock(sentence: str) -> AskClock | None:
    if _TIME.fullmatch(sentence):
        return AskClock("zh", "time")
    if _DATE.fullmatch(sentence):
        return AskClock("zh", "date")
    return None


def duration(text: str) -> int | None:
    if text.startswith("半"):
        return 1800
    total = 0
    for number, unit in re.findall(rf"({ZH_NUMERAL})({_UNIT})", text):
        value = chinese_number(number)
        if value is None:
            return None
        total += value * _SECONDS[unit.removeprefix("个")]
    return total if 0 < total <= MAX_TIMER_S else None


def _timer(sentence: str) -> StartTimer | None:
    for pattern in _REMIND:
        m = pattern.fullmatch(sentence)
        if m and (seconds := duration(m["d"])) is not None:
            return StartTimer("zh", seconds, m["t"].translate(_SWAP))
    for pattern in _TIMER:
        m = pattern.fullmatch(sentence)
        if m and (seconds := duration(m["d"])) is not None:
            return StartTimer("zh", seconds)
    return None

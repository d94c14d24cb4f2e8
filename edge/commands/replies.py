"""What the command layer says, in fixed words: a confirmation states what was done (the value
the device was given, not the one asked for), and a command the device cannot perform is said
to be impossible rather than done another way."""

from __future__ import annotations

import datetime as dt

from edge.commands.intents import Language, Target

_TEXT: dict[str, dict[Language, str]] = {
    "volume set": {"en": "Volume set to {value}.", "zh": "音量已调到{value}。"},
    "brightness set": {"en": "Brightness set to {value}.", "zh": "亮度已调到{value}。"},
    "muted": {"en": "Muted.", "zh": "已静音。"},
    "no volume": {"en": "This device has no volume control.", "zh": "这个设备不能调节音量。"},
    "no brightness": {
        "en": "This device cannot change its screen brightness.",
        "zh": "这个设备不能调节屏幕亮度。",
    },
    "theme dark": {"en": "The screen is dark now.", "zh": "已切换到深色主题。"},
    "theme light": {"en": "The screen is light now.", "zh": "已切换到浅色主题。"},
    "no theme": {"en": "This device cannot change its theme.", "zh": "这个设备不能切换主题。"},
    "timer set": {"en": "Timer set for {duration}.", "zh": "好的。{duration}后提醒你。"},
    "reminder set": {
        "en": "OK. I will remind you in {duration}.",
        "zh": "好的。{duration}后提醒你。",
    },
    "reminder at": {"en": "OK. I will remind you at {clock}.", "zh": "好的。{clock}提醒你。"},
    "no reminders": {"en": "I cannot set reminders here.", "zh": "这里不能设置提醒。"},
    "none pending": {
        "en": "You have no reminders or timers.",
        "zh": "你现在没有提醒或计时。",
    },
    "pending": {"en": "You have {count} reminders.", "zh": "你有{count}个提醒。"},
    "one pending": {"en": "You have one reminder.", "zh": "你有一个提醒。"},
    "pending item": {
        "en": "In {duration}, at {clock}: {text}.",
        "zh": "{duration}后，{clock}：{text}。",
    },
    "more pending": {"en": "And {count} more.", "zh": "还有{count}个。"},
    "none to cancel": {
        "en": "You have no reminders to cancel.",
        "zh": "你现在没有可以取消的提醒。",
    },
    "cancelled one": {
        "en": "Cancelled the reminder at {clock}.",
        "zh": "已取消{clock}的提醒。",
    },
    "cancelled": {"en": "Cancelled {count} reminders.", "zh": "已取消{count}个提醒。"},
    "which to cancel": {
        "en": "You have {count} reminders. Say cancel all reminders to cancel them.",
        "zh": "你有{count}个提醒。要全部取消，请说取消所有提醒。",
    },
    "timer done": {"en": "Your {duration} timer is done.", "zh": "{duration}的计时到了。"},
    "reminder": {"en": "Reminder: {text}.", "zh": "提醒：{text}。"},
    "introduced": {"en": "Nice to meet you, {name}.", "zh": "{name}，很高兴认识你。"},
    "failed": {"en": "Sorry, that did not work just now.", "zh": "抱歉，刚才没有成功。"},
    "abilities": {"en": "I can {things}.", "zh": "我可以{things}。"},
    "time": {"en": "It is {clock}.", "zh": "现在是{hour}点{minute}分。"},
    "date": {
        "en": "Today is {weekday}, {day} {month} {year}.",
        "zh": "今天是{year}年{month_number}月{day}日，星期{weekday_zh}。",
    },
}
_WEEKDAYS_ZH = "一二三四五六日"

# The first words of the longer confirmations, a sentence of their own: pre-rendered at start-up
# (`fixed_texts.prerendered`), they are heard at once while the rest is synthesized. "OK, I will
# remind you in 20 minutes." as one sentence was the slowest command to be heard (~0.2 s of
# piper after the user's pause); the date is cut at its comma for the same reason.
LEADS = ("OK.", "好的。")


# The confirmations and refusals that never change ("Muted.", "This device has no volume
# control."): their audio is kept once rendered, so from the second time on they are heard at once.
_UNCHANGING = frozenset(
    text for texts in _TEXT.values() for text in texts.values() if "{" not in text
)


def unchanging(reply: str) -> bool:
    return reply in _UNCHANGING


# What "what can you do?" lists, each only when this device can do it.
ABILITIES: dict[str, dict[Language, str]] = {
    "questions": {"en": "answer questions", "zh": "回答问题"},
    "clock": {"en": "tell you the time and the date", "zh": "告诉你时间和日期"},
    "reminders": {"en": "set timers and reminders", "zh": "设置计时和提醒"},
    "volume": {"en": "change the volume", "zh": "调节音量"},
    "brightness": {"en": "change the screen brightness", "zh": "调节屏幕亮度"},
    "theme": {"en": "switch the screen between light and dark", "zh": "切换深浅色主题"},
}


def abilities(which: list[str], language: Language) -> str:
    things = [ABILITIES[key][language] for key in which]
    if language == "zh":
        listed = "、".join(things[:-1]) + ("和" if len(things) > 1 else "") + things[-1]
    else:
        listed = ", ".join(things[:-1]) + (" and " if len(things) > 1 else "") + things[-1]
    return say("abilities", language, things=listed)


def say(key: str, language: Language, **values: object) -> str:
    return _TEXT[key][language].format(**values)


def level_set(target: Target, value: int, language: Language) -> str:
    if target == "volume" and value == 0:
        return say("muted", language)
    return say(f"{target} set", language, value=value)


def clock(now: dt.datetime, what: str, language: Language) -> str:
    if what == "time":
        return say("time", language, clock=f"{now:%H:%M}", hour=now.hour, minute=now.minute)
    return say(
        "date",
        language,
        weekday=f"{now:%A}",
        day=now.day,
        month=f"{now:%B}",
        year=now.year,
        month_number=now.month,
        weekday_zh=_WEEKDAYS_ZH[now.weekday()],
    )

"""What the command layer takes from the model, and what it must leave to it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.commands.english import clock_time, duration
from edge.commands.intents import (
    AskAbilities,
    AskClock,
    Introduce,
    ManageReminders,
    SetLevel,
    SetTheme,
    StartTimer,
    duration_words,
)
from edge.commands.numbers import chinese_number, english_number
from edge.commands.runner import match

COMMANDS = [
    # English: numbers in digits and words, politeness, directions, extremes
    ("Turn the volume down to 30.", SetLevel("en", "volume", value=30)),
    ("Could you make it louder, like 80?", SetLevel("en", "volume", value=80)),
    ("Set the volume to fifty percent.", SetLevel("en", "volume", value=50)),
    ("set the volume to thirty five please", SetLevel("en", "volume", value=35)),
    ("Volume 70%", SetLevel("en", "volume", value=70)),
    ("Mute the speaker.", SetLevel("en", "volume", value=0)),
    ("Unmute.", SetLevel("en", "volume", restore=True)),
    ("What can you do?", AskAbilities("en")),
    ("So what else can you do?", AskAbilities("en")),
    ("你能做什么？", AskAbilities("zh")),
    ("你都会些什么", AskAbilities("zh")),
    ("你有哪些功能？", AskAbilities("zh")),
    ("Turn up the volume a little bit.", SetLevel("en", "volume", step=1)),
    ("Louder, please.", SetLevel("en", "volume", step=1)),
    ("Make it quieter.", SetLevel("en", "volume", step=-1)),
    ("Set the volume to maximum.", SetLevel("en", "volume", value=100)),
    ("Make the screen brighter, set it to 90.", SetLevel("en", "brightness", value=90)),
    ("Dim the screen.", SetLevel("en", "brightness", step=-1)),
    ("Brighten the display a bit.", SetLevel("en", "brightness", step=1)),
    ("Make the screen darker.", SetLevel("en", "brightness", step=-1)),
    ("Set the brightness to a hundred.", SetLevel("en", "brightness", value=100)),
    ("Switch the screen to dark mode.", SetTheme("en", "dark")),
    ("Use the light theme.", SetTheme("en", "light")),
    ("What time is it?", AskClock("en", "time")),
    ("Hey, what's the time right now?", AskClock("en", "time")),
    ("What's the date today?", AskClock("en", "date")),
    ("What day of the week is it?", AskClock("en", "date")),
    ("Set a timer for ten minutes.", StartTimer("en", 600)),
    ("Set a 5 minute timer.", StartTimer("en", 300)),
    ("Set a timer for half an hour.", StartTimer("en", 1800)),
    ("Remind me in two minutes to check the oven.", StartTimer("en", 120, "check the oven")),
    ("Remind me to call my mother in an hour.", StartTimer("en", 3600, "call your mother")),
    ("In 90 seconds remind me to stir the soup.", StartTimer("en", 90, "stir the soup")),
    ("Remind me in 1 hour and 30 minutes to leave.", StartTimer("en", 5400, "leave")),
    ("Remind me at 7:30 p.m. to take my pills.", StartTimer("en", 0, "take your pills", "19:30")),
    ("Cancel the timer.", ManageReminders("en", "cancel")),
    ("Please cancel all my reminders.", ManageReminders("en", "cancel", every=True)),
    ("Delete the reminders.", ManageReminders("en", "cancel", every=True)),
    ("Stop the timer.", ManageReminders("en", "cancel")),
    ("What reminders do I have?", ManageReminders("en", "list")),
    ("Which timers are running?", ManageReminders("en", "list")),
    ("Do I have any reminders?", ManageReminders("en", "list")),
    ("How much time is left on the timer?", ManageReminders("en", "list")),
    ("取消提醒", ManageReminders("zh", "cancel")),
    ("取消所有的提醒", ManageReminders("zh", "cancel", every=True)),
    ("把计时器都取消了", ManageReminders("zh", "cancel", every=True)),
    ("我有哪些提醒？", ManageReminders("zh", "list")),
    ("计时器还剩多久", ManageReminders("zh", "list")),
    ("My name is Alice.", Introduce("en", "Alice")),
    ("Hello, my name is Bob Smith.", Introduce("en", "Bob Smith")),
    ("Call me Ann.", Introduce("en", "Ann")),
    ("我叫小明", Introduce("zh", "小明")),
    # Chinese: numerals and digits, politeness, directions
    ("把音量调到50", SetLevel("zh", "volume", value=50)),
    ("把音量调到七。", SetLevel("zh", "volume", value=7)),
    ("把声音调到百分之四十", SetLevel("zh", "volume", value=40)),
    ("亮度调到百分之六十", SetLevel("zh", "brightness", value=60)),
    ("请帮我把音量调到三十五一下吧", SetLevel("zh", "volume", value=35)),
    ("音量大一点", SetLevel("zh", "volume", step=1)),
    ("声音调小一点", SetLevel("zh", "volume", step=-1)),
    ("静音", SetLevel("zh", "volume", value=0)),
    ("取消静音", SetLevel("zh", "volume", restore=True)),
    ("音量调到最大", SetLevel("zh", "volume", value=100)),
    ("把屏幕亮度调到30", SetLevel("zh", "brightness", value=30)),
    ("屏幕亮一点", SetLevel("zh", "brightness", step=1)),
    ("切换到深色模式", SetTheme("zh", "dark")),
    ("现在几点了？", AskClock("zh", "time")),
    ("今天星期几？", AskClock("zh", "date")),
    ("两分钟后提醒我关火", StartTimer("zh", 120, "关火")),
    ("十分钟后提醒我", StartTimer("zh", 600)),
    ("提醒我五分钟后喝水", StartTimer("zh", 300, "喝水")),
    ("半小时后提醒我出门", StartTimer("zh", 1800, "出门")),
    ("定一个十分钟的计时器", StartTimer("zh", 600)),
]

FOR_THE_MODEL = [
    "What is the capital of France?",
    "Tell me a joke.",
    "Good morning!",
    "Okay, goodbye!",
    "My name is Alice and I love long walks by the river.",  # more than a name: the model
    "my name is not important",
    "How loud is the speaker right now?",  # a question about the level: the status tool
    "What volume do you like?",
    "Don't turn the volume up.",
    "Turn it up.",  # up what?
    "Set the volume to 30 or 40.",
    "What time is it in Tokyo?",
    "Set a timer.",  # for how long?
    "Remind me at 7 to call.",  # morning or evening?
    "Set the volume to",  # cut short
    "Remind me in a while to rest.",
    "Cancel the meeting.",
    "Stop.",
    "Cancel the timer for the eggs and set a new one.",
    "What is a reminder?",
    "What can you do about the noise?",  # not what the assistant can do in general
    "What can I do tonight?",
    "你能帮我做饭吗",
    "取消明天的会议",
    "The screen is too dark, isn't it?",
    "中国的首都是哪里？",
    "讲个笑话",
    "音量是多少",
    "一二三",
    "",
    "   ",
]


@pytest.mark.parametrize(("text", "command"), COMMANDS)
def test_household_commands_are_recognised(text: str, command: object) -> None:
    assert match(text) == command


@pytest.mark.parametrize("text", FOR_THE_MODEL)
def test_anything_not_certain_goes_to_the_model(text: str) -> None:
    assert match(text) is None


def test_numbers_as_people_say_them() -> None:
    assert english_number("thirty five".split()) == 35
    assert english_number("one hundred and five".split()) == 105
    assert english_number("five five".split()) is None
    assert english_number(["a"]) is None
    assert chinese_number("三十五") == 35
    assert chinese_number("十") == 10
    assert chinese_number("两百") == 200
    assert chinese_number("一百零五") == 105
    assert chinese_number("３０") == 30
    assert chinese_number("一二三") is None


def test_durations_and_clock_times() -> None:
    assert duration("a minute") == 60
    assert duration("2 hours 15 minutes") == 8100
    assert duration("eight days") is None  # more than the reminder tool allows
    assert duration("minutes") is None
    assert clock_time("7 am") == "07:00"
    assert clock_time("12:15 am") == "00:15"
    assert clock_time("25:00") is None
    assert duration_words(5400, "en") == "1 hour 30 minutes"
    assert duration_words(120, "zh") == "2分钟"


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80))
def test_matching_never_fails_on_any_text(text: str) -> None:
    command = match(text)
    if isinstance(command, SetLevel):
        assert command.value is None or command.value >= 0
    if isinstance(command, StartTimer):
        assert command.seconds > 0 or command.clock


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            "set turn the volume brightness up down to louder a 30 fifty please mute screen "
            "it timer for minutes remind me in 把 音量 调到 七 大 一点 分钟 后 提醒我".split()
        ),
        max_size=10,
    )
)
def test_matching_never_fails_on_command_words_in_any_order(words: list[str]) -> None:
    match(" ".join(words))
    match("".join(words))

"""What `edge bench answers` says to the assistant, and what each command should do.

Commands are said as households say them (paraphrases, numbers in words, English and Chinese);
open questions and chit-chat include requests no tool can serve ("turn on the kitchen light") and
facts about the user that memory may keep; fragments are what a microphone catches when nobody
finished a sentence. Nothing here is tuned to the command matcher: a command it does not know
goes to the model, and is scored all the same.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Expect:
    """What a command should leave behind. `what`: volume, brightness, theme, remind, time,
    date or refuse (the device lacks the tool: an honest answer, no call). `value`: the level
    (an int), "+" / "-" (one step from where it was), "restore" (unmute: above 0), the theme,
    or the reminder's delay in seconds."""

    what: str
    value: int | str | None = None


@dataclass(frozen=True)
class Item:
    text: str
    kind: str  # command, question, fragment, paused (a command with a pause inside)
    language: str = "en"
    expect: Expect | None = None


def _c(text: str, what: str, value: int | str | None = None, language: str = "en") -> Item:
    return Item(text, "command", language, Expect(what, value))


EN_COMMANDS = [
    _c("Set the volume to 30.", "volume", 30),
    _c("Volume fifty.", "volume", 50),
    _c("Turn the volume down to twenty.", "volume", 20),
    _c("Turn the volume up to eighty.", "volume", 80),
    _c("Louder.", "volume", "+"),
    _c("Turn the volume up.", "volume", "+"),
    _c("Quieter please.", "volume", "-"),
    _c("Turn the volume down.", "volume", "-"),
    _c("Mute.", "volume", 0),
    _c("Unmute.", "volume", "restore"),
    _c("Maximum volume.", "volume", 100),
    _c("Set the volume to sixty five percent.", "volume", 65),
    _c("Can you set the volume to 40?", "volume", 40),
    _c("Make it a bit louder.", "volume", "+"),
    _c("Set the brightness to 70.", "brightness", 70),
    _c("Brightness twenty percent.", "brightness", 20),
    _c("Make the screen brighter.", "brightness", "+"),
    _c("Dim the screen.", "brightness", "-"),
    _c("Turn the brightness down to ten.", "brightness", 10),
    _c("Switch to dark mode.", "theme", "dark"),
    _c("Dark theme please.", "theme", "dark"),
    _c("Light mode.", "theme", "light"),
    _c("Switch the screen to the light theme.", "theme", "light"),
    _c("Set a timer for five minutes.", "remind", 300),
    _c("Timer for ten minutes.", "remind", 600),
    _c("Remind me in twenty minutes to take the bread out.", "remind", 1200),
    _c("Remind me in 90 seconds to check the tea.", "remind", 90),
    _c("In one hour remind me to call mom.", "remind", 3600),
    _c("Set a timer for half an hour.", "remind", 1800),
    _c("Remind me in two hours to water the plants.", "remind", 7200),
    _c("What reminders do I have?", "list reminders"),
    _c("Cancel all reminders.", "cancel reminders"),
    _c("What time is it?", "time"),
    _c("What's the time?", "time"),
    _c("Tell me the time.", "time"),
    _c("What's the date today?", "date"),
    _c("What day is it today?", "date"),
    _c("What is today's date?", "date"),
]

_ZH: list[tuple[str, str, int | str | None]] = [
    ("把音量调到三十", "volume", 30),
    ("音量调到五十", "volume", 50),
    ("音量大一点", "volume", "+"),
    ("声音小一点", "volume", "-"),
    ("静音", "volume", 0),
    ("取消静音", "volume", "restore"),
    ("音量最大", "volume", 100),
    ("把声音调到百分之四十", "volume", 40),
    ("调大音量", "volume", "+"),
    ("调小音量", "volume", "-"),
    ("音量调到八十", "volume", 80),
    ("亮度调到六十", "brightness", 60),
    ("屏幕亮一点", "brightness", "+"),
    ("屏幕暗一点", "brightness", "-"),
    ("把亮度调到最大", "brightness", 100),
    ("切换到深色模式", "theme", "dark"),
    ("换成浅色主题", "theme", "light"),
    ("十分钟后提醒我关火", "remind", 600),
    ("五分钟后提醒我喝水", "remind", 300),
    ("设置一个三分钟的计时器", "remind", 180),
    ("一小时后提醒我开会", "remind", 3600),
    ("半小时后提醒我出门", "remind", 1800),
    ("我有哪些提醒", "list reminders", None),
    ("取消所有提醒", "cancel reminders", None),
    ("现在几点", "time", None),
    ("现在几点了", "time", None),
    ("今天几号", "date", None),
    ("今天星期几", "date", None),
]
ZH_COMMANDS = [_c(text, what, value, "zh") for text, what, value in _ZH]

QUESTIONS = [
    Item(text, "question", language)
    for text, language in [
        ("What is the capital of France?", "en"),
        ("How many legs does a spider have?", "en"),
        ("Who wrote Hamlet?", "en"),
        ("What is the tallest mountain in the world?", "en"),
        ("How far away is the moon?", "en"),
        ("What color is the sky?", "en"),
        ("Tell me a joke.", "en"),
        ("How are you today?", "en"),
        ("What can you do?", "en"),
        ("Good morning!", "en"),
        ("Thank you.", "en"),
        ("What's a good name for a cat?", "en"),
        ("Give me a fun fact.", "en"),
        ("How do I boil an egg?", "en"),
        ("What is two plus two?", "en"),
        ("Why is the sea salty?", "en"),
        ("What should I cook for dinner?", "en"),
        ("Who painted the Mona Lisa?", "en"),
        ("How many days are in a leap year?", "en"),
        ("What's the weather like?", "en"),
        ("Play some music.", "en"),
        ("Turn on the kitchen light.", "en"),
        ("Call my mother.", "en"),
        ("Order a pizza.", "en"),
        ("My name is Sam.", "en"),
        ("I like jazz music.", "en"),
        ("I live in Lisbon.", "en"),
        ("What is my name?", "en"),
        ("What music do I like?", "en"),
        ("Where do I live?", "en"),
        ("你好", "zh"),
        ("你叫什么名字", "zh"),
        ("讲个笑话", "zh"),
        ("中国的首都是哪里", "zh"),
        ("一年有几个月", "zh"),
        ("谢谢你", "zh"),
        ("我叫小明", "zh"),
        ("我喜欢喝茶", "zh"),
        ("打开客厅的灯", "zh"),
        ("明天天气怎么样", "zh"),
    ]
]

FRAGMENTS = [
    Item(text, "fragment", language)
    for text, language in [
        ("Um.", "en"),
        ("The the.", "en"),
        ("And then.", "en"),
        ("Set the.", "en"),
        ("What about.", "en"),
        ("Okay so.", "en"),
        ("Hmm yes.", "en"),
        ("Volume.", "en"),
        ("The light.", "en"),
        ("Remind.", "en"),
        ("Uh huh.", "en"),
        ("So like.", "en"),
        ("Maybe later.", "en"),
        ("No wait.", "en"),
        ("嗯", "zh"),
        ("那个", "zh"),
        ("就是", "zh"),
        ("然后呢", "zh"),
        ("音量", "zh"),
        ("提醒", "zh"),
    ]
]

# The second device has no speaker volume tool: it must say so, and never use another tool.
# Commands said with a pause inside (a comma, which the voice reads as a ~150 ms pause) after
# which the words so far may already be a whole command: the cost of ending a command's turn at
# the user's first pause. Spoken in a conversation of their own; not in the command scores.
PAUSED = [
    Item("Turn the volume up, to eighty.", "paused", "en", Expect("volume", 80)),
    Item("Turn the volume down, to twenty.", "paused", "en", Expect("volume", 20)),
    Item("Dim the screen, to ten percent.", "paused", "en", Expect("brightness", 10)),
    Item("Set the brightness, to seventy.", "paused", "en", Expect("brightness", 70)),
    Item("Switch to dark mode, please.", "paused", "en", Expect("theme", "dark")),
    Item("Set a timer, for five minutes.", "paused", "en", Expect("remind", 300)),
    Item("Remind me in ten minutes, to call Bob.", "paused", "en", Expect("remind", 600)),
]

WITHOUT_VOLUME = [
    _c("Set the volume to 30.", "refuse"),
    _c("Turn the volume down to twenty.", "refuse"),
    _c("Mute.", "refuse"),
    _c("把音量调到三十", "refuse", None, "zh"),
    _c("静音", "refuse", None, "zh"),
    _c("Switch to dark mode.", "theme", "dark"),
    _c("Set the brightness to 70.", "brightness", 70),
]

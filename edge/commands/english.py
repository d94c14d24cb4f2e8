"""English commands. A command is recognised only when every word of the utterance is one the
command may contain (its verbs, its object, directions, a number, politeness): "turn the volume
down to 30" is one; "what volume do you like?" or "don't turn it up" are not, and go to the model.
Questions about the clock and timers, whose shapes are fixed, are matched as whole sentences."""

from __future__ import annotations

import datetime as dt
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
from edge.commands.numbers import NUMBER_WORDS, english_number, number_token

_CONTRACTIONS = {"what's": "what is", "it's": "it is", "today's": "today s", "whats": "what is"}
_POLITE = r"(?:(?:hey|ok|okay|so|please|can you|could you|would you|will you|now) )*"
_END = r"(?: please| thanks| thank you| now| right now)*"

VOLUME = {"volume", "sound", "speaker", "audio"}
VOLUME_UP, VOLUME_DOWN = {"louder"}, {"quieter", "softer"}
BRIGHTNESS = {"brightness", "screen", "display"}
BRIGHT_UP, BRIGHT_DOWN = {"brighter", "brighten"}, {"dimmer", "darker", "dim"}
UP = {"up", "higher", "increase", "raise", "more"}
DOWN = {"down", "lower", "decrease", "reduce", "less"}
EXTREMES = {"max": 100, "maximum": 100, "full": 100, "min": 0, "minimum": 0}
FILLER = {
    "please", "hey", "ok", "okay", "can", "could", "would", "will", "you", "the", "a", "bit",
    "little", "to", "at", "it", "set", "turn", "change", "put", "make", "adjust", "switch",
    "like", "percent", "level", "of", "my", "your", "this", "just", "now", "and", "me",
    "thanks", "thank", "bring", "go", "slightly", "lot", "much", "some", "all", "way", "its",
    "is", "be", "so", "too", "loud", "bright", "right", "over", "into", "on",
}  # fmt: skip
THEME_WORDS = {"dark": "dark", "night": "dark", "light": "light", "day": "light"}
THEME_NOUNS = {"mode", "theme"}
# A Whisper prompt of the commands tiny.en mishears most, for a second reading of a short clip
# (edge.engines.asr.Bias). Measured on the piper voice's commands, questions and fragments sent
# through Opus: it fixed 9 of 12 misreadings and turned no other utterance into a command.
ASR_PROMPT = (
    "Unmute. Dim the screen. Brighten the screen. Light mode. Light theme. Volume up. "
    "Timer for ten minutes. What day is it today?"
)
# What level, theme, clock and timer commands name: a reading without any of them is not a
# misheard command.
_NEAR = {
    "mute", "unmute", "up", "down", "mode", "theme", "themed", "day", "today", "date", "time",
    "timer", "timers", "remind", "reminder", "reminders", "minute", "minutes", "hour", "hours",
}  # fmt: skip


def near_command(text: str) -> bool:
    """Whether a reading names what a command acts on, and so may be a misheard command worth
    a second, biased reading."""
    objects = VOLUME | VOLUME_UP | VOLUME_DOWN | BRIGHTNESS | BRIGHT_UP | BRIGHT_DOWN
    return bool(set(words(text)) & (objects | _NEAR))


def words(text: str) -> list[str]:
    text = text.lower().replace("’", "'").replace("%", " percent")
    text = re.sub(r"\b([ap])\.\s?m\.", r"\1m", text)  # "7 p.m." → "7 pm"
    text = re.sub(r"[!?,;\"]+|[.:](?!\d)|(?<!\d)[.:]", " ", text)  # "7:30", "7.30" stay
    tokens = [_CONTRACTIONS.get(t, t) for t in text.split()]
    return " ".join(tokens).split()


def match(text: str) -> Command | None:
    tokens = words(text)
    if not tokens or len(tokens) > 16:
        return None
    sentence = " ".join(tokens)
    return (
        _clock(sentence)
        or _abilities(sentence)
        or _reminders(sentence)
        or _introduction(text)
        or _timer(sentence)
        or _theme(tokens)
        or _level(tokens)
    )


_NAME = re.compile(
    r"^(?i:(?:hi|hello|hey)[,.!]?\s+)?(?i:my name is|my name's|call me|you can call me)\s+"
    r"(?P<name>[A-Z][\w'-]*(?: [A-Z][\w'-]*){0,2})[.!]?$"
)


def _introduction(text: str) -> Introduce | None:
    """ "My name is Alice." (the name as the recogniser capitalises it: one to three words)."""
    m = _NAME.match(text.strip().replace("’", "'"))
    return Introduce("en", m["name"]) if m else None


def _numbers(tokens: list[str]) -> tuple[list[int], list[str]] | None:
    """The numbers in `tokens` and the words left; None when number words do not make one."""
    values: list[int] = []
    rest: list[str] = []
    i = 0
    while i < len(tokens):
        digit = number_token(tokens[i])
        if digit is not None:
            values.append(digit)
            i += 1
            continue
        starts = tokens[i] in NUMBER_WORDS and tokens[i] not in ("a", "an", "no", "and")
        article = tokens[i] in ("a", "an") and tokens[i + 1 : i + 2] in (["hundred"], ["thousand"])
        if not (starts or article):
            rest.append(tokens[i])
            i += 1
            continue
        j = i + 1
        while j < len(tokens) and tokens[j] in NUMBER_WORDS and tokens[j] not in ("a", "an"):
            j += 1
        if tokens[j - 1] == "and":
            j -= 1
        value = english_number(tokens[i:j])
        if value is None:
            return None
        values.append(value)
        i = j
    return values, rest


def _level(tokens: list[str]) -> SetLevel | None:
    found = _numbers(tokens)
    if found is None:
        return None
    values, rest = found
    words_ = set(rest)
    volume = bool(words_ & (VOLUME | VOLUME_UP | VOLUME_DOWN | {"mute", "unmute"}))
    bright = bool(words_ & (BRIGHTNESS | BRIGHT_UP | BRIGHT_DOWN))
    if volume == bright or len(values) > 1:
        return None  # neither, both ("the screen's sound"), or two numbers: not sure what
    known = VOLUME | VOLUME_UP | VOLUME_DOWN | BRIGHTNESS | BRIGHT_UP | BRIGHT_DOWN | UP | DOWN
    if not words_ <= known | FILLER | set(EXTREMES) | {"mute", "unmute"}:
        return None
    target: Target = "volume" if volume else "brightness"
    if "unmute" in words_:
        return SetLevel("en", "volume", restore=True) if not values else None
    if "mute" in words_:
        return SetLevel("en", "volume", value=0) if not values else None
    if values:
        return SetLevel("en", target, value=values[0])
    extremes = [EXTREMES[w] for w in rest if w in EXTREMES]
    if extremes:
        return SetLevel("en", target, value=extremes[0]) if len(set(extremes)) == 1 else None
    ups = words_ & (UP | VOLUME_UP | BRIGHT_UP)
    downs = words_ & (DOWN | VOLUME_DOWN | BRIGHT_DOWN)
    if bool(ups) == bool(downs):
        return None
    return SetLevel("en", target, step=1 if ups else -1)


def _theme(tokens: list[str]) -> SetTheme | None:
    themes = {THEME_WORDS[t] for t in tokens if t in THEME_WORDS}
    if len(themes) != 1 or not set(tokens) & THEME_NOUNS:
        return None
    allowed = FILLER | THEME_NOUNS | set(THEME_WORDS) | {"screen", "display", "use"}
    if not set(tokens) <= allowed:
        return None
    return SetTheme("en", "dark" if "dark" in themes else "light")


_TIME = re.compile(
    rf"^{_POLITE}(?:what time is it|what is the time|what is the current time|"
    r"tell me the time|tell me what time it is|do you know what time it is|"
    rf"do you know the time|what time do you have){_END}$"
)
_DATE = re.compile(
    rf"^{_POLITE}(?:what is the date|what is today s date|what date is it|what is the date today|"
    r"what day is it|what day is today|what day of the week is it|which day is it|"
    r"what is today|tell me the date|tell me today s date|what day of the week is today|"
    rf"what date is today)(?: today)?{_END}$"
)


_ABILITIES = re.compile(
    rf"^{_POLITE}(?:what (?:can|could|else can) you do(?: for me)?|what are you able to do|"
    r"what can i ask(?: you)?(?: to do)?|what do you do|how can you help(?: me)?|"
    rf"what are your (?:skills|abilities|features)|what can you help (?:me )?with){_END}$"
)


def _abilities(sentence: str) -> AskAbilities | None:
    return AskAbilities("en") if _ABILITIES.match(sentence) else None


def _clock(sentence: str) -> AskClock | None:
    if _TIME.match(sentence):
        return AskClock("en", "time")
    if _DATE.match(sentence):
        return AskClock("en", "date")
    return None


_KIND = r"(?:timers?|reminders?|alarms?|countdowns?)"
_KINDS = rf"{_KIND}(?: (?:and|or) {_KIND})?"
_WHOSE = r"(?:(?:the|my|this|that|all|all the|all my|all of my|all of the|any) )?"
_CANCEL = re.compile(
    rf"^{_POLITE}(?:cancel|delete|remove|clear|stop|turn off) {_WHOSE}{_KINDS}{_END}$"
)
_LIST = [
    re.compile(
        rf"^{_POLITE}(?:what|which) {_KINDS} (?:do i have|have i (?:got|set)|did i set|"
        rf"are (?:set|there|on|running|pending|left)){_END}$"
    ),
    re.compile(rf"^{_POLITE}(?:list|read|show|tell me) (?:me )?{_WHOSE}{_KINDS}{_END}$"),
    re.compile(rf"^{_POLITE}(?:do i have|are there|is there) (?:any |a )?{_KINDS}(?: set)?{_END}$"),
    re.compile(rf"^{_POLITE}how (?:much time|long) is left(?: on {_WHOSE}{_KINDS})?{_END}$"),
]


def _reminders(sentence: str) -> ManageReminders | None:
    if _CANCEL.match(sentence):
        plural = re.search(r"\b(?:timer|reminder|alarm|countdown)s\b", sentence)
        every = " all " in f" {sentence} " or plural is not None
        return ManageReminders("en", "cancel", every=every)
    if any(pattern.match(sentence) for pattern in _LIST):
        return ManageReminders("en", "list")
    return None


_ABOUT = r"(?:to|that|about|of)"
_REMIND = [
    re.compile(rf"^{_POLITE}remind me in (?P<d>.+?) {_ABOUT} (?P<t>.+)$"),
    re.compile(rf"^{_POLITE}remind me {_ABOUT} (?P<t>.+) in (?P<d>.+?){_END}$"),
    re.compile(rf"^{_POLITE}in (?P<d>.+?) remind me {_ABOUT} (?P<t>.+)$"),
    re.compile(rf"^{_POLITE}remind me in (?P<d>.+?){_END}$"),
]
_REMIND_AT = [
    re.compile(rf"^{_POLITE}remind me at (?P<c>[0-9:. apm]+?) {_ABOUT} (?P<t>.+)$"),
    re.compile(rf"^{_POLITE}remind me {_ABOUT} (?P<t>.+) at (?P<c>[0-9:. apm]+?){_END}$"),
]
_START = r"(?:set|start) (?:a |an |the )?"
_TIMER = [
    re.compile(rf"^{_POLITE}{_START}(?:timer|countdown) for (?P<d>.+?){_END}$"),
    re.compile(rf"^{_POLITE}{_START}(?P<d>.+?) (?:timer|countdown){_END}$"),
    re.compile(rf"^{_POLITE}(?:timer|countdown) (?:for )?(?P<d>.+?){_END}$"),
]
_UNITS = {"second": 1, "minute": 60, "min": 60, "hour": 3600}
_SWAP = {"my": "your", "me": "you", "i": "you", "myself": "yourself", "i'm": "you're", "am": "are"}


def duration(text: str) -> int | None:
    """Seconds in "ten minutes", "1 hour and 30 minutes", "half an hour", "90 seconds"."""
    text = text.replace("-", " ")
    if text in ("half an hour", "half hour"):
        return 1800
    total = 0
    tokens = [t for t in text.split() if t != "and"]
    i, number = 0, None
    while i < len(tokens):
        unit = tokens[i].rstrip("s")
        if unit in _UNITS:
            if number is None:
                return None
            total += number * _UNITS[unit]
            number = None
            i += 1
            continue
        j = i
        while j < len(tokens) and tokens[j].rstrip("s") not in _UNITS:
            j += 1
        if tokens[i:j] in (["a"], ["an"]):
            number = 1
        else:
            found = _numbers(tokens[i:j])
            if found is None or len(found[0]) != 1 or found[1]:
                return None
            number = found[0][0]
        i = j
    if number is not None or not 0 < total <= MAX_TIMER_S:
        return None
    return total


def _you(text: str) -> str:
    return " ".join(_SWAP.get(w, w) for w in text.split())


def _timer(sentence: str) -> StartTimer | None:
    for pattern in _REMIND:
        m = pattern.match(sentence)
        if m and (seconds := duration(m["d"])) is not None:
            return StartTimer("en", seconds, _you(m.groupdict().get("t") or "") or "")
    for pattern in _REMIND_AT:
        m = pattern.match(sentence)
        if m and (at := clock_time(m["c"])) is not None:
            return StartTimer("en", 0, _you(m["t"]), clock=at)
    for pattern in _TIMER:
        m = pattern.match(sentence)
        if m and (seconds := duration(m["d"])) is not None:
            return StartTimer("en", seconds)
    return None


def clock_time(text: str) -> str | None:
    """ "7:30", "7.30 pm", "19:05", "7 am" as HH:MM; None when it is not a clock time."""
    m = re.fullmatch(r"(\d{1,2})(?:[:.](\d{2}))? ?(?:([ap])\.? ?m\.?)?", text.strip())
    if not m:
        return None
    hour, minute = int(m[1]), int(m[2] or 0)
    if m[3] is None and m[2] is None:
        return None  # "at 7" alone: morning or evening?
    if m[3]:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if m[3] == "p" else 0)
    if hour > 23 or minute > 59:
        return None
    return f"{dt.time(hour, minute):%H:%M}"

"""Facts the user stated about themselves, read from their own words by rule: "my name is
Alice", "I like jazz", "call me Al", "我叫小明", "我喜欢爬山". These need no model, and every one
is traceable to an utterance (`sources`). The summarizer adds what the model proposes only when
its words are found in the user's turns (never in the assistant's answers)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

_NAME = r"(?P<name>[A-Z][\w'-]*(?: [A-Z][\w'-]*)?)"
_THING = r"(?P<thing>[^.,;!?]{2,40}?)"
_END = r"(?=[.,;!?]|$| and | but )"
_RELATIVES = (
    "wife|husband|partner|son|daughter|mother|mom|mum|father|dad|brother|sister|friend|dog|cat|"
    "grandmother|grandfather|grandma|grandpa|boss"
)
_ZH_NAME = r"[\u4e00-\u9fff]{1,4}|[A-Za-z]{2,20}"
_ZH_THING = r"[^，。！？,.!?]{1,15}"
_THEIR = {"my": "their", "me": "them", "i": "they", "myself": "themselves", "mine": "theirs"}


@dataclass(frozen=True)
class Fact:
    sentence: str  # as the memory keeps it: "The user's name is Alice."
    source: str  # the user's words it was read from


def _their(text: str) -> str:
    return " ".join(_THEIR.get(w.lower(), w) for w in text.split())


Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]
_RULES: list[Rule] = [
    (re.compile(rf"\b(?i:my name is) {_NAME}\b"), lambda m: f"The user's name is {m['name']}."),
    (
        re.compile(rf"\b(?i:call me|you can call me) {_NAME}\b"),
        lambda m: f"The user likes to be called {m['name']}.",
    ),
    (
        re.compile(rf"\b(?i:my ({_RELATIVES})(?:'s name)? is (?:called |named )?){_NAME}\b"),
        lambda m: f"The user's {m[1].lower()} is called {m['name']}.",
    ),
    (
        re.compile(rf"\bI (?:really )?(?:like|love|enjoy) {_THING}{_END}", re.I),
        lambda m: f"The user likes {_their(m['thing'])}.",
    ),
    (
        re.compile(rf"\bmy favou?rite (\w+) is {_THING}{_END}", re.I),
        lambda m: f"The user's favourite {m[1].lower()} is {_their(m['thing'])}.",
    ),
    (
        re.compile(r"\bI live in (?P<place>[A-Z][\w'-]*(?: [A-Z][\w'-]*){0,2})\b"),
        lambda m: f"The user lives in {m['place']}.",
    ),
    (
        re.compile(r"\bI(?:'m| am) from (?P<place>[A-Z][\w'-]*(?: [A-Z][\w'-]*){0,2})\b"),
        lambda m: f"The user is from {m['place']}.",
    ),
    (re.compile(rf"我叫(?P<name>{_ZH_NAME})"), lambda m: f"用户叫{m['name']}。"),
    (re.compile(rf"我(?:很|非常)?喜欢(?P<thing>{_ZH_THING})"), lambda m: f"用户喜欢{m[1]}。"),
    (re.compile(rf"我住在(?P<place>{_ZH_THING})"), lambda m: f"用户住在{m['place']}。"),
]  # fmt: skip
# "I like it", "I like that idea": not facts about the user.
_VAGUE = re.compile(r"^(?:it|that|this|them|those|these|you|to|the idea|what)\b", re.I)


def stated_facts(utterances: Iterable[str]) -> list[Fact]:
    """The facts in the user's utterances, in order, each once."""
    facts: dict[str, Fact] = {}
    for utterance in utterances:
        for pattern, sentence in _RULES:
            for m in pattern.finditer(utterance):
                thing = m.groupdict().get("thing")
                if thing is not None and _VAGUE.match(thing.strip()):
                    continue
                fact = Fact(sentence(m), utterance)
                facts.setdefault(fact.sentence.lower(), fact)
    return list(facts.values())


def source_of(sentence: str, utterances: list[str]) -> str | None:
    """The latest user utterance a remembered sentence can be traced to: one of its facts by
    rule, else the one sharing most of its words; None when there is none."""
    for utterance in reversed(utterances):
        if any(f.sentence.lower() == sentence.lower() for f in stated_facts([utterance])):
            return utterance
    words = set(re.findall(r"[^\W\d_]{3,}|[\u4e00-\u9fff]", sentence.lower()))
    words -= {"the", "user", "users", "their", "they", "likes", "用", "户"}
    best, shared = None, 0
    for utterance in reversed(utterances):
        count = len(words & set(re.findall(r"[^\W\d_]{3,}|[\u4e00-\u9fff]", utterance.lower())))
        if count > shared:
            best, shared = utterance, count
    return best if words and shared * 2 >= len(words) else None

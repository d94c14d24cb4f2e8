"""What the assistant says in its own fixed words rather than the model's: a model told about a
failure may still announce success, and a fixed sentence never does. The greeting and the
farewell come from the config; they and the English apology are pre-rendered at start-up so they
are heard at once. The others are said in the language the user spoke (`in_language`)."""

from __future__ import annotations

import re

from edge.commands.replies import LEADS
from edge.config import Config
from edge.sentences import phrase_sentences

APOLOGY = "Sorry, I could not come up with an answer just now."
TOOL_FAILED = "Sorry, that did not work just now."
TOOL_TIMEOUT = "Sorry, that is taking too long; please try again later."
_CHINESE = {
    APOLOGY: "抱歉，我刚才没能想出回答。",
    TOOL_FAILED: "抱歉，刚才没有成功。",
    TOOL_TIMEOUT: "抱歉，这需要的时间太长了，请稍后再试。",
}


def in_language(text: str, heard: str) -> str:
    """One of the fixed sentences above in the language of `heard` (the user's words): Chinese
    when they hold Chinese characters, else English."""
    chinese = re.search(r"[\u4e00-\u9fff]", heard) is not None
    return _CHINESE.get(text, text) if chinese else text


def prerendered(config: Config) -> list[str]:
    """The sentences worth rendering before the first device asks: greeting, farewell, apology,
    and the lead words of the command layer's confirmations."""
    return phrase_sentences(config.session.greeting, config.session.farewell, APOLOGY, *LEADS)

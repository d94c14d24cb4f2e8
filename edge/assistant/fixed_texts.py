"""What the assistant says in its own fixed words rather than the model's: a model told about a
failure may still announce success, and a fixed sentence never does. The greeting and the
farewell come from the config; all of them are pre-rendered at start-up so they are heard at
once."""

from __future__ import annotations

from edge.config import Config
from edge.sentences import phrase_sentences

APOLOGY = "Sorry, I could not come up with an answer just now."
TOOL_FAILED = "Sorry, that did not work just now."
TOOL_TIMEOUT = "Sorry, that is taking too long; please try again later."


def prerendered(config: Config) -> list[str]:
    """The sentences worth rendering before the first device asks: greeting, farewell, apology."""
    return phrase_sentences(config.session.greeting, config.session.farewell, APOLOGY)

"""A reminder's delay is the one the user said, whatever unit the model wrote."""

from __future__ import annotations

from typing import Any

import pytest

from edge.assistant.grounding import grounded, stated_delay
from edge.tools.registry import Tool, ToolContext


async def _noop(_args: dict[str, Any], _ctx: ToolContext) -> str:
    return ""


REMINDER = Tool(
    "set_reminder",
    "Set a timer or reminder.",
    {
        "type": "object",
        "properties": {
            "minutes": {"type": "number"},
            "seconds": {"type": "number"},
            "text": {"type": "string"},
        },
    },
    _noop,
)


@pytest.mark.parametrize(
    ("said", "seconds"),
    [
        ("Remind me in thirty seconds to stir the soup.", 30),
        ("Set a timer for ten minutes.", 600),
        ("Remind me to call mom in an hour.", 3600),
        ("Could you maybe in one hour and thirty minutes remind me to leave?", 5400),
        ("Remind me for my meeting in five minutes.", 300),
        ("两分钟后提醒我关火", 120),
        ("remind me in 90 seconds", 90),
    ],
)
def test_the_users_delay_is_read_from_their_words(said: str, seconds: int) -> None:
    assert stated_delay(said) == seconds


@pytest.mark.parametrize(
    "said",
    [
        "Remind me at 7:30 to call Bob.",  # a clock time, not a delay
        "Remind me in a bit.",
        "Remind me in 2 minutes to boil the egg for 10 minutes.",  # two delays: which?
        "What is the capital of France?",
    ],
)
def test_no_delay_or_an_unclear_one_is_none(said: str) -> None:
    assert stated_delay(said) is None


def test_a_reminder_gets_the_users_delay_and_keeps_its_text() -> None:
    said = "Remind me in thirty seconds to stir the soup."
    model = {"minutes": 30, "seconds": 0, "text": "Stir the soup."}
    fixed = {"minutes": 0, "seconds": 30, "text": "Stir the soup."}
    assert grounded(REMINDER, model, said) == fixed
    right = {"minutes": 0.5, "text": "Stir the soup."}
    assert grounded(REMINDER, right, said) is right  # already the user's delay: untouched


def test_other_tools_and_unclear_words_keep_the_models_arguments() -> None:
    volume = Tool(
        "self.audio_speaker.set_volume",
        "Set the volume.",
        {"type": "object", "properties": {"volume": {"type": "integer"}}},
        _noop,
        source="device",
    )
    assert grounded(volume, {"volume": 30}, "in thirty seconds") == {"volume": 30}
    model = {"minutes": 5, "text": "Call Bob."}
    assert grounded(REMINDER, model, "Remind me later to call Bob.") is model
    odd = {"minutes": "soon", "text": "x"}
    assert grounded(REMINDER, odd, "Remind me in two minutes.") is odd  # the tool refuses it

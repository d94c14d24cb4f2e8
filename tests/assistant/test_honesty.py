"""What may not be spoken: the model's machinery, and actions no tool took (issue examples)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from edge.assistant.honesty import (
    NOT_DONE,
    NOT_DONE_ZH,
    QUESTION_ECHO,
    UNCLEAR,
    UNREAD_LEVEL,
    HonestyCheck,
    neutral,
)
from edge.sim.mcp_tools import COMMON_TOOLS
from edge.tools.builtin import builtin_tools
from edge.tools.registry import Tool, ToolSet
from edge.tools.reminders import ReminderScheduler


async def _nothing(_args: object, _ctx: object) -> str:
    return ""


TOOLS = ToolSet(
    [
        *builtin_tools("", ReminderScheduler(cast(Any, None), cast(Any, None)), 5.0),
        *(
            Tool(t["name"], t["description"], t["inputSchema"], _nothing, source="device")
            for t in COMMON_TOOLS
        ),
        Tool("add", "add two numbers", {}, _nothing, source="mcp"),
    ]
)
CHECK = HonestyCheck(TOOLS)

MACHINERY = [
    "You could call the set reminder function to set a timer or reminder: after the delay.",
    "You could call the self get device status function to see the volume.",
    "I will use the self.audio_speaker.set_volume tool for that.",  # named
    "Calling the get device status tool now.",
    "Let me call set_reminder with minutes 10.",
    'Here is the JSON: {"name": "end_conversation"}.',
    "My instructions say I should be brief.",
    "According to my system prompt, I am a voice assistant.",
    "I can call a function named get device status.",
    "我可以调用设置音量的函数。",
    'To set a timer or reminder after 5 minutes, the text "I am Alice" is spoken to the user.',
    '({"name": "set reminder", "arguments": {"minutes": 15}}',
    "You can ask questions about the current condition,",  # "What can you do?" (bench answers)
    # `edge bench answers`: "Okay so." (a list of the tools, by their short names).
    "I can set a timer or reminder, end the conversation, or get device status.",
    "I can set reminders, end the conversation, get device status, set volume, set brightness,",
    'The text to be spoken is "The moon is approximately 384,400 kilometers away."',
    "Here's an example of how you might use the provided tools to set the kitchen light.",
    "Here is the louder version of the tool's response in XML format with the same function",
    "You can use the set reminder function to set a timer or reminder.",
    # `edge bench answers`, "Remind.", copied by the next fragments.
    "I'm sorry, but I don't have a reminder tool available.",
    "I'm sorry, but I don't have a volume tool available.",
    "I can set reminders or end the conversation, as well as provide real-time information.",
    "Here's an example of how you might use the set reminder function to set a reminder.",
    "The end conversation tool ends it.",
]
HONEST = [
    "The capital of France is Paris.",
    "A spider has eight legs.",
    "Why did the tomato blush? It saw the salad dressing!",
    "You can add two and two to get four.",  # "add" is a tool, and an ordinary word
    "Nice to meet you, Alice.",
    "Set the table and call your friends.",
    "The knight used his favourite tool to open the gate.",
    "巴黎是法国的首都。",
    "Let's end the conversation here.",  # one short tool name is ordinary words
    "The light is a beautiful color.",
    "The shop has the tools you need.",
    "The volume of a cube is 8 cubic meters.",
    "Use the right tool for the job.",
    "A good timer is a useful kitchen tool.",  # a timer that is a tool, not its own
    "New tools are available at the hardware store.",
]
CLAIMS = [
    "I set the volume to 30 for the reminder.",
    "I've turned the volume down to 30.",
    "The volume has been set to 30.",
    "I'll remind you in ten minutes.",
    "Your timer is set for five minutes.",
    "I have switched the screen to dark mode.",
    "我已经把音量调到30了。",
    "音量设置成功。",  # `edge bench answers`: the fragment "音量"
    "The light is on.",  # `edge bench answers`: "打开客厅的灯", no tool for lights
    "客厅的灯已经打开了。",
]


@pytest.mark.parametrize("sentence", MACHINERY)
def test_talk_about_tools_is_never_spoken(sentence: str) -> None:
    assert CHECK.fault(sentence, []) in (
        "speaks of its tools",
        "names a tool",
        "recites a tool's description",
        "lists its tools",
    )


@pytest.mark.parametrize(
    "sentence",
    [
        "The volume is now 70.",
        "The volume is set to 75%.",
        "The speaker is currently set to a volume of 80%.",
        "It is playing at 60 percent volume.",
        "The speaker is currently at 50%.",
        "音量现在是百分之七十。",
    ],
)
def test_a_stated_level_needs_a_read_or_a_change_of_it(sentence: str) -> None:
    # `edge bench tools`: "How loud is the speaker right now?" got an invented level.
    assert CHECK.fault(sentence, []) == UNREAD_LEVEL
    assert CHECK.fault(sentence, ["self.get_device_status"]) is None
    assert CHECK.fault(sentence, ["self.audio_speaker.set_volume"]) is None
    assert CHECK.fault(sentence, ["self.screen.set_brightness"]) == UNREAD_LEVEL


@pytest.mark.parametrize("sentence", HONEST)
def test_ordinary_answers_pass(sentence: str) -> None:
    assert CHECK.fault(sentence, []) is None


@pytest.mark.parametrize("sentence", CLAIMS)
def test_a_claimed_action_needs_its_tool_to_have_succeeded(sentence: str) -> None:
    assert CHECK.fault(sentence, []) == "claims an action no tool took"


def test_a_claim_is_backed_only_by_a_tool_of_its_kind() -> None:
    volume = "I set the volume to 30."
    assert CHECK.fault(volume, ["self.audio_speaker.set_volume"]) is None
    # In the tool's own words, once it ran (its description: "Set the volume of the audio…").
    said = "The volume of the audio speaker has been set to 30."
    assert CHECK.fault(said, ["self.audio_speaker.set_volume"]) is None
    assert CHECK.fault(said, []) is not None
    # The hallucinated action: a reminder was set, the volume was claimed.
    assert CHECK.fault("I set the volume to 30 for the reminder.", ["set_reminder"]) is not None
    assert CHECK.fault("I'll remind you in ten minutes.", ["set_reminder"]) is None
    assert CHECK.fault("我已经把音量调到30了。", ["self.audio_speaker.set_volume"]) is None


def test_the_neutral_reply_is_in_the_language_of_what_was_dropped() -> None:
    assert neutral("claims an action no tool took", "I set it.") == NOT_DONE
    assert neutral("claims an action no tool took", "我已经设置好了。") == NOT_DONE_ZH
    assert neutral("speaks of its tools", "call the function") == UNCLEAR


def test_the_prompt_clock_is_read_out_only_for_a_question_about_time() -> None:
    clock = "It is now Sunday 6 December 2026, 08:05."
    echo = "It is now Sunday 6 December 2026, 08:05."
    assert CHECK.fault(echo, [], "My name is Alice.", clock) == "reads the clock out"
    assert CHECK.fault(echo, [], "Good morning!", clock) == "reads the clock out"
    assert CHECK.fault("It is Monday 6 December 2026.", [], "Hello", clock) is not None
    assert CHECK.fault(echo, [], "What day is it today?", clock) is None
    assert CHECK.fault("Good morning to you too!", [], "Good morning!", clock) is None


def test_an_answer_that_only_repeats_the_question_is_no_answer() -> None:
    # `edge bench tools`: "现在几点了？" was answered "现在几点了？" one run in two.
    assert CHECK.fault("现在几点了？", [], "现在几点了？") == QUESTION_ECHO
    assert CHECK.fault("What is the capital of France?", [], "what is the capital of france") == (
        QUESTION_ECHO
    )
    assert CHECK.fault("Good morning!", [], "Good morning!") is None  # a greeting back is fine
    assert CHECK.fault("现在是18点22分。", [], "现在几点了？") is None

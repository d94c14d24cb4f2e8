"""A call runs only when the user asked for what the tool does (known kinds of tools)."""

from __future__ import annotations

import pytest

from edge.assistant.relevance import asked_for
from edge.sim.mcp_tools import COMMON_TOOLS
from edge.tools.builtin import builtin_tools
from edge.tools.registry import Tool


async def _nothing(_args: object, _ctx: object) -> str:
    return ""


DEVICE = {
    t["name"]: Tool(t["name"], "", t["inputSchema"], _nothing, source="device")
    for t in COMMON_TOOLS
}
BUILTIN = {t.name: t for t in builtin_tools("", None, 5.0)}
REMINDER = Tool("set_reminder", "", {}, _nothing)


@pytest.mark.parametrize(
    ("tool", "text"),
    [
        (REMINDER, "Remind me in ten minutes to stir the soup."),
        (REMINDER, "Wake me at 7:30."),
        (REMINDER, "十分钟后叫我"),
        (DEVICE["self.audio_speaker.set_volume"], "It is too loud in here."),
        (DEVICE["self.audio_speaker.set_volume"], "I can barely hear you."),
        (DEVICE["self.screen.set_brightness"], "The screen is too bright."),
        (DEVICE["self.screen.set_theme"], "Switch to night mode."),
        (DEVICE["self.get_device_status"], "How much battery is left?"),
        (DEVICE["self.get_device_status"], "Volume?"),  # a status read needs no level
        (DEVICE["self.audio_speaker.set_volume"], "Volume 30."),
        (DEVICE["self.audio_speaker.set_volume"], "Could you make it louder, like 80?"),
        (DEVICE["self.audio_speaker.set_volume"], "Can you turn the sound down a bit?"),
        (DEVICE["self.screen.set_brightness"], "能把亮度调高吗"),
        (DEVICE["self.get_device_status"], "How loud is the speaker right now?"),
        (BUILTIN["end_conversation"], "That's all, thanks."),
        (Tool("add", "", {}, _nothing, source="mcp:calc"), "What is two plus two?"),
    ],
)
def test_a_request_for_the_tool_lets_its_call_run(tool: Tool, text: str) -> None:
    assert asked_for(tool, text)


@pytest.mark.parametrize(
    ("tool", "text"),
    [
        (REMINDER, "My name is Alice."),
        (DEVICE["self.get_device_status"], "My name is Alice."),
        (DEVICE["self.audio_speaker.set_volume"], "Tell me a joke."),
        (DEVICE["self.screen.set_theme"], "What is the capital of France?"),
        (BUILTIN["end_conversation"], "Who wrote Hamlet?"),
        # Only the level's name: to what? (`edge bench answers`: "音量" set the volume to 50)
        (DEVICE["self.audio_speaker.set_volume"], "音量"),
        (DEVICE["self.audio_speaker.set_volume"], "The volume."),
        (DEVICE["self.screen.set_brightness"], "Screen?"),
        (REMINDER, "提醒"),  # a reminder "Hey, how are you?" was set for it
        (REMINDER, "Remind."),
        # A question about the level reads it (`edge bench tools`: set the volume to 75).
        (DEVICE["self.audio_speaker.set_volume"], "How loud is the speaker right now?"),
        (DEVICE["self.audio_speaker.set_volume"], "What's the volume?"),
        (DEVICE["self.screen.set_brightness"], "Is the screen bright enough?"),
        (DEVICE["self.audio_speaker.set_volume"], "音量是多少"),
    ],
)
def test_a_call_the_user_did_not_ask_for_does_not_run(tool: Tool, text: str) -> None:
    assert not asked_for(tool, text)

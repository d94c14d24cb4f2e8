"""The answer path with the real default model: broken tool calls are repaired once, then
answered without tools; tools that refuse their arguments; text that only looks like a call."""

from __future__ import annotations

import json
from typing import Any

import pytest
from loguru import logger

from edge.assistant.answer import AnswerWriter
from edge.assistant.prompt import PromptBuilder
from edge.config import Config
from edge.errors import ToolArgumentError
from edge.tools.builtin import local_now
from edge.tools.registry import Tool, ToolContext, ToolSet
from tests.helpers import ServerThread

pytestmark = pytest.mark.models


def _writer(harness: ServerThread, tools: list[Tool], **tools_config: Any) -> AnswerWriter:
    from edge.config import with_overrides

    config = with_overrides(Config(), tools=tools_config) if tools_config else Config()
    return AnswerWriter(
        harness.engines.llm,
        config,
        ToolSet(tools),
        ToolContext("dev-test"),
        logger.bind(device="dev-test"),
    )


def _volume_tool(handler: Any, maximum: int = 100, terminal: bool = False) -> Tool:
    schema = {
        "type": "object",
        "properties": {"volume": {"type": "integer", "minimum": 0, "maximum": maximum}},
        "required": ["volume"],
    }
    return Tool(
        "self.audio_speaker.set_volume",
        "Set the volume of the audio speaker.",
        schema,
        handler,
        terminal=terminal,
    )


def _answer(harness: ServerThread, writer: AnswerWriter, prompt: str) -> str:
    async def run() -> str:
        messages = PromptBuilder(writer.config, writer.tools).messages(prompt, [], "")
        return "".join([p async for p in writer.pieces(messages)]).strip()

    return harness.call(run())


def test_a_call_that_cannot_be_used_is_repaired_once_then_answered(
    harness: ServerThread, log_lines: list[dict[str, Any]]
) -> None:
    called: list[dict[str, Any]] = []

    async def set_volume(args: dict[str, Any], _ctx: ToolContext) -> str:
        called.append(args)
        return "true"

    # The model will ask for 30; this tool only takes 0–10, so every call it makes is invalid.
    tool = _volume_tool(set_volume, maximum=10)
    writer = _writer(harness, [tool])
    spoken = _answer(harness, writer, "Turn the volume down to 30.")
    assert spoken.strip()  # an answer, never an exception
    assert called == [] or all(0 <= a["volume"] <= 10 for a in called)
    assert writer.answer.repairs >= 1
    warnings = [line for line in log_lines if "unusable tool call" in line["message"]]
    assert warnings and all(line["device"] == "dev-test" for line in warnings)
    assert "maximum" in warnings[0]["message"]


def test_a_tool_that_refuses_its_arguments_gets_one_more_try(harness: ServerThread) -> None:
    attempts: list[dict[str, Any]] = []

    async def remind(args: dict[str, Any], _ctx: ToolContext) -> str:
        attempts.append(args)
        raise ToolArgumentError("the delay must be more than zero")

    tool = Tool(
        "set_reminder",
        "Set a timer or reminder.",
        {
            "type": "object",
            "properties": {"minutes": {"type": "number"}, "text": {"type": "string"}},
        },
        remind,
    )
    writer = _writer(harness, [tool])
    spoken = _answer(harness, writer, "Remind me in two minutes to check the oven.")
    assert spoken.strip()
    assert 1 <= len(attempts) <= 2
    assert [c.error for c in writer.answer.tool_calls if c.error]


def test_without_tools_the_model_just_speaks(harness: ServerThread) -> None:
    writer = _writer(harness, [], enabled=False)
    spoken = _answer(harness, writer, "What is the capital of France?")
    assert "paris" in spoken.lower()
    assert writer.answer.tool_calls == [] and writer.answer.text == spoken


@pytest.mark.parametrize("mode", ["template", "grammar"])
def test_a_tool_result_becomes_a_spoken_sentence(
    harness: ServerThread, mode: str, greedy: None
) -> None:
    # Greedy: at 0.4 the model now and then reads the status first (a fair call, not this test).
    async def status(_args: dict[str, Any], _ctx: ToolContext) -> str:
        return json.dumps({"audio_speaker": {"volume": 70}})

    async def set_volume(args: dict[str, Any], _ctx: ToolContext) -> str:
        return "true"

    tools = [
        Tool(
            "self.get_device_status",
            "Current volume and status.",
            {"type": "object", "properties": {}},
            status,
        ),
        _volume_tool(set_volume),
    ]
    writer = _writer(harness, tools, mode=mode)
    spoken = _answer(harness, writer, "Set the volume to 40.")
    assert [(c.name, c.arguments) for c in writer.answer.tool_calls] == [
        ("self.audio_speaker.set_volume", {"volume": 40})
    ]
    assert spoken.strip() and "{" not in spoken and "<tool_call>" not in spoken


def test_a_terminal_tool_ends_with_the_farewell(harness: ServerThread) -> None:
    calls: list[dict[str, Any]] = []

    async def power_off(args: dict[str, Any], ctx: ToolContext) -> str:
        calls.append(args)
        return "ok"

    # A tool the model reliably calls for this request, marked terminal like end_conversation.
    tool = _volume_tool(power_off, terminal=True)
    writer = _writer(harness, [tool])
    writer.farewell = "See you!"
    spoken = _answer(harness, writer, "Turn the volume down to 30.")
    assert calls == [{"volume": 30}]
    assert spoken == "See you!" and writer.answer.end_conversation


def test_the_clock_comes_after_everything_that_stays_the_same() -> None:
    builder = PromptBuilder(Config(), ToolSet([]))
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    prompt = builder.messages("What time is it?", history, "The user is Ann.")
    assert [m["role"] for m in prompt] == [
        "system",
        "system",
        "user",
        "assistant",
        "system",
        "user",
    ]
    clock = prompt[-2]["content"]
    assert clock.startswith("It is now ") and f"{local_now(''):%Y}" in clock
    # The read-ahead reads the clock too: it is part of the prompt before the user's words.
    ahead, _tools = builder.ahead(history, "The user is Ann.")
    assert ahead == prompt[:-1]


@pytest.mark.parametrize(
    ("first", "refuses"),
    [
        ("I'm sorry, but I can't assist with that.", True),
        ("I'm sorry, but I don't know what you're asking.", True),  # five turns in a row once
        ("抱歉，我不知道。", True),
        ("I'm sorry to hear that.", False),
        ("A spider has eight legs.", False),
    ],
)
def test_a_stock_refusal_is_no_example_for_the_history(first: str, refuses: bool) -> None:
    from edge.assistant.outcome import REFUSAL

    assert (REFUSAL.search(first) is not None) is refuses

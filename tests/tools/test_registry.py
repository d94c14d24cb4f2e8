from __future__ import annotations

import asyncio
from typing import Any

import pytest

from edge.errors import ToolArgumentError, ToolError
from edge.tools.registry import Tool, ToolContext, ToolRegistry, ToolSet, function_name

VOLUME_SCHEMA = {
    "type": "object",
    "properties": {"volume": {"type": "integer", "minimum": 0, "maximum": 100}},
    "required": ["volume"],
}


async def _ok(args: dict[str, Any], _ctx: ToolContext) -> str:
    return f"ok {args}"


def tool(name: str, schema: dict[str, Any] | None = None, **kw: Any) -> Tool:
    return Tool(name, f"{name} tool", schema or {"type": "object", "properties": {}}, _ok, **kw)


def test_function_names_are_safe_and_map_back() -> None:
    assert function_name("self.audio_speaker.set_volume") == "self_audio_speaker_set_volume"
    assert function_name("a b/c") == "a_b_c"
    tools = ToolSet([tool("self.audio_speaker.set_volume", VOLUME_SCHEMA)])
    found = tools.find("self_audio_speaker_set_volume")
    assert found is not None and found.name == "self.audio_speaker.set_volume"
    assert tools.find("self.audio_speaker.set_volume") is found
    assert tools.find("functions.self_audio_speaker_set_volume") is found
    assert tools.find("SELF_AUDIO_SPEAKER_SET_VOLUME") is found


def test_close_names_are_corrected_and_strangers_refused() -> None:
    tools = ToolSet([tool("self.screen.set_brightness"), tool("get_current_time")])
    found = tools.find("set_screen_set_brightness")  # what the 0.5B model wrote
    assert found is not None and found.name == "self.screen.set_brightness"
    assert tools.find("joke") is None
    assert tools.find("") is None


def test_specs_are_openai_style() -> None:
    spec = tool("self.x.y", VOLUME_SCHEMA).spec()
    assert spec == {
        "type": "function",
        "function": {
            "name": "self_x_y",
            "description": "self.x.y tool",
            "parameters": VOLUME_SCHEMA,
        },
    }


@pytest.mark.parametrize(
    ("given", "cleaned"),
    [
        ({"volume": 30}, {"volume": 30}),
        ({"volume": "30"}, {"volume": 30}),
        ({"volume": 30.0}, {"volume": 30}),
        ({"volume": "30%"}, {"volume": 30}),
        ({"volume": 30, "type": "object", "properties": {}}, {"volume": 30}),  # padding dropped
    ],
)
def test_arguments_are_forgiven_then_validated(
    given: dict[str, Any], cleaned: dict[str, Any]
) -> None:
    assert tool("v", VOLUME_SCHEMA).clean_arguments(given) == cleaned


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ({}, "required"),
        ({"volume": 130}, "maximum"),
        ({"volume": "loud"}, "not of type"),
        ({"volume": 30.5}, "not of type"),
    ],
)
def test_bad_arguments_raise_with_a_reason(given: dict[str, Any], reason: str) -> None:
    with pytest.raises(ToolArgumentError, match=reason):
        tool("v", VOLUME_SCHEMA).clean_arguments(given)


async def test_call_wraps_failures_and_timeouts() -> None:
    async def boom(_a: dict[str, Any], _c: ToolContext) -> str:
        raise RuntimeError("kaput")

    async def hang(_a: dict[str, Any], _c: ToolContext) -> str:
        await asyncio.sleep(60)
        return "never"

    ctx = ToolContext("dev")
    with pytest.raises(ToolError, match="kaput"):
        await Tool("b", "", {}, boom).call({}, ctx)
    with pytest.raises(ToolError, match=r"within 0\.05 s"):
        await Tool("h", "", {}, hang, timeout_s=0.05).call({}, ctx)
    assert await tool("fine").call({"a": 1}, ctx) == "ok {'a': 1}"


def test_registry_orders_sources_and_drops_a_dead_one() -> None:
    registry = ToolRegistry()
    registry.set_source("mcp:weather", [tool("weather")])
    registry.set_source("builtin", [tool("get_current_time")])
    registry.set_source("mcp:notes", [tool("notes")])
    assert [t.name for t in registry.tools()] == ["get_current_time", "notes", "weather"]
    registry.remove_source("mcp:notes")
    assert [t.name for t in registry.tools()] == ["get_current_time", "weather"]


def test_toolset_keeps_the_first_of_two_same_names() -> None:
    first, second = tool("x", source="builtin"), tool("x", source="device")
    assert ToolSet([first, second]).tools == [first]

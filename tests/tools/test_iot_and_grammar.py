from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from edge.tools import grammar
from edge.tools.iot import iot_tools
from edge.tools.registry import Tool, ToolContext, ToolSet

SPEAKER = {
    "name": "AudioSpeaker",
    "description": "The speaker",
    "properties": {"volume": {"description": "Current volume", "type": "number"}},
    "methods": {
        "set_volume": {
            "description": "Set the volume",
            "parameters": {"volume": {"description": "0 to 100", "type": "number"}},
        }
    },
}


async def test_iot_methods_become_tools_that_send_commands() -> None:
    sent: list[tuple[str, str, dict[str, Any]]] = []

    async def send(thing: str, method: str, params: dict[str, Any]) -> bool:
        sent.append((thing, method, params))
        return True

    tools = iot_tools([SPEAKER], send, 5.0)
    assert [t.name for t in tools] == ["iot.AudioSpeaker.set_volume"]
    assert tools[0].function == "iot_AudioSpeaker_set_volume"
    arguments = tools[0].clean_arguments({"volume": "40"})
    assert await tools[0].call(arguments, ToolContext("d")) == "done"
    assert sent == [("AudioSpeaker", "set_volume", {"volume": 40.0})]


@pytest.mark.parametrize(
    "descriptors",
    [
        [],
        ["not an object"],
        [{"name": 5}],
        [{"name": "Lamp", "methods": "nope"}],
        [{"name": "Lamp", "methods": {"on": {"parameters": {"x": {"type": "color"}}}}}],
        [{"name": "Lamp", "methods": {"on": {"parameters": ["x"]}}}],
    ],
)
def test_odd_iot_descriptors_are_skipped(descriptors: list[Any]) -> None:
    async def send(*_a: Any) -> bool:
        return True

    assert iot_tools(descriptors, send, 5.0) == []


def _tool(name: str, properties: dict[str, Any]) -> Tool:
    async def handler(_a: dict[str, Any], _c: ToolContext) -> str:
        return ""

    return Tool(name, f"{name}.", {"type": "object", "properties": properties}, handler)


def test_grammar_schema_accepts_calls_and_replies_only() -> None:
    tools = ToolSet(
        [_tool("self.audio_speaker.set_volume", {"volume": {"type": "integer"}}), _tool("t", {})]
    )
    schema = grammar.schema(tools)
    jsonschema.validate({"tool": "none", "reply": "Hi"}, schema)
    jsonschema.validate(
        {"tool": "self_audio_speaker_set_volume", "arguments": {"volume": 3}}, schema
    )
    jsonschema.validate({"tool": "t", "arguments": {}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"tool": "other", "arguments": {}}, schema)
    text = grammar.instructions(tools)
    assert "self_audio_speaker_set_volume" in text and '"tool": "none"' in text


def test_grammar_compiles_for_llama_cpp() -> None:
    from llama_cpp import LlamaGrammar

    tools = ToolSet([_tool("a.b", {"volume": {"type": "integer", "minimum": 0, "maximum": 100}})])
    LlamaGrammar.from_json_schema(json.dumps(grammar.schema(tools)), verbose=False)


def test_reply_streamer_unwraps_as_it_streams() -> None:
    streamer = grammar.ReplyStreamer()
    raw = '{"tool": "none", "reply": "Say \\"hi\\"\\n to \\u4f60 now."}'
    out = [streamer.feed(ch) for ch in raw]
    assert "".join(out) == 'Say "hi"  to 你 now.'
    assert streamer.is_reply and streamer.closed
    # The first words come out before the string is complete.
    assert "".join(out[: raw.index(" to ")]) == 'Say "hi" '


def test_reply_streamer_recognises_a_call() -> None:
    streamer = grammar.ReplyStreamer()
    for ch in '{"tool": "get_time", "arguments": {}}':
        assert streamer.feed(ch) == ""
    assert streamer.is_reply is False
    undecided = grammar.ReplyStreamer()
    undecided.feed('{"tool": "no')
    assert undecided.is_reply is None

"""The tolerant tool-call parser on what Qwen2.5-Coder-0.5B really wrote (recorded from runs of the
default model through this project), plus the shapes the issue lists."""

from __future__ import annotations

import pytest

from edge.tools.parsing import ParsedCall, call_start, decode_json, parse_tool_call

# Raw outputs of the real default model (template mode, temperature 0.2–0.4).
RECORDED_GOOD = [
    (
        '{"name": "self_audio_speaker_set_volume", "arguments": {"volume": 30}}',
        ParsedCall("self_audio_speaker_set_volume", {"volume": 30}),
    ),
    (
        '{"name": "set_reminder", "arguments": {"minutes": 2, "text": "Check the oven in two '
        'minutes."}}\n{"name": "end_conversation", "arguments": {"text": "Goodbye!"}}',
        ParsedCall("set_reminder", {"minutes": 2, "text": "Check the oven in two minutes."}),
    ),
    (
        '{"name": "self_audio_speaker_set_volume", "arguments": {"volume": 30}}\n',
        ParsedCall("self_audio_speaker_set_volume", {"volume": 30}),
    ),
    # Grammar mode.
    ('{"tool": "get_time", "arguments": {}}', ParsedCall("get_time", {})),
    (
        '{"tool": "self_audio_speaker_set_volume", "arguments": {"volume": 50}}',
        ParsedCall("self_audio_speaker_set_volume", {"volume": 50}),
    ),
]

# Recorded outputs that are broken: copied schemas cut off at the token limit, a made-up tool.
RECORDED_BAD = [
    '{"name": "get_time", "arguments": {"type": "object", "properties": {"type": "object", '
    '"properties": {"type": "object", "properties": {"type": "object", "properties": {"type": "',
    '{"name": "get_time", "arguments": {"type": "object", "properties": {"type": "string", '
    '"description": "What time is it?"}}',
    '{"name": "joke", "arguments": {"joke": "Why did the tomato turn red? Because it saw the '
    'salad dressing."}}',
]


@pytest.mark.parametrize(("raw", "expected"), RECORDED_GOOD)
def test_recorded_calls_are_read(raw: str, expected: ParsedCall) -> None:
    assert parse_tool_call(raw).call == expected


@pytest.mark.parametrize("raw", RECORDED_BAD)
def test_recorded_broken_calls_never_raise(raw: str) -> None:
    result = parse_tool_call(raw)
    # Readable as a call to *something* (the registry then rejects the name or the arguments),
    # or an error: never an exception, never a reply.
    assert result.call is not None or result.error
    assert result.reply is None


def test_truncated_schema_copy_keeps_the_name() -> None:
    result = parse_tool_call(RECORDED_BAD[0])
    assert result.call is not None and result.call.name == "get_time"


@pytest.mark.parametrize(
    ("raw", "name", "arguments"),
    [
        ('<tool_call>\n{"name": "a.b", "arguments": {"v": 1}}\n</tool_call>', "a.b", {"v": 1}),
        ('<tool_call>\n{"name": "a", "arguments": {"v": 1}}', "a", {"v": 1}),  # no closing tag
        ('```json\n{"name": "x", "arguments": {"v": 1}}\n```\nDone!', "x", {"v": 1}),
        ('{"name": "x", "arguments": "{\\"volume\\": 30}"}', "x", {"volume": 30}),  # string args
        ('{"name": "x", "arguments": {"v": 1}} I have set it for you.', "x", {"v": 1}),
        ('{"name": "x", "arguments": {"v": 1, "t": "hal', "x", {"v": 1, "t": "hal"}),  # truncated
        ('{"name": "x", "arguments": {"v": 1, "t', "x", {"v": 1}),  # cut inside a key
        ('{"name": "x", "parameters": {"v": 1}}', "x", {"v": 1}),
        ('{"function": {"name": "x", "arguments": "{}"}}', "x", {}),
        ('[{"name": "x", "arguments": {}}, {"name": "y"}]', "x", {}),
        ('{"name": "x", "arguments": null}', "x", {}),
        ('{"name": "x"}', "x", {}),
    ],
)
def test_shapes_small_models_emit(raw: str, name: str, arguments: dict[str, object]) -> None:
    assert parse_tool_call(raw).call == ParsedCall(name, arguments)


def test_grammar_mode_reply_is_not_a_call() -> None:
    result = parse_tool_call('{"tool": "none", "reply": "Paris is the capital of France."}')
    assert result.call is None and result.reply == "Paris is the capital of France."


@pytest.mark.parametrize(
    "raw",
    [
        "I can't do that.",
        "{not json at all",
        '{"arguments": {"v": 1}}',
        '{"name": "x", "arguments": [1, 2]}',
        '{"name": "x", "arguments": "not json"}',
        "[]",
        "42",
        "",
    ],
)
def test_unreadable_calls_are_errors(raw: str) -> None:
    result = parse_tool_call(raw)
    assert result.call is None and result.reply is None and result.error


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        ("  ", None),
        ("{", True),
        ('  {"name"', True),
        ("[", True),
        ("<tool", None),
        ("<tool_call>", True),
        ("`", None),
        ("```json", True),
        ("The", False),
        ("<b>", False),
        ("现在", False),
    ],
)
def test_call_start(text: str, expected: bool | None) -> None:
    assert call_start(text) is expected


def test_decode_json_ignores_trailing_text_and_closes_cut_values() -> None:
    assert decode_json('{"a": 1} and more') == {"a": 1}
    assert decode_json('{"a": [1, 2') == {"a": [1, 2]}
    assert decode_json('{"a": "x\\"y') == {"a": 'x"y'}
    assert decode_json("}{") is None

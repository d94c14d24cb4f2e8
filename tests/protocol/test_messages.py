import json

import pytest

from edge.protocol import messages as m


def test_firmware_hello() -> None:
    hello = m.parse_device_message(
        json.dumps(
            {
                "type": "hello",
                "version": 3,
                "features": {"mcp": True, "aec": False, "glyph_push": False},
                "transport": "websocket",
                "audio_params": {
                    "format": "opus",
                    "sample_rate": 16000,
                    "channels": 1,
                    "frame_duration": 60,
                },
            }
        )
    )
    assert isinstance(hello, m.Hello)
    assert hello.version == 3 and hello.mcp and hello.audio_params.frame_duration == 60


def test_old_and_browser_hellos_get_defaults() -> None:
    old = m.parse_device_message('{"type":"hello","version":1}')
    assert isinstance(old, m.Hello) and not old.mcp and old.audio_params == m.AudioParams()
    browser = m.parse_device_message('{"type":"hello","audio_params":{"frame_duration":20}}')
    assert isinstance(browser, m.Hello) and browser.version is None
    assert browser.audio_params.frame_duration == 20


@pytest.mark.parametrize(
    "text",
    [
        '{"type":"hello","version":"1"}',
        '{"type":"hello","audio_params":"opus"}',
        '{"type":"hello","audio_params":{"sample_rate":"16000"}}',
        '{"type":"hello","audio_params":{"frame_duration":0}}',
        '{"type":"hello","audio_params":{"format":"pcm"}}',
        '{"type":"hello","features":[1]}',
        '{"type":"hello","transport":5}',
    ],
)
def test_hellos_with_wrong_types_are_invalid_hellos(text: str) -> None:
    parsed = m.parse_device_message(text)
    assert isinstance(parsed, m.Invalid) and parsed.type == "hello" and parsed.reason


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "{}",
        '{"type":42}',
        '{"type":"bogus"}',
        '{"type":"listen","state":"start"',  # truncated
        "[1,2,3]",
        '{"type":"listen","state":"start","mode":"loud"}',
        '{"type":"listen","state":"sideways"}',
        '{"type":"listen","state":"detect","text":5}',
        '{"type":"mcp","payload":"x"}',
        "\udcff",  # not encodable as UTF-8
    ],
)
def test_malformed_messages_never_raise(text: str) -> None:
    parsed = m.parse_device_message(text)
    assert isinstance(parsed, m.Invalid) and parsed.reason


def test_oversized_text_is_invalid() -> None:
    text = json.dumps({"type": "listen", "state": "start", "pad": "x" * 70_000})
    parsed = m.parse_device_message(text)
    assert isinstance(parsed, m.Invalid) and "exceeds" in parsed.reason


def test_device_messages() -> None:
    assert m.parse_device_message('{"type":"listen","state":"start","mode":"manual"}') == (
        m.ListenStart("manual")
    )
    assert m.parse_device_message('{"type":"listen","state":"start"}') == m.ListenStart("auto")
    assert m.parse_device_message('{"type":"listen","state":"stop"}') == m.ListenStop()
    assert m.parse_device_message('{"type":"listen","state":"detect","text":"你好小智"}') == (
        m.ListenDetect("你好小智")
    )
    assert m.parse_device_message('{"type":"abort","reason":"wake_word_detected"}') == m.Abort(
        "wake_word_detected"
    )
    assert m.parse_device_message('{"type":"abort"}') == m.Abort(None)
    assert isinstance(m.parse_device_message('{"type":"iot","descriptors":[{}]}'), m.Iot)
    assert isinstance(m.parse_device_message('{"type":"mcp","payload":{"id":1}}'), m.Mcp)
    assert m.parse_device_message('{"type":"goodbye"}') == m.Goodbye()
    assert m.parse_device_message('{"type":"ping"}') == m.Ping()
    assert m.parse_device_message('{"type":"pong","session_id":"x"}') == m.Ping(reply=True)
    assert json.loads(m.encode(m.Pong(), "s1")) == {"session_id": "s1", "type": "pong"}


def test_server_hello_always_has_transport() -> None:
    hello = json.loads(m.encode(m.ServerHello(m.AudioParams(sample_rate=24000)), "s1"))
    assert hello["transport"] == "websocket" and hello["session_id"] == "s1"
    assert hello["audio_params"] == {
        "format": "opus",
        "sample_rate": 24000,
        "channels": 1,
        "frame_duration": 60,
    }


def test_dumps_is_valid_utf8_json_for_any_text() -> None:
    for text in ['say "hi" \\ 🙂 你好 <tag>', "lone \udcff surrogate"]:
        out = m.encode(m.TtsSentence(text), "s")
        assert json.loads(out.encode("utf-8"))["text"] == text


def test_every_server_message_carries_its_type_and_the_session_id() -> None:
    sent = [
        (m.Stt("hi"), {"type": "stt", "text": "hi"}),
        (m.LlmEmotion("happy"), {"type": "llm", "text": "", "emotion": "happy"}),
        (m.TtsStart(), {"type": "tts", "state": "start"}),
        (m.TtsSentence("Hello."), {"type": "tts", "state": "sentence_start", "text": "Hello."}),
        (m.TtsStop(), {"type": "tts", "state": "stop"}),
        (m.McpRequest({"id": 1}), {"type": "mcp", "payload": {"id": 1}}),
        (
            m.IotCommand("Speaker", "SetVolume", {"volume": 3}),
            {
                "type": "iot",
                "commands": [
                    {"name": "Speaker", "method": "SetVolume", "parameters": {"volume": 3}}
                ],
            },
        ),
    ]
    for message, fields in sent:
        assert json.loads(m.encode(message, "s9")) == {"session_id": "s9", **fields}

"""Properties of the sans-I/O protocol layer, over thousands of generated inputs: whatever a device
sends, a text frame either parses into a message or comes back as `Invalid`, a binary frame
either decodes or raises `FramingError`, and a config call's body and headers always give a
request. Nothing else may escape: an exception here would end a device's session."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.errors import FramingError
from edge.protocol import framing, ota
from edge.protocol import messages as m

MANY = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any JSON value, numbers included that Python's json reads but JSON forbids (NaN, Infinity).
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
KNOWN_TYPES = ["hello", "listen", "abort", "mcp", "iot", "goodbye", "ping", "pong", ""]
KEYS = [
    "type", "state", "mode", "text", "reason", "payload", "descriptors", "states", "version",
    "transport", "features", "audio_params", "format", "sample_rate", "channels",
    "frame_duration", "session_id", "id", "result", "error",
]  # fmt: skip
# Messages shaped like the device's: known types and keys, any value in any field (objects
# inside keyed like the protocol's too, as audio_params and payloads are).
fields = (
    scalars
    | st.lists(scalars, max_size=3)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), scalars, max_size=5)
)
shaped = st.fixed_dictionaries(
    {"type": st.sampled_from(KNOWN_TYPES)},
    optional={key: fields for key in KEYS if key != "type"},
)
MESSAGE_TYPES = (
    m.Hello,
    m.ListenStart,
    m.ListenStop,
    m.ListenDetect,
    m.Abort,
    m.Mcp,
    m.Iot,
    m.Goodbye,
    m.Ping,
    m.Invalid,
)


def _parses(frame: str | bytes) -> m.DeviceMessage:
    message = m.parse_device_message(frame)
    assert isinstance(message, MESSAGE_TYPES)
    if isinstance(message, m.Hello):
        params = message.audio_params
        for value in (params.sample_rate, params.channels, params.frame_duration):
            assert isinstance(value, int) and not isinstance(value, bool)
    return message


@MANY
@given(st.text(max_size=200))
def test_any_text_parses_or_is_invalid(text: str) -> None:
    _parses(text)


@MANY
@given(st.binary(max_size=200))
def test_any_bytes_parse_or_are_invalid(data: bytes) -> None:
    _parses(data)


@MANY
@given(json_values)
def test_any_json_value_parses_or_is_invalid(value: Any) -> None:
    _parses(json.dumps(value))


@MANY
@given(shaped)
def test_messages_shaped_like_the_devices_parse_or_are_invalid(message: dict[str, Any]) -> None:
    parsed = _parses(json.dumps(message))
    if isinstance(parsed, m.Hello):
        # A hello that parses carries only audio parameters a session can use.
        assert 8000 <= parsed.audio_params.sample_rate <= 48000


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=200_000), st.sampled_from(["[", '{"a":']))
def test_nesting_of_any_depth_is_invalid_not_a_crash(depth: int, opener: str) -> None:
    text = '{"type":"listen","state":' + opener * depth
    assert isinstance(_parses(text), m.Invalid)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["sample_rate", "channels", "frame_duration"]),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "16000.5", "1e20"]),
)
def test_a_hello_with_unusable_numbers_is_answered_as_a_bad_hello(field: str, number: str) -> None:
    text = '{"type":"hello","audio_params":{"' + field + '":' + number + "}}"
    parsed = _parses(text)
    assert isinstance(parsed, m.Invalid) and parsed.type == "hello"


# --- binary framing ------------------------------------------------------------------------------


@MANY
@given(
    st.sampled_from(framing.SUPPORTED_VERSIONS),
    st.binary(max_size=2000),
    st.integers(min_value=0, max_value=2**32 - 1),
)
def test_framing_round_trips_every_version(version: int, payload: bytes, timestamp: int) -> None:
    packet = framing.decode(version, framing.encode(version, payload, timestamp))
    assert packet.payload == payload
    assert packet.timestamp == (timestamp if version == 2 else 0)


@MANY
@given(st.integers(min_value=-3, max_value=6), st.binary(max_size=100))
def test_any_binary_frame_decodes_or_raises_a_framing_error(version: int, frame: bytes) -> None:
    try:
        packet = framing.decode(version, frame)
    except FramingError:
        return
    assert isinstance(packet.payload, bytes) and len(packet.payload) <= len(frame)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from([2, 3]),
    st.binary(max_size=100),
    st.integers(min_value=0, max_value=0xFFFF),
)
def test_a_header_that_lies_about_its_size_is_refused(
    version: int, payload: bytes, claimed: int
) -> None:
    frame = bytearray(framing.encode(version, payload))
    at = 12 if version == 2 else 2
    size = 4 if version == 2 else 2
    frame[at : at + size] = claimed.to_bytes(size, "big")
    if claimed == len(payload):
        assert framing.decode(version, bytes(frame)).payload == payload
    else:
        try:
            framing.decode(version, bytes(frame))
        except FramingError:
            return
        raise AssertionError("a lying header was accepted")


# --- the config endpoint's request -------------------------------------------------------------


@MANY
@given(
    st.dictionaries(
        st.sampled_from(["Device-Id", "device-id", "Client-Id", "User-Agent", "X-Other"])
        | st.text(max_size=10),
        st.text(max_size=40),
        max_size=5,
    ),
    st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()),
)
def test_any_config_call_gives_a_request(headers: dict[str, str], body: bytes) -> None:
    request = ota.parse_request(headers, body)
    for value in (
        request.device_id,
        request.client_id,
        request.user_agent,
        request.firmware_version,
        request.board_type,
    ):
        assert isinstance(value, str)


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=200_000))
def test_a_deeply_nested_config_body_gives_a_request(depth: int) -> None:
    body = ('{"application":' * depth).encode()
    assert ota.parse_request({"Device-Id": "aa"}, body).device_id == "aa"

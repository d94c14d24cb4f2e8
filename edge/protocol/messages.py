"""Typed JSON messages in both directions (xiaozhi protocol §2, §3).

Device messages are parsed by `parse_device_message`, which never raises for content: anything
that is not a usable message comes back as `Invalid` with a reason to log. Server messages are
small dataclasses too, turned into a frame by `encode`, so a test can compare message objects.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

ListenMode = Literal["auto", "manual", "realtime"]
LISTEN_MODES: tuple[str, ...] = ("auto", "manual", "realtime")


@dataclass(frozen=True, slots=True)
class AudioParams:
    format: str = "opus"
    sample_rate: int = 16000
    channels: int = 1
    frame_duration: int = 60

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "frame_duration": self.frame_duration,
        }


@dataclass(frozen=True, slots=True)
class Hello:
    version: int | None
    transport: str | None
    audio_params: AudioParams
    features: dict[str, Any] = field(default_factory=dict)

    @property
    def mcp(self) -> bool:
        return self.features.get("mcp") is True


@dataclass(frozen=True, slots=True)
class ListenStart:
    mode: ListenMode


@dataclass(frozen=True, slots=True)
class ListenStop:
    pass


@dataclass(frozen=True, slots=True)
class ListenDetect:
    text: str


@dataclass(frozen=True, slots=True)
class Abort:
    reason: str | None


@dataclass(frozen=True, slots=True)
class Mcp:
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Iot:
    """Legacy IoT descriptors/states (firmware < 1.8); accepted and otherwise ignored for now."""

    descriptors: list[Any]
    states: list[Any]


@dataclass(frozen=True, slots=True)
class Goodbye:
    pass


@dataclass(frozen=True, slots=True)
class Ping:
    """A JSON keep-alive some clients send (answered with `Pong`); their own `pong` to ours is
    a `Ping` with `reply` set, and is only noted."""

    reply: bool = False


@dataclass(frozen=True, slots=True)
class Invalid:
    reason: str
    type: str | None = None  # the message's own `type`, when it had a string one


DeviceMessage = (
    Hello | ListenStart | ListenStop | ListenDetect | Abort | Mcp | Iot | Goodbye | Ping | Invalid
)

# Real devices never send more than 65535 bytes in a frame; a longer text frame is not a message.
MAX_TEXT_BYTES = 65536
# The firmware's messages nest a few levels deep (an MCP tool's schema is the deepest); anything
# much deeper is not a message, and a deep one would exhaust the stack of code that walks it.
MAX_NESTING = 32
_AUDIO_RANGES = {"sample_rate": (8000, 48000), "channels": (1, 2), "frame_duration": (2, 120)}


def _int_field(obj: dict[str, Any], key: str, default: int) -> int | str:
    """An integer field, its default when absent, or a reason string when mistyped."""
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"audio_params.{key} must be a number, got {_short(value)}"
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        return f"audio_params.{key} must be a whole number, got {_short(value)}"
    low, high = _AUDIO_RANGES[key]
    if not low <= int(value) <= high:
        return f"audio_params.{key}={value} is outside {low}..{high}"
    return int(value)


def _parse_hello(obj: dict[str, Any]) -> Hello | Invalid:
    version = obj.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        return Invalid(f"hello.version must be a number, got {_short(version)}")
    transport = obj.get("transport")
    if transport is not None and not isinstance(transport, str):
        return Invalid(f"hello.transport must be a string, got {_short(transport)}")
    features = obj.get("features")
    if features is None:
        features = {}
    if not isinstance(features, dict):
        return Invalid(f"hello.features must be an object, got {_short(features)}")
    raw = obj.get("audio_params")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return Invalid(f"hello.audio_params must be an object, got {_short(raw)}")
    fmt = raw.get("format", "opus")
    if fmt != "opus":
        return Invalid(f"hello.audio_params.format {_short(fmt)} is not supported (only opus)")
    values: dict[str, int] = {}
    for key, default in (("sample_rate", 16000), ("channels", 1), ("frame_duration", 60)):
        got = _int_field(raw, key, default)
        if isinstance(got, str):
            return Invalid(f"hello.{got}")
        values[key] = got
    return Hello(version, transport, AudioParams("opus", **values), dict(features))


def _parse_listen(obj: dict[str, Any]) -> DeviceMessage:
    state = obj.get("state")
    if state == "start":
        mode = obj.get("mode", "auto")
        if mode not in LISTEN_MODES:
            return Invalid(f"listen start with unknown mode {_short(mode)}")
        return ListenStart(mode)
    if state == "stop":
        return ListenStop()
    if state == "detect":
        text = obj.get("text", "")
        if not isinstance(text, str):
            return Invalid(f"listen detect text must be a string, got {_short(text)}")
        return ListenDetect(text)
    return Invalid(f"listen with unknown state {_short(state)}")


def parse_device_message(text: str | bytes) -> DeviceMessage:
    """Parse one text frame from a device. Never raises for bad content."""
    size = len(text.encode("utf-8", "replace") if isinstance(text, str) else text)
    if size > MAX_TEXT_BYTES:
        return Invalid(f"text frame of {size} bytes exceeds {MAX_TEXT_BYTES}")
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        return Invalid(f"malformed JSON ({exc.__class__.__name__}: {str(exc)[:80]})")
    except RecursionError:
        return Invalid(f"JSON nested more than {MAX_NESTING} levels deep")
    if nesting_exceeds(obj, MAX_NESTING):
        return Invalid(f"JSON nested more than {MAX_NESTING} levels deep")
    if not isinstance(obj, dict):
        return Invalid(f"JSON is a {type(obj).__name__}, not an object")
    kind = obj.get("type")
    if not isinstance(kind, str):
        return Invalid(f"message without a string type ({_short(kind)})")
    if kind == "hello":
        hello = _parse_hello(obj)
        return Invalid(hello.reason, "hello") if isinstance(hello, Invalid) else hello
    if kind == "listen":
        listen = _parse_listen(obj)
        return Invalid(listen.reason, "listen") if isinstance(listen, Invalid) else listen
    if kind == "abort":
        reason = obj.get("reason")
        return Abort(reason if isinstance(reason, str) else None)
    if kind == "mcp":
        payload = obj.get("payload")
        if not isinstance(payload, dict):
            return Invalid("mcp message without an object payload")
        return Mcp(payload)
    if kind == "iot":
        descriptors = obj.get("descriptors")
        states = obj.get("states")
        return Iot(
            descriptors if isinstance(descriptors, list) else [],
            states if isinstance(states, list) else [],
        )
    if kind == "goodbye":
        return Goodbye()
    if kind in ("ping", "pong"):
        return Ping(reply=kind == "pong")
    return Invalid(f"unknown message type {_short(kind)}")


def nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether a parsed JSON value nests deeper than `limit` (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _short(value: Any) -> str:
    """A value as shown in a log line: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}... ({len(text)} chars)"


# --- server → device -------------------------------------------------------------------------
# Each message is a small dataclass; `to_json()` gives its fields as the firmware reads them.
# The session id, which every server message carries, is added by `encode` when it is sent.


@dataclass(frozen=True, slots=True)
class ServerHello:
    audio_params: AudioParams

    def to_json(self) -> dict[str, Any]:
        # `transport` is mandatory: firmware ignores a hello without the right one and
        # dereferences a null pointer when it is missing.
        return {
            "type": "hello",
            "transport": "websocket",
            "audio_params": self.audio_params.to_json(),
        }


@dataclass(frozen=True, slots=True)
class Stt:
    """What the server heard the user say (shown on the device's screen)."""

    text: str

    def to_json(self) -> dict[str, Any]:
        return {"type": "stt", "text": self.text}


@dataclass(frozen=True, slots=True)
class LlmEmotion:
    emotion: str
    text: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"type": "llm", "text": self.text, "emotion": self.emotion}


@dataclass(frozen=True, slots=True)
class TtsStart:
    def to_json(self) -> dict[str, Any]:
        return {"type": "tts", "state": "start"}


@dataclass(frozen=True, slots=True)
class TtsSentence:
    """The sentence whose audio follows (shown as a subtitle)."""

    text: str

    def to_json(self) -> dict[str, Any]:
        return {"type": "tts", "state": "sentence_start", "text": self.text}


@dataclass(frozen=True, slots=True)
class TtsStop:
    def to_json(self) -> dict[str, Any]:
        return {"type": "tts", "state": "stop"}


@dataclass(frozen=True, slots=True)
class McpRequest:
    """A JSON-RPC payload for the device's MCP server (we are its client)."""

    payload: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"type": "mcp", "payload": self.payload}


@dataclass(frozen=True, slots=True)
class IotCommand:
    """A method call on a legacy IoT "thing" (firmware before 1.8)."""

    thing: str
    method: str
    parameters: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        command = {"name": self.thing, "method": self.method, "parameters": self.parameters}
        return {"type": "iot", "commands": [command]}


@dataclass(frozen=True, slots=True)
class Notify:
    """Firmware 2.5: an idle device fetches `audio_url` (Ogg/Opus) and plays it with its
    subtitle, without opening the microphone. Ignored by a busy device; never acknowledged."""

    audio_url: str
    text: str = ""

    def to_json(self) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "notify", "audio_url": self.audio_url}
        if self.text:
            message["subtitles"] = [{"start_ms": 0, "text": self.text}]
        return message


@dataclass(frozen=True, slots=True)
class Pong:
    def to_json(self) -> dict[str, Any]:
        return {"type": "pong"}


ServerMessage = (
    ServerHello
    | Stt
    | LlmEmotion
    | TtsStart
    | TtsSentence
    | TtsStop
    | McpRequest
    | IotCommand
    | Notify
    | Pong
)


def encode(message: ServerMessage, session_id: str) -> str:
    """The text frame that carries `message` in session `session_id`."""
    return dumps({"session_id": session_id, **message.to_json()})


def dumps(message: dict[str, Any]) -> str:
    """Compact JSON; CJK and emoji stay literal (smaller frames, and the firmware's parser handles
    UTF-8). A lone surrogate from a model cannot be sent as UTF-8, so such text goes out escaped."""
    text = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(message, ensure_ascii=True, separators=(",", ":"))
    return text

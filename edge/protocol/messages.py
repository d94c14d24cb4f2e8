"""Typed JSON messages in both directions (xiaozhi protocol §2, §3).

Device messages are parsed by `parse_device_message`, which never raises for content: anything
that is not a usable message comes back as `Invalid` with a reason to log. Server messages are
built by small functions that return plain dicts ready for `json.dumps`.
"""

from __future__ import annotations

import json
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
class Invalid:
    reason: str
    type: str | None = None  # the message's own `type`, when it had a string one


DeviceMessage = (
    Hello | ListenStart | ListenStop | ListenDetect | Abort | Mcp | Iot | Goodbye | Invalid
)

# Real devices never send more than 65535 bytes in a frame; a longer text frame is not a message.
MAX_TEXT_BYTES = 65536
_AUDIO_RANGES = {"sample_rate": (8000, 48000), "channels": (1, 2), "frame_duration": (2, 120)}


def _int_field(obj: dict[str, Any], key: str, default: int) -> int | str:
    """An integer field, its default when absent, or a reason string when mistyped."""
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        return f"audio_params.{key} must be a number, got {value!r}"
    low, high = _AUDIO_RANGES[key]
    if not low <= int(value) <= high:
        return f"audio_params.{key}={value} is outside {low}..{high}"
    return int(value)


def _parse_hello(obj: dict[str, Any]) -> Hello | Invalid:
    version = obj.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        return Invalid(f"hello.version must be a number, got {version!r}")
    transport = obj.get("transport")
    if transport is not None and not isinstance(transport, str):
        return Invalid(f"hello.transport must be a string, got {transport!r}")
    features = obj.get("features")
    if features is None:
        features = {}
    if not isinstance(features, dict):
        return Invalid(f"hello.features must be an object, got {features!r}")
    raw = obj.get("audio_params")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return Invalid(f"hello.audio_params must be an object, got {raw!r}")
    fmt = raw.get("format", "opus")
    if fmt != "opus":
        return Invalid(f"hello.audio_params.format {fmt!r} is not supported (only opus)")
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
            return Invalid(f"listen start with unknown mode {mode!r}")
        return ListenStart(mode)
    if state == "stop":
        return ListenStop()
    if state == "detect":
        text = obj.get("text", "")
        if not isinstance(text, str):
            return Invalid(f"listen detect text must be a string, got {text!r}")
        return ListenDetect(text)
    return Invalid(f"listen with unknown state {state!r}")


def parse_device_message(text: str | bytes) -> DeviceMessage:
    """Parse one text frame from a device. Never raises for bad content."""
    size = len(text.encode("utf-8", "replace") if isinstance(text, str) else text)
    if size > MAX_TEXT_BYTES:
        return Invalid(f"text frame of {size} bytes exceeds {MAX_TEXT_BYTES}")
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        return Invalid(f"malformed JSON ({exc.__class__.__name__}: {str(exc)[:80]})")
    if not isinstance(obj, dict):
        return Invalid(f"JSON is a {type(obj).__name__}, not an object")
    kind = obj.get("type")
    if not isinstance(kind, str):
        return Invalid(f"message without a string type ({kind!r})")
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
    return Invalid(f"unknown message type {kind!r}")


# --- server → device -------------------------------------------------------------------------


def server_hello(session_id: str, audio: AudioParams) -> dict[str, Any]:
    # `transport` is mandatory: firmware ignores a hello without the right one and dereferences
    # a null pointer when it is missing.
    return {
        "type": "hello",
        "transport": "websocket",
        "session_id": session_id,
        "audio_params": audio.to_json(),
    }


def stt(session_id: str, text: str) -> dict[str, Any]:
    return {"session_id": session_id, "type": "stt", "text": text}


def llm_emotion(session_id: str, emotion: str, text: str = "") -> dict[str, Any]:
    return {"session_id": session_id, "type": "llm", "text": text, "emotion": emotion}


def tts_start(session_id: str) -> dict[str, Any]:
    return {"session_id": session_id, "type": "tts", "state": "start"}


def tts_sentence(session_id: str, text: str) -> dict[str, Any]:
    return {"session_id": session_id, "type": "tts", "state": "sentence_start", "text": text}


def tts_stop(session_id: str) -> dict[str, Any]:
    return {"session_id": session_id, "type": "tts", "state": "stop"}


def mcp(session_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"session_id": session_id, "type": "mcp", "payload": payload}


def iot_command(
    session_id: str, thing: str, method: str, parameters: dict[str, Any]
) -> dict[str, Any]:
    command = {"name": thing, "method": method, "parameters": parameters}
    return {"session_id": session_id, "type": "iot", "commands": [command]}


def dumps(message: dict[str, Any]) -> str:
    """Compact JSON; CJK and emoji stay literal (smaller frames, and the firmware's parser handles
    UTF-8). A lone surrogate from a model cannot be sent as UTF-8, so such text goes out escaped."""
    text = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(message, ensure_ascii=True, separators=(",", ":"))
    return text

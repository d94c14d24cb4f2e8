"""Reads tool calls out of what small models really write.

Qwen2.5's chat template asks for `<tool_call>{"name": …, "arguments": …}</tool_call>`; the 0.5B
model mostly writes the bare JSON object instead, sometimes inside a code fence, sometimes with
the arguments as a JSON string, with text after it, or cut off at the token limit (it likes to
copy the schema into empty argument lists until it runs out). Grammar mode gives `{"tool": name,
"arguments": {…}}` or `{"tool": "none", "reply": "…"}`. All of those are read here; anything else
is reported as an error for one repair attempt, never raised.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

JsonObject = dict[str, Any]

_FENCE = re.compile(r"```[a-zA-Z]*")
_TOOL_TAG = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.S)
_NAME_KEYS = ("name", "tool", "function", "tool_name")
_ARGUMENT_KEYS = ("arguments", "parameters", "args", "input", "params")


@dataclass(frozen=True)
class ParsedCall:
    name: str
    arguments: JsonObject


@dataclass(frozen=True)
class ParseResult:
    call: ParsedCall | None = None
    reply: str | None = None  # grammar mode's direct answer
    error: str | None = None  # it was meant as a call but cannot be read


def call_start(text: str) -> bool | None:
    """Does this output begin a tool call? None while too little has been written to tell."""
    head = text.lstrip()
    if not head:
        return None
    if head[0] in "{[":
        return True
    for marker in ("<tool_call>", "```"):
        if head.startswith(marker):
            return True
        if marker.startswith(head):
            return None
    return False


def embedded_call(text: str) -> int:
    """Where a `<tool_call>` starts inside text that began as speech (-1 if nowhere)."""
    return text.find("<tool_call>")


def parse_tool_call(text: str) -> ParseResult:
    body = _FENCE.sub("", text).strip()
    tagged = _TOOL_TAG.search(body)
    if tagged:
        body = tagged.group(1).strip()
    start = min((i for i in (body.find("{"), body.find("[")) if i >= 0), default=-1)
    if start < 0:
        return ParseResult(error="no JSON object in the tool call")
    value = decode_json(body[start:])
    if value is None:
        return ParseResult(error="the tool call is not valid JSON")
    if isinstance(value, list):  # a list of calls: small models add junk after the first
        value = next((item for item in value if isinstance(item, dict)), None)
        if value is None:
            return ParseResult(error="an empty list of tool calls")
    if not isinstance(value, dict):
        return ParseResult(error="the tool call is not a JSON object")
    return _read_call(value)


def _read_call(value: JsonObject) -> ParseResult:
    function = value.get("function")
    if isinstance(function, dict):  # the OpenAI shape {"function": {"name", "arguments"}}
        value = function
    name = next((value[k] for k in _NAME_KEYS if isinstance(value.get(k), str)), None)
    if name is None:
        return ParseResult(error="the tool call has no name")
    if name.strip().lower() in ("none", "null", ""):
        reply = value.get("reply")
        return ParseResult(reply=reply if isinstance(reply, str) else "")
    arguments: Any = next((value[k] for k in _ARGUMENT_KEYS if k in value), {})
    if isinstance(arguments, str):  # arguments as a JSON string, as the OpenAI API sends them
        decoded = decode_json(arguments) if arguments.strip() else {}
        if not isinstance(decoded, dict):
            return ParseResult(error=f"the arguments of {name} are not a JSON object")
        arguments = decoded
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        return ParseResult(error=f"the arguments of {name} are not a JSON object")
    return ParseResult(call=ParsedCall(name.strip(), arguments))


def decode_json(text: str) -> Any:
    """The first JSON value in text, ignoring what follows; closes a value cut off mid-way."""
    text = text.strip()
    try:
        value, _end = json.JSONDecoder().raw_decode(text)
        return value
    except json.JSONDecodeError:
        pass
    candidate = text
    for _ in range(6):  # drop trailing pieces until the rest closes into valid JSON
        closed = _close(candidate)
        if closed is not None:
            try:
                value, _end = json.JSONDecoder().raw_decode(closed)
                return value
            except json.JSONDecodeError:
                pass
        cut = _last_separator(candidate)
        if cut <= 0:
            return None
        candidate = candidate[:cut]
    return None


def _scan(text: str) -> tuple[list[tuple[int, str]], bool]:
    """The characters outside JSON strings (with their positions), and whether the text ends
    inside a string."""
    outside: list[tuple[int, str]] = []
    in_string = escaped = False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        else:
            outside.append((i, ch))
    return outside, in_string


def _close(text: str) -> str | None:
    """Append the quotes and brackets a truncated JSON text is missing."""
    outside, in_string = _scan(text)
    stack: list[str] = []
    for _i, ch in outside:
        if ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]":
            if not stack or stack.pop() != ch:
                return None
    if not stack and not in_string:
        return text
    tail = text + ('"' if in_string else "")
    tail = re.sub(r"[,:\s]+$", "", tail)
    if tail.endswith(('{"', ',"')) or re.search(r'[{,]\s*"[^"]*"$', tail):
        # a dangling key without a value: drop it
        tail = re.sub(r'[{,]?\s*"[^"]*"$', "", tail) if not tail.endswith("{") else tail
    return tail + "".join(reversed(stack))


def _last_separator(text: str) -> int:
    """Position of the last comma outside a string."""
    return max((i for i, ch in _scan(text)[0] if ch == ","), default=-1)

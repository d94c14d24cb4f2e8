"""Grammar mode: the model may only write `{"tool": name, "arguments": {…}}` or
`{"tool": "none", "reply": "…"}`, enforced by a llama.cpp grammar built from a JSON schema.

Small models then never produce unreadable calls, at the price of a JSON wrapper around plain
answers; `ReplyStreamer` unwraps the reply string as it is written, so speech still starts at the
first clause.
"""

from __future__ import annotations

import json
import re
from typing import Any

from edge.tools.registry import ToolSet

_REPLY_PREFIX = re.compile(r'^\s*\{\s*"tool"\s*:\s*"none"\s*,\s*"reply"\s*:\s*"')
_TOOL_NAME = re.compile(r'"tool"\s*:\s*"([^"]*)"')
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "", "f": "", "n": " ", "r": " ", "t": " "}


def schema(tools: ToolSet) -> dict[str, Any]:
    choices: list[dict[str, Any]] = [
        {
            "type": "object",
            "properties": {"tool": {"const": "none"}, "reply": {"type": "string"}},
            "required": ["tool", "reply"],
        }
    ]
    for tool in tools.tools:
        arguments = {"type": "object", **tool.parameters}
        arguments.setdefault("properties", {})
        choices.append(
            {
                "type": "object",
                "properties": {"tool": {"const": tool.function}, "arguments": arguments},
                "required": ["tool", "arguments"],
            }
        )
    return {"oneOf": choices}


def instructions(tools: ToolSet) -> str:
    """The tool list as text (the chat template's own tool block asks for another format)."""
    lines = []
    for tool in tools.tools:
        summary = tool.description.strip().splitlines()[0] if tool.description.strip() else ""
        lines.append(f"- {tool.function}: {summary} Arguments: {json.dumps(tool.properties)}")
    return (
        "\n\nYou can use these tools:\n"
        + "\n".join(lines)
        + '\n\nReply with JSON only: {"tool": "<name>", "arguments": {...}} to use a tool, or '
        '{"tool": "none", "reply": "<your spoken answer>"} to answer directly. Use a tool only '
        "when the user asks for what it does."
    )


class ReplyStreamer:
    """Feeds on the grammar-mode output; yields the characters of the `reply` string as they
    arrive, unescaped. `is_reply` is None until the output shows whether it is a reply."""

    def __init__(self) -> None:
        self.raw = ""
        self.is_reply: bool | None = None
        self._pos = 0  # next raw index to decode, once in the reply string
        self.closed = False

    def feed(self, piece: str) -> str:
        self.raw += piece
        if self.is_reply is None:
            match = _REPLY_PREFIX.match(self.raw)
            if match:
                self.is_reply = True
                self._pos = match.end()
            else:
                named = _TOOL_NAME.search(self.raw)
                if named and named.group(1) != "none":
                    self.is_reply = False
        if not self.is_reply or self.closed:
            return ""
        out = []
        raw = self.raw
        i = self._pos
        while i < len(raw):
            ch = raw[i]
            if ch == '"':
                self.closed = True
                i += 1
                break
            if ch == "\\":
                if i + 1 >= len(raw):
                    break  # wait for the escaped character
                code = raw[i + 1]
                if code == "u":
                    if i + 6 > len(raw):
                        break
                    try:
                        out.append(chr(int(raw[i + 2 : i + 6], 16)))
                    except ValueError:
                        pass
                    i += 6
                    continue
                out.append(_ESCAPES.get(code, code))
                i += 2
                continue
            out.append(ch)
            i += 1
        self._pos = i
        return "".join(out)

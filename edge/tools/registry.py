"""Tools the language model may call: name, description, JSON-schema arguments, async handler.

Tools come from several sources (built in, external MCP servers, the device's own MCP server, legacy
IoT descriptors). A `ToolSet` is the view one turn sees: the shared tools plus that device's own.
Arguments are validated (with `jsonschema`) before a handler runs; small models get a little help
first (numbers written as strings, keys the tool does not take), because a validation error costs
the user a spoken apology.
"""

from __future__ import annotations

import asyncio
import difflib
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from edge.errors import ToolArgumentError, ToolError, ToolTimeout

JsonObject = dict[str, Any]


@dataclass
class ToolContext:
    """What a handler may know about the turn that called it, and may change."""

    device_id: str
    end_conversation: bool = False


Handler = Callable[[JsonObject, ToolContext], Awaitable[str]]


def function_name(name: str) -> str:
    """OpenAI-style function names allow only [A-Za-z0-9_-]: `self.audio_speaker.set_volume` is
    offered to the model as `self_audio_speaker_set_volume` and mapped back on the way out."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64]


@dataclass(frozen=True)
class Tool:
    name: str  # as its source knows it (device tools contain dots)
    description: str
    parameters: JsonObject
    handler: Handler = field(compare=False)
    timeout_s: float = 10.0
    source: str = "builtin"
    # The conversation ends after this tool: its result is not given back to the model.
    terminal: bool = False

    @property
    def function(self) -> str:
        return function_name(self.name)

    def spec(self) -> JsonObject:
        """The OpenAI-style declaration the chat template renders into the prompt."""
        return {
            "type": "function",
            "function": {
                "name": self.function,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    @property
    def properties(self) -> JsonObject:
        props = self.parameters.get("properties")
        return props if isinstance(props, dict) else {}

    def clean_arguments(self, arguments: JsonObject) -> JsonObject:
        """Validate (after forgiving repairs); raise ToolArgumentError with a short reason."""
        props = self.properties
        cleaned: JsonObject = {}
        for key, value in arguments.items():
            if key not in props:
                continue  # small models pad calls with schema keys; the tool never takes them
            cleaned[key] = _coerce(value, props[key])
        try:
            jsonschema.validate(cleaned, _with_object_defaults(self.parameters))
        except jsonschema.ValidationError as exc:
            where = ".".join(str(p) for p in exc.absolute_path)
            raise ToolArgumentError(f"{where + ': ' if where else ''}{exc.message}") from None
        except jsonschema.SchemaError as exc:
            raise ToolArgumentError(f"{self.name} has an invalid schema: {exc.message}") from None
        return cleaned

    async def call(self, arguments: JsonObject, context: ToolContext) -> str:
        """Run the handler within the tool's timeout. Raises ToolError (TimeoutError included as
        ToolError) and never anything else the handler might throw."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self.handler(arguments, context)
        except TimeoutError:
            raise ToolTimeout(f"{self.name} did not answer within {self.timeout_s:g} s") from None
        except ToolError:
            raise
        except Exception as exc:
            raise ToolError(f"{self.name} failed: {exc!r}") from exc


def _with_object_defaults(schema: JsonObject) -> JsonObject:
    return {"type": "object", **schema}


def _coerce(value: Any, schema: Any) -> Any:
    """Numbers the model wrote as text ("30"), whole floats for integers (30.0)."""
    if not isinstance(schema, dict):
        return value
    kind = schema.get("type")
    if kind in ("integer", "number") and isinstance(value, str):
        try:
            number = float(value.strip().rstrip("%"))
        except ValueError:
            return value
        value = number
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "boolean" and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


class ToolRegistry:
    """The tools every device shares, by source; sources come and go (an MCP server dies)."""

    def __init__(self) -> None:
        self._by_source: dict[str, list[Tool]] = {}

    def set_source(self, source: str, tools: Iterable[Tool]) -> None:
        self._by_source[source] = list(tools)

    def remove_source(self, source: str) -> None:
        self._by_source.pop(source, None)

    def tools(self) -> list[Tool]:
        # Built-ins first, then the others in a fixed order: the tool list is part of the prompt
        # prefix, so its order must not change between turns (the KV cache depends on it).
        ordered = sorted(self._by_source, key=lambda s: (s != "builtin", s))
        return [tool for source in ordered for tool in self._by_source[source]]


class ToolSet:
    """The tools one turn offers the model, looked up tolerantly by the name the model wrote."""

    def __init__(self, tools: Iterable[Tool]) -> None:
        self.tools: list[Tool] = []
        seen: set[str] = set()
        for tool in tools:
            if tool.function not in seen:  # two sources with one name: the first wins
                seen.add(tool.function)
                self.tools.append(tool)
        self._lookup: dict[str, Tool] = {}
        for tool in self.tools:
            self._lookup[tool.function.lower()] = tool
            self._lookup.setdefault(tool.name.lower(), tool)

    def __bool__(self) -> bool:
        return bool(self.tools)

    def __len__(self) -> int:
        return len(self.tools)

    def specs(self) -> list[JsonObject]:
        return [tool.spec() for tool in self.tools]

    def find(self, written: str) -> Tool | None:
        """Exact function or source name, then without a `functions.` prefix, then the closest
        name (the 0.5B model writes `set_screen_set_brightness` for
        `self_screen_set_brightness`)."""
        key = written.strip().lower()
        for candidate in (key, key.removeprefix("functions."), function_name(key)):
            if candidate in self._lookup:
                return self._lookup[candidate]
        close = difflib.get_close_matches(function_name(key), list(self._lookup), n=1, cutoff=0.8)
        return self._lookup[close[0]] if close else None

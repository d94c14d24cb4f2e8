"""Legacy IoT "things" (firmware before 1.8, protocol §8): each method of a descriptor becomes a
tool that sends `{"type":"iot","commands":[…]}`. The device sends no reply, so a call succeeds
once the command is sent. Descriptors that do not fit the expected shape are skipped."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from edge.errors import ToolError
from edge.tools.registry import Tool, ToolContext

SendCommand = Callable[[str, str, dict[str, Any]], Awaitable[bool]]
_TYPES = {"number": "number", "string": "string", "boolean": "boolean", "integer": "integer"}


def iot_tools(descriptors: list[Any], send: SendCommand, timeout_s: float) -> list[Tool]:
    tools: list[Tool] = []
    for descriptor in descriptors:
        if not isinstance(descriptor, dict) or not isinstance(descriptor.get("name"), str):
            continue
        thing: str = descriptor["name"]
        methods = descriptor.get("methods")
        if not isinstance(methods, dict):
            continue
        for method, spec in methods.items():
            if not isinstance(spec, dict):
                continue
            tool = _method_tool(thing, str(method), spec, descriptor, send, timeout_s)
            if tool is not None:
                tools.append(tool)
    return tools


def _method_tool(
    thing: str,
    method: str,
    spec: dict[str, Any],
    descriptor: dict[str, Any],
    send: SendCommand,
    timeout_s: float,
) -> Tool | None:
    properties: dict[str, Any] = {}
    raw_params = spec.get("parameters") or {}
    if not isinstance(raw_params, dict):
        return None
    for pname, pspec in raw_params.items():
        kind = _TYPES.get(str(pspec.get("type", "")).lower()) if isinstance(pspec, dict) else None
        if kind is None or not isinstance(pspec, dict):
            return None  # an unknown parameter type: not simple, leave the method out
        properties[str(pname)] = {"type": kind, "description": str(pspec.get("description", ""))}

    async def call(arguments: dict[str, Any], _ctx: ToolContext) -> str:
        if not await send(thing, method, arguments):
            raise ToolError("the device disconnected")
        return "done"

    description = f"{descriptor.get('description', thing)}: {spec.get('description', method)}"
    return Tool(
        f"iot.{thing}.{method}",
        description,
        {"type": "object", "properties": properties, "required": list(properties)},
        call,
        timeout_s,
        "iot",
    )

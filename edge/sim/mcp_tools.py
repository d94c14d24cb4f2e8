"""The firmware's MCP server as the simulated device runs it (`main/mcp_server.cc`, protocol §7):
the common tools with the firmware's descriptions and argument checks, listing in pages with
`nextCursor` = the name of the first tool not yet returned, errors without `code`, requests with
a non-numeric `id` dropped. Switches make a tool fail or never answer, and hold the list back."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

COMMON_TOOLS: list[dict[str, Any]] = [
    {
        "name": "self.get_device_status",
        "description": (
            "Provides the real-time information of the device, including the current status of "
            "the audio speaker, screen, battery, network, etc.\nUse this tool for: \n1. Answering "
            "questions about current condition (e.g. what is the current volume of the audio "
            "speaker?)\n2. As the first step to control the device (e.g. turn up / down the "
            "volume of the audio speaker, etc.)"
        ),
        "inputSchema": {"type": "object", "properties": {}},
    },
    {
        "name": "self.audio_speaker.set_volume",
        "description": (
            "Set the volume of the audio speaker. If the current volume is unknown, you must "
            "call `self.get_device_status` tool first and then call this tool."
        ),
        "inputSchema": {
            "type": "object",
            "properties": {"volume": {"type": "integer", "minimum": 0, "maximum": 100}},
            "required": ["volume"],
        },
    },
    {
        "name": "self.screen.set_brightness",
        "description": "Set the brightness of the screen.",
        "inputSchema": {
            "type": "object",
            "properties": {"brightness": {"type": "integer", "minimum": 0, "maximum": 100}},
            "required": ["brightness"],
        },
    },
    {
        "name": "self.screen.set_theme",
        "description": "Set the theme of the screen. The theme can be `light` or `dark`.",
        "inputSchema": {
            "type": "object",
            "properties": {"theme": {"type": "string"}},
            "required": ["theme"],
        },
    },
]
USER_ONLY_TOOLS: list[dict[str, Any]] = [
    {
        "name": "self.get_system_info",
        "description": "Get the system information of the device.",
        "inputSchema": {"type": "object", "properties": {}},
        "annotations": {"audience": ["user"]},
    },
    {
        "name": "self.reboot",
        "description": "Reboot the device.",
        "inputSchema": {"type": "object", "properties": {}},
        "annotations": {"audience": ["user"]},
    },
]


@dataclass
class SimMcpServer:
    page_size: int = 2  # tools per tools/list page (the firmware cuts pages at ~8000 bytes)
    fail_tools: set[str] = field(default_factory=set)  # answer with an error (no code)
    silent_tools: set[str] = field(default_factory=set)  # never answer
    hold_list: bool = False  # do not answer tools/list until released
    without: set[str] = field(default_factory=set)  # tools this board does not have
    volume: int = 70
    brightness: int = 80
    theme: str = "light"
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)  # every payload received
    held: list[dict[str, Any]] = field(default_factory=list)  # held tools/list requests

    def handle(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        """The reply payload for one request, or None when the firmware sends nothing."""
        self.requests.append(payload)
        method = payload.get("method")
        if payload.get("jsonrpc") != "2.0" or not isinstance(method, str):
            return None
        if method.startswith("notifications"):
            return None
        request_id = payload.get("id")
        if isinstance(request_id, bool) or not isinstance(request_id, int | float):
            return None  # the firmware reads id as a number; anything else is dropped
        params = payload.get("params")
        if params is not None and not isinstance(params, dict):
            return _error(request_id, "Invalid params")
        params = params or {}
        if method == "initialize":
            return _result(
                request_id,
                {
                    "protocolVersion": "2024-11-05",
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "sim-board", "version": "2.2.2"},
                },
            )
        if method == "tools/list":
            if self.hold_list:
                self.held.append(payload)
                return None
            return self._list(request_id, params)
        if method == "tools/call":
            return self._call(request_id, params)
        return _error(request_id, f"Method not implemented: {method}")

    def release_list(self) -> list[dict[str, Any]]:
        """Stop holding the list; the replies to the held requests."""
        self.hold_list = False
        replies = [self.handle(p) for p in self.held]
        self.held.clear()
        return [r for r in replies if r is not None]

    def _tools(self, with_user: bool) -> list[dict[str, Any]]:
        tools = COMMON_TOOLS + (USER_ONLY_TOOLS if with_user else [])
        return [tool for tool in tools if tool["name"] not in self.without]

    def _list(self, request_id: int | float, params: dict[str, Any]) -> dict[str, Any]:
        tools = self._tools(bool(params.get("withUserTools")))
        cursor = params.get("cursor") or ""
        start = 0
        if cursor:
            names = [t["name"] for t in tools]
            start = names.index(cursor) if cursor in names else len(tools)
        page = tools[start : start + self.page_size]
        result: dict[str, Any] = {"tools": page}
        if start + self.page_size < len(tools):
            result["nextCursor"] = tools[start + self.page_size]["name"]
        return _result(request_id, result)

    def _call(self, request_id: int | float, params: dict[str, Any]) -> dict[str, Any] | None:
        name = params.get("name")
        arguments = params.get("arguments") or {}
        if not isinstance(name, str):
            return _error(request_id, "Missing name")
        tool = next((t for t in self._tools(True) if t["name"] == name), None)
        if tool is None:
            return _error(request_id, f"Unknown tool: {name}")
        if not isinstance(arguments, dict):
            return _error(request_id, "Invalid arguments")
        problem = _check_arguments(tool["inputSchema"], arguments)
        if problem:
            return _error(request_id, problem)
        self.calls.append((name, arguments))
        if name in self.silent_tools:
            return None
        if name in self.fail_tools:
            return _error(request_id, f"Failed to run {name}: hardware busy")
        return _result(
            request_id,
            {"content": [{"type": "text", "text": self._run(name, arguments)}], "isError": False},
        )

    def _run(self, name: str, arguments: dict[str, Any]) -> str:
        if name == "self.get_device_status":
            return json.dumps(
                {
                    "audio_speaker": {"volume": self.volume},
                    "screen": {"brightness": self.brightness, "theme": self.theme},
                    "network": {"type": "wifi", "ssid": "home", "signal": "strong"},
                }
            )
        if name == "self.audio_speaker.set_volume":
            self.volume = int(arguments["volume"])
        elif name == "self.screen.set_brightness":
            self.brightness = int(arguments["brightness"])
        elif name == "self.screen.set_theme":
            if arguments["theme"] not in ("light", "dark"):
                return "false"
            self.theme = str(arguments["theme"])
        return "true"


def _check_arguments(schema: dict[str, Any], arguments: dict[str, Any]) -> str:
    """The firmware's checks: required present, integers are numbers in range, strings strings."""
    properties: dict[str, Any] = schema.get("properties", {})
    for pname, spec in properties.items():
        value = arguments.get(pname)
        if value is None:
            if pname in schema.get("required", []):
                return f"Missing valid argument: {pname}"
            continue
        kind = spec.get("type")
        if kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int | float):
                return f"Missing valid argument: {pname}"
            if "minimum" in spec and value < spec["minimum"]:
                return f"Value is below minimum allowed: {spec['minimum']}"
            if "maximum" in spec and value > spec["maximum"]:
                return f"Value exceeds maximum allowed: {spec['maximum']}"
        elif kind == "string" and not isinstance(value, str):
            return f"Missing valid argument: {pname}"
        elif kind == "boolean" and not isinstance(value, bool):
            return f"Missing valid argument: {pname}"
    return ""


def _result(request_id: int | float, result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def _error(request_id: int | float, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"message": message}}


class McpLoopback:
    """A device MCP client wired straight to a simulated MCP server, without a socket (for
    tests and `edge bench tools`). Replies arrive on the next loop turn, as over a socket."""

    def __init__(self, device: SimMcpServer, **client_options: Any) -> None:
        from edge.tools.device_mcp import DeviceMcpClient

        self.device = device
        self.client = DeviceMcpClient(self._send, **client_options)

    async def _send(self, payload: dict[str, Any]) -> bool:
        reply = self.device.handle(payload)
        if reply is not None:
            asyncio.get_running_loop().call_soon(self.client.on_message, reply)
        return True

"""The device's own tools, over MCP carried in `{"type":"mcp"}` messages (protocol §7).

We are the client: `initialize` right after the hello, then `tools/list` page by page until no
`nextCursor`, then `tools/call` when the model asks. The firmware drops requests whose `id` is not
a JSON number and answers errors without a `code`. A turn that starts before the list has arrived
waits for it a bounded time; a call that gets no answer fails after its timeout, and every call
still pending fails at once when the socket closes.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger

from edge import __version__
from edge.errors import DeviceMcpError, DeviceMcpTimeout
from edge.tools.registry import Tool, ToolContext

Send = Callable[[dict[str, Any]], Awaitable[bool]]  # sends one JSON-RPC payload
MAX_PAGES = 50  # a device that keeps returning a cursor is not listing anything new
PROTOCOL_VERSION = "2024-11-05"


class DeviceMcpClient:
    def __init__(
        self,
        send: Send,
        log: Any = logger,
        *,
        call_timeout_s: float = 8.0,
        request_timeout_s: float = 10.0,
        vision_url: str = "",
    ) -> None:
        self._send = send
        self.log = log
        self.call_timeout_s = call_timeout_s
        self.request_timeout_s = request_timeout_s
        self.vision_url = vision_url
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self.tools: list[Tool] = []
        self.ready = asyncio.Event()  # set when the list is complete, or listing gave up
        self.closed = False

    # --- incoming ---------------------------------------------------------------------------

    def on_message(self, payload: dict[str, Any]) -> None:
        """A `{"type":"mcp"}` payload from the device: a reply to one of our requests."""
        raw_id = payload.get("id")
        if (
            isinstance(raw_id, bool)
            or not isinstance(raw_id, int | float)
            or not math.isfinite(raw_id)  # NaN, Infinity, 1e999: JSON numbers, never our ids
        ):
            if "method" in payload:
                self.log.debug("device MCP request {!r} ignored", payload.get("method"))
            else:
                self.log.warning("device MCP reply without a numeric id ignored")
            return
        future = self._pending.pop(int(raw_id), None)
        if future is None or future.done():
            self.log.info("device MCP reply to unknown or expired request {}", raw_id)
            return
        error = payload.get("error")
        if error is not None:
            message = error.get("message") if isinstance(error, dict) else None
            future.set_exception(DeviceMcpError(str(message or error)))
        elif "result" in payload:
            future.set_result(payload["result"])
        else:
            future.set_exception(DeviceMcpError("device reply has neither result nor error"))

    def close(self) -> None:
        """The socket closed: fail every pending request now."""
        self.closed = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(DeviceMcpError("the device disconnected"))
        self._pending.clear()
        self.ready.set()

    # --- outgoing ---------------------------------------------------------------------------

    async def request(self, method: str, params: dict[str, Any], timeout_s: float) -> Any:
        if self.closed:
            raise DeviceMcpError("the device disconnected")
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            payload = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
            if not await self._send(payload):
                raise DeviceMcpError("the device disconnected")
            async with asyncio.timeout(timeout_s):
                return await future
        except TimeoutError:
            raise DeviceMcpTimeout(f"{method} got no answer within {timeout_s:g} s") from None
        finally:
            self._pending.pop(request_id, None)

    async def start(self) -> None:
        """initialize → notifications/initialized → tools/list (all pages). Never raises."""
        try:
            capabilities: dict[str, Any] = {}
            if self.vision_url:
                capabilities["vision"] = {"url": self.vision_url, "token": ""}
            result = await self.request(
                "initialize",
                {
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": capabilities,
                    "clientInfo": {"name": "edge", "version": __version__},
                },
                self.request_timeout_s,
            )
            server = result.get("serverInfo", {}) if isinstance(result, dict) else {}
            await self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            self.tools = await self._list_tools()
            self.log.info(
                "device MCP ready ({} {}): {} tools for the model: {}",
                server.get("name", "?"),
                server.get("version", "?"),
                len(self.tools),
                ", ".join(t.name for t in self.tools) or "none",
            )
        except DeviceMcpError as exc:
            self.log.warning("device MCP unavailable: {}", exc)
        finally:
            self.ready.set()

    async def _list_tools(self) -> list[Tool]:
        tools: list[Tool] = []
        cursor = ""
        seen_cursors: set[str] = set()
        for _page in range(MAX_PAGES):
            result = await self.request("tools/list", {"cursor": cursor}, self.request_timeout_s)
            if not isinstance(result, dict):
                raise DeviceMcpError("tools/list result is not an object")
            listed = result.get("tools") or []
            if not isinstance(listed, list):
                self.log.warning("device MCP tools/list gave {} for tools", type(listed).__name__)
                listed = []
            for raw in listed:
                tool = self._tool(raw)
                if tool is not None:
                    tools.append(tool)
            cursor = result.get("nextCursor") or ""
            if not isinstance(cursor, str) or not cursor:
                return tools
            if cursor in seen_cursors:
                self.log.warning("device MCP repeats cursor {!r}; list ends here", cursor[:60])
                return tools
            seen_cursors.add(cursor)
        self.log.warning("device MCP list longer than {} pages; truncated", MAX_PAGES)
        return tools

    def _tool(self, raw: Any) -> Tool | None:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            self.log.warning("device MCP tool without a name ignored")
            return None
        name: str = raw["name"]
        annotations = raw.get("annotations")
        audience = annotations.get("audience") if isinstance(annotations, dict) else None
        if isinstance(audience, list) and audience and "assistant" not in audience:
            return None  # user-only tools (reboot, firmware upgrade) are not the model's
        schema = raw.get("inputSchema")
        if not isinstance(schema, dict):
            schema = {"type": "object", "properties": {}}

        async def call(arguments: dict[str, Any], _ctx: ToolContext) -> str:
            return await self.call_tool(name, arguments)

        return Tool(
            name,
            str(raw.get("description") or ""),
            schema,
            call,
            # The client's own timeout fires first and cleans up the pending request.
            self.call_timeout_s + 1.0,
            "device",
        )

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> str:
        result = await self.request(
            "tools/call", {"name": name, "arguments": arguments}, self.call_timeout_s
        )
        if not isinstance(result, dict):
            return str(result)
        content = result.get("content")
        texts = [
            str(item.get("text", ""))
            for item in (content if isinstance(content, list) else [])
            if isinstance(item, dict) and item.get("type") == "text"
        ]
        text = "\n".join(texts) or "done"
        if result.get("isError"):
            raise DeviceMcpError(text)
        return text

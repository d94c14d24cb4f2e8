"""External MCP servers (stdio), started with the official `mcp` SDK; their tools join the
shared registry. Each server lives in its own task: one that fails to start, stops answering or
exits is logged and its tools are removed, while the others keep working."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from loguru import logger

from edge.config import McpServerConfig
from edge.errors import ToolError, ToolTimeout
from edge.tools.registry import Tool, ToolContext, ToolRegistry

PING_INTERVAL_S = 5.0
MAX_PAGES = 50


class ExternalMcpServer:
    def __init__(self, config: McpServerConfig, registry: ToolRegistry) -> None:
        self.config = config
        self.registry = registry
        self.source = f"mcp:{config.name}"
        self.log = logger.bind(device=self.source)
        self.ready = asyncio.Event()  # set once listed, or once it failed
        self.alive = False

    async def run(self) -> None:
        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import stdio_client

        env = dict(item.split("=", 1) for item in self.config.env if "=" in item)
        params = StdioServerParameters(
            command=self.config.command, args=list(self.config.args), env=env or None
        )
        try:
            async with stdio_client(params, errlog=sys.stderr) as (read, write):
                async with ClientSession(read, write) as session:
                    async with asyncio.timeout(self.config.start_timeout_s):
                        await session.initialize()
                        tools = await self._list(session)
                    self.registry.set_source(self.source, tools)
                    self.alive = True
                    self.ready.set()
                    self.log.info(
                        "MCP server started: {} tools: {}",
                        len(tools),
                        ", ".join(t.name for t in tools) or "none",
                    )
                    await self._watch(session)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # an anyio ExceptionGroup included
            self.log.error("MCP server {} failed: {}", self.config.name, _describe(exc))
        finally:
            self.alive = False
            self.registry.remove_source(self.source)
            self.ready.set()

    async def _watch(self, session: Any) -> None:
        """Ping until the server stops answering (it exited or hung)."""
        while True:
            await asyncio.sleep(PING_INTERVAL_S)
            try:
                async with asyncio.timeout(self.config.call_timeout_s):
                    await session.send_ping()
            except Exception as exc:
                self.log.error(
                    "MCP server {} stopped answering ({}); its tools are removed",
                    self.config.name,
                    _describe(exc),
                )
                return

    async def _list(self, session: Any) -> list[Tool]:
        from mcp.types import PaginatedRequestParams

        tools: list[Tool] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            params = PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await session.list_tools(params=params)
            tools += [self._tool(session, t) for t in page.tools]
            cursor = page.next_cursor
            if not cursor:
                break
        return tools

    def _tool(self, session: Any, spec: Any) -> Tool:
        name = str(spec.name)

        async def call(arguments: dict[str, Any], _ctx: ToolContext) -> str:
            from mcp import MCPError
            from mcp_types import REQUEST_TIMEOUT

            try:
                result = await session.call_tool(
                    name, arguments, read_timeout_seconds=self.config.call_timeout_s
                )
            except MCPError as exc:
                if exc.code == REQUEST_TIMEOUT:
                    raise ToolTimeout(f"{name} did not answer in time") from exc
                raise ToolError(f"{name}: {exc}") from exc
            texts = [str(getattr(c, "text", "")) for c in getattr(result, "content", None) or []]
            text = "\n".join(t for t in texts if t) or "done"
            if getattr(result, "is_error", False):
                raise ToolError(text[:300])
            return text

        schema = spec.input_schema if isinstance(spec.input_schema, dict) else {}
        return Tool(
            name,
            str(spec.description or ""),
            {"type": "object", **schema},
            call,
            self.config.call_timeout_s + 1.0,
            self.source,
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _describe(exc.exceptions[0])
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

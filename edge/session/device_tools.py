"""The tool set one device's answers are offered: the server's own tools (built-in, external MCP
servers), the device's tools over MCP (firmware 1.8 and later: volume, brightness, theme, ...) and
the methods of legacy IoT "things" (older firmware)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from edge.config import ToolsConfig
from edge.protocol.messages import IotCommand, McpRequest
from edge.session.link import DeviceLink
from edge.tools.device_mcp import DeviceMcpClient
from edge.tools.iot import iot_tools
from edge.tools.registry import Tool, ToolRegistry, ToolSet


class DeviceTools:
    def __init__(
        self,
        link: DeviceLink,
        registry: ToolRegistry,
        config: ToolsConfig,
        *,
        mcp: bool,
        vision_url: str = "",
    ) -> None:
        """`mcp`: the device's hello announced an MCP server."""
        self.link = link
        self.registry = registry
        self.config = config
        self.mcp: DeviceMcpClient | None = None
        if mcp and config.enabled:
            self.mcp = DeviceMcpClient(
                self._send_mcp,
                link.log,
                call_timeout_s=config.device_call_timeout_s,
                vision_url=vision_url,
            )
        self.iot: list[Tool] = []

    @property
    def listed(self) -> bool:
        """The device's tool list is complete (or it has none to list): the tool set will not
        change, so a prompt with it may be read ahead."""
        return self.mcp is None or self.mcp.ready.is_set() or not self.config.enabled

    async def start(self) -> bool:
        """The MCP handshake and tool listing; whether the device offered any tools."""
        if self.mcp is None:
            return False
        await self.mcp.start()
        return bool(self.mcp.tools)

    def on_mcp(self, payload: dict[str, Any]) -> None:
        if self.mcp is not None:
            self.mcp.on_message(payload)
        else:
            self.link.log.debug("MCP message from a device without MCP in its hello ignored")

    def on_iot(self, descriptors: list[Any]) -> None:
        if not descriptors or not self.config.enabled:
            return  # states only: nothing to do
        tools = iot_tools(descriptors, self._send_iot, self.config.device_call_timeout_s)
        known = {t.name for t in tools}
        self.iot = [t for t in self.iot if t.name not in known] + tools
        self.link.log.info("legacy IoT: {} methods offered as tools", len(tools))

    async def toolset(self) -> ToolSet:
        """The tools for a turn; waits a bounded time for a tool list still being sent."""
        if not self.config.enabled:
            return ToolSet([])
        if self.mcp is not None and not self.mcp.ready.is_set():
            self.link.log.info("waiting for the device's tool list")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.device_list_wait_s):
                    await self.mcp.ready.wait()
            if not self.mcp.ready.is_set():
                self.link.log.warning("device tools not listed yet; answering without them")
        return self.now()

    def now(self) -> ToolSet:
        """The tools as they stand, without waiting."""
        if not self.config.enabled:
            return ToolSet([])
        device = self.mcp.tools if self.mcp is not None else []
        return ToolSet([*self.registry.tools(), *device, *self.iot])

    def close(self) -> None:
        """The device is gone: pending tool calls fail now, not at their timeout."""
        if self.mcp is not None:
            self.mcp.close()

    async def _send_mcp(self, payload: dict[str, Any]) -> bool:
        return await self.link.send(McpRequest(payload))

    async def _send_iot(self, thing: str, method: str, parameters: dict[str, Any]) -> bool:
        return await self.link.send(IotCommand(thing, method, parameters))

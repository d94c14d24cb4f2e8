"""External MCP servers started over stdio with the official SDK: a working one, one that cannot
start, and one that dies while serving."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from edge.config import McpServerConfig
from edge.errors import ToolError
from edge.tools.registry import ToolContext
from tests.helpers import Running

SERVER = str(Path(__file__).with_name("mcp_test_server.py"))


def _servers() -> list[McpServerConfig]:
    return [
        McpServerConfig(name="family", command=sys.executable, args=[SERVER]),
        McpServerConfig(name="broken", command="/nonexistent/mcp-server", start_timeout_s=5),
    ]


def test_tools_merge_and_a_dead_server_leaves(
    make_server: Any, log_lines: list[dict[str, Any]]
) -> None:
    running: Running = make_server(tools={"mcp_servers": _servers()})
    registry = running.server.services.registry
    names = [t.name for t in registry.tools()]
    assert names[:2] == ["set_reminder", "end_conversation"]  # built-ins first
    assert {"add", "shopping_list", "crash"} <= set(names)
    broken = [
        line
        for line in log_lines
        if line["level"] == "ERROR" and "MCP server broken" in line["message"]
    ]
    assert broken and broken[0]["device"] == "mcp:broken"

    by_name = {t.name: t for t in registry.tools()}
    ctx = ToolContext("dev")
    assert running.harness.call(by_name["add"].call({"a": 2, "b": 3}, ctx)) == "5"
    assert "green tea" in running.harness.call(by_name["shopping_list"].call({}, ctx))

    # The server dies: the call fails cleanly, its tools go, the built-ins stay.
    try:
        running.harness.call(by_name["crash"].call({}, ctx))
    except ToolError:
        pass
    for _ in range(100):
        if "add" not in [t.name for t in registry.tools()]:
            break
        running.harness.call(asyncio.sleep(0.1))
    remaining = [t.name for t in registry.tools()]
    assert remaining == ["set_reminder", "end_conversation"]
    assert any(
        "MCP server family" in line["message"] for line in log_lines if line["level"] == "ERROR"
    )

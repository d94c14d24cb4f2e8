"""A small external MCP server (stdio) for the tests, written with the official SDK."""

from __future__ import annotations

import os

from mcp.server.mcpserver import MCPServer

app = MCPServer("edge-test-tools")


@app.tool()
def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b


@app.tool()
def shopping_list() -> str:
    """The items on the family shopping list."""
    return "milk, eggs, green tea"


@app.tool()
def crash() -> str:
    """Stops this server at once (to test a server that dies)."""
    os._exit(3)


if __name__ == "__main__":
    app.run()

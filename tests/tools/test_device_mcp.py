"""The device MCP client against the simulated firmware MCP server, wired back to back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from edge.errors import DeviceMcpError
from edge.sim.mcp_tools import McpLoopback, SimMcpServer
from edge.tools.device_mcp import DeviceMcpClient


def _wired(device: SimMcpServer) -> McpLoopback:
    return McpLoopback(device, call_timeout_s=0.3, request_timeout_s=0.5)


async def test_handshake_lists_every_page_and_hides_user_tools() -> None:
    wire = _wired(SimMcpServer(page_size=2))
    await wire.client.start()
    methods = [p.get("method") for p in wire.device.requests]
    assert methods == ["initialize", "notifications/initialized", "tools/list", "tools/list"]
    init = wire.device.requests[0]
    assert isinstance(init["id"], int) and init["jsonrpc"] == "2.0"
    assert "vision" not in init["params"]["capabilities"]  # no URL given to this client
    assert [p["params"]["cursor"] for p in wire.device.requests[2:]] == [
        "",
        "self.screen.set_brightness",
    ]
    assert all(isinstance(p["id"], int) for p in wire.device.requests if "id" in p)
    assert [t.name for t in wire.client.tools] == [
        "self.get_device_status",
        "self.audio_speaker.set_volume",
        "self.screen.set_brightness",
        "self.screen.set_theme",
    ]
    assert wire.client.ready.is_set()


async def test_vision_capability_is_offered_with_a_url() -> None:
    wire = _wired(SimMcpServer())
    wire.client.vision_url = "http://10.0.0.2:8003/mcp/vision/explain"
    await wire.client.start()
    vision = wire.device.requests[0]["params"]["capabilities"]["vision"]
    assert vision["url"] == "http://10.0.0.2:8003/mcp/vision/explain"


def test_user_only_tools_are_not_for_the_model() -> None:
    client = DeviceMcpClient(lambda _p: asyncio.sleep(0, True))
    raw = {"name": "self.reboot", "inputSchema": {}, "annotations": {"audience": ["user"]}}
    assert client._tool(raw) is None
    both = {**raw, "annotations": {"audience": ["user", "assistant"]}}
    assert client._tool(both) is not None


async def test_call_result_error_without_code_and_silence() -> None:
    device = SimMcpServer(
        fail_tools={"self.screen.set_brightness"}, silent_tools={"self.screen.set_theme"}
    )
    wire = _wired(device)
    await wire.client.start()
    assert await wire.client.call_tool("self.audio_speaker.set_volume", {"volume": 30}) == "true"
    assert device.volume == 30
    with pytest.raises(DeviceMcpError, match="hardware busy"):
        await wire.client.call_tool("self.screen.set_brightness", {"brightness": 10})
    with pytest.raises(DeviceMcpError, match=r"no answer within 0\.3 s"):
        await wire.client.call_tool("self.screen.set_theme", {"theme": "dark"})
    assert wire.client._pending == {}  # the timed-out call is cleaned up
    # The firmware's own argument check comes back as an error message.
    with pytest.raises(DeviceMcpError, match="exceeds maximum"):
        await wire.client.call_tool("self.audio_speaker.set_volume", {"volume": 300})


async def test_closing_fails_pending_calls_at_once() -> None:
    device = SimMcpServer(silent_tools={"self.audio_speaker.set_volume"})
    wire = _wired(device)
    await wire.client.start()
    call = asyncio.create_task(
        wire.client.call_tool("self.audio_speaker.set_volume", {"volume": 1})
    )
    await asyncio.sleep(0.05)
    wire.client.close()
    with pytest.raises(DeviceMcpError, match="disconnected"):
        await call
    with pytest.raises(DeviceMcpError, match="disconnected"):
        await wire.client.call_tool("self.get_device_status", {})


async def test_a_device_that_never_lists_is_given_up_on() -> None:
    wire = _wired(SimMcpServer(hold_list=True))
    await wire.client.start()  # never raises
    assert wire.client.ready.is_set() and wire.client.tools == []


async def test_replies_that_match_nothing_are_ignored() -> None:
    client = DeviceMcpClient(lambda _p: asyncio.sleep(0, True))
    client.on_message({"jsonrpc": "2.0", "id": "1", "result": {}})  # string id
    client.on_message({"jsonrpc": "2.0", "id": 99, "result": {}})  # unknown id
    client.on_message({"jsonrpc": "2.0", "method": "notifications/x"})  # a request to us
    client.on_message({"jsonrpc": "2.0", "id": True, "result": {}})
    for odd in (float("nan"), float("inf"), -float("inf")):  # JSON NaN, Infinity, 1e999
        client.on_message({"jsonrpc": "2.0", "id": odd, "result": {}})
    assert client._pending == {}


async def test_odd_shapes_in_lists_and_results_are_tolerated() -> None:
    class Odd(SimMcpServer):
        def _list(self, request_id: int | float, params: dict[str, Any]) -> dict[str, Any]:
            page = super()._list(request_id, params)
            if not params.get("cursor"):
                page["result"]["tools"][0]["annotations"] = ["audience"]  # a list, not an object
            else:
                page["result"]["tools"] = 5  # not a list
            return page

    wire = _wired(Odd(page_size=2))
    await wire.client.start()
    assert [t.name for t in wire.client.tools] == [
        "self.get_device_status",
        "self.audio_speaker.set_volume",
    ]
    client = DeviceMcpClient(lambda _p: asyncio.sleep(0, True))
    call = asyncio.create_task(client.call_tool("x", {}))
    await asyncio.sleep(0)
    client.on_message({"jsonrpc": "2.0", "id": 1, "result": {"content": 7}})
    assert await call == "done"


async def test_a_cursor_that_repeats_ends_the_list() -> None:
    class Looping(SimMcpServer):
        def _list(self, request_id: int | float, params: dict[str, Any]) -> dict[str, Any]:
            page = super()._list(request_id, {"cursor": ""})
            page["result"]["nextCursor"] = "self.x"
            return page

    wire = _wired(Looping(page_size=1))
    await wire.client.start()
    assert len([p for p in wire.device.requests if p.get("method") == "tools/list"]) == 2
    assert [t.name for t in wire.client.tools] == ["self.get_device_status"] * 2
